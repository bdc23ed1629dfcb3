"""Runs: params from the decisive settings, found again by their tags, never duplicated."""

from tracking_factory import tracked_config

from ecg2abp.tracking.runs import find_or_create_run, flatten, identity, variant_settings
from ecg2abp.tracking.store import connect


def test_flatten_names_nested_keys_with_dots():
    nested = {"train": {"lr": 0.001, "folds": [0, 1]}, "split": {"protocol": "record"}}
    assert flatten(nested) == {
        "train.lr": "0.001",
        "train.folds": "[0, 1]",
        "split.protocol": "record",
    }
    assert flatten({"options": {}, "bandpass_hz": None}) == {"options": "{}", "bandpass_hz": "null"}


def test_params_are_what_decided_the_weights():
    config = tracked_config("x", "e")
    params, fingerprint = variant_settings(config, "tiny")
    assert params["train.lr"] == "0.001" and params["variants.tiny.width"] == "0.125"
    assert params["variants.tiny.model"] == "resnet1d" and params["window"] == "88"
    assert not {"train.device", "train.folds", "threads", "experiment"} & set(params)
    moved = tracked_config("x", "e", train={"device": "cpu"}, threads=1)
    assert variant_settings(moved, "tiny")[1] == fingerprint
    faster = tracked_config("x", "e", train={"lr": 0.01})
    assert variant_settings(faster, "tiny")[1] != fingerprint
    assert variant_settings(config, "naive")[0]["variants.naive.model"] == "naive"


def test_a_run_is_found_by_its_tags_not_made_twice(sqlite_uri):
    client, experiment_id = connect(tracked_config(sqlite_uri, "found_again"))
    tags = identity("found_again", "tiny", 0, "abc")
    first = find_or_create_run(client, experiment_id, tags, "tiny fold 0")
    again = find_or_create_run(client, experiment_id, tags, "tiny fold 0")
    assert again.info.run_id == first.info.run_id
    changed = find_or_create_run(client, experiment_id, {**tags, "config_fingerprint": "d"}, "x")
    assert changed.info.run_id != first.info.run_id
    assert len(client.search_runs([experiment_id])) == 2
