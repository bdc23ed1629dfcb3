"""End to end: the MLflow view of real pipeline runs, on a real server and on the default SQLite."""

import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from tracking_factory import mlflow_server
from workflow_runner import snakemake

# One part, two folds, a tiny network (learning curves) and the naive floor; one thread per
# job, so that two training jobs run at once on --cores 2.
TRACKED = """
experiment: tracked
synthetic: {parts: 1, records_per_part: 6, min_seconds: 10.0, max_seconds: 16.0, seed: 1}
split: {folds: 2, block_size: 1}
variants: {tiny: {model: resnet1d, width: 0.125}}
run_variants: [tiny]
threads: 1
train: {epochs: 2, max_windows_per_epoch: 256, batch_size: 64, max_val_windows: 128, device: cpu}
"""
VARIANTS = ("tiny", "naive")
FOLDS = (0, 1)


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory) -> Path:
    """The default target on TRACKED with the default store (SQLite under results/)."""
    work = tmp_path_factory.mktemp("tracked_run")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = snakemake(work, config=TRACKED, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return work


def pointed_at(uri: str) -> dict:
    return {**os.environ, "MLFLOW_TRACKING_URI": uri}


def view(uri: str, experiment: str) -> tuple:
    """The client, and the experiment's parents by variant and children by (variant, fold)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    parents = [r for r in runs if r.data.tags["fold"] == "all"]
    children = [r for r in runs if r.data.tags["fold"] != "all"]
    by_variant = {r.data.tags["variant"]: r for r in parents}
    by_fold = {(r.data.tags["variant"], int(r.data.tags["fold"])): r for r in children}
    assert len(by_variant) == len(parents) and len(by_fold) == len(children), "duplicate runs"
    return client, by_variant, by_fold


def numbers(levels: dict) -> dict[str, float]:
    return {
        f"{level}_{key}": float(value)
        for level, values in levels.items()
        for key, value in values.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    }


def check_view(uri: str, results: Path, tmp_path: Path) -> int:
    """Every child and parent matches the files; returns the number of runs."""
    client, parents, children = view(uri, "tracked")
    assert set(parents) == set(VARIANTS)
    assert set(children) == {(v, k) for v in VARIANTS for k in FOLDS}
    for (variant, fold), run in children.items():
        model_dir = results / "models" / variant / f"fold_{fold}" / "seed_0"
        metrics = json.loads(
            (results / "eval" / variant / f"fold_{fold}" / "seed_0" / "metrics.json").read_text()
        )
        assert run.data.tags["mlflow.parentRunId"] == parents[variant].info.run_id
        assert {k: run.data.metrics[k] for k in numbers(metrics["levels"])} == numbers(
            metrics["levels"]
        )
        assert run.data.tags["point_bhs_grade"] == metrics["levels"]["point"]["bhs_grade"]
        history = pd.read_parquet(model_dir / "history.parquet")
        logged = client.get_metric_history(run.info.run_id, "val_loss")
        assert [(m.step, m.value) for m in logged] == list(
            zip(history["epoch"], history["val_loss"], strict=True)
        )
        assert len(history) == {"tiny": 2, "naive": 0}[variant]
        assert run.data.params["split.folds"] == "2"
    table = pd.read_parquet(results / "metrics.parquet")
    for variant, run in parents.items():
        for _, row in table[(table["variant"] == variant) & (table["fold"] == -1)].iterrows():
            assert run.data.metrics[f"{row['level']}_mae"] == row["mae"]
            assert run.data.metrics[f"{row['level']}_n"] == row["n"]
        fold_mae = [children[(variant, k)].data.metrics["point_mae"] for k in FOLDS]
        assert run.data.metrics["point_mae_fold_mean"] == pytest.approx(sum(fold_mae) / 2)
    run_id = children[("tiny", 0)].info.run_id
    got = Path(client.download_artifacts(run_id, "model.pt", str(tmp_path)))
    model = results / "models" / "tiny" / "fold_0" / "seed_0" / "model.pt"
    assert got.read_bytes() == model.read_bytes()
    got = client.download_artifacts(parents["naive"].info.run_id, "summary.md", str(tmp_path))
    assert Path(got).read_text() == (results / "summary.md").read_text()
    return len(parents) + len(children)


@pytest.mark.slow
@pytest.mark.extended
def test_view_on_a_server_survives_rerun_and_outage(tracked_run, tmp_path):
    """tracked_run's files, copied, against a real server: track, track again, outage, refill."""
    work = tmp_path / "work"
    shutil.copytree(tracked_run, work, symlinks=True)
    results, logs = work / "results" / "tracked", work / "logs" / "tracked"
    naive = [f"results/tracked/models/naive/fold_{k}/seed_0/model.pt" for k in FOLDS]  # rules
    with mlflow_server(tmp_path / "server") as uri:
        # Experiment and parents made on the server, one job retrained (live), view synced.
        run = snakemake(work, "--forcerun", naive[0], config=TRACKED, env=pointed_at(uri))
        assert run.returncode == 0, run.stderr[-3000:]
        n_runs = check_view(uri, results, tmp_path / "a")
        _, _, children = view(uri, "tracked")
        live = (logs / "train" / "naive" / "fold_0" / "seed_0.log").read_text()
        assert f"logging live to run {children[('naive', 0)].info.run_id}" in live
        assert " WARNING " not in live

        again = snakemake(work, "--forcerun", "track", config=TRACKED, env=pointed_at(uri))
        assert again.returncode == 0, again.stderr[-3000:]
        assert check_view(uri, results, tmp_path / "b") == n_runs
    # The server is down: two jobs rerun and the pipeline still gets to its results.
    tracked_at = (results / "mlflow" / "track.json").stat().st_mtime
    down = snakemake(work, "--forcerun", *naive, config=TRACKED, env=pointed_at(uri))
    for path in naive:
        log = (logs / "train" / "naive" / Path(path).parent.parent.name / "seed_0.log").read_text()
        warnings = [line for line in log.splitlines() if " WARNING " in line]
        assert len(warnings) == 1 and uri in warnings[0], log
    assert (results / "metrics.parquet").stat().st_mtime > tracked_at
    assert down.returncode != 0  # only `track` failed, naming the store it could not reach
    track_log = (logs / "mlflow" / "track.log").read_text().strip().splitlines()
    assert track_log[-1].startswith(f"ecg2abp: error: mlflow: cannot use the tracking store {uri}")
    # A restarted server with an empty store: the next run (only `track` is left) fills it in.
    with mlflow_server(tmp_path / "restarted") as uri:
        filled = snakemake(work, config=TRACKED, env=pointed_at(uri))
        assert filled.returncode == 0, filled.stderr[-3000:]
        assert check_view(uri, results, tmp_path / "c") == n_runs


@pytest.mark.slow
@pytest.mark.extended
def test_default_sqlite_store_with_two_training_jobs_at_once(tracked_run, tmp_path):
    uri = f"sqlite:///{tracked_run / 'results' / 'mlflow.db'}"
    check_view(uri, tracked_run / "results" / "tracked", tmp_path)
    logs = [*tracked_run.glob("logs/**/*.log"), *tracked_run.glob(".snakemake/log/*.log")]
    assert logs and not [p for p in logs if "database is locked" in p.read_text()]
    (main_log,) = tracked_run.glob(".snakemake/log/*.snakemake.log")
    assert most_at_once(main_log.read_text(), "train") == 2


def most_at_once(snakemake_log: str, rule: str) -> int:
    """The most jobs of `rule` running at the same time, from Snakemake's log."""
    running: set[str] = set()
    most, starting = 0, False
    for line in snakemake_log.splitlines():
        starting = starting or bool(re.match(rf"(local)?rule {rule}:$", line))
        started = re.match(r"\s+jobid: (\d+)$", line)
        if starting and started:
            running.add(started[1])
            most, starting = max(most, len(running)), False
        finished = re.match(rf"Finished jobid: (\d+) \(Rule: {rule}\)", line)
        if finished:
            running.discard(finished[1])
    return most


def test_with_mlflow_off_no_job_touches_it(tmp_path):
    result = snakemake(tmp_path, "-n", config=TRACKED + "mlflow: {enabled: false}\n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rule synth" in result.stdout
    assert "mlflow_store" not in result.stdout and "rule track" not in result.stdout
