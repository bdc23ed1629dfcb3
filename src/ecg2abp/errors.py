"""The one exception type for bad user input."""


class InputError(Exception):
    """Bad input: the message is one line naming the file/record/key and the problem."""
