"""Runs found by their tags, so that creating them again never adds a duplicate."""

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecg2abp.errors import InputError
from ecg2abp.tracking.store import (
    StoreUnreachable,
    connect,
    store_errors,
    unreachable,
)
from ecg2abp.training.jobs import NAIVE, RunContext, variant_spec

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

log = logging.getLogger("ecg2abp.tracking")
ALL_FOLDS = "all"  # the `fold` tag of a variant's parent run
PARENT_TAG = "mlflow.parentRunId"  # what the MLflow UI nests children under


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested settings as dotted keys → text values (`train.lr` → "0.001")."""
    if isinstance(value, dict) and value:
        flat: dict[str, str] = {}
        for key, sub in value.items():
            flat |= flatten(sub, f"{prefix}{key}.")
        return flat
    return {prefix.rstrip("."): value if isinstance(value, str) else json.dumps(value)}


def variant_settings(config: dict, variant: str) -> tuple[dict[str, str], str]:
    """The variant's decisive settings as run params, and their config fingerprint."""
    spec = variant_spec(config, variant)
    if spec is None:
        raise InputError(f"variant {variant!r}: not declared under `variants` in the config")
    context = RunContext(variant, spec, config, Path(), Path())
    settings = context.decisive_settings()
    named = {"variants": {variant: settings.pop("variant")}, **settings}
    return flatten(named), context.config_fingerprint()


def identity(experiment: str, variant: str, fold: int | str, fingerprint: str) -> dict[str, str]:
    """The tags that name a run: a variant's fold (or `all` for its parent) under one config."""
    return {
        "experiment": experiment,
        "variant": variant,
        "fold": str(fold),
        "config_fingerprint": fingerprint,
    }


def find_run(client: "MlflowClient", experiment_id: str, tags: dict[str, str]) -> "Run | None":
    """The oldest active run carrying all of `tags`, or None."""
    query = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
    found = client.search_runs(
        [experiment_id], query, max_results=1, order_by=["attributes.start_time ASC"]
    )
    return found[0] if found else None


def find_or_create_run(
    client: "MlflowClient",
    experiment_id: str,
    tags: dict[str, str],
    name: str,
    extra_tags: dict[str, str] | None = None,
) -> "Run":
    """The run named by `tags`, created (with `extra_tags` too) when there is none yet."""
    run = find_run(client, experiment_id, tags)
    if run is None:
        run = client.create_run(experiment_id, tags={**tags, **(extra_tags or {})}, run_name=name)
    return run


def log_new_params(client: "MlflowClient", run: "Run", params: dict[str, str]) -> None:
    """Log the params the run lacks (a run's params never change: same fingerprint, same values)."""
    from mlflow.entities import Param

    missing = [Param(k, v) for k, v in params.items() if k not in run.data.params]
    for first in range(0, len(missing), 100):  # MLflow's limit per batch
        client.log_batch(run.info.run_id, params=missing[first : first + 100])


def parent_run(
    client: "MlflowClient", experiment_id: str, config: dict, variant: str, fingerprint: str
) -> "Run":
    """The variant's parent run, created once with its params."""
    params, current = variant_settings(config, variant)
    tags = identity(config["experiment"], variant, ALL_FOLDS, fingerprint)
    run = find_or_create_run(client, experiment_id, tags, variant)
    if fingerprint == current:
        log_new_params(client, run, params)
    else:
        log.warning(
            "%s: config changed since training; params of run %s left as they are",
            variant,
            run.info.run_id,
        )
    return run


def prepare_view(config: dict, variants: list[str]) -> dict[str, str] | None:
    """Create the store, the experiment and every variant's parent run (the naive floor too).

    Run once, before any job (the workflow's onstart); returns variant → parent run id. An
    unreachable store is one warning and None: `snakemake track` creates them later."""
    try:
        client, experiment_id = connect(config)
        parents = {}
        for variant in dict.fromkeys([*variants, NAIVE]):
            _, fingerprint = variant_settings(config, variant)
            try:
                run = parent_run(client, experiment_id, config, variant, fingerprint)
            except store_errors() as error:  # the store went away between two requests
                raise unreachable(client.tracking_uri, error) from None
            parents[variant] = run.info.run_id
    except StoreUnreachable as error:
        log.warning("%s; carrying on without it", error)
        return None
    log.info(
        "mlflow: experiment %s, %d parent runs, in %s",
        config["experiment"],
        len(parents),
        client.tracking_uri,
    )
    return parents
