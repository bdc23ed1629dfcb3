"""PulseDB's test subsets scored one by one, each against the floor its calibration allows."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pipeline_factory import ingest_parts, tiny_config, write_split

from ecg2abp.data.shards import open_shard
from ecg2abp.data.synth import write_pulsedb
from ecg2abp.errors import InputError
from ecg2abp.evaluation.metrics import BEAT_LEVELS, beat_values, find_beats
from ecg2abp.evaluation.pooling import ALL_FOLDS, pool_metrics
from ecg2abp.evaluation.predictions import HALF_STEP_MMHG, read_predictions
from ecg2abp.evaluation.scoring import evaluate_variant
from ecg2abp.training.jobs import train_variant
from ecg2abp.training.model_file import load_model_file

TEST_SETS = ("calfree", "calbased", "aami")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """Synthetic PulseDB subsets (8 subjects × 4 segments) ingested and split under pulsedb;
    naive and ridge trained and scored on every test set."""
    folder = tmp_path_factory.mktemp("pulsedb")
    files = write_pulsedb(folder / "raw", subjects=8, segments_per_subject=4, seed=2)
    config = tiny_config({"split": {"protocol": "pulsedb", "val_fraction": 0.25}})
    shards = ingest_parts(folder, files, config)
    split = write_split(folder, shards, config)
    metrics = {}
    for variant in ("naive", "linear"):
        train_variant(variant, config, split, shards, 0, folder / "models" / variant)
        for name in TEST_SETS:
            out = folder / "eval" / variant / name
            chosen = None if name == "calfree" else name  # calfree: the fold's own test side
            model = folder / "models" / variant / "model.pt"
            evaluate_variant(model, split, shards, 0, out, config, variant, chosen)
            metrics[variant, name] = out / "metrics.json"
    by_name = {path.stem: path for path in shards}
    return {"folder": folder, "config": config, "shards": by_name, "split": split} | {
        "metrics": metrics
    }


def subject_samples(shard_path: Path) -> dict[str, list[np.ndarray]]:
    """Subject → the ABP of every kept segment of its records in one shard."""
    shard = open_shard(shard_path)
    subject_of = dict(zip(shard.records, shard.subjects, strict=True))
    found: dict[str, list[np.ndarray]] = {}
    for record, start, stop, _ in shard.segments:
        abp = np.asarray(shard.abp[start:stop], np.float64)
        found.setdefault(subject_of[shard.records[record]], []).append(abp)
    return found


def predictions(run: dict, variant: str, name: str) -> pd.DataFrame:
    return read_predictions(run["metrics"][variant, name].parent / "predictions.parquet")


@pytest.mark.parametrize(
    ("name", "source"), [("calbased", "Train_Subset"), ("aami", "AAMI_Cal_Subset")]
)
def test_naive_predicts_each_subjects_own_calibration_means(run, name, source):
    document = json.loads(run["metrics"]["naive", name].read_text())
    assert document["dataset"] == name and document["side"] == name
    assert document["test_set"]["calibration"] == source
    assert document["subjects_without_floor"] == 0
    calibration = subject_samples(run["shards"][source])
    model = load_model_file(run["folder"] / "models" / "naive" / "model.pt")
    floors = model["beat_floor"]["subjects"][source]
    predicted = predictions(run, "naive", name)
    assert len(predicted)
    for record_id, rows in predicted.groupby("record_id"):
        subject = record_id.split("/")[0]
        own = np.concatenate(calibration[subject]).mean()
        np.testing.assert_allclose(rows["abp_pred"], own, rtol=0, atol=HALF_STEP_MMHG)
    for subject, pieces in calibration.items():
        beats = [beat_values(abp, find_beats(abp, 125.0)) for abp in pieces]
        for level in BEAT_LEVELS:
            values = np.concatenate([b[level] for b in beats])
            assert floors[subject][level] == pytest.approx(values.mean())


def test_calibration_free_naive_predicts_the_training_subjects_mean(run):
    document = json.loads(run["metrics"]["naive", "calfree"].read_text())
    assert document["dataset"] == "calfree" and document["side"] == "test"
    assert document["test_set"]["floor"] == "population"
    model = load_model_file(run["folder"] / "models" / "naive" / "model.pt")
    predicted = predictions(run, "naive", "calfree")
    assert {r.split("/")[1] for r in predicted["record_id"]} == {"CalFree_Test_Subset"}
    mean = model["train_abp_mean"]
    np.testing.assert_allclose(predicted["abp_pred"], mean, rtol=0, atol=HALF_STEP_MMHG)


def test_each_test_set_is_its_own_dataset_in_the_table_and_summary(run, tmp_path):
    files = [run["metrics"][key] for key in sorted(run["metrics"])]
    pool_metrics(files, tmp_path / "metrics.parquet", tmp_path / "summary.md", (), 200, 0)
    table = pd.read_parquet(tmp_path / "metrics.parquet")
    merged = table[(table["fold"] == ALL_FOLDS) & (table["level"] == "point")]
    assert sorted(zip(merged["dataset"], merged["variant"], strict=True)) == sorted(
        (name, variant) for name in TEST_SETS for variant in ("linear", "naive")
    )
    assert set(table[table["dataset"] == "calfree"]["side"]) == {"test"}
    summary = (tmp_path / "summary.md").read_text()
    first, calbased, aami = (summary.index(f"## Test set `{n}`") for n in TEST_SETS)
    assert first == 0 and calbased < aami
    assert "CalBased_Test_Subset, calibration-based" in summary
    assert "each subject's own means in AAMI_Cal_Subset" in summary
    assert summary.count("### Against the floors") == 3  # linear vs naive on every test set


def test_a_test_set_the_split_does_not_hold_is_refused(run, tmp_path):
    model = run["folder"] / "models" / "naive" / "model.pt"
    with pytest.raises(
        InputError, match=r"no test set vitaldb_aami \(it has calfree, calbased, aami"
    ):
        evaluate_variant(
            model, run["split"], list(run["shards"].values()), 0, tmp_path, run["config"],
            "naive", "vitaldb_aami",
        )  # fmt: skip
