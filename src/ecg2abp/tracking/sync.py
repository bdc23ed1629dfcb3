"""`track`: make the MLflow view match the files, creating or updating every run it needs."""

import json
import logging
import math
import statistics
import time
from collections.abc import Sequence
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ecg2abp.atomic import atomic_path
from ecg2abp.digests import file_sha256
from ecg2abp.errors import InputError
from ecg2abp.evaluation.pooling import ALL_FOLDS as POOLED
from ecg2abp.evaluation.pooling import COLUMNS, main_rows
from ecg2abp.stages import JOB_DIR, NAIVE
from ecg2abp.tracking.live import EPOCH_METRICS
from ecg2abp.tracking.runs import (
    PARENT_TAG,
    VARIANT_TAG,
    child_name,
    find_or_create_run,
    identity,
    log_new_params,
    parent_run,
    variant_fingerprint,
    variant_settings,
)
from ecg2abp.tracking.store import connect, store_errors, unreachable

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

log = logging.getLogger("ecg2abp.tracking")
HASH_TAG = "ecg2abp.sha256."  # + artifact name: what was uploaded, so unchanged files stay put
NOTE_TAG = "mlflow.note.content"  # a run's description, shown as Markdown on its page
NOTE_LIMIT = 8000  # MLflow's longest tag value


def split_values(values: dict[str, Any], prefix: str) -> tuple[dict[str, float], dict[str, str]]:
    """Numbers become metrics `{prefix}_{key}`; grades and yes/no answers become tags."""
    metrics, tags = {}, {}
    for key, value in values.items():
        value = value.item() if hasattr(value, "item") else value  # numpy scalars from Parquet
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if isinstance(value, (bool, str)):
            tags[f"{prefix}_{key}"] = text(value)
        elif isinstance(value, Real):
            metrics[f"{prefix}_{key}"] = float(value)
    return metrics, tags


def text(value: Any) -> str:
    """A tag value: yes/no as `true`/`false`, like the config's YAML."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def level_values(levels: dict[str, dict]) -> tuple[dict[str, float], dict[str, str]]:
    """A metrics.json `levels` mapping as metrics and tags; levels that do not apply left out."""
    metrics, tags = {}, {}
    for level, values in levels.items():
        if values.get("applies") is False:
            continue
        found = split_values(values, level)
        metrics |= found[0]
        tags |= found[1]
    return metrics, tags


def pooled_values(table: pd.DataFrame, variant: str) -> tuple[dict[str, float], dict[str, str]]:
    """The variant's merged rows (fold = -1) of metrics.parquet (with the SDs over seeds), plus
    the mean/SD over fold × seed jobs of point MAE."""
    rows = table[table["variant"] == variant]
    metrics, tags = {}, {}
    for _, row in rows[rows["fold"] == POOLED].iterrows():
        found = split_values({column: row.get(column) for column in COLUMNS}, row["level"])
        metrics |= found[0]
        tags |= found[1]
    folds = rows[(rows["fold"] != POOLED) & (rows["level"] == "point")]["mae"].dropna().tolist()
    if folds:
        metrics["point_mae_fold_mean"] = statistics.fmean(folds)
    if len(folds) >= 2:
        metrics["point_mae_fold_sd"] = statistics.stdev(folds)
    return metrics, tags


def _cells(line: str) -> list[str]:
    return [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]


def variant_note(summary: str, variant: str) -> str:
    """summary.md's table rows of `variant`, then the naive floor's, as the run's description."""
    lines = summary.splitlines()
    tables, block = [], []
    for line in [*lines, ""]:
        if line.lstrip().startswith("|"):
            block.append(line)
            continue
        if len(block) > 2:
            tables.append(block)
        block = []
    kept = []
    for header, rule, *rows in tables:
        mine = [row for name in (variant, NAIVE) for row in rows if _cells(row)[0] == name]
        if mine:
            kept += ["", header, rule, *mine]
    head = f"**{variant}**, all folds merged, beside the floor `{NAIVE}` (from summary.md):"
    text = "\n".join([head, *kept]) + "\n"
    if len(text) > NOTE_LIMIT:
        cut = "\n\n(cut here: the whole table is the summary.md artifact)\n"
        text = text[: NOTE_LIMIT - len(cut)].rsplit("\n", 1)[0] + cut
    return text


def _same(old: float | None, new: float) -> bool:
    return old is not None and (old == new or (math.isnan(old) and math.isnan(new)))


def log_values(client: "MlflowClient", run: "Run", metrics: dict[str, float], tags: dict) -> None:
    """Log the metrics whose latest value differs (at step 0) and set the tags."""
    from mlflow.entities import Metric, RunTag

    stamp = int(time.time() * 1000)
    current = run.data.metrics
    new = [Metric(k, v, stamp, 0) for k, v in metrics.items() if not _same(current.get(k), v)]
    changed = [RunTag(k, v) for k, v in tags.items() if run.data.tags.get(k) != v]
    for first in range(0, max(len(new), len(changed)), 100):  # MLflow: ≤ 100 tags a batch
        client.log_batch(
            run.info.run_id, metrics=new[first : first + 100], tags=changed[first : first + 100]
        )


def log_history(client: "MlflowClient", run_id: str, history: pd.DataFrame) -> None:
    """Per-epoch metrics (step = epoch) the run does not hold yet, e.g. after a store outage."""
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    missing = []
    for key in EPOCH_METRICS:
        held = {m.step: m.value for m in client.get_metric_history(run_id, key)}
        for epoch, value in zip(history["epoch"], history[key], strict=True):
            if not _same(held.get(int(epoch)), float(value)):
                missing.append(Metric(key, float(value), stamp, int(epoch)))
    for first in range(0, len(missing), 500):
        client.log_batch(run_id, metrics=missing[first : first + 500])


def log_files(client: "MlflowClient", run: "Run", files: Sequence[Path]) -> None:
    """Upload each file whose content the run does not hold yet (tracked by a hash tag)."""
    for path in files:
        digest = file_sha256(path)
        if run.data.tags.get(HASH_TAG + path.name) != digest:
            client.log_artifact(run.info.run_id, str(path))
            client.set_tag(run.info.run_id, HASH_TAG + path.name, digest)


def _finish(client: "MlflowClient", run: "Run") -> None:
    if run.info.status != "FINISHED":
        client.set_terminated(run.info.run_id, "FINISHED")


def _read_model(path: Path) -> dict:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # missing, truncated, foreign: one line naming the file
        raise InputError(f"{path}: cannot read model file ({str(error)[:160]})") from None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: cannot read metrics ({error})") from None


def provenance(meta: dict) -> dict[str, str]:
    """The model file's provenance tags."""
    keys = ("model", "protocol", "leaky", "git_commit", "data_fingerprint")
    return {
        key: str(meta.get(key)).lower() if key == "leaky" else str(meta.get(key)) for key in keys
    }


def sync_child(
    client: "MlflowClient",
    experiment_id: str,
    config: dict,
    parent: "Run",
    model_dir: Path,
    eval_dir: Path,
) -> str:
    """One variant × fold × seed: tags, params, epochs, test metrics and files; its run id."""
    meta = _read_model(model_dir / "model.pt")
    metrics = _read_json(eval_dir / "metrics.json")
    variant, fold, seed = meta["variant"], int(meta["fold"]), int(meta["seed"])
    tags = identity(config["experiment"], variant, fold, meta["config_fingerprint"], seed)
    shared = {VARIANT_TAG: variant_fingerprint(config, variant)}
    run = find_or_create_run(client, experiment_id, tags, child_name(variant, fold, seed), shared)
    params, fingerprint = variant_settings(config, variant, seed)
    if fingerprint == meta["config_fingerprint"]:
        log_new_params(client, run, params)
    else:
        log.warning("%s: %s trained under other settings than the config's", variant, model_dir)
    values, grades = level_values(metrics["levels"])
    extra = {**provenance(meta), PARENT_TAG: parent.info.run_id, "kind": meta["kind"]}
    extra["evaluate_stride"] = str(metrics["stride"])
    log_values(client, run, values, {**grades, **extra})
    history = pd.read_parquet(model_dir / "history.parquet")
    log_history(client, run.info.run_id, history)
    files = [eval_dir / "metrics.json", model_dir / "history.parquet", model_dir / "model.pt"]
    if meta.get("artefact"):
        files.append(model_dir / meta["artefact"])
    log_files(client, run, files)
    _finish(client, run)
    return run.info.run_id


def sync_view(
    config: dict,
    results: Path,
    variants: Sequence[str],
    folds: Sequence[int],
    seeds: Sequence[int],
    marker: Path,
) -> dict:
    """Create or update every parent and child run (one per fold × seed) from the files under
    `results`."""
    results = Path(results)
    client, experiment_id = connect(config)
    table = main_rows(pd.read_parquet(results / "metrics.parquet"))  # the runs' own test side
    note: dict[str, Any] = {"tracking_uri": client.tracking_uri, "experiment_id": experiment_id}
    note |= {"parents": {}, "children": {}}
    try:
        for variant in dict.fromkeys([*variants, NAIVE]):
            jobs = {
                f"{k}/{s}": JOB_DIR.format(variant=variant, fold=k, seed=s)
                for k in folds
                for s in seeds
            }
            dirs = {job: (results / "models" / d, results / "eval" / d) for job, d in jobs.items()}
            metas = [_read_model(model_dir / "model.pt") for model_dir, _ in dirs.values()]
            parent = parent_run(client, experiment_id, config, variant)
            children = {
                job: sync_child(client, experiment_id, config, parent, *pair)
                for job, pair in dirs.items()
            }
            values, grades = pooled_values(table, variant)
            shared = {
                key: value
                for key, value in provenance(metas[0]).items()
                if all(provenance(meta)[key] == value for meta in metas)
            }
            note_text = variant_note((results / "summary.md").read_text(), variant)
            tags = {**grades, **shared, "kind": metas[0]["kind"], NOTE_TAG: note_text}
            log_values(client, parent, values, tags)
            log_files(client, parent, [results / "metrics.parquet", results / "summary.md"])
            _finish(client, parent)
            note["parents"][variant] = parent.info.run_id
            note["children"][variant] = children
    except store_errors() as error:  # the store went away between two requests
        raise unreachable(client.tracking_uri, error) from None
    log.info(
        "mlflow: %d parent and %d child runs in sync at %s",
        len(note["parents"]),
        sum(len(c) for c in note["children"].values()),
        client.tracking_uri,
    )
    with atomic_path(Path(marker)) as tmp:
        tmp.write_text(json.dumps(note, indent=1) + "\n")
    return note
