"""Store: which URI wins, bounded client requests, one-line failures, the experiment once."""

import http.server
import logging
import threading
from pathlib import Path

import pytest
from tracking_factory import free_port, tracked_config

from ecg2abp.errors import InputError
from ecg2abp.tracking.runs import prepare_view
from ecg2abp.tracking.store import (
    StoreUnreachable,
    bound_client_requests,
    connect,
    tracking_uri,
)


def test_the_environment_variable_wins_over_the_config(monkeypatch):
    config = tracked_config("sqlite:///results/mlflow.db", "e")
    assert tracking_uri(config) == "sqlite:///results/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://team:5000")
    assert tracking_uri(config) == "http://team:5000"


def test_client_requests_are_bounded_by_the_config_unless_the_user_set_them(monkeypatch):
    config = tracked_config("x", "e", mlflow={"request_attempts": 3, "request_timeout_s": 3})
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


class FailingServer(http.server.ThreadingHTTPServer):
    """A tracking server on 127.0.0.1 that answers every request 503 and counts them."""

    def __init__(self) -> None:
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.mark.parametrize("attempts", [1, 2])
def test_request_attempts_is_the_number_of_requests_a_failing_server_sees(monkeypatch, attempts):
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.setenv(name, "")  # restored after the test, whatever connect sets
        monkeypatch.delenv(name)
    server = FailingServer()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(StoreUnreachable):
            connect(
                tracked_config(uri, "e", mlflow={"tracking_uri": uri, "request_attempts": attempts})
            )
    finally:
        server.shutdown()
        server.server_close()
    assert server.requests == attempts


def test_the_old_retries_key_is_refused_naming_the_new_one():
    with pytest.raises(
        InputError, match=r"mlflow\.request_retries is now mlflow\.request_attempts"
    ):
        tracked_config("x", "e", mlflow={"request_retries": 1})


def test_a_refused_server_is_one_line_naming_its_uri():
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnreachable) as caught:
        connect(tracked_config(uri, "e"))
    message = str(caught.value)
    assert message.startswith(f"mlflow: cannot use the tracking store {uri} (")
    assert "Connection refused" in message and "\n" not in message


def test_an_unreachable_store_is_one_warning(caplog):
    uri = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.INFO):
        assert prepare_view(tracked_config(uri, "e"), ["tiny"]) is None
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert uri in caplog.records[0].getMessage()


def test_jobs_never_create_a_store_or_an_experiment(tmp_path):
    missing = f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}"
    with pytest.raises(StoreUnreachable, match="no tracking store at"):
        connect(tracked_config(missing, "e"), create=False)
    assert not (tmp_path / "none").exists()
    made = f"sqlite:///{tmp_path / 'made' / 'mlflow.db'}"
    connect(tracked_config(made, "made"), create=True)  # the store exists, this experiment not
    with pytest.raises(StoreUnreachable, match="no experiment never_made in the tracking store"):
        connect(tracked_config(made, "never_made"), create=False)


def test_the_view_is_prepared_once_with_artifacts_beside_the_store(sqlite_uri):
    config = tracked_config(sqlite_uri, "made_once")
    parents = prepare_view(config, ["tiny"])
    assert set(parents) == {"tiny", "naive"}
    assert prepare_view(config, ["tiny"]) == parents
    client, experiment_id = connect(config, create=False)
    assert len(client.search_runs([experiment_id])) == 2
    location = client.get_experiment(experiment_id).artifact_location
    store_folder = Path(sqlite_uri.removeprefix("sqlite:///")).parent
    assert location == (store_folder / "mlartifacts" / "made_once").as_uri()


def test_the_experiment_is_marked_as_model_training_for_mlflow_s_ui(sqlite_uri):
    from mlflow import MlflowClient

    client, experiment_id = connect(tracked_config(sqlite_uri, "kind"))
    assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == (
        "custom_model_development"
    )
    client.set_experiment_tag(experiment_id, "mlflow.experimentKind", "genai_development")
    _, again = connect(tracked_config(sqlite_uri, "kind"))  # an older store is brought in line
    assert again == experiment_id
    tags = MlflowClient(sqlite_uri).get_experiment(experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
