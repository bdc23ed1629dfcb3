"""End to end: the MLflow view of real pipeline runs, on a real server and on the default SQLite."""

import itertools
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest
from tracking_factory import mlflow_server
from workflow_runner import snakemake

# One part, two folds, one tiny network (per-epoch curves) and the naive floor.
TRACKED = """
experiment: tracked
synthetic: {parts: 1, records_per_part: 4, min_seconds: 10.0, max_seconds: 16.0, seed: 1}
split: {folds: 2, block_size: 1}
variants: {tiny: {model: resnet1d, width: 0.125}}
run_variants: [tiny]
threads: 1
train: {epochs: 2, max_windows_per_epoch: 256, batch_size: 64, max_val_windows: 128, device: cpu}
"""
VARIANTS = ("tiny", "naive")
FOLDS = (0, 1)


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
        model_dir = results / "models" / variant / f"fold_{fold}"
        metrics = json.loads(
            (results / "eval" / variant / f"fold_{fold}" / "metrics.json").read_text()
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
        assert len(history) == (2 if variant == "tiny" else 0)
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
    assert got.read_bytes() == (results / "models" / "tiny" / "fold_0" / "model.pt").read_bytes()
    got = client.download_artifacts(parents["naive"].info.run_id, "summary.md", str(tmp_path))
    assert Path(got).read_text() == (results / "summary.md").read_text()
    return len(parents) + len(children)


@pytest.mark.slow
def test_view_on_a_server_survives_rerun_and_outage(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    results = work / "results" / "tracked"
    logs = work / "logs" / "tracked"
    with mlflow_server(tmp_path / "server") as uri:
        run = snakemake(work, config=TRACKED, env=pointed_at(uri))
        assert run.returncode == 0, run.stderr[-3000:]
        n_runs = check_view(uri, results, tmp_path / "a")
        _, _, children = view(uri, "tracked")
        live = (logs / "train" / "tiny" / "fold_0.log").read_text()  # epochs logged as they came
        assert f"logging live to run {children[('tiny', 0)].info.run_id}" in live

        again = snakemake(work, "track", "--forcerun", "track", config=TRACKED, env=pointed_at(uri))
        assert again.returncode == 0, again.stderr[-3000:]
        assert check_view(uri, results, tmp_path / "b") == n_runs
    # The server is down: two jobs rerun and the pipeline still gets to its results.
    retrain = [str(results / "models" / v / "fold_0" / "model.pt") for v in VARIANTS]
    down = snakemake(work, "--forcerun", *retrain, config=TRACKED, env=pointed_at(uri))
    for variant in VARIANTS:
        warnings = [
            line
            for line in (logs / "train" / variant / "fold_0.log").read_text().splitlines()
            if " WARNING " in line
        ]
        assert len(warnings) == 1 and uri in warnings[0], warnings
    assert (results / "metrics.parquet").stat().st_mtime > (
        results / "mlflow" / "track.json"
    ).stat().st_mtime
    assert down.returncode != 0  # only `track`, which names the store it could not reach
    track_log = (logs / "mlflow" / "track.log").read_text().strip().splitlines()
    assert track_log[-1].startswith(f"ecg2abp: error: mlflow: cannot use the tracking store {uri}")
    # A restarted server with an empty store: `track` fills the whole view in.
    with mlflow_server(tmp_path / "restarted") as uri:
        filled = snakemake(work, "track", config=TRACKED, env=pointed_at(uri))
        assert filled.returncode == 0, filled.stderr[-3000:]
        assert check_view(uri, results, tmp_path / "c") == n_runs


@pytest.mark.slow
def test_default_sqlite_store_with_two_training_jobs_at_once(small_run):
    """small_run: the default config (SQLite under results/), --cores 2."""
    uri = f"sqlite:///{small_run / 'results' / 'mlflow.db'}"
    _, parents, children = view(uri, "e2e")
    variants = ("msca_cssc_unet", "ridge", "naive")
    assert set(parents) == set(variants)
    assert set(children) == {(v, k) for v in variants for k in (0, 1)}
    logs = [*small_run.glob("logs/**/*.log"), *small_run.glob(".snakemake/log/*.log")]
    assert logs and not [p for p in logs if "database is locked" in p.read_text()]
    spans = []
    for path in small_run.glob("logs/e2e/train/*/*.log"):
        stamps = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})", path.read_text(), re.M)
        spans.append((stamps[0], stamps[-1]))
    spans.sort()
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)), spans
