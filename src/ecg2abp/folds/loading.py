"""One fold of a split file, ready to feed: its shards, window starts per side, statistics."""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ecg2abp.data.shards import Shard, open_shard, release_pages
from ecg2abp.errors import InputError
from ecg2abp.folds.feed import select_windows, side_ranges
from ecg2abp.folds.normalisation import CHUNK, NormStats, compute_stats, target_moments
from ecg2abp.folds.protocols import SIDES, refuse_duplicate_names, windows_path
from ecg2abp.folds.windows import WindowSet

SPLIT_KEYS = ("protocol", "n_folds", "window", "stride", "shards", "fingerprints", "folds")


@dataclass
class FoldData:
    document: dict
    fold: int
    window: int
    shards: list[Shard]
    starts: dict[str, list[WindowSet]]  # side → window starts, one set per shard
    normalisation: str  # ECG statistics' method (folds.normalisation.compute_stats)
    abp: str  # ABP targets: zscore or none
    # side → feed order: positions into the side's starts laid end to end (paper: as drawn)
    order: dict[str, np.ndarray] = field(default_factory=dict)

    @cached_property
    def stats(self) -> NormStats:
        """The training side's statistics, computed when first asked for (evaluation never)."""
        return compute_stats(
            self.shards, self.starts["train"], self.window, self.normalisation, abp=self.abp
        )

    @property
    def leaky(self) -> bool:
        return bool(self.document.get("leaky"))

    @property
    def protocol(self) -> str:
        return self.document["protocol"]

    @property
    def fingerprint(self) -> str:
        """SHA-256 of what the fold is made of: the split, its shards' data and cleaning."""
        digest = hashlib.sha256(json.dumps(self.document, sort_keys=True).encode())
        for shard in self.shards:
            digest.update(shard.fingerprint.encode())
            digest.update(str(shard.attrs.get("cleaning", "")).encode())
        return digest.hexdigest()

    def side(self, name: str) -> list[list]:
        return self.document["folds"][self.fold][name]

    def target_mean(self, side: str) -> float:
        """Mean ABP (mmHg) at the last sample of the side's windows, read in chunks."""
        return target_moments(self.shards, self.starts[side], self.window)[1]

    def record_means(self, side: str) -> dict[str, float]:
        """Record id → mean ABP target over that record's windows on `side`, read in chunks."""
        means: dict[str, float] = {}
        for shard, starts in zip(self.shards, self.starts[side], strict=True):
            sums = np.zeros(len(shard.records))
            counts = np.zeros(len(shard.records), dtype=np.int64)
            for chunk in starts.chunks(CHUNK):
                record, _ = shard.locate(chunk)
                # in window order, as one pass would add them: the same sums whatever CHUNK is
                np.add.at(sums, record, np.asarray(shard.abp[chunk + self.window - 1], np.float64))
                np.add.at(counts, record, 1)
            release_pages(shard)
            for index in np.flatnonzero(counts):
                means[shard.records[index]] = float(sums[index] / counts[index])
        return means


def read_split(path: Path) -> dict:
    """The split document, refused in one line when unreadable or lacking a key."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: cannot read split file ({err})") from None
    if not isinstance(document, dict):
        raise InputError(f"{path}: not a split file (no JSON object)")
    missing = [key for key in SPLIT_KEYS if key not in document]
    if missing:
        raise InputError(
            f"{path}: not a split file of this version (missing {', '.join(missing)}); "
            "run split again"
        )
    return document


def check_shards(split_path: Path, document: dict, shards: Sequence[Shard]) -> None:
    """Refuse shards that are not the ones the split was made from."""
    for shard, fingerprint in zip(shards, document["fingerprints"], strict=True):
        built = {key: int(shard.attrs[key]) for key in ("window", "stride")}
        wanted = {key: int(document[key]) for key in ("window", "stride")}
        if built != wanted:
            raise InputError(
                f"{shard.path}: built with window {built['window']}, stride {built['stride']}; "
                f"{split_path} was made for window {wanted['window']}, stride {wanted['stride']}"
            )
        if shard.fingerprint != fingerprint:
            raise InputError(
                f"{shard.path}: its data differ from the shard {shard.name} that {split_path} "
                "was made from; run split again or give the original shard"
            )


def _paper_starts(
    split_path: Path, n_shards: int, fold: int
) -> tuple[dict[str, list[WindowSet]], dict[str, np.ndarray]]:
    """Each side's drawn starts sorted per shard, and the order they were drawn in."""
    drawn_path = windows_path(split_path)
    if not drawn_path.is_file():
        raise InputError(f"{split_path}: its sampled windows ({drawn_path}) are missing")
    starts, order = {}, {}
    with np.load(drawn_path) as drawn:
        for side in SIDES:
            rows = drawn[f"fold{fold}_{side}"]
            starts[side] = [
                WindowSet.of(np.sort(rows[rows[:, 0] == i, 1])) for i in range(n_shards)
            ]
            by_position = np.lexsort((rows[:, 1], rows[:, 0]))  # drawn row at each position
            order[side] = np.empty(len(rows), dtype=np.int64)
            order[side][by_position] = np.arange(len(rows))
    return starts, order


def open_split_shards(
    split_path: Path, shard_paths: Sequence[Path], *, mapped: bool = False
) -> tuple[dict, list[Shard]]:
    """The split document and the shards it names, in its order, checked to be those it was
    made from."""
    document = read_split(split_path)
    refuse_duplicate_names(shard_paths)
    by_name = {Path(p).stem: Path(p) for p in shard_paths}
    missing = [name for name in document["shards"] if name not in by_name]
    if missing:
        raise InputError(f"{split_path}: shard {missing[0]} named by the split is not given")
    shards = [open_shard(by_name[name], mapped=mapped) for name in document["shards"]]
    check_shards(split_path, document, shards)
    return document, shards


def load_fold(
    split_path: Path,
    shard_paths: Sequence[Path],
    fold: int,
    *,
    normalisation: str,
    abp: str = "zscore",
    mapped: bool = False,
) -> FoldData:
    """Open the fold's shards and select each side's windows (as runs: O(segments) memory);
    statistics from training data when first used."""
    document, shards = open_split_shards(split_path, shard_paths, mapped=mapped)
    if not 0 <= fold < document["n_folds"]:
        raise InputError(f"{split_path}: no fold {fold} (the file has {document['n_folds']})")
    window = int(document["window"])
    order: dict[str, np.ndarray] = {}
    if document["protocol"] == "paper":
        starts, order = _paper_starts(split_path, len(shards), fold)
    else:
        sides = document["folds"][fold]
        starts = {
            side: [select_windows(s, side_ranges(sides[side]), window) for s in shards]
            for side in SIDES
        }
    return FoldData(document, fold, window, shards, starts, normalisation, abp, order)
