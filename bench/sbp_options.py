"""SBP bias of one trained network under each output calibration, from one evaluation run.

    PYTHONPATH=src python bench/sbp_options.py EVAL_DIR MODEL SPLIT FOLD SHARD...

EVAL_DIR holds `ecg2abp evaluate`'s predictions.parquet of MODEL (a model.pt). The network's own
output is recovered from them by undoing the calibration MODEL holds; every option is an affine
map, which commutes with a beat's max, min and mean, so each is scored without another forward
pass. Beats are found on the true ABP of each contiguous predicted stretch (docs/sbp.md). Prints
one JSON object: pulse-pressure ratio (predicted / true) on training, validation and test beats,
the training-mean SBP floor, and per option SBP/DBP/MAP ME and MAE and the point MAE.
"""

import json
import sys

import numpy as np
import pandas as pd
import torch

from ecg2abp.evaluation.metrics import beat_values, find_beats
from ecg2abp.evaluation.predictions import read_predictions
from ecg2abp.evaluation.scoring import Predictor, side_pieces
from ecg2abp.folds.loading import load_fold
from ecg2abp.training.calibration import Calibration, fit_pulse, side_beats
from ecg2abp.training.model_file import load_model_file

TRAIN_WINDOWS = 20000  # training-side windows predicted for its pulse-pressure ratio


def test_beats(predictions: pd.DataFrame, fs: float) -> dict[str, np.ndarray]:
    """true_/pred_ SBP, DBP and MAP of every beat of every contiguous predicted stretch."""
    parts = []
    for _, rows in predictions.groupby("record_id", sort=False):
        rows = rows.sort_values("sample")
        sample = rows["sample"].to_numpy()
        true, pred = rows["abp_true"].to_numpy(float), rows["abp_pred"].to_numpy(float)
        cuts = np.flatnonzero(np.diff(sample) != 1) + 1
        for first, last in zip(np.r_[0, cuts], np.r_[cuts, len(sample)], strict=True):
            beats = find_beats(true[first:last], fs)
            if len(beats):
                values = beat_values(true[first:last], beats)
                guessed = beat_values(pred[first:last], beats)
                parts.append({f"true_{k}": v for k, v in values.items()})
                parts[-1].update({f"pred_{k}": v for k, v in guessed.items()})
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def pulse_ratio(true: dict, predicted: dict) -> float:
    return float(np.mean(predicted["sbp"] - predicted["dbp"]) / np.mean(true["sbp"] - true["dbp"]))


def mean_matched(true: dict, predicted: dict) -> tuple[float, float]:
    """The affine map matching both mean SBP and mean DBP (its offset fitted too)."""
    gain = 1.0 / pulse_ratio(true, predicted)
    return gain, float(np.mean(true["sbp"]) - gain * np.mean(predicted["sbp"]))


def main(eval_dir: str, model_path: str, split: str, fold_index: int, shards: list[str]) -> dict:
    meta = load_model_file(model_path)
    stored = Calibration.of(meta)
    meta.pop("calibration", None)
    network = Predictor(model_path, torch.device("cpu"), meta=meta)  # uncalibrated
    fs, window, center = float(meta["fs"]), int(meta["window"]), float(meta["train_abp_mean"])
    fold = load_fold(split, shards, fold_index, normalisation=meta["stats"]["method"])

    def side(name: str, cap: int | None) -> tuple[dict, dict]:
        pieces = list(side_pieces(fold.side(name), fold.shards))
        predict = lambda record, windows: network.predict(record, windows, 1024)  # noqa: E731
        return side_beats(fold.shards, pieces, window, fs, predict, cap)

    train_true, train_pred = side("train", TRAIN_WINDOWS)
    val_true, val_pred = side("val", None)
    predictions = read_predictions(f"{eval_dir}/predictions.parquet")
    raw = (predictions["abp_pred"].astype(float) - stored.offset) / stored.gain
    predictions = predictions.assign(abp_pred=raw)
    beats = test_beats(predictions, fs)
    true = {k: beats[f"true_{k}"] for k in ("sbp", "dbp")}
    pred = {k: beats[f"pred_{k}"] for k in ("sbp", "dbp")}
    train_sbp = np.concatenate(
        [
            beat_values(a, find_beats(a, fs))["sbp"]
            for p in side_pieces(fold.side("train"), fold.shards)
            if len(a := np.asarray(fold.shards[p.shard].abp[p.start : p.stop], float)) > 2
        ]
    ).mean()
    gain_val, gain_test = fit_pulse(val_true, val_pred, center), fit_pulse(true, pred, center)
    options = {
        "none": (1.0, 0.0),
        "stored": (stored.gain, stored.offset),
        "pulse_gain_val": (gain_val.gain, gain_val.offset),
        "mean_matched_val": mean_matched(val_true, val_pred),
        "pulse_gain_test_oracle": (gain_test.gain, gain_test.offset),
        "mean_matched_test_oracle": mean_matched(true, pred),
    }
    result = {
        "test_beats": len(true["sbp"]),
        "val_beats": len(val_true["sbp"]),
        "pp_ratio": {
            "train": pulse_ratio(train_true, train_pred),
            "val": pulse_ratio(val_true, val_pred),
            "test": pulse_ratio(true, pred),
        },
        "sbp_floor": {
            "value": float(train_sbp),
            "mae": float(np.abs(true["sbp"] - train_sbp).mean()),
        },
    }
    for name, (gain, offset) in options.items():
        row = {"gain": gain, "offset": offset}
        row["point_mae"] = float(np.abs(gain * raw + offset - predictions["abp_true"]).mean())
        for level in ("sbp", "dbp", "map"):
            error = gain * beats[f"pred_{level}"] + offset - beats[f"true_{level}"]
            row[f"{level}_me"], row[f"{level}_mae"] = (
                float(error.mean()),
                float(np.abs(error).mean()),
            )
        result[name] = row
    return result


if __name__ == "__main__":
    eval_dir, model, split, fold, *shards = sys.argv[1:]
    print(json.dumps(main(eval_dir, model, split, int(fold), shards), indent=1))
