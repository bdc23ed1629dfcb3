"""Test data for training and evaluation: synthetic parts, shards, splits, hand-selected windows."""

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ecg2abp.config import deep_merge, validate_config
from ecg2abp.data.ingest import ingest_part
from ecg2abp.data.shards import Shard, open_shard
from ecg2abp.data.synth import write_synthetic
from ecg2abp.folds.protocols import split_to_file

# Tiny models and few windows: the machine has 2 cores shared with other jobs.
TINY = {
    "threads": 1,
    "variants": {
        "tiny_resnet": {"model": "resnet1d", "width": 0.125},
        "linear": {"model": "ridge"},  # sorts before `naive`: summaries must still put naive first
    },
    "train": {
        "device": "cpu",
        "batch_size": 64,
        "epochs": 2,
        "max_windows_per_epoch": 320,
        "max_val_windows": 256,
        "classical_max_windows": 3000,
    },
    "evaluate": {"batch_size": 2048},
}


def tiny_config(overrides: dict | None = None) -> dict:
    """The validated test configuration with `overrides` merged in."""
    return validate_config(deep_merge(TINY, overrides or {}))


def synthetic_parts(
    folder: Path, *, parts: int = 2, records: int = 10, seed: int = 0
) -> list[Path]:
    """Kaggle-layout part files of 8–20 s records."""
    return write_synthetic(
        folder / "raw",
        parts=parts,
        records_per_part=records,
        seed=seed,
        min_seconds=8.0,
        max_seconds=20.0,
    )


def ingest_parts(folder: Path, parts: Sequence[Path], config: dict) -> list[Path]:
    """One cleaned shard per part file, as the pipeline writes them."""
    shards = []
    for part in parts:
        shard = folder / "shards" / f"{part.stem}.h5"
        ingest_part(part, shard, folder / "clean" / f"{part.stem}.parquet", config)
        shards.append(shard)
    return shards


def write_split(folder: Path, shards: Sequence[Path], config: dict) -> Path:
    """The configured protocol's split file for `shards`."""
    path = folder / "splits" / f"{config['split']['protocol']}.json"
    split_to_file(shards, path, config)
    return path


def side_starts(shard: Shard, side: Sequence[Sequence], window: int) -> np.ndarray:
    """Window starts of `shard` lying wholly inside the side's range of their record."""
    ranges = {rid: (start, math.inf if stop is None else stop) for rid, start, stop in side}
    found = [np.zeros(0, np.int64)]
    for record, start, stop, source in shard.segments:
        if shard.records[record] not in ranges:
            continue
        low, high = ranges[shard.records[record]]
        inside = shard.windows[(shard.windows >= start) & (shard.windows < stop)]
        first_sample = source + inside - start
        found.append(inside[(first_sample >= low) & (first_sample + window <= high)])
    return np.concatenate(found)


def side_targets(shard_paths: Sequence[Path], side: Sequence[Sequence], window: int) -> np.ndarray:
    """ABP (mmHg) at the last sample of every window of a split side, shard by shard."""
    targets = []
    for path in shard_paths:
        shard = open_shard(path)
        targets.append(shard.abp[side_starts(shard, side, window) + window - 1].astype(np.float64))
    return np.concatenate(targets)
