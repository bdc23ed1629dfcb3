"""Resume only what was started on the same data and settings; anything else is set aside."""

import pytest
import torch
from pipeline_factory import ingest_parts, synthetic_parts, tiny_config, write_split

from ecg2abp.folds.loading import load_fold
from ecg2abp.training.jobs import RunContext, train_variant
from ecg2abp.training.loop import fresh_state

SMALL = {
    "split": {"folds": 2, "block_size": 2},
    "train": {"epochs": 1, "max_windows_per_epoch": 128, "max_val_windows": 64},
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    config = tiny_config(SMALL)
    shards = ingest_parts(folder, synthetic_parts(folder, records=6), config)
    split = write_split(folder, shards, config)
    fresh = folder / "fresh"
    train_variant("tiny_resnet", config, split, shards, 0, fresh)
    return config, shards, split, torch.load(fresh / "model.pt", weights_only=True)


def finished_state(key: str) -> dict:
    """A checkpoint saying training is over: resumed, it would leave an untrained model."""
    return {**fresh_state(), "epoch": 1, "done": True, "config_fingerprint": key}


def assert_trained_afresh(out, expected: dict) -> None:
    got = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    for name, value in expected["state_dict"].items():
        assert torch.equal(got[name], value), name
    assert not (out / "checkpoint.pt").exists()


@pytest.mark.parametrize("written_for", ["other data", "these settings on unrecorded data"])
def test_a_checkpoint_of_other_data_is_set_aside(data, tmp_path, caplog, written_for):
    config, shards, split, fresh = data
    other = tiny_config({**SMALL, "split": {**SMALL["split"], "seed": 5}})
    other_split = write_split(tmp_path / "other", shards, other)
    fold = load_fold(other_split, shards, 0, normalisation="zscore")
    ctx = RunContext(
        "tiny_resnet", config["variants"]["tiny_resnet"], config, other_split, tmp_path
    )
    out = tmp_path / "run"
    out.mkdir()
    key = (
        ctx.resume_key(fold.fingerprint)
        if written_for == "other data"
        else ctx.config_fingerprint()
    )
    torch.save(finished_state(key), out / "checkpoint.pt")
    with caplog.at_level("WARNING", logger="ecg2abp.training"):
        train_variant("tiny_resnet", config, split, shards, 0, out)
    assert "written for other data or settings" in caplog.text
    assert (out / "checkpoint.pt.set-aside").exists()
    assert_trained_afresh(out, fresh)


def test_an_unreadable_checkpoint_is_set_aside(data, tmp_path, caplog):
    config, shards, split, fresh = data
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"PK\x03\x04 cut short")
    with caplog.at_level("WARNING", logger="ecg2abp.training"):
        train_variant("tiny_resnet", config, split, shards, 0, out)
    assert "unreadable" in caplog.text and "checkpoint.pt.set-aside" in caplog.text
    assert (out / "checkpoint.pt.set-aside").read_bytes() == b"PK\x03\x04 cut short"
    assert_trained_afresh(out, fresh)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("stride", 2),
        ("data_dir", "/data/other"),
        ("parts_glob", "p_*.mat"),
        ("synthetic", {"seed": 9}),
        ("ecg_lead", "V"),
        ("window", 64),
    ],
)
def test_the_settings_fingerprint_covers_what_shapes_the_data(tmp_path, key, value):
    def fingerprint(config: dict) -> str:
        spec = config["variants"]["tiny_resnet"]
        return RunContext("tiny_resnet", spec, config, tmp_path, tmp_path).config_fingerprint()

    base = tiny_config(SMALL)
    assert fingerprint(tiny_config({**SMALL, key: value})) != fingerprint(base)
    run_only = {**SMALL, "train": {**SMALL["train"], "device": "cuda", "checkpoint_minutes": 1}}
    assert fingerprint(tiny_config(run_only)) == fingerprint(base)
