"""One fold of a split file, ready to feed: its shards, window starts per side, statistics."""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecg2abp.data.shards import Shard, open_shard
from ecg2abp.errors import InputError
from ecg2abp.folds.feed import select_windows, side_ranges
from ecg2abp.folds.normalisation import NormStats, compute_stats
from ecg2abp.folds.protocols import SIDES, windows_path


@dataclass
class FoldData:
    document: dict
    fold: int
    window: int
    shards: list[Shard]
    starts: dict[str, list[np.ndarray]]  # side → window starts, one array per shard
    stats: NormStats

    @property
    def leaky(self) -> bool:
        return bool(self.document.get("leaky"))

    @property
    def protocol(self) -> str:
        return self.document["protocol"]

    def side(self, name: str) -> list[list]:
        return self.document["folds"][self.fold][name]

    def targets(self, side: str) -> np.ndarray:
        """ABP (mmHg) at the last sample of every window of a side."""
        return np.concatenate(
            [
                np.asarray(s.abp[starts + self.window - 1], np.float64)
                for s, starts in zip(self.shards, self.starts[side], strict=True)
            ]
        )

    def record_means(self, side: str) -> dict[str, float]:
        """Record id → mean ABP target over that record's windows on `side`."""
        means: dict[str, float] = {}
        for shard, starts in zip(self.shards, self.starts[side], strict=True):
            row = np.searchsorted(shard.segments[:, 1], starts, side="right") - 1
            record = shard.segments[row, 0]
            targets = np.asarray(shard.abp[starts + self.window - 1], np.float64)
            sums = np.bincount(record, weights=targets, minlength=len(shard.records))
            counts = np.bincount(record, minlength=len(shard.records))
            for index in np.flatnonzero(counts):
                means[shard.records[index]] = float(sums[index] / counts[index])
        return means


def read_split(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: cannot read split file ({err})") from None


def _paper_starts(split_path: Path, n_shards: int, fold: int) -> dict[str, list[np.ndarray]]:
    with np.load(windows_path(split_path)) as drawn:
        return {
            side: [
                np.sort(drawn[f"fold{fold}_{side}"][drawn[f"fold{fold}_{side}"][:, 0] == i, 1])
                for i in range(n_shards)
            ]
            for side in SIDES
        }


def open_split_shards(
    split_path: Path, shard_paths: Sequence[Path], *, mapped: bool = False
) -> tuple[dict, list[Shard]]:
    """The split document and the shards it names, in its order."""
    document = read_split(split_path)
    by_name = {Path(p).stem: Path(p) for p in shard_paths}
    missing = [name for name in document["shards"] if name not in by_name]
    if missing:
        raise InputError(f"{split_path}: shard {missing[0]} named by the split is not given")
    return document, [open_shard(by_name[name], mapped=mapped) for name in document["shards"]]


def load_fold(
    split_path: Path,
    shard_paths: Sequence[Path],
    fold: int,
    *,
    normalisation: str,
    mapped: bool = False,
) -> FoldData:
    """Open the fold's shards and select each side's windows; statistics from training data."""
    document, shards = open_split_shards(split_path, shard_paths, mapped=mapped)
    if not 0 <= fold < document["n_folds"]:
        raise InputError(f"{split_path}: no fold {fold} (the file has {document['n_folds']})")
    window = int(document["window"])
    if document["protocol"] == "paper":
        starts = _paper_starts(split_path, len(shards), fold)
        # The original normalises with one min/max over every record, test data included.
        stats = compute_stats(shards, [s.windows for s in shards], window, "minmax")
    else:
        sides = document["folds"][fold]
        starts = {
            side: [select_windows(s, side_ranges(sides[side]), window) for s in shards]
            for side in SIDES
        }
        stats = compute_stats(shards, starts["train"], window, normalisation)
    return FoldData(document, fold, window, shards, starts, stats)
