"""Where the MLflow store is, how long a client may wait for it, and the experiment in it."""

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ecg2abp.errors import InputError

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger("ecg2abp.tracking")
URI_VARIABLE = "MLFLOW_TRACKING_URI"
SQLITE = "sqlite:///"
# MLflow 3's UI reads this experiment tag (when its workflow switch is off) to open an
# experiment on its training runs rather than on GenAI pages; see docs/mlflow.md.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


class StoreUnreachable(InputError):
    """The tracking store could not be reached or opened; the message names its URI."""


def tracking_uri(config: dict) -> str:
    """MLFLOW_TRACKING_URI when set (a team's server for every experiment), else the config's."""
    return os.environ.get(URI_VARIABLE) or config["mlflow"]["tracking_uri"]


def bound_client_requests(config: dict) -> dict[str, str]:
    """Bound MLflow's HTTP retries and timeouts (defaults: 7 retries, 120 s) via its variables.

    Values already in the environment win; returns the settings in force. A refused
    connection then fails at once, a silent host after attempts × timeout seconds."""
    settings = config["mlflow"]
    wanted = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": settings["request_attempts"] - 1,
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": 1,
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": 0.0,
        "MLFLOW_HTTP_REQUEST_TIMEOUT": settings["request_timeout_s"],
    }
    # Our own warning names the store; urllib3's line per retry would only repeat it.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    return {name: os.environ.setdefault(name, str(value)) for name, value in wanted.items()}


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (relative to the working directory), else None."""
    return Path(uri[len(SQLITE) :]) if uri.startswith(SQLITE) else None


def artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts beside a SQLite store (its folder's mlartifacts/); a server decides its own."""
    database = sqlite_path(uri)
    if database is None:
        return None
    return (database.parent / "mlartifacts" / experiment).resolve().as_uri()


def unreachable(uri: str, error: BaseException) -> StoreUnreachable:
    """One line naming the URI and the first line of what went wrong."""
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if len(reason) > 200:  # HTTP errors: the cause (e.g. "Connection refused") comes last
        reason = f"{reason[:80]} … {reason[-110:]}"
    return StoreUnreachable(f"mlflow: cannot use the tracking store {uri} ({reason})")


def store_errors() -> tuple[type[BaseException], ...]:
    """What a store that stops answering raises: MLflow's errors, HTTP and database failures."""
    import requests
    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException

    return (MlflowException, requests.RequestException, sqlalchemy.exc.SQLAlchemyError, OSError)


def connect(config: dict, *, create: bool = True) -> tuple["MlflowClient", str]:
    """A client of the store and the id of the experiment named after `experiment`.

    With `create`, makes the store (SQLite: its file) and the experiment when missing; without,
    a missing one is refused (parallel jobs must not race to create them). Any failure to
    reach or open the store is a StoreUnreachable naming the URI."""
    bound_client_requests(config)
    uri = tracking_uri(config)
    database = sqlite_path(uri)
    name = config["experiment"]
    if database is not None and not create and not database.exists():
        raise StoreUnreachable(f"mlflow: no tracking store at {uri} yet")
    try:
        from mlflow import MlflowClient

        if database is not None:
            database.parent.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(name)
    except Exception as error:  # connection refused, timeouts, bad URI, unwritable file, …
        raise unreachable(uri, error) from None
    if found is None and not create:
        raise StoreUnreachable(f"mlflow: no experiment {name} in the tracking store {uri} yet")
    try:
        if found is None:
            return client, client.create_experiment(
                name, artifact_location(uri, name), tags=EXPERIMENT_KIND
            )
        if found.lifecycle_stage == "deleted":
            log.info("mlflow: experiment %s was deleted in %s; restoring it", name, uri)
            client.restore_experiment(found.experiment_id)
        for key, value in EXPERIMENT_KIND.items():
            if create and found.tags.get(key) != value:  # made by an older version
                client.set_experiment_tag(found.experiment_id, key, value)
    except Exception as error:
        raise unreachable(uri, error) from None
    return client, found.experiment_id
