"""Runs found by their tags, so that creating them again never adds a duplicate; runs of
superseded settings go to MLflow's trash."""

import json
import logging
from typing import TYPE_CHECKING, Any

from ecg2abp.errors import InputError
from ecg2abp.stages import (
    NAIVE,
    fingerprint,
    seedless_train_settings,
    seeds,
    swept_values,
    train_settings,
    variant_spec,
)
from ecg2abp.tracking.store import (
    StoreUnreachable,
    connect,
    store_errors,
    unreachable,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

log = logging.getLogger("ecg2abp.tracking")
ALL_FOLDS = "all"  # the `fold` and `seed` tags of a variant's parent run
PARENT_TAG = "mlflow.parentRunId"  # what the MLflow UI nests children under
VARIANT_TAG = "variant_fingerprint"  # on a variant's every run: its settings over all seeds


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested settings as dotted keys → text values (`train.lr` → "0.001")."""
    if isinstance(value, dict) and value:
        flat: dict[str, str] = {}
        for key, sub in value.items():
            flat |= flatten(sub, f"{prefix}{key}.")
        return flat
    return {prefix.rstrip("."): value if isinstance(value, str) else json.dumps(value)}


def variant_settings(
    config: dict, variant: str, seed: int | None = None
) -> tuple[dict[str, str], str]:
    """Run params and config fingerprint of one seed's training (a child run) or, without a
    seed, of the variant over all its seeds (its parent run); a swept variant's grid values
    also as `sweep.*` params, the same names for every point (MLflow's compare views)."""
    if variant_spec(config, variant) is None:
        raise InputError(f"variant {variant!r}: not declared under `variants` in the config")
    if seed is None:
        settings = seedless_train_settings(config, variant)
        settings["train"]["seeds"] = seeds(config)
    else:
        settings = train_settings(config, variant, seed)
    found = fingerprint(settings) if seed is not None else variant_fingerprint(config, variant)
    named = {"variants": {variant: settings.pop("variant")}, **settings}
    swept = swept_values(config, variant)
    return flatten(named | ({"sweep": swept} if swept else {})), found


def variant_fingerprint(config: dict, variant: str) -> str:
    """What a variant's parent run is found by: its settings over every seed."""
    return fingerprint(seedless_train_settings(config, variant))


def identity(
    experiment: str, variant: str, fold: int | str, fingerprint: str, seed: int | str = ALL_FOLDS
) -> dict[str, str]:
    """The tags that name a run: a variant's fold × seed (or `all` for its parent) under one
    config."""
    return {
        "experiment": experiment,
        "variant": variant,
        "fold": str(fold),
        "seed": str(seed),
        "config_fingerprint": fingerprint,
    }


def child_name(variant: str, fold: int, seed: int) -> str:
    return f"{variant} fold {fold} seed {seed}"


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


def retire_superseded(client: "MlflowClient", experiment_id: str, config: dict, variant: str):
    """Delete (to MLflow's trash) the variant's runs made under other settings: their files are
    overwritten by this config's jobs, and a run's params can never change. Returns how many."""
    current = variant_fingerprint(config, variant)
    query = (
        f"tags.experiment = '{config['experiment']}' and tags.variant = '{variant}' "
        f"and tags.{VARIANT_TAG} != '{current}'"
    )
    old = client.search_runs([experiment_id], query, max_results=10000)
    for run in old:
        client.delete_run(run.info.run_id)
    if old:
        log.info("mlflow: %s: %d runs of superseded settings moved to the trash", variant, len(old))
    return len(old)


def parent_run(client: "MlflowClient", experiment_id: str, config: dict, variant: str) -> "Run":
    """The variant's parent run under the config's settings, created once with its params."""
    params, current = variant_settings(config, variant)
    tags = identity(config["experiment"], variant, ALL_FOLDS, current)
    run = find_or_create_run(client, experiment_id, tags, variant, {VARIANT_TAG: current})
    log_new_params(client, run, params)
    return run


def prepare_view(config: dict, variants: list[str]) -> dict[str, str] | None:
    """Create the store, the experiment and every variant's parent run (the naive floor too),
    after moving the runs of superseded settings to the trash.

    Run once, before any job (the workflow's onstart); returns variant → parent run id. An
    unreachable store is one warning and None: `snakemake track` creates them later."""
    try:
        client, experiment_id = connect(config)
        parents = {}
        for variant in dict.fromkeys([*variants, NAIVE]):
            try:
                retire_superseded(client, experiment_id, config, variant)
                run = parent_run(client, experiment_id, config, variant)
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
