"""One fold of a split file: the windows of each side, and statistics from training data only."""

import json
from pathlib import Path

import numpy as np
import pytest
from pipeline_factory import side_starts
from shard_factory import Piece, random_record, restamp_split, write_test_shard

from ecg2abp.data.shards import open_shard
from ecg2abp.errors import InputError
from ecg2abp.folds.loading import load_fold
from ecg2abp.folds.protocols import windows_path

WINDOW = 12


def records(rng: np.random.Generator, test_offset: float) -> dict[str, list[Piece]]:
    """Four records; the test ones (2, 3) have ECG and ABP far from the others'."""
    found = {}
    for index in range(4):
        pieces = random_record(rng, [60, 45, 80])
        if index >= 2:
            pieces = [
                Piece(p.source_start, p.ecg + test_offset, p.abp + 10 * test_offset, p.ppg)
                for p in pieces
            ]
        found[f"part_a/{index:04d}"] = pieces
    return found


def write_split(folder: Path, document: dict) -> Path:
    path = folder / "split.json"
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def split(tmp_path) -> tuple[Path, Path, dict]:
    """A shard and a one-fold split: record 0 trains from sample 20 on, 1 validates, 2-3 test."""
    shard = tmp_path / "part_a.h5"
    write_test_shard(shard, records(np.random.default_rng(2), test_offset=0.0), window=WINDOW)
    document = {
        "protocol": "record",
        "seed": 0,
        "n_folds": 1,
        "leaky": False,
        "window": WINDOW,
        "stride": 1,
        "shards": ["part_a"],
        "fingerprints": [open_shard(shard).fingerprint],
        "folds": [
            {
                "fold": 0,
                "train": [["part_a/0000", 20, None]],
                "val": [["part_a/0001", 0, None]],
                "test": [["part_a/0002", 0, None], ["part_a/0003", 0, None]],
            }
        ],
    }
    return shard, write_split(tmp_path, document), document


def covered_ecg(shard_path: Path, starts: np.ndarray) -> np.ndarray:
    """ECG samples that at least one of the windows covers."""
    ecg = open_shard(shard_path).ecg
    mask = np.zeros(len(ecg), bool)
    for start in starts:
        mask[start : start + WINDOW] = True
    return ecg[mask].astype(np.float64)


def test_each_side_gets_the_windows_inside_its_ranges(split):
    shard_path, split_path, document = split
    fold = load_fold(split_path, [shard_path], 0, normalisation="zscore")
    shard = open_shard(shard_path)
    for side in ("train", "val", "test"):
        (starts,) = fold.starts[side]
        np.testing.assert_array_equal(
            np.sort(starts), side_starts(shard, document["folds"][0][side], WINDOW)
        )
    assert len(fold.starts["train"][0]) > 0


@pytest.mark.parametrize("method", ["zscore", "minmax"])
def test_statistics_come_from_the_training_windows_only(split, tmp_path, method):
    shard_path, split_path, document = split
    fold = load_fold(split_path, [shard_path], 0, normalisation=method)
    starts = side_starts(open_shard(shard_path), document["folds"][0]["train"], WINDOW)
    ecg = covered_ecg(shard_path, starts)
    targets = open_shard(shard_path).abp[starts + WINDOW - 1].astype(np.float64)
    stats = fold.stats
    assert stats.method == method
    if method == "zscore":
        assert (stats.ecg_center, stats.ecg_scale) == pytest.approx((ecg.mean(), ecg.std()))
    else:
        span = ecg.max() - ecg.min()
        assert (stats.ecg_center, stats.ecg_scale) == pytest.approx((ecg.min(), span))
    assert (stats.abp_center, stats.abp_scale) == pytest.approx((targets.mean(), targets.std()))

    # the same shard with test records moved far away: nothing changes
    write_test_shard(
        shard_path, records(np.random.default_rng(2), test_offset=500.0), window=WINDOW
    )
    restamp_split(split_path, [shard_path])
    moved = load_fold(split_path, [shard_path], 0, normalisation=method)
    assert moved.stats == stats


@pytest.mark.parametrize("fold", [1, -1])
def test_a_fold_out_of_range_is_refused(split, fold):
    shard_path, split_path, _ = split
    with pytest.raises(InputError, match=f"split.json: no fold {fold}"):
        load_fold(split_path, [shard_path], fold, normalisation="zscore")


def test_a_shard_the_split_names_must_be_given(split, tmp_path):
    _, split_path, _ = split
    with pytest.raises(InputError, match="shard part_a"):
        load_fold(split_path, [tmp_path / "part_b.h5"], 0, normalisation="zscore")


def test_paper_protocol_reads_its_drawn_windows_and_normalises_globally(split):
    shard_path, split_path, document = split
    every = open_shard(shard_path).windows
    drawn = {
        "fold0_train": np.stack([np.zeros(6, int), every[[30, 5, 50, 70, 90, 110]]], axis=1),
        "fold0_val": np.stack([np.zeros(2, int), every[[1, 2]]], axis=1),
        "fold0_test": np.stack([np.zeros(2, int), every[[3, 200]]], axis=1),
    }
    np.savez(windows_path(split_path), **drawn)
    split_path.write_text(json.dumps({**document, "protocol": "paper", "leaky": True}))
    fold = load_fold(split_path, [shard_path], 0, normalisation="minmax_all")
    assert fold.leaky
    for side in ("train", "val", "test"):
        np.testing.assert_array_equal(fold.starts[side][0], np.sort(drawn[f"fold0_{side}"][:, 1]))
        # the feed's order gives them back as drawn
        np.testing.assert_array_equal(
            fold.starts[side][0].at(fold.order[side]), drawn[f"fold0_{side}"][:, 1]
        )
    # the original normalises with one min-max over every window, test data included
    ecg = covered_ecg(shard_path, every)
    assert fold.stats.method == "minmax_all"
    assert (fold.stats.ecg_center, fold.stats.ecg_scale) == pytest.approx(
        (ecg.min(), ecg.max() - ecg.min())
    )
