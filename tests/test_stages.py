"""Stage slices: each stage's fingerprint moves with its own settings and nothing else."""

import pytest

from ecg2abp.config import deep_merge, validate_config
from ecg2abp.errors import InputError
from ecg2abp.stages import (
    evaluate_settings,
    ingest_settings,
    job_config,
    report_settings,
    results_settings,
    short,
    split_settings,
    tracking_settings,
    train_settings,
    variant_evaluate,
    variant_train,
)

BASE = {
    "variants": {
        "net": {"model": "msca_cssc_unet", "train": {"lr": 0.003, "epochs": 5}},
        "ridge": {"model": "ridge", "evaluate": {"batch_size": 8192}},
    },
    "train": {"seeds": [0, 1]},
}


def slices(config: dict) -> dict[str, str]:
    return {
        "ingest": short(ingest_settings(config)),
        "split": short(split_settings(config)),
        "train net": short(train_settings(config, "net", 0)),
        "train ridge": short(train_settings(config, "ridge", 0)),
        "evaluate ridge": short(evaluate_settings(config, "ridge")),
        "report": short(report_settings(config, "bootstrap_samples", "seed")),
        "results": short(results_settings(config)),
        "track": short(tracking_settings(config, ["net", "ridge", "naive"])),
    }


def moved(change: dict) -> set[str]:
    before = slices(validate_config(BASE))
    after = slices(validate_config(deep_merge(BASE, change)))
    return {stage for stage in before if before[stage] != after[stage]}


@pytest.mark.parametrize(
    ("change", "stages"),
    [
        (
            {"cleaning": {"abp_min": 25.0}},
            {"ingest", "train net", "train ridge", "results", "track"},
        ),
        ({"split": {"block_size": 2}}, {"split", "train net", "train ridge", "results", "track"}),
        ({"train": {"weight_decay": 0.1}}, {"train net", "train ridge", "results", "track"}),
        (
            {"variants": {"ridge": {"train": {"classical_max_windows": 900}}}},
            {"train ridge", "results", "track"},
        ),
        ({"variants": {"ridge": {"evaluate": {"stride": 2}}}}, {"evaluate ridge", "results"}),
        ({"report": {"bootstrap_samples": 500}}, {"report", "results"}),
        ({"train": {"seeds": [0, 1, 2]}}, {"results", "track"}),  # seed 0's jobs stay as they are
        ({"threads": 1, "train": {"device": "cpu"}, "cluster": {"partition": "p"}}, set()),
        ({"mlflow": {"request_timeout_s": 9}, "train": {"checkpoint_minutes": 1.0}}, set()),
    ],
)
def test_a_change_moves_exactly_the_slices_that_depend_on_it(change, stages):
    assert moved(change) == stages


def test_a_variant_runs_under_its_own_settings_laid_over_the_shared_ones():
    config = validate_config(BASE)
    assert (
        variant_train(config, "net")["lr"] == 0.003 and variant_train(config, "net")["epochs"] == 5
    )
    assert variant_train(config, "ridge")["lr"] == config["train"]["lr"]
    assert variant_evaluate(config, "ridge") == {**config["evaluate"], "batch_size": 8192}
    job = job_config(config, "net", 1)
    assert job["train"]["seed"] == 1 and "seeds" not in job["train"]
    assert job_config(config, "naive")["train"]["seed"] == 0  # the first of train.seeds
    assert train_settings(config, "net", 0) != train_settings(config, "net", 1)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"train": {"seed": 3}}, "config: key train.seed is now train.seeds"),
        (
            {"variants": {"r": {"model": "ridge", "train": {"seeds": [1]}}}},
            "variants.r.train.seeds",
        ),
        ({"variants": {"r": {"model": "ridge", "train": {"lr": 0}}}}, "key variants.r.train.lr:"),
        (
            {"variants": {"r": {"model": "ridge", "train": {"lrate": 1}}}},
            "lrate in variants.r.train",
        ),
        (
            {"variants": {"r": {"model": "ridge", "evaluate": {"stride": 0}}}},
            "variants.r.evaluate.stride",
        ),
        ({"train": {"seeds": [0, 0]}}, "key train.seeds:"),
    ],
)
def test_bad_per_variant_settings_and_the_old_seed_key_are_one_line(config, message):
    with pytest.raises(InputError, match=message.replace(".", "[.]")):
        validate_config(config)
