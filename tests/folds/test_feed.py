"""Window feed: every window once per epoch, batches equal to hand slicing, resume, statistics."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from shard_factory import Piece, random_record, write_test_shard

from ecg2abp.data.shards import Shard, open_shard
from ecg2abp.errors import InputError
from ecg2abp.folds.feed import (
    WindowFeed,
    choose_placement,
    fits_on_device,
    select_windows,
    side_ranges,
)
from ecg2abp.folds.normalisation import NormStats, compute_stats

WINDOW = 8
CODE = 100_000  # ABP sample value = shard index · CODE + array position: a target names its window
IDENTITY = NormStats("zscore", 0.0, 1.0, 0.0, 1.0)


def coded_records(rng: np.random.Generator, shard_index: int, lengths: list[list[int]]) -> dict:
    """Records of random ECG whose ABP values encode (shard, position)."""
    records, position = {}, 0
    for index, record_lengths in enumerate(lengths):
        pieces = []
        for piece in random_record(rng, record_lengths):
            n = len(piece.ecg)
            abp = shard_index * CODE + np.arange(position, position + n, dtype=float)
            pieces.append(Piece(piece.source_start, piece.ecg, abp, piece.ppg))
            position += n
        records[f"part_{shard_index}/{index:04d}"] = pieces
    return records


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("feed")
    rng = np.random.default_rng(11)
    layout = [[[40, 25], [], [60]], [[30], [50, 9, 20]]]
    result = []
    for shard_index, lengths in enumerate(layout):
        path = folder / f"part_{shard_index}.h5"
        write_test_shard(path, coded_records(rng, shard_index, lengths), window=WINDOW)
        result.append(path)
    return result


def selection(shards: list[Shard]) -> list[np.ndarray]:
    """Some windows of each shard, not all: the first 70 of shard 0, every other one of shard 1."""
    return [shards[0].windows[:70], shards[1].windows[::2]]


def feed(paths, *, mapped=False, stats=IDENTITY, **options) -> tuple[WindowFeed, list[Shard]]:
    shards = [open_shard(path, mapped=mapped) for path in paths]
    settings = {"batch_size": 7, "seed": 3, **options}
    return WindowFeed(shards, selection(shards), window=WINDOW, stats=stats, **settings), shards


def visited(batches) -> list[tuple[int, int]]:
    """(shard, start) of every window in the batches, in order, from their coded targets."""
    codes = torch.cat([y for _, y in batches]).to(torch.int64).tolist()
    return [(code // CODE, code % CODE - (WINDOW - 1)) for code in codes]


def selected(shards: list[Shard]) -> list[tuple[int, int]]:
    return [(i, int(s)) for i, starts in enumerate(selection(shards)) for s in starts]


def test_each_epoch_visits_every_selected_window_once_in_a_new_order(paths):
    window_feed, shards = feed(paths)
    orders = [visited(window_feed.batches(epoch)) for epoch in range(3)]
    for order in orders:
        assert sorted(order) == sorted(selected(shards))
    assert orders[0] != orders[1] and orders[1] != orders[2]
    again, _ = feed(paths)
    assert visited(again.batches(1)) == orders[1]
    other_seed, _ = feed(paths, seed=4)
    assert visited(other_seed.batches(1)) != orders[1]


def test_batches_are_the_hand_sliced_windows_and_last_sample_targets(paths):
    window_feed, shards = feed(paths)
    batches = list(window_feed.batches(0))
    n = len(selected(shards))
    assert window_feed.n_windows == n and len(window_feed) == len(batches) == -(-n // 7)
    assert [len(y) for _, y in batches] == [7] * (n // 7) + ([n % 7] if n % 7 else [])
    x = torch.cat([x for x, _ in batches])
    assert x.dtype == torch.float32 and x.shape == (n, 1, WINDOW)
    assert batches[0][1].dtype == torch.float32 and batches[0][1].shape == (7,)
    for row, (shard, start) in zip(x, visited(batches), strict=True):
        expected = shards[shard].ecg[start : start + WINDOW]
        np.testing.assert_array_equal(row[0].numpy(), expected)
    assert {shard for shard, _ in visited(batches)} == {0, 1}


def test_batches_are_normalised_by_the_stats(paths):
    stats = NormStats("zscore", ecg_center=0.2, ecg_scale=0.5, abp_center=40.0, abp_scale=300.0)
    window_feed, shards = feed(paths, stats=stats, shuffle=False)
    x = torch.cat([x for x, _ in window_feed.batches(0)]).numpy()
    y = torch.cat([y for _, y in window_feed.batches(0)]).numpy()
    rows = [shards[i].ecg[s : s + WINDOW] for i, s in selected(shards)]
    targets = np.array([shards[i].abp[s + WINDOW - 1] for i, s in selected(shards)])
    np.testing.assert_allclose(x[:, 0], (np.array(rows) - 0.2) / 0.5, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, (targets - 40.0) / 300.0, rtol=1e-5)


@pytest.mark.parametrize("k", [0, 1, 4])
def test_resuming_at_a_batch_gives_the_tail_of_the_epoch(paths, k):
    window_feed, _ = feed(paths)
    whole = list(window_feed.batches(2))
    tail = list(window_feed.batches(2, start_batch=k))
    assert len(tail) == len(whole) - k
    for (x1, y1), (x2, y2) in zip(tail, whole[k:], strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_max_windows_caps_an_epoch_with_distinct_selected_windows(paths):
    window_feed, shards = feed(paths, max_windows=20)
    assert len(window_feed) == 3  # ceil(20 / 7)
    for epoch in (0, 1):
        order = visited(window_feed.batches(epoch))
        assert len(order) == 20 and len(set(order)) == 20
        assert set(order) <= set(selected(shards))
    assert visited(window_feed.batches(0)) != visited(window_feed.batches(1))


def test_mapped_shards_give_the_same_batches_as_loaded_ones(paths):
    loaded, _ = feed(paths)
    mapped, shards = feed(paths, mapped=True)
    assert isinstance(shards[0].ecg, np.memmap)
    for (x1, y1), (x2, y2) in zip(loaded.batches(5), mapped.batches(5), strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_batches_of_one_window(paths):
    window_feed, shards = feed(paths, batch_size=1)
    batches = list(window_feed.batches(0))
    assert len(batches) == len(window_feed) == len(selected(shards))
    assert all(x.shape == (1, 1, WINDOW) and y.shape == (1,) for x, y in batches)


def test_a_shard_with_nothing_kept_can_sit_among_the_others(paths, tmp_path):
    empty = tmp_path / "part_9.h5"
    write_test_shard(empty, {"part_9/0000": []}, window=WINDOW)
    shards = [open_shard(path) for path in [paths[0], empty]]
    starts = [shards[0].windows, shards[1].windows]
    window_feed = WindowFeed(shards, starts, window=WINDOW, stats=IDENTITY, batch_size=16, seed=0)
    assert sorted(visited(window_feed.batches(0))) == [(0, int(s)) for s in shards[0].windows]


# --- device-resident signals (gathered with torch, here on CPU tensors) -------------------


@pytest.mark.parametrize("mapped", [False, True])
def test_resident_batches_are_bit_for_bit_the_host_batches(paths, mapped):
    stats = NormStats("zscore", ecg_center=0.3, ecg_scale=0.7, abp_center=41.0, abp_scale=9.0)
    options = {"stats": stats, "max_windows": 40, "mapped": mapped}
    host, _ = feed(paths, **options)
    resident, _ = feed(paths, resident=True, **options)
    assert (host.placement, resident.placement) == ("host", "resident")
    for epoch, start in [(0, 0), (1, 0), (2, 3)]:
        pairs = list(zip(host.batches(epoch, start), resident.batches(epoch, start), strict=True))
        assert len(pairs) == len(host) - start
        for (x1, y1), (x2, y2) in pairs:
            assert x2.shape == x1.shape and x2.dtype == x1.dtype == torch.float32
            assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_resident_feed_of_one_shard_and_in_order(paths):
    shards = [open_shard(paths[1])]
    common = {"window": WINDOW, "stats": IDENTITY, "batch_size": 5, "seed": 0, "shuffle": False}
    host = WindowFeed(shards, [shards[0].windows], **common)
    resident = WindowFeed(shards, [shards[0].windows], resident=True, **common)
    for (x1, y1), (x2, y2) in zip(host.batches(0), resident.batches(0), strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_placement_follows_the_device_and_what_fits():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert choose_placement(cpu, 10**12, None) == "host"
    assert choose_placement(cpu, 10**12, True) == "resident"
    assert choose_placement(gpu, 10, False) == "pinned"  # decided without asking the GPU
    assert fits_on_device(25, 100) and not fits_on_device(26, 100)


# --- side selection ----------------------------------------------------------------------


def test_select_windows_keeps_windows_wholly_inside_the_record_range(tmp_path):
    rng = np.random.default_rng(0)
    records = {
        "p/0000": [dataclasses.replace(p, source_start=s) for p, s in
                   zip(random_record(rng, [30, 30]), (10, 100), strict=True)],
        "p/0001": random_record(rng, [20]),
    }  # fmt: skip
    write_test_shard(tmp_path / "p.h5", records, window=WINDOW)
    shard = open_shard(tmp_path / "p.h5")
    # source 10..40 is array 0..30, source 100..130 is array 30..60; p/0001 is array 60..80
    starts = select_windows(shard, side_ranges([["p/0000", 20, 110]]), WINDOW)
    np.testing.assert_array_equal(starts, [*range(10, 23), *range(30, 33)])
    everything = select_windows(shard, side_ranges([["p/0000", 0, None], ["p/0001", 0, None]]), 8)
    np.testing.assert_array_equal(everything, shard.windows)


def test_a_record_twice_on_one_side_is_an_input_error():
    with pytest.raises(InputError, match="p/0000"):
        side_ranges([["p/0000", 0, 10], ["p/0000", 20, None]])


# --- statistics --------------------------------------------------------------------------


def covered_by_hand(n: int, starts: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    for start in starts:
        mask[start : start + WINDOW] = True
    return mask


@pytest.mark.parametrize("method", ["zscore", "minmax"])
def test_stats_match_numpy_on_the_covered_samples_and_the_targets(paths, method):
    shards = [open_shard(path) for path in paths]
    starts = selection(shards)
    stats = compute_stats(shards, starts, WINDOW, method)
    ecg = np.concatenate(
        [s.ecg[covered_by_hand(len(s.ecg), st)] for s, st in zip(shards, starts, strict=True)]
    ).astype(np.float64)
    abp = np.concatenate([s.abp[st + WINDOW - 1] for s, st in zip(shards, starts, strict=True)])
    assert stats.method == method
    if method == "zscore":
        assert stats.ecg_center == pytest.approx(ecg.mean(), rel=1e-9, abs=1e-12)
        assert stats.ecg_scale == pytest.approx(ecg.std(), rel=1e-9)
    else:
        assert stats.ecg_center == ecg.min()
        assert stats.ecg_scale == pytest.approx(ecg.max() - ecg.min(), rel=1e-12)
    assert stats.abp_center == pytest.approx(abp.astype(np.float64).mean(), rel=1e-9)
    assert stats.abp_scale == pytest.approx(abp.astype(np.float64).std(), rel=1e-9)
    assert NormStats.from_dict(stats.to_dict()) == stats


def test_stats_ignore_samples_outside_the_side(paths):
    shards = [open_shard(path) for path in paths]
    starts = selection(shards)
    changed = []
    for shard, shard_starts in zip(shards, starts, strict=True):
        outside = ~covered_by_hand(len(shard.ecg), shard_starts)
        assert outside.any()
        ecg, abp = shard.ecg.copy(), shard.abp.copy()
        ecg[outside], abp[outside] = 1e3, -1e3
        changed.append(dataclasses.replace(shard, ecg=ecg, abp=abp))
    for method in ("zscore", "minmax"):
        assert compute_stats(changed, starts, WINDOW, method) == compute_stats(
            shards, starts, WINDOW, method
        )


def test_stats_of_a_side_without_windows_is_an_input_error(paths):
    shards = [open_shard(path) for path in paths]
    with pytest.raises(InputError, match="no window"):
        compute_stats(shards, [np.zeros(0, np.int64)] * 2, WINDOW, "zscore")
