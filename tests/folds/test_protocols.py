"""Split protocols: disjoint sides, whole blocks and parts, a gap in time, the leaky paper draw."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from shard_factory import Piece, expected_starts, random_record, write_test_shard
from torch.utils.data import random_split

from ecg2abp.config import load_config, validate_config
from ecg2abp.data.ingest import ingest_part
from ecg2abp.data.shards import open_shard
from ecg2abp.data.synth import write_synthetic
from ecg2abp.errors import InputError
from ecg2abp.folds.feed import WindowFeed, select_windows, side_ranges
from ecg2abp.folds.loading import load_fold
from ecg2abp.folds.protocols import SIDES, make_splits, split_to_file, windows_path

WINDOW = 8
PARTS = ("part_1", "part_2", "part_3", "part_4")
DUPLICATE = ("part_1/0002", "part_3/0005")  # same signals, different parts
REPO = Path(__file__).resolve().parents[2]


def build_parts(folder: Path, records_per_part: int, lengths: tuple[int, int], stride: int = 1):
    """Random parts (some records with nothing kept or too short); returns id → pieces per part."""
    rng = np.random.default_rng(3)
    parts = {}
    for part in PARTS:
        records = {}
        for index in range(records_per_part):
            kind = rng.integers(0, 10)
            if kind == 0:
                pieces = []
            elif kind == 1:
                pieces = random_record(rng, [WINDOW - 1])
            else:
                pieces = random_record(rng, rng.integers(*lengths, size=rng.integers(1, 3)))
            records[f"{part}/{index:04d}"] = pieces
        parts[part] = records
    original = parts["part_1"][DUPLICATE[0]] = random_record(rng, [40, 33])
    parts["part_3"][DUPLICATE[1]] = [Piece(p.source_start + 7, p.ecg, p.abp) for p in original]
    for part, records in parts.items():
        write_test_shard(folder / f"{part}.h5", records, window=WINDOW, stride=stride)
    return parts


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parts")
    parts = build_parts(folder, records_per_part=12, lengths=(10, 60))
    return [folder / f"{part}.h5" for part in PARTS], parts


def windowed(parts: dict) -> dict[str, list[str]]:
    """Part → its records with at least one window, in order."""
    return {
        part: [rid for rid, pieces in records.items() if any(len(p.ecg) >= WINDOW for p in pieces)]
        for part, records in parts.items()
    }


def config(**split) -> dict:
    return validate_config({"window": WINDOW, "split": split})


def side_records(fold: dict) -> dict[str, set[str]]:
    return {side: {entry[0] for entry in fold[side]} for side in SIDES}


def side_of(fold: dict) -> dict[str, str]:
    return {rid: side for side, ids in side_records(fold).items() for rid in ids}


def assert_disjoint_and_complete(document: dict, records: set[str]) -> None:
    for fold in document["folds"]:
        sides = side_records(fold)
        for a, b in itertools.combinations(SIDES, 2):
            assert not sides[a] & sides[b], (fold["fold"], a, b)
        assert set.union(*sides.values()) == records
        assert all(len(sides[side]) > 0 for side in SIDES)
        for side in SIDES:
            assert all(start == 0 and stop is None for _, start, stop in fold[side])
    tests = [rid for fold in document["folds"] for rid in side_records(fold)["test"]]
    assert sorted(tests) == sorted(records)  # every record in exactly one test fold


# --- record ------------------------------------------------------------------------------


def test_record_folds_are_disjoint_and_test_every_record_once(data):
    paths, parts = data
    document, windows = make_splits(paths, config(block_size=3)["split"], WINDOW)
    assert windows == {}
    assert document["protocol"] == "record" and document["leaky"] is False
    assert document["n_folds"] == 5 and [f["fold"] for f in document["folds"]] == list(range(5))
    assert document["shards"] == list(PARTS) and document["window"] == WINDOW
    assert_disjoint_and_complete(document, set(itertools.chain(*windowed(parts).values())))


def test_record_blocks_of_adjacent_records_stay_on_one_side(data):
    paths, parts = data
    block_size = 3
    document, _ = make_splits(paths, config(block_size=block_size)["split"], WINDOW)
    blocks = [
        ids[i : i + block_size]
        for ids in windowed(parts).values()
        for i in range(0, len(ids), block_size)
    ]
    for fold in document["folds"]:
        where = side_of(fold)
        for block in blocks:
            assert len({where[rid] for rid in block}) == 1, (fold["fold"], block)
    first_fold = side_of(document["folds"][0])
    assert len({first_fold[block[0]] for block in blocks}) == 3  # blocks do get separated


@pytest.mark.parametrize("protocol", ["record", "part"])
def test_records_with_identical_signals_land_on_the_same_side(data, protocol):
    paths, _ = data
    document, _ = make_splits(paths, config(protocol=protocol, folds=3)["split"], WINDOW)
    for fold in document["folds"]:
        where = side_of(fold)
        assert where[DUPLICATE[0]] == where[DUPLICATE[1]]


def test_the_same_seed_writes_the_same_file_and_another_seed_other_folds(data, tmp_path):
    paths, _ = data
    outputs = []
    for seed, name in [(0, "a"), (0, "b"), (1, "c")]:
        out = tmp_path / name / "record.json"
        summary = split_to_file(paths, out, config(seed=seed, block_size=2))
        assert summary == {"protocol": "record", "n_folds": 5}
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    tests = [
        {frozenset(side_records(fold)["test"]) for fold in json.loads(out)["folds"]}
        for out in (outputs[0], outputs[2])
    ]
    assert tests[0] != tests[1]  # the seed changes which records are tested together
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "c"] + ["record.json"] * 3


def test_record_folds_balance_their_test_windows(data):
    paths, parts = data
    document, _ = make_splits(paths, config(block_size=3)["split"], WINDOW)
    windows_of = {}
    for records in parts.values():
        for rid, _, _ in expected_starts(records, WINDOW, 1):
            windows_of[rid] = windows_of.get(rid, 0) + 1
    blocks = [
        sum(windows_of[rid] for rid in ids[i : i + 3])
        for ids in windowed(parts).values()
        for i in range(0, len(ids), 3)
    ]
    heaviest_unit = sum(sorted(blocks)[-2:])  # a unit is a block, or two joined by a duplicate
    loads = [sum(windows_of[rid] for rid in side_records(f)["test"]) for f in document["folds"]]
    assert max(loads) - min(loads) <= heaviest_unit


def test_too_few_blocks_for_the_folds_is_an_input_error(data):
    paths, _ = data
    with pytest.raises(InputError, match=r"split.*5 folds"):
        make_splits(paths, config(folds=5, block_size=1000)["split"], WINDOW)
    with pytest.raises(InputError, match=r"split\.folds"):
        make_splits(paths, config(folds=1)["split"], WINDOW)


# --- part --------------------------------------------------------------------------------


def test_part_folds_hold_out_whole_part_files(data):
    paths, parts = data
    by_part = windowed(parts)
    document, _ = make_splits(paths, config(protocol="part", folds=3)["split"], WINDOW)
    assert document["n_folds"] == 3
    assert_disjoint_and_complete(document, set(itertools.chain(*by_part.values())))
    for fold in document["folds"]:
        sides = side_records(fold)
        for part, ids in by_part.items():
            homes = {side for side in SIDES if set(ids) & sides[side]}
            assert len(homes) == 1, (fold["fold"], part, homes)  # a part is never divided


def test_part_protocol_with_fewer_parts_than_folds_is_an_input_error(data):
    paths, _ = data
    with pytest.raises(InputError, match=r"part files"):
        make_splits(paths, config(protocol="part", folds=5)["split"], WINDOW)


def test_a_fold_without_parts_left_for_validation_is_an_input_error(data):
    paths, _ = data  # 4 parts, two of them joined by identical records: 3 units, 2 folds
    with pytest.raises(InputError, match=r"part.*fold \d.*training and validation"):
        make_splits(paths, config(protocol="part", folds=2)["split"], WINDOW)


# --- temporal ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    parts = build_parts(folder, records_per_part=4, lengths=(60, 200))
    return [folder / f"{part}.h5" for part in PARTS], parts


def source_windows(path: Path, side: list[list]) -> dict[str, np.ndarray]:
    """Record id → source starts of the shard's windows that fall on `side`."""
    shard = open_shard(path)
    starts = select_windows(shard, side_ranges(side), WINDOW)
    rows = np.searchsorted(shard.segments[:, 1], starts, side="right") - 1
    source = shard.segments[rows, 3] + starts - shard.segments[rows, 1]
    records = np.array(shard.records)[shard.segments[rows, 0]]
    return {rid: source[records == rid] for rid in set(records)}


def test_temporal_keeps_a_window_of_gap_between_train_val_and_test(long_data):
    paths, parts = long_data
    document, _ = make_splits(paths, config(protocol="temporal")["split"], WINDOW)
    assert document["n_folds"] == 1 and document["folds"][0]["fold"] == 0
    fold = document["folds"][0]
    every_record = set(itertools.chain(*windowed(parts).values()))
    assert all(side_records(fold)[side] == every_record for side in SIDES)
    counts = dict.fromkeys(SIDES, 0)
    for path in paths:
        on = {side: source_windows(path, fold[side]) for side in SIDES}
        for earlier, later in [("train", "val"), ("val", "test"), ("train", "test")]:
            for rid, starts in on[earlier].items():
                if rid in on[later] and len(starts):
                    ends = starts.max() + WINDOW  # exclusive end of the latest earlier window
                    assert on[later][rid].min() - ends >= WINDOW, (rid, earlier, later)
        for side in SIDES:
            counts[side] += sum(len(starts) for starts in on[side].values())
    all_windows = sum(len(expected_starts(parts[p], WINDOW, 1)) for p in PARTS)
    assert counts["train"] > counts["test"] > counts["val"] > 0
    assert sum(counts.values()) < all_windows  # the gaps cost windows


# --- paper -------------------------------------------------------------------------------


def paper_config(**split) -> dict:
    return config(protocol="paper", paper_fraction=0.05, **split)


def test_paper_draws_distinct_stride_one_windows_60_20_20(data, tmp_path):
    paths, parts = data
    out = tmp_path / "paper.json"
    assert split_to_file(paths, out, paper_config()) == {"protocol": "paper", "n_folds": 1}
    document = json.loads(out.read_text())
    assert document["leaky"] is True and document["n_folds"] == 1
    with np.load(windows_path(out)) as npz:
        drawn = {side: npz[f"fold0_{side}"] for side in SIDES}
    # the draw is over every record's windows before cleaning (its first to last kept sample
    # here); the drawn windows that cleaning cut are counted, not served
    n_raw = sum(
        max(p[-1].source_start + len(p[-1].ecg) - WINDOW + 1, 0)
        for part in PARTS
        for p in parts[part].values()
        if p
    )
    draw = document["paper_draw"]
    n = int(0.05 * n_raw)
    assert (draw["windows"], draw["drawn"]) == (n_raw, n)
    assert sum(draw["unavailable"].values()) > 0  # the fixture's records have gaps
    for side, share in zip(SIDES, (0.6, 0.2, 0.2), strict=True):
        assert drawn[side].dtype == np.int64 and drawn[side].shape[1] == 2
        assert abs(len(drawn[side]) + draw["unavailable"][side] - share * n) <= 1
    every = np.concatenate(list(drawn.values()))
    assert len({tuple(row) for row in every}) == len(every)  # no window drawn twice
    valid = {
        (index, array) for index, part in enumerate(PARTS)
        for _, _, array in expected_starts(parts[part], WINDOW, 1)
    }  # fmt: skip
    assert {tuple(row) for row in every.tolist()} <= valid


def test_paper_sides_overlap_in_samples_as_the_protocol_does(data):
    paths, _ = data
    _, drawn = make_splits(paths, config(protocol="paper", paper_fraction=0.2)["split"], WINDOW)
    train, test = drawn["fold0_train"], drawn["fold0_test"]
    same_shard = train[:, None, 0] == test[None, :, 0]
    overlapping = np.abs(train[:, None, 1] - test[None, :, 1]) < WINDOW
    assert (same_shard & overlapping).any()


def test_paper_is_deterministic_by_seed(data):
    paths, _ = data
    runs = [make_splits(paths, paper_config(paper_seed=s)["split"], WINDOW)[1] for s in (4, 4, 5)]
    for side in SIDES:
        key = f"fold0_{side}"
        np.testing.assert_array_equal(runs[0][key], runs[1][key])
    assert not np.array_equal(runs[0]["fold0_train"], runs[2]["fold0_train"])


def test_paper_on_shards_with_stride_other_than_one_is_an_input_error(tmp_path):
    build_parts(tmp_path, records_per_part=3, lengths=(20, 40), stride=2)
    paths = [tmp_path / f"{part}.h5" for part in PARTS]
    with pytest.raises(InputError, match=r"paper.*stride 1"):
        make_splits(paths, paper_config()["split"], WINDOW)


def test_shards_without_any_window_are_an_input_error(tmp_path):
    write_test_shard(tmp_path / "part_1.h5", {"part_1/0000": []}, window=WINDOW)
    with pytest.raises(InputError, match="no record"):
        make_splits([tmp_path / "part_1.h5"], config()["split"], WINDOW)


def test_paper_refuses_a_draw_that_leaves_a_side_empty(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "part_1.h5"
    write_test_shard(path, {"part_1/0000": random_record(rng, [300])}, window=88)
    split = validate_config({"split": {"protocol": "paper", "paper_fraction": 0.01}})["split"]
    with pytest.raises(InputError, match="paper_fraction"):
        make_splits([path], split, 88)


# --- paper, exactly as the original draws ------------------------------------------------


def original_draw(part_files: list[Path], window: int, seed: int) -> dict[str, list[tuple]]:
    """The original's windows, from its description: one global stride-1 index (parts by
    number, records in file order, N - window + 1 starts each), randperm then random_split
    with one generator. Each window as (part, record number, start in the record)."""
    index = []
    for path in sorted(part_files, key=lambda p: int(p.stem.split("_")[1])):
        for number, record in enumerate(scipy.io.loadmat(path)["p"][0]):
            index += [(path.stem, number, start) for start in range(record.shape[1] - window + 1)]
    generator = torch.Generator().manual_seed(seed)
    subset = torch.randperm(len(index), generator=generator)[: int(0.005 * len(index))].tolist()
    sides = random_split(subset, [0.6, 0.2, 0.2], generator=generator)
    return {
        side: [index[subset[i]] for i in part.indices]
        for side, part in zip(SIDES, sides, strict=True)
    }


@pytest.fixture(scope="module")
def original_layout(tmp_path_factory):
    """Kaggle-layout parts 1, 2 and 10 of artefact-free records, ingested with config/paper.yaml."""
    folder = tmp_path_factory.mktemp("original")
    parts = write_synthetic(
        folder, parts=3, records_per_part=6, seed=5, min_seconds=8.0, max_seconds=30.0,
        artefacts=False,
    )  # fmt: skip
    parts[2] = parts[2].rename(folder / "part_10.mat")  # by number: part_2 before part_10
    paper = load_config(REPO / "config" / "config.yaml", REPO / "config" / "paper.yaml")
    shards = []
    for part in parts:
        shards.append(folder / f"{part.stem}.h5")
        ingest_part(part, shards[-1], folder / f"{part.stem}.parquet", paper)
    return parts, sorted(shards), paper  # sorted as text: part_1, part_10, part_2


def test_paper_draws_the_originals_very_windows_in_its_order(original_layout, tmp_path):
    parts, shards, paper = original_layout
    out = tmp_path / "paper.json"
    split_to_file(shards, out, paper)
    expected = original_draw(parts, paper["window"], seed=42)
    opened = [open_shard(path) for path in shards]
    with np.load(windows_path(out)) as npz:
        for side in SIDES:
            got = []
            for shard_index, start in npz[f"fold0_{side}"]:
                shard = opened[shard_index]
                segment = shard.segments[np.searchsorted(shard.segments[:, 1], start, "right") - 1]
                number = int(shard.records[segment[0]].split("/")[1])
                got.append((shard.name, number, int(segment[3] + start - segment[1])))
            assert got == expected[side], side
    draw = json.loads(out.read_text())["paper_draw"]
    assert draw["unavailable"] == {"train": 0, "val": 0, "test": 0}
    assert draw["seed"] == 42 and draw["original_layout"] is False  # 3 parts of 6 records


def test_the_paper_feed_serves_the_drawn_windows_in_the_drawn_order(original_layout, tmp_path):
    parts, shards, paper = original_layout
    out = tmp_path / "paper.json"
    split_to_file(shards, out, paper)
    fold = load_fold(out, shards, 0, normalisation="minmax_all")
    signals = {p.stem: scipy.io.loadmat(p)["p"][0] for p in parts}
    window = paper["window"]
    for side, windows in original_draw(parts, window, seed=42).items():
        feed = WindowFeed(
            fold.shards, fold.starts[side], window=window, stats=fold.stats, batch_size=7,
            seed=0, shuffle=False, order=fold.order[side],
        )  # fmt: skip
        ecg, abp = feed.gather(feed.epoch_order(0))
        for row, (part, number, start) in enumerate(windows):
            record = signals[part][number]
            np.testing.assert_array_equal(ecg[row], record[2, start : start + window].astype("f4"))
            assert abp[row] == np.float32(record[1, start + window - 1])
