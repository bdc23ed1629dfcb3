"""The window feed: shuffled, normalised (ECG window, ABP at its last sample) batches."""

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from ecg2abp.data.shards import Shard
from ecg2abp.errors import InputError
from ecg2abp.folds.normalisation import NormStats


def side_ranges(side: Sequence[Sequence]) -> dict[str, tuple[int, float]]:
    """Record id → (source start, source stop) of one split side; one range per record."""
    ranges: dict[str, tuple[int, float]] = {}
    for record_id, start, stop in side:
        if record_id in ranges:
            raise InputError(f"split: record {record_id} appears twice on one side")
        ranges[record_id] = (int(start), float("inf") if stop is None else float(stop))
    return ranges


def select_windows(shard: Shard, ranges: dict[str, tuple[int, float]], window: int) -> np.ndarray:
    """Shard window starts whose every sample lies inside its record's range on this side."""
    lower = np.full(len(shard.records), np.inf)
    upper = np.full(len(shard.records), -np.inf)
    for index, record_id in enumerate(shard.records):
        if record_id in ranges:
            lower[index], upper[index] = ranges[record_id]
    record, source = shard.locate(shard.windows)
    keep = (source >= lower[record]) & (source + window <= upper[record])
    return shard.windows[keep]


def _window_rows(signal: np.ndarray, window: int) -> np.ndarray:
    """Every `window`-long slice of `signal` as the rows of a view (none if it is shorter)."""
    if len(signal) < window:
        return np.zeros((0, window), dtype=signal.dtype)
    return sliding_window_view(signal, window)


class WindowFeed:
    """Batches gathered at once from in-memory or memory-mapped shard arrays, never per window."""

    def __init__(
        self,
        shards: Sequence[Shard],
        starts: Sequence[np.ndarray],
        *,
        window: int,
        stats: NormStats,
        batch_size: int,
        seed: int,
        shuffle: bool = True,
        max_windows: int | None = None,
        order: np.ndarray | None = None,
    ) -> None:
        self.window = window
        self.stats = stats
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.max_windows = max_windows
        self._shard_of = np.concatenate(
            [np.full(len(s), i, dtype=np.int32) for i, s in enumerate(starts)] or [np.zeros(0)]
        ).astype(np.int32)
        self._starts = np.concatenate([np.asarray(s, np.int64) for s in starts] or [np.zeros(0)])
        self._starts = self._starts.astype(np.int64)
        self._ecg = [_window_rows(shard.ecg, window) for shard in shards]
        self._abp = [shard.abp for shard in shards]
        self._single = len(shards) == 1
        self.n_windows = len(self._starts)
        # unshuffled order: positions into the starts laid end to end (default: as laid)
        self._order = np.arange(self.n_windows) if order is None else np.asarray(order, np.int64)

    def windows_per_epoch(self) -> int:
        if self.max_windows is None:
            return self.n_windows
        return min(self.n_windows, self.max_windows)

    def __len__(self) -> int:
        return -(-self.windows_per_epoch() // self.batch_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Window positions of one epoch, deterministic in (seed, epoch)."""
        if not self.shuffle:
            return self._order[: self.windows_per_epoch()]
        rng = np.random.default_rng([self.seed, epoch])
        if self.windows_per_epoch() < self.n_windows:
            return rng.choice(self.n_windows, size=self.windows_per_epoch(), replace=False)
        return rng.permutation(self.n_windows)

    def gather(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw (ECG windows [n, window], ABP targets [n]) for window positions, in mmHg/mV."""
        starts = self._starts[positions]
        if self._single:
            return self._ecg[0][starts], self._abp[0][starts + self.window - 1]
        shard_of = self._shard_of[positions]
        ecg = np.empty((len(positions), self.window), dtype=np.float32)
        abp = np.empty(len(positions), dtype=np.float32)
        for shard in np.unique(shard_of):
            mask = shard_of == shard
            ecg[mask] = self._ecg[shard][starts[mask]]
            abp[mask] = self._abp[shard][starts[mask] + self.window - 1]
        return ecg, abp

    def normalise(self, ecg: np.ndarray, abp: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised float32 tensors: ECG [n, 1, window], ABP [n]."""
        x, y = self.stats.scale_ecg(ecg), self.stats.scale_abp(abp)
        return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)

    def batches(
        self, epoch: int, start_batch: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of `epoch`, from `start_batch` on (to resume mid-epoch)."""
        order = self.epoch_order(epoch)
        for first in range(start_batch * self.batch_size, len(order), self.batch_size):
            yield self.normalise(*self.gather(order[first : first + self.batch_size]))
