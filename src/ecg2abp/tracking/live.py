"""Training jobs log their epochs to their child run as they go, when the store answers."""

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ecg2abp.stages import seeds
from ecg2abp.tracking.runs import (
    ALL_FOLDS,
    PARENT_TAG,
    VARIANT_TAG,
    child_name,
    find_or_create_run,
    find_run,
    identity,
    log_new_params,
    variant_fingerprint,
    variant_settings,
)
from ecg2abp.tracking.store import StoreUnreachable, connect, unreachable
from ecg2abp.training.jobs import train_variant

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger("ecg2abp.tracking")
EPOCH_METRICS = ("train_loss", "val_loss", "lr", "windows_per_s", "seconds")
LATER = "training goes on without live logging; `snakemake track` fills the view in later"


class LiveRun:
    """One child run (variant × fold × seed); after the first failure it stays silent."""

    def __init__(self, client: "MlflowClient", run_id: str, uri: str) -> None:
        self.client, self.run_id, self.uri = client, run_id, uri

    @classmethod
    def open(cls, config: dict, variant: str, fold: int, seed: int) -> "LiveRun | None":
        """The job's child run under its parent; None, after one warning, without a store.

        Finds the experiment and the parent, never creates them: the workflow did, once."""
        try:
            client, experiment_id = connect(config, create=False)
            params, fingerprint = variant_settings(config, variant, seed)
            shared = variant_fingerprint(config, variant)
            try:
                parent = find_run(
                    client,
                    experiment_id,
                    identity(config["experiment"], variant, ALL_FOLDS, shared),
                )
                extra = {"model": params[f"variants.{variant}.model"], VARIANT_TAG: shared}
                if parent is not None:  # else `track` nests it: one process creates parents
                    extra[PARENT_TAG] = parent.info.run_id
                tags = identity(config["experiment"], variant, fold, fingerprint, seed)
                run = find_or_create_run(
                    client, experiment_id, tags, child_name(variant, fold, seed), extra
                )
                log_new_params(client, run, params)
                client.update_run(run.info.run_id, status="RUNNING")
            except Exception as error:
                raise unreachable(client.tracking_uri, error) from None
        except StoreUnreachable as error:
            log.warning("%s; %s", error, LATER)
            return None
        log.info("mlflow: logging live to run %s in %s", run.info.run_id, client.tracking_uri)
        return cls(client, run.info.run_id, client.tracking_uri)

    def log_epoch(self, row: dict) -> None:
        """One history row as metrics at step = epoch."""
        if self.client is None:
            return
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(k, float(row[k]), stamp, int(row["epoch"])) for k in EPOCH_METRICS]
        self._call(self.client.log_batch, self.run_id, metrics=metrics)

    def finish(self, status: str) -> None:
        if self.client is not None:
            self._call(self.client.set_terminated, self.run_id, status)

    def _call(self, method, *args, **kwargs) -> None:
        try:
            method(*args, **kwargs)
        except Exception as error:  # the store went away mid-run: the files stay the record
            log.warning("%s; %s", unreachable(self.uri, error), LATER)
            self.client = None


def train_logged(
    variant: str,
    config: dict,
    split_path: Path,
    shard_paths: Sequence[Path],
    fold: int,
    out_dir: Path,
    seed: int | None = None,
) -> None:
    """train_variant, with its epochs logged live to MLflow when `mlflow.enabled`."""
    if seed is None:
        seed = seeds(config)[0]
    live = LiveRun.open(config, variant, fold, seed) if config["mlflow"]["enabled"] else None
    on_epoch = live.log_epoch if live is not None else None
    status = "FAILED"
    try:
        train_variant(variant, config, split_path, shard_paths, fold, out_dir, on_epoch, seed)
        status = "FINISHED"
    except SystemExit:  # SIGTERM: checkpoint written, the rerun resumes
        status = "KILLED"
        raise
    finally:
        if live is not None:
            live.finish(status)
