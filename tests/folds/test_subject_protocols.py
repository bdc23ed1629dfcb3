"""Subject-wise protocols: `subject` folds and PulseDB's fixed subsets hold whole subjects."""

import itertools
from pathlib import Path

import numpy as np
import pytest
from shard_factory import random_record, write_test_shard

from ecg2abp.config import validate_config
from ecg2abp.errors import InputError
from ecg2abp.folds.protocols import SIDES, make_splits, named_test_sets, scored_sides

WINDOW = 8


def split_settings(**split) -> dict:
    return validate_config({"window": WINDOW, "split": split})["split"]


def write_subjects(path: Path, subjects: dict[str, int], rng, missing: str | None = None) -> None:
    """A shard named like `path` with `subjects[s]` records of subject s (ids name both);
    the record `missing` has no subject."""
    records, ids = {}, []
    for subject, count in subjects.items():
        for _ in range(count):
            record_id = f"{subject}/{path.stem}/{len(records):06d}"
            records[record_id] = random_record(rng, [int(rng.integers(20, 40))])
            ids.append(None if record_id == missing else subject)
    write_test_shard(path, records, window=WINDOW, subjects=ids)


def subject_of(record_id: str) -> str:
    return record_id.split("/")[0]


def subjects_on(side: list[list]) -> set[str]:
    return {subject_of(entry[0]) for entry in side}


@pytest.fixture(scope="module")
def two_parts(tmp_path_factory) -> list[Path]:
    """Two shards of 12 subjects; subjects p00 to p03 have records in both."""
    folder, rng = tmp_path_factory.mktemp("subjects"), np.random.default_rng(5)
    names = [f"p{k:02d}_0" for k in range(12)]
    write_subjects(folder / "a.h5", {s: 1 + k % 3 for k, s in enumerate(names[:8])}, rng)
    write_subjects(folder / "b.h5", {s: 2 for s in names[:4] + names[8:]}, rng)
    return [folder / "a.h5", folder / "b.h5"]


def test_subject_folds_hold_whole_subjects_and_test_each_once(two_parts):
    document, _ = make_splits(two_parts, split_settings(protocol="subject", folds=3), WINDOW)
    assert document["n_folds"] == 3 and document["leaky"] is False
    tested = []
    for fold in document["folds"]:
        sides = {side: subjects_on(fold[side]) for side in SIDES}
        for a, b in itertools.combinations(SIDES, 2):
            assert not sides[a] & sides[b], (fold["fold"], a, b)  # no subject on two sides
        assert all(sides.values())  # validation subjects carved from the training ones
        tested += sorted(sides["test"])
        records = [entry[0] for side in SIDES for entry in fold[side]]
        assert len(records) == len(set(records)) == 15 + 16
    assert sorted(tested) == [f"p{k:02d}_0" for k in range(12)]
    units = document["resampling_units"]
    assert units["unit"] == "subject"
    assert all(units["of"][r] == subject_of(r) for r in units["of"])


def test_subject_folds_refuse_a_record_without_a_subject(tmp_path):
    rng = np.random.default_rng(1)
    missing = "p01_0/c/000002"
    write_subjects(tmp_path / "c.h5", {"p00_0": 2, "p01_0": 2, "p02_0": 2}, rng, missing)
    with pytest.raises(InputError, match=rf"c\.h5: record {missing} names no subject"):
        make_splits([tmp_path / "c.h5"], split_settings(protocol="subject", folds=2), WINDOW)


def test_subject_folds_refuse_shards_without_subjects_and_too_few_subjects(tmp_path):
    rng = np.random.default_rng(2)
    write_test_shard(tmp_path / "d.h5", {"d/0000": random_record(rng, [30])}, window=WINDOW)
    with pytest.raises(InputError, match=r"d\.h5: record d/0000 names no subject"):
        make_splits([tmp_path / "d.h5"], split_settings(protocol="subject", folds=2), WINDOW)
    write_subjects(tmp_path / "e.h5", {"p00_0": 3, "p01_0": 3}, rng)
    with pytest.raises(InputError, match="needs at least 3 subjects"):
        make_splits([tmp_path / "e.h5"], split_settings(protocol="subject", folds=3), WINDOW)


# --- pulsedb ---------------------------------------------------------------------------------

TRAIN = [f"t{k:02d}_0" for k in range(8)]  # also in CalBased
UNSEEN = [f"u{k:02d}_1" for k in range(3)]  # CalFree
AAMI = [f"a{k:02d}_0" for k in range(3)]  # AAMI_Test and AAMI_Cal


def pulsedb_shards(folder: Path, *, extra: dict | None = None, leave_out=()) -> list[Path]:
    rng = np.random.default_rng(3)
    subsets = {
        "Train_Subset": dict.fromkeys(TRAIN, 3),
        "CalBased_Test_Subset": dict.fromkeys(TRAIN, 1),
        "CalFree_Test_Subset": dict.fromkeys(UNSEEN, 2),
        "AAMI_Test_Subset": dict.fromkeys(AAMI, 2),
        "AAMI_Cal_Subset": dict.fromkeys(AAMI, 1),
        **(extra or {}),
    }
    paths = []
    for name, subjects in subsets.items():
        if name not in leave_out:
            write_subjects(folder / f"{name}.h5", subjects, rng)
            paths.append(folder / f"{name}.h5")
    return paths


def test_pulsedb_trains_on_train_subset_subjects_and_names_each_test_subset(tmp_path):
    paths = pulsedb_shards(tmp_path)
    split = split_settings(protocol="pulsedb", val_fraction=0.25)
    document, _ = make_splits(paths, split, WINDOW)
    (fold,) = document["folds"]
    train, val = subjects_on(fold["train"]), subjects_on(fold["val"])
    assert train | val == set(TRAIN) and not train & val and val  # val: carved subjects
    assert {entry[0].split("/")[1] for entry in fold["train"] + fold["val"]} == {"Train_Subset"}
    sides = scored_sides(document, 0)
    assert list(sides) == ["calfree", "calbased", "aami"]
    assert sides["calfree"] is fold["test"]  # the first is the fold's own test side
    assert subjects_on(sides["calbased"]) == set(TRAIN)
    assert subjects_on(sides["aami"]) == set(AAMI)
    assert {e[0].split("/")[1] for e in sides["aami"]} == {"AAMI_Test_Subset"}  # not its Cal
    described = document["test_sets"]
    assert described["calbased"] | {"subjects": 8} == {
        "subset": "CalBased_Test_Subset",
        "calibration": "Train_Subset",
        "side": "calbased",
        "floor": "subject",
        "subjects": 8,
        "subjects_in_training_subset": 8,
    }
    assert described["calfree"]["floor"] == "population"
    assert described["calfree"]["subjects_in_training_subset"] == 0
    assert described["aami"]["calibration"] == "AAMI_Cal_Subset"
    assert document["resampling_units"]["unit"] == "subject"
    names = [p.stem for p in paths]
    assert named_test_sets("pulsedb", names) == ["calbased", "aami"]
    assert named_test_sets("subject", names) == []


def test_pulsedb_scores_vitaldb_test_subsets_beside_the_main_ones(tmp_path):
    vital = {"VitalDB_CalFree_Test_Subset": dict.fromkeys(["v00_1", "v01_1"], 1)}
    document, _ = make_splits(
        pulsedb_shards(tmp_path, extra=vital), split_settings(protocol="pulsedb"), WINDOW
    )
    assert list(document["test_sets"]) == ["calfree", "calbased", "aami", "vitaldb_calfree"]
    assert document["test_sets"]["vitaldb_calfree"]["subset"] == "VitalDB_CalFree_Test_Subset"


@pytest.mark.parametrize(
    ("leave_out", "extra", "message"),
    [
        (("Train_Subset",), None, "trains on Train_Subset"),
        (("AAMI_Cal_Subset",), None, "AAMI_Test_Subset: its per-subject floor is calibrated on"),
        ((), {"part_1": {"p9_0": 1}}, "shard part_1: not a PulseDB subset"),
        (("CalFree_Test_Subset", "CalBased_Test_Subset", "AAMI_Test_Subset"), None, "no test"),
    ],
)
def test_pulsedb_refuses_what_it_cannot_score_honestly(tmp_path, leave_out, extra, message):
    paths = pulsedb_shards(tmp_path, extra=extra, leave_out=leave_out)
    with pytest.raises(InputError, match=message):
        make_splits(paths, split_settings(protocol="pulsedb"), WINDOW)
