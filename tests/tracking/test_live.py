"""Live logging: a training job's epochs reach its child run; no store costs one warning."""

import logging

import pandas as pd
import pytest
from pipeline_factory import TINY, ingest_parts, synthetic_parts, write_split
from tracking_factory import free_port, tracked_config

from ecg2abp.tracking.live import EPOCH_METRICS, LiveRun, train_logged
from ecg2abp.tracking.runs import PARENT_TAG, prepare_view
from ecg2abp.tracking.store import connect


@pytest.mark.slow  # trains a tiny model
def test_a_training_job_logs_each_epoch_to_its_child_under_the_parent(sqlite_uri, tmp_path):
    config = tracked_config(
        sqlite_uri,
        "live",
        threads=1,
        variants={"tiny": {"model": "resnet1d", "width": 0.125}},
        split={"folds": 2, "block_size": 1},
        train={**TINY["train"], "epochs": 2},
    )
    parts = synthetic_parts(tmp_path, parts=1, records=4)
    shards = ingest_parts(tmp_path, parts, config)
    split = write_split(tmp_path, shards, config)
    prepare_view(config, ["tiny"])
    train_logged("tiny", config, split, shards, 1, tmp_path / "model")

    client, experiment_id = connect(config)
    parent, child = (
        client.search_runs([experiment_id], f"tags.variant = 'tiny' and tags.fold = '{fold}'")
        for fold in ("all", "1")
    )
    assert len(parent) == len(child) == 1
    run = child[0]
    assert run.data.tags[PARENT_TAG] == parent[0].info.run_id
    assert run.info.status == "FINISHED" and run.data.params["variants.tiny.width"] == "0.125"
    history = pd.read_parquet(tmp_path / "model" / "history.parquet")
    assert len(history) == 2
    for key in EPOCH_METRICS:
        logged = client.get_metric_history(run.info.run_id, key)
        expected = zip(history["epoch"], history[key], strict=True)
        assert [(m.step, m.value) for m in logged] == list(expected)


def test_without_a_store_training_goes_on_after_one_warning(caplog):
    uri = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.WARNING):
        assert LiveRun.open(tracked_config(uri, "e"), "tiny", 0, 0) is None
    assert len(caplog.records) == 1 and uri in caplog.records[0].getMessage()
    assert "snakemake track" in caplog.records[0].getMessage()
