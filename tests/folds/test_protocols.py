"""Split protocols: disjoint sides, whole blocks and parts, a gap in time, the leaky paper draw."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from shard_factory import Piece, expected_starts, random_record, write_test_shard

from ecg2abp.config import validate_config
from ecg2abp.data.shards import open_shard
from ecg2abp.errors import InputError
from ecg2abp.folds.feed import select_windows, side_ranges
from ecg2abp.folds.protocols import SIDES, make_splits, split_to_file, windows_path

WINDOW = 8
PARTS = ("part_1", "part_2", "part_3", "part_4")
DUPLICATE = ("part_1/0002", "part_3/0005")  # same signals, different parts


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
    n_all = sum(len(expected_starts(parts[part], WINDOW, 1)) for part in PARTS)
    n = round(0.05 * n_all)
    assert sum(len(a) for a in drawn.values()) == n
    for side, share in zip(SIDES, (0.6, 0.2, 0.2), strict=True):
        assert drawn[side].dtype == np.int64 and drawn[side].shape[1] == 2
        assert abs(len(drawn[side]) - share * n) <= 1
    every = np.concatenate(list(drawn.values()))
    assert len({tuple(row) for row in every}) == n  # no window drawn twice
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
    runs = [make_splits(paths, paper_config(seed=s)["split"], WINDOW)[1] for s in (4, 4, 5)]
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
