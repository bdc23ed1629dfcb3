"""A SQLite tracking store shared by the tracking tests (each test uses its own experiment)."""

import pytest

CLIENT_VARIABLES = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
)


@pytest.fixture(autouse=True)
def clean_client_environment(monkeypatch):
    """No store from the caller's shell; settings a test makes are undone after it."""
    for variable in CLIENT_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture(scope="session")
def sqlite_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
