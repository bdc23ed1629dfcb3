"""Logging for workflow steps: a log file per job, and bad input reported in one line."""

import logging
import resource
import sys
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

from ecg2abp.errors import InputError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(log_file: Path | str | None = None, level: int = logging.INFO) -> None:
    """Send the package's log lines to stderr and, if given, to `log_file`."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)
    # faiss logs at INFO which of its SIMD builds it tried to load: noise in every job's log
    logging.getLogger("faiss.loader").setLevel(max(level, logging.WARNING))


class _Tee:
    """A text stream writing to the real stderr and to the job's log file."""

    def __init__(self, console: TextIO, log: TextIO) -> None:
        self.console, self.log = console, log

    def write(self, text: str) -> int:
        self.console.write(text)
        self.log.write(text)
        self.log.flush()
        return len(text)

    def flush(self) -> None:
        self.console.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:  # fileno, encoding, …: the console's
        return getattr(self.console, name)


def run_step(log_file: Path | str | None, step: Callable[..., Any], *args: Any, **kwargs: Any):
    """Run one workflow step with logging; all it writes to stderr (log lines, warnings,
    tracebacks) also reaches `log_file`; bad input ends it with one line, no traceback."""
    console = sys.stderr
    with ExitStack() as stack:
        if log_file is not None:
            Path(log_file).parent.mkdir(parents=True, exist_ok=True)
            log = stack.enter_context(Path(log_file).open("w", buffering=1))
            sys.stderr = _Tee(console, log)
            stack.callback(setattr, sys, "stderr", console)
            stack.callback(configure)  # runs first: log lines to the console only again
        configure()  # log lines go to sys.stderr: through the tee, once to each
        try:
            result = step(*args, **kwargs)
            logging.getLogger("ecg2abp").info("peak RSS %.0f MB", peak_rss_mb())
            return result
        except InputError as err:
            message = f"ecg2abp: error: {err}"
        except OSError as err:
            message = f"ecg2abp: error: {describe_os_error(err)}"
        except Exception:
            traceback.print_exc()
            message = "ecg2abp: the step failed (traceback above)"
        print(message, file=sys.stderr)
    sys.exit(1)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MB), as the kernel counts it: exact, where
    Snakemake's benchmark files sample it (every 30 s after a job's first 15 s). Linux's
    VmHWM, of this program alone (getrusage's maxrss also keeps the peak of the process it
    was forked from); getrusage elsewhere."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kilobytes = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kilobytes) / 1024


def describe_os_error(err: OSError) -> str:
    """An operating-system error (permission, a folder where a file was expected…) in one line."""
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{err.strerror or err}"
