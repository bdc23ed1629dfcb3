"""Resumable checkpoints: written atomically, read back only for the same settings."""

import logging
import signal
from pathlib import Path

import torch

from ecg2abp.atomic import atomic_path
from ecg2abp.errors import InputError
from ecg2abp.training.model_file import read_torch_file

log = logging.getLogger("ecg2abp.training")


class Interrupted(Exception):
    """SIGTERM arrived: the training loop checkpoints and the job exits."""


class StopRequested:
    """Turns SIGTERM (cluster preemption) into a flag the loop checks after every batch."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True

    def restore(self) -> None:
        signal.signal(signal.SIGTERM, self._previous)


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def set_aside(path: Path, why: str) -> Path:
    """Rename an unusable checkpoint out of the way (kept for inspection) and say so."""
    aside = path.with_name(path.name + ".set-aside")
    path.replace(aside)
    log.warning("%s: %s; moved to %s, training starts afresh", path, why, aside.name)
    return aside


def load_checkpoint(path: Path, fingerprint: str) -> dict | None:
    """The saved state, or None when there is none; one that is unreadable or was written
    for other data or settings is set aside."""
    if not path.exists():
        return None
    try:
        state = read_torch_file(path, "checkpoint")
    except InputError as err:
        set_aside(path, f"unreadable ({err})")
        return None
    if not isinstance(state, dict) or state.get("config_fingerprint") != fingerprint:
        set_aside(path, "written for other data or settings")
        return None
    log.info("resuming from %s (epoch %d, batch %d)", path, state["epoch"], state["batch"])
    return state
