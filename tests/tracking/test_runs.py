"""Runs: params from the decisive settings, found again by their tags, never duplicated."""

from tracking_factory import tracked_config

from ecg2abp.tracking.runs import (
    find_or_create_run,
    flatten,
    identity,
    prepare_view,
    variant_settings,
)
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
    first = find_or_create_run(client, experiment_id, tags, "tiny fold 0 seed 0")
    again = find_or_create_run(client, experiment_id, tags, "tiny fold 0 seed 0")
    assert again.info.run_id == first.info.run_id
    changed = find_or_create_run(client, experiment_id, {**tags, "config_fingerprint": "d"}, "x")
    assert changed.info.run_id != first.info.run_id
    assert len(client.search_runs([experiment_id])) == 2


def active_runs(uri: str, experiment: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def test_a_2_by_2_sweep_is_four_parent_runs_with_the_swept_values_as_params(sqlite_uri):
    sweep = {"tiny": {"width": [0.125, 0.25], "train.lr": [0.001, 0.003]}}
    config = tracked_config(sqlite_uri, "swept", sweep=sweep)
    names = [name for name in config["variants"] if name.startswith("tiny__")]
    assert len(names) == 4
    prepare_view(config, names)
    parents = {r.data.tags["variant"]: r.data.params for r in active_runs(sqlite_uri, "swept")}
    assert set(parents) == {*names, "naive"}
    grid = {(p["sweep.width"], p["sweep.train.lr"]) for v, p in parents.items() if v != "naive"}
    assert grid == {("0.125", "0.001"), ("0.125", "0.003"), ("0.25", "0.001"), ("0.25", "0.003")}
    for name in names:
        params = parents[name]
        assert params["sweep.base"] == "tiny"
        assert params["train.lr"] == params["sweep.train.lr"]  # the setting it ran under
        assert params[f"variants.{name}.width"] == params["sweep.width"]
    assert not any(key.startswith("sweep.") for key in parents["naive"])


def test_runs_of_superseded_settings_go_to_the_trash_not_beside_the_new_ones(sqlite_uri):
    config = tracked_config(sqlite_uri, "superseded")
    prepare_view(config, ["tiny"])
    old = {r.data.tags["variant"]: r.info.run_id for r in active_runs(sqlite_uri, "superseded")}
    changed = tracked_config(sqlite_uri, "superseded", train={"lr": 0.01}, threads=1)
    prepare_view(changed, ["tiny"])
    now = {r.data.tags["variant"]: r for r in active_runs(sqlite_uri, "superseded")}
    assert set(now) == {"tiny", "naive"}  # one current parent per variant
    assert now["tiny"].info.run_id != old["tiny"] and now["tiny"].data.params["train.lr"] == "0.01"
    assert now["naive"].info.run_id != old["naive"]  # its train settings changed too
    from mlflow import MlflowClient

    trashed = MlflowClient(tracking_uri=sqlite_uri).get_run(old["tiny"])
    assert trashed.info.lifecycle_stage == "deleted"  # restorable from MLflow's trash
    prepare_view(tracked_config(sqlite_uri, "superseded", train={"lr": 0.01}, threads=2), ["tiny"])
    again = {r.data.tags["variant"]: r.info.run_id for r in active_runs(sqlite_uri, "superseded")}
    assert again == {v: r.info.run_id for v, r in now.items()}  # how it runs changes nothing
