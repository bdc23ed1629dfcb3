"""One GPU per job on a multi-GPU workstation: slots held as file locks, never two jobs on one.

Snakemake's `--resources gpu=N` caps how many GPU jobs run at once but cannot say which GPU
each gets. Each GPU job therefore takes a slot itself: an exclusive `flock` on
`<lock_dir>/gpu<i>.lock`, held for the job's lifetime, and sets CUDA_VISIBLE_DEVICES=i before
CUDA starts. The kernel arbitrates concurrent claims (no two holders, whatever the timing) and
releases a lock when its process ends, however it ends (no stale slots after a crash or kill).
"""

import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

LOCK_DIR = Path(".snakemake") / "gpu_slots"
log = logging.getLogger("ecg2abp.gpu_slots")


def try_slot(n_slots: int, lock_dir: Path) -> tuple[int, TextIO] | None:
    """The first free slot and its open, locked file; None when all `n_slots` are held."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    for index in range(n_slots):
        handle = (lock_dir / f"gpu{index}.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return index, handle
    return None


@contextmanager
def gpu_slot(n_slots: int, lock_dir: Path = LOCK_DIR, poll_seconds: float = 1.0) -> Iterator[int]:
    """Hold one of `n_slots` GPU slots (waiting while all are held), with CUDA_VISIBLE_DEVICES
    set to its index; released on leaving."""
    waited = False
    while (claimed := try_slot(n_slots, lock_dir)) is None:
        if not waited:
            log.info("all %d GPU slots in %s are held; waiting", n_slots, lock_dir)
            waited = True
        time.sleep(poll_seconds)
    index, handle = claimed
    previous = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
    log.info("GPU slot %d: CUDA_VISIBLE_DEVICES=%d", index, index)
    try:
        yield index
    finally:
        if previous is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = previous
        handle.close()  # closing the file releases the lock


def run_pinned(n_slots: int, step: Callable[..., Any], *args: Any) -> Any:
    """Run `step(*args)` on a GPU slot of its own; with 0 slots, as the environment has it."""
    if n_slots == 0:
        return step(*args)
    with gpu_slot(n_slots):
        return step(*args)
