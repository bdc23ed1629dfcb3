"""Evaluation: predictions at the right original samples of test records only, and the metrics."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from pipeline_factory import (
    ingest_parts,
    side_targets,
    synthetic_parts,
    tiny_config,
    write_split,
)
from shard_factory import Piece, random_record, restamp_split, write_test_shard

from ecg2abp.data.readers import iter_records
from ecg2abp.data.shards import open_shard
from ecg2abp.errors import InputError
from ecg2abp.evaluation.metrics import LEVELS, ErrorAccumulator
from ecg2abp.evaluation.pooling import pool_tables
from ecg2abp.evaluation.predictions import HALF_STEP_MMHG, STEPS_PER_MMHG, read_predictions
from ecg2abp.evaluation.scoring import evaluate_variant
from ecg2abp.folds.protocols import windows_path
from ecg2abp.models.classical import RidgeWindowModel
from ecg2abp.training.jobs import train_variant

WINDOW = 88
METRIC_KEYS = set(ErrorAccumulator().result()) | {"n_excluded"}


@dataclass(frozen=True)
class Chain:
    """Shards and a split of one protocol, with the part files they came from."""

    folder: Path
    config: dict
    parts: list[Path]
    shards: list[Path]
    split: Path

    def fold(self) -> dict:
        return json.loads(self.split.read_text())["folds"][0]

    def train(self, variant: str) -> Path:
        out = self.folder / "models" / variant
        if not (out / "model.pt").exists():
            train_variant(variant, self.config, self.split, self.shards, 0, out)
        return out / "model.pt"

    def evaluate(self, model: Path, name: str, **evaluate) -> tuple[dict, pd.DataFrame]:
        """metrics.json as returned and the predictions table."""
        config = {**self.config, "evaluate": {**self.config["evaluate"], **evaluate}}
        out = self.folder / "eval" / name
        result = evaluate_variant(model, self.split, self.shards, 0, out, config)
        assert json.loads((out / "metrics.json").read_text()) == result
        return result, read_predictions(out / "predictions.parquet")


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> list[Path]:
    return synthetic_parts(tmp_path_factory.mktemp("parts"))


def make_chain(folder: Path, parts: list[Path], split: dict) -> Chain:
    config = tiny_config({"split": split, "train": {"epochs": 1, "max_windows_per_epoch": 64}})
    shards = ingest_parts(folder, parts, config)
    return Chain(folder, config, parts, shards, write_split(folder, shards, config))


@pytest.fixture(scope="module")
def by_record(tmp_path_factory, parts) -> Chain:
    split = {"protocol": "record", "folds": 3, "block_size": 2}
    return make_chain(tmp_path_factory.mktemp("record"), parts, split)


@pytest.fixture(scope="module")
def temporal(tmp_path_factory, parts) -> Chain:
    return make_chain(tmp_path_factory.mktemp("temporal"), parts, {"protocol": "temporal"})


@pytest.fixture(scope="module")
def paper(tmp_path_factory, parts) -> Chain:
    split = {"protocol": "paper", "paper_fraction": 0.1}
    return make_chain(tmp_path_factory.mktemp("paper"), parts, split)


@pytest.fixture(scope="module")
def ridge_on_records(by_record) -> tuple[dict, pd.DataFrame]:
    return by_record.evaluate(by_record.train("linear"), "linear")


def original_abp(parts: list[Path]) -> dict[str, np.ndarray]:
    """Record id → ABP of the raw record, before any cleaning."""
    return {r.record_id: r.abp for part in parts for r in iter_records(part)}


def record_segments(shard_paths: list[Path]) -> dict[str, list[tuple]]:
    """Record id → (shard, start, stop, source start) of each of its kept segments."""
    found: dict[str, list[tuple]] = {}
    for path in shard_paths:
        shard = open_shard(path)
        for record, start, stop, source in shard.segments:
            found.setdefault(shard.records[record], []).append((shard, start, stop, source))
    return found


def window_ending_at(segments: list[tuple], sample: int) -> np.ndarray:
    """The shard's ECG window whose last sample is original sample `sample`; inside one segment."""
    for shard, start, stop, source in segments:
        if source + WINDOW - 1 <= sample < source + stop - start:
            end = start + sample - source + 1
            return shard.ecg[end - WINDOW : end]
    raise AssertionError(f"sample {sample}: no kept segment holds a window ending there")


def test_predictions_are_test_records_true_abp_at_original_samples(by_record, ridge_on_records):
    result, predictions = ridge_on_records
    schema = pq.read_schema(by_record.folder / "eval" / "linear" / "predictions.parquet")
    assert [(f.name, str(f.type)) for f in schema] == [
        ("record_id", "string"),
        ("sample", "int64"),
        ("abp_true", "int32"),
        ("abp_pred", "int32"),
    ]
    test_ids = {record_id for record_id, _, _ in by_record.fold()["test"]}
    assert set(predictions["record_id"]) == test_ids
    assert not predictions.duplicated(["record_id", "sample"]).any()

    raw = original_abp(by_record.parts)
    segments = record_segments(by_record.shards)
    meta = torch.load(by_record.train("linear"), weights_only=True)
    ridge = RidgeWindowModel.load(by_record.train("linear").with_name("model.classical"))
    stats = meta["stats"]
    for record_id, rows in predictions.groupby("record_id"):
        samples = rows["sample"].to_numpy()
        stored_true = raw[record_id][samples].astype(np.float32)  # the shard's ABP
        np.testing.assert_allclose(rows["abp_true"], stored_true, rtol=0, atol=HALF_STEP_MMHG)
        # stride 1: every sample of a kept segment from its first full window on, once
        expected = sum(stop - start - WINDOW + 1 for _, start, stop, _ in segments[record_id])
        assert len(rows) == expected
        ecg = np.stack([window_ending_at(segments[record_id], int(s)) for s in samples])
        by_hand = ((ecg - stats["ecg_center"]) / stats["ecg_scale"]) @ ridge.coef + ridge.intercept
        mmhg = by_hand * stats["abp_scale"] + stats["abp_center"]
        np.testing.assert_allclose(rows["abp_pred"], mmhg, rtol=1e-4, atol=HALF_STEP_MMHG)
    assert result["test_records"] == len(test_ids)


def test_metrics_hold_four_levels_with_the_metrics_keys(by_record, ridge_on_records):
    result, predictions = ridge_on_records
    assert (result["protocol"], result["leaky"], result["fold"]) == ("record", False, 0)
    assert set(result["levels"]) == set(LEVELS)
    for level in LEVELS:
        assert set(result["levels"][level]) == METRIC_KEYS, level
        assert result["levels"][level]["n"] > 0, level
    point = result["levels"]["point"]
    error = predictions["abp_pred"].to_numpy(np.float64) - predictions["abp_true"]
    assert point["n"] == len(predictions)
    # stored true and predicted ABP are each within half a step of the values scored
    assert point["mae"] == pytest.approx(np.abs(error).mean(), abs=2 * HALF_STEP_MMHG)
    assert point["me"] == pytest.approx(error.mean(), abs=2 * HALF_STEP_MMHG)
    assert point["sd"] == pytest.approx(error.std(ddof=1), abs=2 * HALF_STEP_MMHG)
    # the first window − 1 samples of each kept test segment have no prediction
    segments = record_segments(by_record.shards)
    test_ids = {record_id for record_id, _, _ in by_record.fold()["test"]}
    assert point["n_excluded"] == (WINDOW - 1) * sum(len(segments[r]) for r in test_ids)


def test_stride_predicts_every_stride_th_window(by_record, ridge_on_records):
    _, every = ridge_on_records
    _, strided = by_record.evaluate(by_record.train("linear"), "linear_stride_5", stride=5)
    expected = []
    for record_id, segments in record_segments(by_record.shards).items():
        if record_id in set(every["record_id"]):
            for _, start, stop, source in segments:
                first = source + WINDOW - 1
                expected += [(record_id, s) for s in range(first, source + stop - start, 5)]
    assert sorted(zip(strided["record_id"], strided["sample"], strict=True)) == sorted(expected)
    merged = strided.merge(every, on=["record_id", "sample"], suffixes=("", "_every"))
    np.testing.assert_array_equal(merged["abp_pred"], merged["abp_pred_every"])


def stored(mmhg: float) -> float:
    """A value as predictions.parquet holds it: rounded to the nearest step."""
    return round(mmhg * STEPS_PER_MMHG) / STEPS_PER_MMHG


def test_naive_predicts_the_training_mean(by_record):
    _, predictions = by_record.evaluate(by_record.train("naive"), "naive")
    mean = side_targets(by_record.shards, by_record.fold()["train"], WINDOW).mean()
    np.testing.assert_array_equal(predictions["abp_pred"], stored(mean))


def test_temporal_naive_uses_each_records_own_training_mean_and_skips_the_gap(temporal):
    result, predictions = temporal.evaluate(temporal.train("naive"), "naive")
    fold = temporal.fold()
    train = {record_id: (start, stop) for record_id, start, stop in fold["train"]}
    val = {record_id: (start, stop) for record_id, start, stop in fold["val"]}
    test = {record_id: start for record_id, start, _ in fold["test"]}
    assert set(predictions["record_id"]) <= set(test)
    for record_id, rows in predictions.groupby("record_id"):
        own = side_targets(temporal.shards, [[record_id, *train[record_id]]], WINDOW).mean()
        np.testing.assert_array_equal(rows["abp_pred"], stored(own))
        # every predicted window lies in the test range, a window after validation ends
        first_window_start = rows["sample"].min() - (WINDOW - 1)
        assert first_window_start >= test[record_id] >= val[record_id][1] + WINDOW
        assert val[record_id][0] >= train[record_id][1] + WINDOW
    assert result["levels"]["point"]["n"] == len(predictions)


def test_a_model_whose_output_is_nan_is_refused_naming_the_record(by_record, tmp_path):
    meta = torch.load(by_record.train("tiny_resnet"), weights_only=True)
    meta["state_dict"] = {
        name: torch.full_like(value, float("nan")) if value.is_floating_point() else value
        for name, value in meta["state_dict"].items()
    }
    broken = tmp_path / "broken" / "model.pt"
    broken.parent.mkdir()
    torch.save(meta, broken)
    first_test_record = by_record.fold()["test"][0][0]
    out = tmp_path / "eval"
    with pytest.raises(InputError, match=f"record {first_test_record}: .*non-finite"):
        evaluate_variant(broken, by_record.split, by_record.shards, 0, out, by_record.config)
    assert not out.exists() or list(out.iterdir()) == []


def test_paper_protocol_is_flagged_leaky_and_scores_the_sampled_windows(paper):
    result, predictions = paper.evaluate(paper.train("linear"), "linear")
    assert (result["protocol"], result["leaky"]) == ("paper", True)
    for level in LEVELS[1:]:
        assert result["levels"][level]["applies"] is False
        assert result["levels"][level]["why"]
    with np.load(windows_path(paper.split)) as drawn:
        test = drawn["fold0_test"]
    shards = [open_shard(path) for path in paper.shards]
    expected = []
    for shard_index, start in test:
        segments = shards[shard_index].segments
        record, first, _, source = segments[segments[:, 1] <= start][-1]
        sample = source + start - first + WINDOW - 1
        expected.append((shards[shard_index].records[record], int(sample)))
    assert sorted(zip(predictions["record_id"], predictions["sample"], strict=True)) == sorted(
        expected
    )
    assert result["levels"]["point"]["n"] == len(test)
    raw = original_abp(paper.parts)
    for record_id, rows in predictions.groupby("record_id"):
        true = raw[record_id][rows["sample"].to_numpy()].astype(np.float32)
        np.testing.assert_allclose(rows["abp_true"], true, rtol=0, atol=HALF_STEP_MMHG)


# --- hand-made shards: ABP values name their sample ---------------------------------------------

SMALL = 16
CODE = 10_000  # ABP = record number · CODE + sample index in the original record


def coded(rng: np.random.Generator, number: int, lengths: list[int]) -> list[Piece]:
    pieces = []
    for piece in random_record(rng, lengths, gap=30):
        samples = np.arange(piece.source_start, piece.source_start + len(piece.ecg))
        pieces.append(Piece(piece.source_start, piece.ecg, number * CODE + samples.astype(float)))
    return pieces


@pytest.fixture
def hand_made(tmp_path) -> tuple[Path, Path, dict]:
    """One shard, a hand-written split: A trains, B validates, C (clipped) and D are tested."""
    rng = np.random.default_rng(5)
    records = {f"part_a/{i:04d}": coded(rng, i + 1, [120, 70, 90]) for i in range(4)}
    shard = tmp_path / "part_a.h5"
    write_test_shard(shard, records, window=SMALL)
    c_start = records["part_a/0002"][0].source_start
    c_stop = records["part_a/0002"][2].source_start + 5  # leaves 5 samples of its last piece
    split = {
        "protocol": "record",
        "seed": 0,
        "n_folds": 1,
        "leaky": False,
        "window": SMALL,
        "stride": 1,
        "shards": ["part_a"],
        "fingerprints": [open_shard(shard).fingerprint],
        "folds": [
            {
                "fold": 0,
                "train": [["part_a/0000", 0, None]],
                "val": [["part_a/0001", 0, None]],
                "test": [["part_a/0002", c_start + 40, c_stop], ["part_a/0003", 0, None]],
            }
        ],
    }
    split_path = tmp_path / "split.json"
    split_path.write_text(json.dumps(split))
    return shard, split_path, records


def test_samples_are_original_record_positions_inside_the_test_ranges(hand_made, tmp_path):
    shard, split, records = hand_made
    config = tiny_config({"window": SMALL})
    train_variant("naive", config, split, [shard], 0, tmp_path / "naive")
    result = evaluate_variant(tmp_path / "naive" / "model.pt", split, [shard], 0, tmp_path, config)
    predictions = read_predictions(tmp_path / "predictions.parquet")
    number = predictions["record_id"].map({"part_a/0002": 3, "part_a/0003": 4})
    np.testing.assert_array_equal(predictions["abp_true"], number * CODE + predictions["sample"])
    low = records["part_a/0002"][0].source_start + 40
    high = records["part_a/0002"][2].source_start + 5
    expected = []
    for record_id, (start, stop) in {"part_a/0002": (low, high), "part_a/0003": (0, 10**9)}.items():
        for piece in records[record_id]:
            first = max(piece.source_start, start)
            last = min(piece.source_start + len(piece.ecg), stop)
            expected += [(record_id, s) for s in range(first + SMALL - 1, last)]
    assert sorted(zip(predictions["record_id"], predictions["sample"], strict=True)) == expected
    # C's last piece keeps 5 test samples, too few for a window: counted, not silently dropped
    pieces_in_test = 3 + 3
    unpredicted = (SMALL - 1) * (pieces_in_test - 1) + 5
    assert result["levels"]["point"]["n_excluded"] == unpredicted


def test_a_failure_midway_leaves_no_predictions_file(hand_made, tmp_path):
    shard, split, records = hand_made
    # D, the last test record, gets a NaN ECG sample: the model fails after predicting C.
    records["part_a/0003"][1].ecg[30] = np.nan
    write_test_shard(shard, records, window=SMALL)
    restamp_split(split, [shard])
    config = tiny_config({"window": SMALL, "train": {"classical_max_windows": 100}})
    train_variant("linear", config, split, [shard], 0, tmp_path / "linear")
    out = tmp_path / "eval"
    with pytest.raises(InputError, match="record part_a/0003"):
        evaluate_variant(tmp_path / "linear" / "model.pt", split, [shard], 0, out, config)
    assert list(out.iterdir()) == []


def test_a_model_for_another_window_is_refused(by_record, hand_made, tmp_path):
    shard, split, _ = hand_made
    config = tiny_config({"window": SMALL})
    train_variant("naive", config, split, [shard], 0, tmp_path / "naive")
    with pytest.raises(
        InputError, match=f"trained for window {SMALL}, the config has window {WINDOW}"
    ):
        evaluate_variant(
            tmp_path / "naive" / "model.pt",
            by_record.split,
            by_record.shards,
            0,
            tmp_path / "eval",
            by_record.config,
        )


def test_a_stride_above_one_marks_beats_not_scored_and_pooling_keeps_them_out(by_record):
    strided, _ = by_record.evaluate(by_record.train("linear"), "linear_stride_3", stride=3)
    assert strided["levels"]["point"]["n"] > 0
    for level in ("sbp", "dbp", "map"):
        assert strided["levels"][level] == {
            "applies": False,
            "why": "evaluate.stride 3 predicts one sample in 3; beats need every sample",
        }
    pooled = pool_tables([by_record.folder / "eval" / "linear_stride_3" / "metrics.json"])
    assert set(pooled["level"]) == {"point"}
