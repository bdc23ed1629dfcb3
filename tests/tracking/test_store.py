"""Store: which URI wins, bounded client requests, one-line failures, the experiment once."""

import json
import logging
from pathlib import Path

import pytest
from tracking_factory import free_port, tracked_config

from ecg2abp.tracking.store import (
    StoreUnreachable,
    bound_client_requests,
    connect,
    create_store,
    tracking_uri,
)


def test_the_environment_variable_wins_over_the_config(monkeypatch):
    config = tracked_config("sqlite:///results/mlflow.db", "e")
    assert tracking_uri(config) == "sqlite:///results/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://team:5000")
    assert tracking_uri(config) == "http://team:5000"


def test_client_requests_are_bounded_by_the_config_unless_the_user_set_them(monkeypatch):
    config = tracked_config("x", "e", mlflow={"request_retries": 2, "request_timeout_s": 3})
    assert bound_client_requests(config) == {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
    }
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    assert (MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_TIMEOUT.get()) == (2, 3)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "9")
    assert bound_client_requests(config)["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "9"


def test_a_refused_server_is_one_line_naming_its_uri():
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnreachable) as caught:
        connect(tracked_config(uri, "e"))
    message = str(caught.value)
    assert message.startswith(f"mlflow: cannot use the tracking store {uri} (")
    assert "Connection refused" in message and "\n" not in message


def test_an_unreachable_store_is_one_warning_and_a_marker(tmp_path, caplog):
    uri = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.INFO):
        create_store(tracked_config(uri, "e"), tmp_path / "store.json")
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert uri in caplog.records[0].getMessage()
    note = json.loads((tmp_path / "store.json").read_text())
    assert note == {
        "tracking_uri": uri,
        "experiment": "e",
        "experiment_id": None,
        "reachable": False,
    }


def test_the_experiment_is_made_once_with_artifacts_beside_the_store(sqlite_uri, tmp_path):
    config = tracked_config(sqlite_uri, "made_once")
    create_store(config, tmp_path / "store.json")
    client, experiment_id = connect(config)
    assert json.loads((tmp_path / "store.json").read_text())["experiment_id"] == experiment_id
    assert connect(config)[1] == experiment_id
    location = client.get_experiment(experiment_id).artifact_location
    store_folder = Path(sqlite_uri.removeprefix("sqlite:///")).parent
    assert location == (store_folder / "mlartifacts" / "made_once").as_uri()
