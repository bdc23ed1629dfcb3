"""Atomic file output: write under a temporary name, rename on success."""

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ecg2abp.errors import InputError

TMP_MARK = ".tmp-"


def _temporary(final: Path, pid: int) -> Path:
    return final.with_name(f".{final.name}{TMP_MARK}{pid}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(final: Path) -> list[Path]:
    """Delete temporaries of `final` left by processes of this machine that no longer run."""
    prefix = f".{final.name}{TMP_MARK}"
    removed = []
    for tmp in [p for p in final.parent.iterdir() if p.name.startswith(prefix)]:
        pid = tmp.name[len(prefix) :]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _prepare(final: Path, tmp: Path) -> None:
    """Refuse in one line an output that cannot be written: a folder, a file as parent, …"""
    if final.is_dir():
        raise InputError(f"{final}: is a folder; give a file name to write")
    for parent in final.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{final}: cannot be written, {parent} is a file")
            break
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(final)
        tmp.open("wb").close()
    except OSError as err:
        raise InputError(f"{final}: cannot be written ({err.strerror or err})") from None


@contextmanager
def atomic_path(final: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it onto `final` only if the block succeeds.

    Temporaries of the same output left by killed processes are removed first.
    """
    final = Path(final)
    tmp = _temporary(final, os.getpid())
    _prepare(final, tmp)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path | str, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same path once links are resolved, or a hard link."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False


def refuse_overwriting(outputs: Iterable[Path | None], inputs: Iterable[Path | None]) -> None:
    """Refuse in one line an output that is one of the inputs, or another of the outputs."""
    written = [Path(p) for p in outputs if p is not None]
    read = [Path(p) for p in inputs if p is not None]
    for index, out in enumerate(written):
        for source in read:
            if _same_file(out, source):
                raise InputError(f"{out}: would overwrite the input {source}; give another name")
        for earlier in written[:index]:
            if _same_file(out, earlier):
                raise InputError(f"{out}: would overwrite the output {earlier}; give another name")
