"""Next steps printed after a run: only what exists is offered, commands ready to paste."""

import json
import shlex

from ecg2abp.report.next_steps import experiment_address, next_steps, profile_of


def test_nothing_is_offered_before_summary_md_exists(tmp_path):
    assert next_steps(tmp_path / "results" / "demo", ["config/config.yaml"]) == ""


def test_summary_and_report_command_without_mlflow(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results" / "demo"
    results.mkdir(parents=True)
    (results / "summary.md").write_text("| variant |\n")
    text = next_steps(results, [tmp_path / "config" / "config.yaml", "config/demo.yaml"], "p/l")
    assert "cat results/demo/summary.md" in text
    report = next(line for line in text.splitlines() if "--report" in line).split(":", 1)[1]
    assert shlex.split(report) == [
        "snakemake",  # no .venv here: as found on PATH
        "--profile",
        "p/l",
        "--configfile",
        "config/config.yaml",
        "config/demo.yaml",
        "--report",
        "results/demo/report.html",
    ]
    assert "mlflow" not in text.lower()


def test_mlflow_command_and_the_address_of_the_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    for name in ("snakemake", "mlflow"):
        (tmp_path / ".venv" / "bin" / name).touch()
    results = tmp_path / "results" / "demo"
    (results / "mlflow").mkdir(parents=True)
    (results / "summary.md").write_text("| variant |\n")
    note = {"tracking_uri": "sqlite:///results/mlflow.db", "experiment_id": "7"}
    (results / "mlflow" / "track.json").write_text(json.dumps(note))
    text = next_steps(results, [])
    assert ".venv/bin/snakemake --report results/demo/report.html" in text
    assert (
        ".venv/bin/mlflow ui --backend-store-uri sqlite:///results/mlflow.db "
        "--host 127.0.0.1 --port 5000"
    ) in text
    assert experiment_address("7") in text and "/#/experiments/7?" in experiment_address("7")


def test_the_profile_is_read_from_snakemake_s_command_line(monkeypatch):
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    assert profile_of(["snakemake", "--profile", "profiles/local", "-n"]) == "profiles/local"
    assert profile_of(["snakemake", "--profile=profiles/gpu"]) == "profiles/gpu"
    assert profile_of(["snakemake"]) is None
