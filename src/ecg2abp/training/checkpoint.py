"""Resumable checkpoints: written atomically, read back only for the same settings."""

import logging
import signal
from pathlib import Path

import torch

from ecg2abp.atomic import atomic_path

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


def load_checkpoint(path: Path, config_fingerprint: str) -> dict | None:
    """The saved state, or None when there is none or it was written under other settings."""
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("config_fingerprint") != config_fingerprint:
        log.warning("%s: settings changed since it was written; starting afresh", path)
        return None
    log.info("resuming from %s (epoch %d, batch %d)", path, state["epoch"], state["batch"])
    return state
