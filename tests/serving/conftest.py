"""Tiny trained models shared by the serving tests: two folds of a small CNN, and ridge."""

from pathlib import Path

import pytest
import torch
from pipeline_factory import ingest_parts, synthetic_parts, tiny_config, write_split

from ecg2abp.training.jobs import train_variant

VARIANT = "tiny_resnet"


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    """models/ folder with tiny_resnet/fold_0, tiny_resnet/fold_1 and linear/fold_0."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("serving")
    config = tiny_config(
        {
            "split": {"protocol": "record", "folds": 3, "block_size": 2},
            "train": {"epochs": 1, "max_windows_per_epoch": 128},
        }
    )
    shards = ingest_parts(folder, synthetic_parts(folder, records=6), config)
    split = write_split(folder, shards, config)
    for variant, fold in ((VARIANT, 0), (VARIANT, 1), ("linear", 0)):
        train_variant(
            variant, config, split, shards, fold, folder / "models" / variant / f"fold_{fold}"
        )
    return folder / "models"


@pytest.fixture(scope="session")
def model_file(trained) -> Path:
    return trained / VARIANT / "fold_0" / "model.pt"
