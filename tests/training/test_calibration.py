"""Pulse calibration: fitted on validation beats only, stored in the model file, applied by
every prediction path alike; model files from before it still load."""

from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline_factory import ingest_parts, synthetic_parts, tiny_config, write_split

from ecg2abp.config import deep_merge, read_yaml, validate_config
from ecg2abp.evaluation.scoring import Predictor, side_pieces
from ecg2abp.folds.loading import FoldData, load_fold
from ecg2abp.serving.ensemble import load_model
from ecg2abp.serving.export import export_onnx
from ecg2abp.serving.inputs import in_memory
from ecg2abp.training.calibration import Calibration, fit_pulse
from ecg2abp.training.jobs import RunContext, calibrate, train_variant
from ecg2abp.training.model_file import load_model_file, save_model_file

REPO = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")
CONFIG = {
    "split": {"protocol": "record", "folds": 3, "block_size": 2},
    "train": {"epochs": 2, "max_windows_per_epoch": 1024, "lr": 0.003},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """A tiny network trained on fold 0 with the default (pulse) calibration."""
    folder = tmp_path_factory.mktemp("calibration")
    config = tiny_config(CONFIG)
    shards = ingest_parts(folder, synthetic_parts(folder, records=6), config)
    split = write_split(folder, shards, config)
    train_variant("tiny_resnet", config, split, shards, 0, folder / "model")
    return {"config": config, "shards": shards, "split": split, "model": folder / "model/model.pt"}


def fold_of(run: dict) -> FoldData:
    return load_fold(run["split"], run["shards"], 0, normalisation="zscore")


def refit(run: dict, fold: FoldData) -> Calibration:
    contents = load_model_file(run["model"])
    contents.pop("calibration")
    ctx = RunContext("tiny_resnet", {}, run["config"], run["split"], run["model"].parent)
    return calibrate(ctx, fold, contents, CPU)


def change_side(fold: FoldData, side: str, scale: float, shift: float = 0.0) -> None:
    """ABP of every stretch of a side → scale × ABP + shift (in the fold's in-memory shards)."""
    for piece in side_pieces(fold.side(side), fold.shards):
        abp = fold.shards[piece.shard].abp
        abp[piece.start : piece.stop] = scale * abp[piece.start : piece.stop] + shift


def test_fit_restores_the_mean_pulse_pressure_about_the_center():
    rng = np.random.default_rng(0)
    true = {"sbp": rng.normal(125, 12, 400), "dbp": rng.normal(78, 8, 400)}
    predicted = {k: 0.6 * (v - 100.0) + 97.0 + rng.normal(0, 2, 400) for k, v in true.items()}
    calibration = fit_pulse(true, predicted, center=101.0)
    pulse = lambda beats: beats["sbp"].mean() - beats["dbp"].mean()  # noqa: E731
    calibrated = {k: calibration.apply(v) for k, v in predicted.items()}
    assert pulse(calibrated) == pytest.approx(pulse(true), rel=1e-12)
    assert calibration.gain == pytest.approx(pulse(true) / pulse(predicted), rel=1e-12)
    assert calibration.apply(np.array([101.0])) == pytest.approx(101.0, abs=1e-12)
    assert calibration.beats == 400
    # the level is not fitted: the same beats 20 mmHg higher give the same map
    higher = {k: v + 20.0 for k, v in true.items()}
    assert fit_pulse(higher, predicted, center=101.0) == calibration


def test_no_beats_or_a_flat_prediction_leave_predictions_as_they_are():
    none = {"sbp": np.empty(0), "dbp": np.empty(0)}
    assert fit_pulse(none, none, 100.0) == Calibration()
    true = {"sbp": np.full(5, 120.0), "dbp": np.full(5, 80.0)}
    flat = {"sbp": np.full(5, 100.5), "dbp": np.full(5, 100.0)}
    assert fit_pulse(true, flat, 100.0) == Calibration()
    assert Calibration().apply(np.array([93.5])) == 93.5


def test_the_model_file_holds_the_calibration_fitted_on_its_validation_beats(run):
    stored = Calibration.of(load_model_file(run["model"]))
    assert stored.beats > 0 and stored.gain != 1.0
    assert refit(run, fold_of(run)) == stored


def test_a_test_or_training_side_change_moves_nothing_a_validation_one_moves_the_gain(run):
    stored = Calibration.of(load_model_file(run["model"]))
    fold = fold_of(run)
    change_side(fold, "test", 1.5, 40.0)
    change_side(fold, "train", 0.5, -25.0)
    assert refit(run, fold) == stored
    change_side(fold, "val", 1.25)  # the same beats and predictions, pulse pressure × 1.25
    assert refit(run, fold).gain == pytest.approx(1.25 * stored.gain, rel=1e-6)


def test_every_prediction_path_applies_it_and_a_file_without_it_still_loads(run, tmp_path):
    contents = load_model_file(run["model"])
    calibration = Calibration.of(contents)
    old = tmp_path / "old" / "model.pt"  # a model file written before calibration existed
    save_model_file(old, {k: v for k, v in contents.items() if k != "calibration"})
    windows = np.random.default_rng(1).standard_normal((300, 88)).astype(np.float32)
    raw = Predictor(old, CPU).predict("r", windows, 128)
    expected = raw * calibration.gain + calibration.offset
    np.testing.assert_allclose(Predictor(run["model"], CPU).predict("r", windows, 128), expected)
    served, _ = load_model(run["model"]).predict("r", windows, batch_size=128)
    np.testing.assert_allclose(served, expected)
    onnx_file = tmp_path / "m.onnx"
    export_onnx(run["model"], onnx_file, [in_memory("r", 125.0, windows[:, -1].repeat(4))])
    via_onnx, _ = load_model(onnx_file).predict("r", windows, batch_size=128)
    np.testing.assert_allclose(via_onnx, expected, rtol=1e-5)


def test_none_stores_the_identity_and_the_paper_config_asks_for_none(run, tmp_path):
    config = deep_merge(run["config"], {"train": {"calibration": "none"}})
    train_variant("tiny_resnet", config, run["split"], run["shards"], 0, tmp_path)
    assert Calibration.of(load_model_file(tmp_path / "model.pt")) == Calibration()
    default = read_yaml(REPO / "config" / "config.yaml")
    assert validate_config(default)["train"]["calibration"] == "pulse"
    paper = deep_merge(default, read_yaml(REPO / "config" / "paper.yaml"))
    assert validate_config(paper)["train"]["calibration"] == "none"


def test_calibration_round_trips_through_the_model_file_dict():
    calibration = Calibration(gain=1.3, offset=-31.0, beats=12)
    assert Calibration.of({"calibration": calibration.to_dict()}) == calibration
    assert Calibration.of({}) == Calibration(gain=1.0, offset=0.0, beats=0)
