"""Devices: every job logs the one it resolved, and a GPU job that sees no CUDA says so."""

import logging

import pytest
import torch

from ecg2abp.devices import log_device, resolve_device
from ecg2abp.errors import InputError

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def test_auto_logs_the_cpu_and_warns_when_the_job_was_given_a_gpu(monkeypatch, caplog):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with caplog.at_level(logging.INFO, logger="ecg2abp.devices"):
        log_device(resolve_device("auto"), "auto")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "train.device auto: running on cpu")
    ]
    caplog.clear()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    with caplog.at_level(logging.INFO, logger="ecg2abp.devices"):
        assert resolve_device("auto") == torch.device("cpu")
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("CUDA_VISIBLE_DEVICES=1 gives this job a GPU, but it sees no CUDA")
    assert warning.endswith("running on the CPU")


@pytest.mark.parametrize("hidden", ["", "-1"])
def test_a_job_given_no_gpu_is_not_warned(monkeypatch, caplog, hidden):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
    with caplog.at_level(logging.INFO, logger="ecg2abp.devices"):
        resolve_device("cpu")
        resolve_device("auto")
    assert caplog.records == []
    with pytest.raises(InputError, match=r"train\.device: cuda asked for, but this job sees no"):
        resolve_device("cuda")


@pytest.mark.slow
def test_a_training_job_logs_its_device(tmp_path, caplog):
    from pipeline_factory import ingest_parts, synthetic_parts, tiny_config, write_split

    from ecg2abp.training.jobs import train_variant

    config = tiny_config(
        {
            "split": {"folds": 2, "block_size": 1},
            "train": {"device": "auto", "epochs": 1, "max_windows_per_epoch": 64},
        }
    )
    shards = ingest_parts(tmp_path, synthetic_parts(tmp_path, records=3), config)
    split = write_split(tmp_path, shards, config)
    with caplog.at_level(logging.INFO):
        train_variant("tiny_resnet", config, split, shards, 0, tmp_path / "model")
    assert "train.device auto: running on cpu" in caplog.text
