"""Floors from training data only: naive's beat means and template, under record and temporal."""

from pathlib import Path

import numpy as np
import pytest
from pipeline_factory import ingest_parts, synthetic_parts, tiny_config, write_split

from ecg2abp.evaluation.floors import beat_floor
from ecg2abp.evaluation.metrics import BEAT_LEVELS, beat_values, find_beats
from ecg2abp.evaluation.scoring import side_pieces
from ecg2abp.folds.loading import load_fold
from ecg2abp.training.jobs import train_variant
from ecg2abp.training.model_file import load_model_file


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> list[Path]:
    return synthetic_parts(tmp_path_factory.mktemp("parts"), records=6)


def prepared(folder: Path, parts: list[Path], split: dict) -> tuple[dict, Path, list[Path]]:
    config = tiny_config({"split": split})
    shards = ingest_parts(folder, parts, config)
    return config, write_split(folder, shards, config), shards


@pytest.fixture(scope="module")
def record_split(tmp_path_factory, parts):
    return prepared(
        tmp_path_factory.mktemp("record"),
        parts,
        {"protocol": "record", "folds": 2, "block_size": 2},
    )


@pytest.fixture(scope="module")
def temporal_split(tmp_path_factory, parts):
    return prepared(tmp_path_factory.mktemp("temporal"), parts, {"protocol": "temporal"})


def in_memory_fold(config: dict, split_path: Path, shards: list[Path]):
    return load_fold(split_path, shards, 0, normalisation=config["normalisation"], mapped=False)


def scale_side(fold, side: str, factor: float) -> None:
    """Multiply the ABP of every kept sample of one side, in memory."""
    for piece in side_pieces(fold.side(side), fold.shards):
        fold.shards[piece.shard].abp[piece.start : piece.stop] *= factor


@pytest.mark.parametrize("name", ["record_split", "temporal_split"])
def test_changing_test_or_validation_samples_moves_no_floor(name, request):
    config, split_path, shards = request.getfixturevalue(name)
    fold = in_memory_fold(config, split_path, shards)
    per_record = fold.protocol == "temporal"
    before = beat_floor(fold, per_record)
    scale_side(fold, "test", 1.3)
    scale_side(fold, "val", 0.7)
    assert beat_floor(fold, per_record) == before
    scale_side(fold, "train", 1.1)  # the floor does read the training side
    after = beat_floor(fold, per_record)
    for level in BEAT_LEVELS:
        assert after["overall"][level] == pytest.approx(1.1 * before["overall"][level])
    assert bool(after["records"]) == per_record


def test_naive_stores_the_training_beats_mean_levels_per_record_under_temporal(
    temporal_split, tmp_path
):
    config, split_path, shards = temporal_split
    train_variant("naive", config, split_path, shards, 0, tmp_path)
    stored = load_model_file(tmp_path / "model.pt")["beat_floor"]
    fold = in_memory_fold(config, split_path, shards)
    fs = float(fold.shards[0].attrs["fs"])
    for record_id, levels in stored["records"].items():
        values = {level: [] for level in BEAT_LEVELS}
        for piece in side_pieces(fold.side("train"), fold.shards):
            if piece.record_id == record_id:
                abp = fold.shards[piece.shard].abp[piece.start : piece.stop].astype(np.float64)
                for level, found in beat_values(abp, find_beats(abp, fs)).items():
                    values[level].extend(found)
        for level in BEAT_LEVELS:
            assert levels[level] == pytest.approx(np.mean(values[level]))
    assert stored["overall"]["sbp"] > stored["overall"]["map"] > stored["overall"]["dbp"]
