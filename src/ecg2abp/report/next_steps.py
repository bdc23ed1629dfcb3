"""What to open after a successful run: summary.md, the report command and the MLflow view."""

import json
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

PORT = 5000


def _shown(path: Path | str) -> str:
    """A path as the user can paste it from the working directory (relative where it can be)."""
    path = Path(path)
    if path.is_absolute():
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)
    return str(path)


def _program(name: str) -> str:
    """`.venv/bin/NAME` when run from the repository's venv, else NAME as found on PATH."""
    venv = Path(".venv/bin") / name
    return str(venv) if venv.exists() else name


def experiment_address(experiment_id: str, port: int = PORT) -> str:
    """The MLflow page that lists an experiment's runs (machine-learning view, not GenAI)."""
    return f"http://127.0.0.1:{port}/#/experiments/{experiment_id}?workflowType=machine_learning"


def next_steps(results: Path, configfiles: Sequence[Path | str], profile: str | None = None) -> str:
    """The lines to print after a run: only what exists under `results` is offered."""
    results = Path(results)
    summary = results / "summary.md"
    if not summary.exists():
        return ""
    options = ["--profile", profile] if profile else []
    if configfiles:
        options += ["--configfile", *(_shown(c) for c in configfiles)]
    report = [_program("snakemake"), *options, "--report", _shown(results / "report.html")]
    lines = [
        "Next steps:",
        f"  the summary table:  cat {shlex.quote(_shown(summary))}",
        f"  the report:         {shlex.join(report)}",
    ]
    tracked = results / "mlflow" / "track.json"
    if tracked.exists():
        note = json.loads(tracked.read_text())
        uri = note["tracking_uri"]
        ui = [_program("mlflow"), "ui", "--backend-store-uri", uri]
        ui += ["--host", "127.0.0.1", "--port", str(PORT)]
        lines += [
            f"  MLflow:             {shlex.join(ui)}",
            f"                      then open {experiment_address(note['experiment_id'])}",
        ]
    return "\n".join(lines) + "\n"


def profile_of(argv: Sequence[str]) -> str | None:
    """The --profile named on the command line (Snakemake's own), if any."""
    for index, arg in enumerate(argv):
        if arg == "--profile" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--profile="):
            return arg.split("=", 1)[1]
    return os.environ.get("SNAKEMAKE_PROFILE")
