"""A side's windows as runs: the same windows as one integer per window, in O(segments) memory,
and every pass over them in chunks whose size changes nothing."""

import json
from pathlib import Path

import numpy as np
import pytest
from shard_factory import expected_starts, random_record, write_test_shard

from ecg2abp.data.shards import open_shard, release_pages
from ecg2abp.folds import loading, normalisation
from ecg2abp.folds.feed import select_windows, side_ranges
from ecg2abp.folds.loading import load_fold
from ecg2abp.folds.windows import WindowSet, all_windows, windows_per_record

WINDOW = 12


def shard_records(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    lengths = [[60, 45, 80], [11, 30], [], [200, 13, 40, 90]]
    return {f"part_a/{i:04d}": random_record(rng, n) for i, n in enumerate(lengths)}


@pytest.mark.parametrize("stride", [1, 3])
def test_a_sides_windows_are_runs_over_its_segments_and_exactly_its_windows(tmp_path, stride):
    records = shard_records(1)
    path = tmp_path / "part_a.h5"
    write_test_shard(path, records, window=WINDOW, stride=stride)
    shard = open_shard(path)
    every = expected_starts(records, WINDOW, stride)
    np.testing.assert_array_equal(shard.windows, [s for *_, s in every])
    np.testing.assert_array_equal(np.asarray(all_windows(shard)), [s for *_, s in every])
    assert windows_per_record(shard).tolist() == [
        sum(rid == r for rid, *_ in every) for r in records
    ]
    rng = np.random.default_rng(0)
    for _ in range(20):
        side = [
            [
                rid,
                int(rng.integers(0, 100)),
                None if rng.random() < 0.3 else int(rng.integers(0, 400)),
            ]
            for rid in records
            if rng.random() < 0.7
        ]
        ranges = side_ranges(side)
        chosen = select_windows(shard, ranges, WINDOW)
        wanted = [
            start
            for rid, source, start in every
            if rid in ranges and source >= ranges[rid][0] and source + WINDOW <= ranges[rid][1]
        ]
        np.testing.assert_array_equal(np.asarray(chosen), wanted)
        assert len(chosen) == len(wanted)
        assert len(chosen.first) <= len(shard.segments)  # runs, not one integer per window


def test_explicit_starts_keep_their_order_and_positions():
    rng = np.random.default_rng(3)
    starts = np.concatenate([np.arange(5, 40), rng.integers(0, 10_000, 50), np.arange(900, 905)])
    windows = WindowSet.of(starts)
    assert len(windows) == len(starts) and len(windows.first) < len(starts)
    np.testing.assert_array_equal(np.asarray(windows), starts)
    positions = rng.integers(0, len(starts), 200)
    np.testing.assert_array_equal(windows.at(positions), starts[positions])
    for size in (1, 7, len(starts) + 5):
        np.testing.assert_array_equal(np.concatenate(list(windows.chunks(size))), starts)
    assert len(WindowSet.of(np.zeros(0, np.int64))) == 0


def write_fold(tmp_path: Path) -> tuple[Path, Path]:
    shard = tmp_path / "part_a.h5"
    write_test_shard(shard, shard_records(2), window=WINDOW)
    document = {
        "protocol": "temporal",
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
                "train": [["part_a/0000", 0, 150], ["part_a/0003", 10, 300]],
                "val": [["part_a/0001", 0, None]],
                "test": [["part_a/0000", 150, None], ["part_a/0003", 300, None]],
            }
        ],
    }
    split = tmp_path / "split.json"
    split.write_text(json.dumps(document))
    return shard, split


def test_passes_over_the_targets_give_the_same_whatever_their_chunk(tmp_path, monkeypatch):
    shard_path, split = write_fold(tmp_path)
    fold = load_fold(split, [shard_path], 0, normalisation="zscore", mapped=True)
    whole = (fold.record_means("train"), fold.target_mean("train"), fold.stats)
    shard = open_shard(shard_path)
    starts = np.asarray(fold.starts["train"][0])
    targets = shard.abp[starts + WINDOW - 1].astype(np.float64)
    record, _ = shard.locate(starts)
    sums = np.bincount(record, weights=targets, minlength=len(shard.records))
    counts = np.bincount(record, minlength=len(shard.records))
    assert whole[0] == {
        shard.records[i]: float(sums[i] / counts[i]) for i in np.flatnonzero(counts)
    }
    assert whole[1] == pytest.approx(targets.mean(), rel=1e-12)
    assert (whole[2].abp_center, whole[2].abp_scale) == pytest.approx(
        (targets.mean(), targets.std()), rel=1e-12
    )
    for chunk in (1, 5, 64):
        monkeypatch.setattr(loading, "CHUNK", chunk)
        monkeypatch.setattr(normalisation, "CHUNK", chunk)
        again = load_fold(split, [shard_path], 0, normalisation="zscore", mapped=True)
        assert again.record_means("train") == whole[0]  # the same sums, bit for bit
        assert again.target_mean("train") == pytest.approx(whole[1], rel=1e-12)
        assert again.stats.ecg_center == whole[2].ecg_center  # one shard's samples at a time
        assert again.stats.abp_center == pytest.approx(whole[2].abp_center, rel=1e-12)


def mapped_rss_kib(path: Path) -> int:
    """Resident KiB of this process's mappings of `path` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            inside = fields[-1] == str(path)
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux's /proc")
def test_a_pass_over_a_mapped_shard_leaves_its_pages_out_of_resident_memory(tmp_path):
    path = tmp_path / "part_a.h5"
    rng = np.random.default_rng(5)
    write_test_shard(path, {"part_a/0000": random_record(rng, [300_000])}, window=WINDOW)
    shard = open_shard(path.resolve(), mapped=True)  # verifying it is a pass over every sample
    assert mapped_rss_kib(path.resolve()) < 1024  # not the 3.6 MB it read
    total = float(np.asarray(shard.ecg, np.float64).sum())
    assert mapped_rss_kib(path.resolve()) > 1000  # reading maps the pages in ...
    release_pages(shard)
    assert mapped_rss_kib(path.resolve()) < 64  # ... and the release takes them out again
    assert float(np.asarray(shard.ecg, np.float64).sum()) == total  # still readable
