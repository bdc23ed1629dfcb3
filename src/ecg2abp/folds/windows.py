"""A set of window starts held as runs (O(segments) memory), and a shard's every window."""

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ecg2abp.data.shards import Shard, windows_per_segment


@dataclass(frozen=True)
class WindowSet:
    """Window starts as runs, `first[i] + step * k` for `k < count[i]`, laid end to end: a
    side's windows in O(runs) memory (runs follow segments), never one integer per window."""

    first: np.ndarray  # int64, the first start of each run
    count: np.ndarray  # int64, the windows in each run
    step: int = 1

    @classmethod
    def of(cls, starts: "np.ndarray | WindowSet", step: int = 1) -> "WindowSet":
        """Explicit starts (kept in their order) as runs of consecutive `step`s."""
        if isinstance(starts, WindowSet):
            return starts
        starts = np.asarray(starts, np.int64).reshape(-1)
        heads = np.flatnonzero(np.diff(starts, prepend=np.int64(-step - 1)) != step)
        counts = np.diff(np.append(heads, len(starts)))
        return cls(starts[heads], counts.astype(np.int64), step)

    @cached_property
    def ends(self) -> np.ndarray:
        """Position one past each run's last window."""
        return np.cumsum(self.count, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def at(self, positions: np.ndarray) -> np.ndarray:
        """Starts of the windows at these positions (0 … len - 1)."""
        positions = np.asarray(positions, np.int64)
        run = np.searchsorted(self.ends, positions, side="right")
        return self.first[run] + (positions - self.ends[run] + self.count[run]) * self.step

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """Every start, in order, `size` at a time."""
        for first in range(0, len(self), size):
            yield self.at(np.arange(first, min(first + size, len(self))))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        starts = self.at(np.arange(len(self)))
        return starts if dtype is None else starts.astype(dtype)


def all_windows(shard: Shard) -> WindowSet:
    """Every window of a shard (its window index, rebuilt from its segments)."""
    window, stride = int(shard.attrs["window"]), int(shard.attrs["stride"])
    segments = shard.segments.astype(np.int64).reshape(-1, 4)
    count = windows_per_segment(segments[:, 2] - segments[:, 1], window, stride)
    keep = count > 0
    return WindowSet(segments[keep, 1], count[keep], stride)


def windows_per_record(shard: Shard) -> np.ndarray:
    """How many windows each of the shard's records has (from its segments)."""
    segments = shard.segments.astype(np.int64).reshape(-1, 4)
    window, stride = int(shard.attrs["window"]), int(shard.attrs["stride"])
    count = windows_per_segment(segments[:, 2] - segments[:, 1], window, stride)
    per_record = np.bincount(segments[:, 0], weights=count, minlength=len(shard.records))
    return per_record.astype(np.int64)
