"""Tracking tests: a config logging to a given store, and a real MLflow server on 127.0.0.1
(its own store, stopped by its PID)."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ecg2abp.config import validate_config


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(uri: str, process: subprocess.Popen, log: Path, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"mlflow server not healthy after {limit_s} s: {log.read_text()[-2000:]}")


@contextmanager
def mlflow_server(folder: Path, port: int | None = None) -> Iterator[str]:
    """`mlflow server` with a SQLite store and artifacts under `folder`; yields its URI."""
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"http://127.0.0.1:{port or free_port()}"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = folder / "server.log"
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--workers", "1"),
        *("--host", "127.0.0.1", "--port", uri.rsplit(":", 1)[1]),
        *("--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"),
        *("--artifacts-destination", str(folder / "artifacts")),
    ]
    with log.open("w") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        _wait_healthy(uri, process, log, limit_s=180)
        yield uri
    finally:  # the server and its workers: the process group it leads, by its PID
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def tracked_config(uri: str, experiment: str, **overrides) -> dict:
    """A validated config logging to `uri` under `experiment`."""
    base = {
        "experiment": experiment,
        "mlflow": {"tracking_uri": uri},
        "variants": {"tiny": {"model": "resnet1d", "width": 0.125}},
    }
    return validate_config({**base, **overrides})
