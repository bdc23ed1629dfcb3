"""external: a record that cleaning empties is an error naming the counts, not an empty score;
the naive floor is scored per level; a PulseDB subset is scored segment by segment."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb
from pipeline_factory import ingest_parts, synthetic_parts, tiny_config, write_split
from real_record import REAL_RECORD

from ecg2abp.cli import main
from ecg2abp.data.readers import iter_records
from ecg2abp.data.synth import write_pulsedb
from ecg2abp.serving.external import evaluate_external
from ecg2abp.training.jobs import train_variant

FS = 125.0


def damped_record(folder: Path) -> Path:
    """A WFDB record of real ECG (lead II) whose ABP is a damped line from −20 to 63 mmHg."""
    ecg = next(iter_records(REAL_RECORD)).ecg[: 30 * int(FS)]
    abp = np.linspace(-20.0, 63.0, len(ecg))
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        "damped",
        fs=FS,
        units=["mV", "mmHg"],
        sig_name=["II", "ABP"],
        p_signal=np.column_stack([ecg, abp]),
        fmt=["16", "16"],
        adc_gain=[1000.0, 10.0],
        baseline=[0, 0],
        write_dir=str(folder),
    )
    return folder / "damped.hea"


def test_external_on_a_record_cleaning_empties_exits_nonzero_with_the_counts(
    model_file, tmp_path, capsys
):
    header = damped_record(tmp_path / "wfdb")
    out = tmp_path / "ext"
    assert main(["external", str(model_file), "--input", str(header), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"ecg2abp: error: {header}: cleaning left nothing to score")
    assert "3,750 samples read from 1 record(s)" in line
    assert "abp_range" in line
    assert not (out / "metrics.json").exists()


def test_the_naive_floor_predicts_the_training_beats_means_at_the_beat_levels(tmp_path):
    # Scoring the naive model itself: its own score is its flat line (SBP = the training mean
    # ABP), its floor uses the training beats' means. On the same beats, the two MEs differ by
    # exactly floor − training mean at each beat level.
    config = tiny_config({"split": {"protocol": "record", "folds": 2, "block_size": 1}})
    shards = ingest_parts(tmp_path, synthetic_parts(tmp_path, records=2), config)
    split = write_split(tmp_path, shards, config)
    train_variant("naive", config, split, shards, 0, tmp_path / "naive")
    model = tmp_path / "naive" / "model.pt"
    meta = torch.load(model, weights_only=True)
    result = evaluate_external(model, REAL_RECORD, tmp_path / "ext")
    floor = meta["beat_floor"]["overall"]
    assert result["naive_beat_means"] == pytest.approx(floor)
    assert floor["dbp"] < floor["map"] < floor["sbp"]
    for level in ("sbp", "dbp", "map"):
        flat, floored = result["levels"][level], result["naive"]["levels"][level]
        assert flat["n"] == floored["n"] > 0
        shift = floor[level] - meta["train_abp_mean"]
        assert floored["me"] - flat["me"] == pytest.approx(shift, abs=1e-6)


def test_a_kaggle_trained_model_is_scored_on_a_pulsedb_calfree_subset(model_file, tmp_path, capsys):
    paths = write_pulsedb(tmp_path / "pulsedb", subjects=10, segments_per_subject=3, seed=1)
    calfree = next(path for path in paths if path.stem == "CalFree_Test_Subset")
    segments = list(iter_records(calfree))
    assert {record.subject for record in segments} == {"p000008_1"}  # one VitalDB subject
    out = tmp_path / "ext"
    assert main(["external", str(model_file), "--input", str(calfree), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "CalFree_Test_Subset"
    assert metrics["records"] == 3 and metrics["samples"] == 3 * 1250
    point = metrics["state"]["levels"]["point"]
    assert set(point["records"]) == {record.record_id for record in segments}
    for level in ("point", "sbp", "dbp"):
        assert metrics["levels"][level]["n"] > 0
        assert printed["model"][level] == pytest.approx(metrics["levels"][level]["mae"])
