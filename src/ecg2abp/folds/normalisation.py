"""Normalisation statistics: computed once from a fold's training windows, stored in every model."""

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ecg2abp.data.shards import Shard, release_pages
from ecg2abp.errors import InputError
from ecg2abp.folds.windows import WindowSet, all_windows


@dataclass(frozen=True)
class NormStats:
    """Affine normalisation: ECG by `method` statistics, ABP by mean and SD (or 0 and 1: mmHg)."""

    method: str
    ecg_center: float
    ecg_scale: float
    abp_center: float
    abp_scale: float

    def scale_ecg(self, ecg: np.ndarray) -> np.ndarray:
        """Normalised float32 ECG: the one formula training and prediction share."""
        center, inverse = np.float32(self.ecg_center), np.float32(1.0 / self.ecg_scale)
        return (ecg.astype(np.float32, copy=False) - center) * inverse

    def scale_abp(self, abp: np.ndarray) -> np.ndarray:
        """Normalised float32 ABP target."""
        center, inverse = np.float32(self.abp_center), np.float32(1.0 / self.abp_scale)
        return (abp.astype(np.float32, copy=False) - center) * inverse

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "NormStats":
        return cls(**values)


CHUNK = 1 << 22  # windows read at a time in passes over a side's targets (32 MB of float64)


def _covered(n_samples: int, starts: WindowSet, window: int) -> np.ndarray:
    """Boolean mask of the samples that at least one window covers."""
    if starts.step > window:  # runs with gaps between their windows: one interval per window
        starts = WindowSet.of(np.asarray(starts), starts.step)
    # a run covers one interval: its first start to its last window's end
    ends = starts.first + (starts.count - 1) * starts.step + window
    edges = np.zeros(n_samples + 1, dtype=np.int64)
    np.add.at(edges, starts.first, 1)
    np.add.at(edges, ends, -1)
    return np.cumsum(edges[:-1]) > 0


def target_chunks(
    shards: Sequence[Shard], starts: Sequence["np.ndarray | WindowSet"], window: int
) -> Iterator[np.ndarray]:
    """The ABP targets (float64 mmHg) of the windows, shard by shard, CHUNK at a time."""
    for shard, shard_starts in zip(shards, starts, strict=True):
        for chunk in WindowSet.of(shard_starts).chunks(CHUNK):
            yield np.asarray(shard.abp[chunk + window - 1], dtype=np.float64)
        release_pages(shard)


def target_moments(
    shards: Sequence[Shard], starts: Sequence["np.ndarray | WindowSet"], window: int
) -> tuple[int, float, float]:
    """Count, mean and SD of the windows' ABP targets, in two chunked passes (no array of them)."""
    count = total = 0.0
    for chunk in target_chunks(shards, starts, window):
        count += chunk.size
        total += chunk.sum()
    if count == 0:
        return 0, float("nan"), float("nan")
    mean = total / count
    squares = sum(np.square(c - mean).sum() for c in target_chunks(shards, starts, window))
    return int(count), float(mean), float(np.sqrt(squares / count))


def compute_stats(
    shards: Sequence[Shard],
    starts: Sequence["np.ndarray | WindowSet"],
    window: int,
    method: str,
    *,
    abp: str = "zscore",
) -> NormStats:
    """Statistics over the samples the selected windows cover (ECG) and their targets (ABP).

    `method` minmax_all takes the ECG min/max over every window of every shard, test data
    included (the original's formula); `abp` none keeps targets in mmHg (the original's).
    Memory: one shard's signal at a time, never an array over every window.
    """
    sets = [WindowSet.of(s) for s in starts]
    ecg_starts = [all_windows(s) for s in shards] if method == "minmax_all" else sets
    count = ecg_sum = ecg_sq = 0.0
    ecg_min, ecg_max = np.inf, -np.inf
    for shard, shard_starts in zip(shards, ecg_starts, strict=True):
        if len(shard_starts) == 0:
            continue
        covered = _covered(len(shard.ecg), shard_starts, window)
        ecg = np.asarray(shard.ecg)[covered].astype(np.float64)
        count += ecg.size
        ecg_sum += ecg.sum()
        ecg_sq += np.square(ecg).sum()
        ecg_min, ecg_max = min(ecg_min, ecg.min()), max(ecg_max, ecg.max())
        del covered, ecg
        release_pages(shard)
    n_targets, abp_mean, abp_sd = target_moments(shards, sets, window)
    if count == 0 or n_targets == 0:
        raise InputError("split: the training side has no window; cannot normalise")
    if method == "zscore":
        mean = ecg_sum / count
        center, scale = mean, float(np.sqrt(max(ecg_sq / count - mean**2, 0.0)))
    else:
        center, scale = float(ecg_min), float(ecg_max - ecg_min)
    abp_center, abp_scale = 0.0, 1.0
    if abp == "zscore":
        abp_center, abp_scale = abp_mean, abp_sd if abp_sd > 0 else 1.0
    return NormStats(
        method=method,
        ecg_center=float(center),
        ecg_scale=scale if scale > 0 else 1.0,
        abp_center=abp_center,
        abp_scale=abp_scale,
    )
