"""Normalisation statistics: computed once from a fold's training windows, stored in every model."""

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ecg2abp.data.shards import Shard
from ecg2abp.errors import InputError


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


def _covered(n_samples: int, starts: np.ndarray, window: int) -> np.ndarray:
    """Boolean mask of the samples that at least one window covers."""
    edges = np.zeros(n_samples + 1, dtype=np.int64)
    edges[starts] += 1  # starts are unique, and so are their ends: no index repeats in one step
    edges[starts + window] -= 1
    return np.cumsum(edges[:-1]) > 0


def compute_stats(
    shards: Sequence[Shard],
    starts: Sequence[np.ndarray],
    window: int,
    method: str,
    *,
    abp: str = "zscore",
) -> NormStats:
    """Statistics over the samples the selected windows cover (ECG) and their targets (ABP).

    `method` minmax_all takes the ECG min/max over every window of every shard, test data
    included (the original's formula); `abp` none keeps targets in mmHg (the original's).
    """
    ecg_starts = [s.windows for s in shards] if method == "minmax_all" else starts
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
    targets = [
        np.asarray(shard.abp[shard_starts + window - 1], dtype=np.float64)
        for shard, shard_starts in zip(shards, starts, strict=True)
    ]
    abp_values = np.concatenate(targets) if targets else np.zeros(0)
    if count == 0 or len(abp_values) == 0:
        raise InputError("split: the training side has no window; cannot normalise")
    if method == "zscore":
        mean = ecg_sum / count
        center, scale = mean, float(np.sqrt(max(ecg_sq / count - mean**2, 0.0)))
    else:
        center, scale = float(ecg_min), float(ecg_max - ecg_min)
    abp_center, abp_scale = 0.0, 1.0
    if abp == "zscore":
        abp_center = float(abp_values.mean())
        abp_scale = float(abp_values.std()) if abp_values.std() > 0 else 1.0
    return NormStats(
        method=method,
        ecg_center=float(center),
        ecg_scale=scale if scale > 0 else 1.0,
        abp_center=abp_center,
        abp_scale=abp_scale,
    )
