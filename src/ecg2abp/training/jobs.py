"""One training job (variant × fold): settings, provenance and the trained-model file."""

import logging
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ecg2abp import models
from ecg2abp.atomic import atomic_path, refuse_overwriting
from ecg2abp.data.shards import Shard, release_pages
from ecg2abp.devices import log_device, resolve_device
from ecg2abp.digests import file_sha256
from ecg2abp.errors import InputError
from ecg2abp.evaluation.floors import beat_floor
from ecg2abp.evaluation.scoring import Predictor, side_pieces
from ecg2abp.folds.feed import WindowFeed
from ecg2abp.folds.loading import FoldData, load_fold
from ecg2abp.folds.protocols import windows_path
from ecg2abp.stages import NAIVE, decisive_train, fingerprint, job_config, variant_spec
from ecg2abp.training.calibration import Calibration, fit_pulse, side_beats
from ecg2abp.training.checkpoint import load_checkpoint
from ecg2abp.training.loop import Trainer, fresh_state
from ecg2abp.training.model_file import CLASSICAL_ARTEFACT, FORMAT_VERSION, save_model_file
from ecg2abp.training.objective import build_optimizer, head_weights

log = logging.getLogger("ecg2abp.training")
SAMPLE_CHUNK = 65_536  # windows gathered at a time into a classical model's sample


def git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


@dataclass
class RunContext:
    """What a training job needs besides the data: where to write and the settings."""

    variant: str
    spec: dict  # the variant's config entry: model, width, options
    config: dict  # the job's config (stages.job_config): the variant's settings, one seed
    split_path: Path
    out_dir: Path
    on_epoch: Callable[[dict], None] | None = None  # deep models: each epoch's history row

    @property
    def train(self) -> dict:
        return self.config["train"]

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    @property
    def model_path(self) -> Path:
        return self.out_dir / "model.pt"

    @property
    def history_path(self) -> Path:
        return self.out_dir / "history.parquet"

    @property
    def artefact_path(self) -> Path:
        return self.out_dir / CLASSICAL_ARTEFACT

    @property
    def outputs(self) -> list[Path]:
        """Every file the job may write."""
        paths = (self.model_path, self.history_path, self.artefact_path, self.checkpoint_path)
        return list(paths)

    def decisive_settings(self) -> dict:
        """What decides the trained weights (not where or how often it runs or checkpoints)."""
        return decisive_train(self.spec, self.config)

    def config_fingerprint(self) -> str:
        return fingerprint(self.decisive_settings())

    def resume_key(self, data_hash: str) -> str:
        """A checkpoint resumes only the same settings on the same data."""
        return fingerprint({"config": self.config_fingerprint(), "data": data_hash})


def metadata(ctx: RunContext, fold: FoldData, data_hash: str) -> dict:
    """Everything needed to use a trained model without the config."""
    cleaning = fold.shards[0].cleaning if fold.shards else {}
    return {
        "format_version": FORMAT_VERSION,
        "variant": ctx.variant,
        "model": ctx.spec["model"],
        "width": float(ctx.spec.get("width", 1.0)),
        "options": dict(ctx.spec.get("options", {})),
        "window": fold.window,
        "fs": float(ctx.config["fs"]),
        "precision": ctx.train["precision"],
        "stats": fold.stats.to_dict(),
        "preprocessing": {
            "bandpass_hz": cleaning.get("bandpass_hz"),
            "bandpass_order": cleaning.get("bandpass_order"),
            "cleaning": cleaning,
        },
        "protocol": fold.protocol,
        "leaky": fold.leaky,
        "fold": fold.fold,
        "seed": ctx.train["seed"],
        "train_abp_mean": fold.target_mean("train"),
        # the training beats' mean SBP, DBP and MAP: the beat floor `external` scores beside any
        # model (naive's own, per record under temporal, is set by train_naive)
        "beat_floor": beat_floor(fold, calibrated=False),
        "data_fingerprint": data_hash,
        "config_fingerprint": ctx.config_fingerprint(),
        "git_commit": git_commit(),
    }


def _feeds(
    fold: FoldData, train: dict, seed: int, device: torch.device | str = "cpu"
) -> tuple[WindowFeed, WindowFeed]:
    """Training and validation feeds whose batches come out on `device`."""
    common = {
        "window": fold.window,
        "stats": fold.stats,
        "shuffle": train["shuffle"],
        "device": device,
    }
    train_feed = WindowFeed(
        fold.shards,
        fold.starts["train"],
        seed=seed,
        batch_size=train["batch_size"],
        max_windows=train["max_windows_per_epoch"],
        order=fold.order.get("train"),
        **common,
    )
    val_feed = WindowFeed(
        fold.shards,
        fold.starts["val"],
        seed=seed + 1,
        batch_size=train["val_batch_size"] or train["batch_size"],
        max_windows=train["max_val_windows"],
        order=fold.order.get("val"),
        **common,
    )
    if train_feed.n_windows == 0:
        raise InputError(f"fold {fold.fold}: the training side has no window")
    return train_feed, val_feed


def train_deep(ctx: RunContext, fold: FoldData, data_hash: str) -> None:
    """Train a deep model with deep supervision, checkpoints and early stopping."""
    train = ctx.train
    torch.manual_seed(train["seed"])
    device = resolve_device(train["device"])
    log_device(device, train["device"])
    resume_key = ctx.resume_key(data_hash)
    model = models.build(
        ctx.spec["model"],
        window=fold.window,
        width=ctx.spec.get("width", 1.0),
        **ctx.spec.get("options", {}),
    ).to(device)
    train_feed, val_feed = _feeds(fold, train, train["seed"], device)
    log.info("window feed on %s: %s", device, train_feed.placement)
    trainer = Trainer(
        model=model,
        optimizer=build_optimizer(model, train),
        train_feed=train_feed,
        val_feed=val_feed,
        head_weights=head_weights(model.n_heads, train["deep_supervision_weights"]),
        device=device,
        settings=train,
        checkpoint={"path": ctx.checkpoint_path, "fingerprint": resume_key},
        description=f"{ctx.variant} fold {fold.fold}",
        on_epoch=ctx.on_epoch,
    )
    state = load_checkpoint(ctx.checkpoint_path, resume_key) or fresh_state()
    trainer.restore(state)
    state = trainer.run(state)
    meta = metadata(ctx, fold, data_hash)
    meta.update(best_epoch=state["best_epoch"], best_val_loss=state["best_val"], kind="deep")
    contents = {**meta, "state_dict": state["best_state"]}
    contents["calibration"] = calibrate(ctx, fold, contents, device).to_dict()
    _write_outputs(ctx, contents, state["history"])


def calibrate(ctx: RunContext, fold: FoldData, contents: dict, device: torch.device) -> Calibration:
    """The pulse calibration of the trained model, fitted on the fold's validation side only
    (the identity when `train.calibration` is none or the protocol samples windows, not beats)."""
    if ctx.train["calibration"] == "none":
        return Calibration()
    if fold.protocol == "paper":
        log.info("pulse calibration: the paper protocol has no validation beats; none fitted")
        return Calibration()
    predictor = Predictor(ctx.model_path, device, meta=contents)
    batch = ctx.config["evaluate"]["batch_size"]
    true, predicted = side_beats(
        fold.shards,
        list(side_pieces(fold.side("val"), fold.shards)),
        fold.window,
        float(ctx.config["fs"]),
        lambda record_id, windows: predictor.predict(record_id, windows, batch),
        ctx.train["calibration_max_windows"],
    )
    calibration = fit_pulse(true, predicted, contents["train_abp_mean"])
    log.info(
        "pulse calibration: gain %.3f about %.1f mmHg from %d validation beats",
        calibration.gain,
        contents["train_abp_mean"],
        calibration.beats,
    )
    return calibration


def _write_outputs(ctx: RunContext, model_file: dict, history: list[dict]) -> None:
    with atomic_path(ctx.history_path) as tmp:
        columns = ["epoch", "train_loss", "val_loss", "lr", "windows_per_s", "seconds"]
        pd.DataFrame(history, columns=columns).to_parquet(tmp, index=False)
    save_model_file(ctx.model_path, model_file)
    ctx.checkpoint_path.unlink(missing_ok=True)


def _sample(
    feed: WindowFeed, shards: Sequence[Shard], chunk: int = SAMPLE_CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """The feed's first-epoch windows as arrays: normalised ECG [n, W] and ABP targets [n].

    Gathered `chunk` windows at a time, the mapped pages each chunk read released after it:
    windows drawn all over the shards would otherwise keep every page of them resident (4.1 GB
    for knn's 1.1 M windows at the Kaggle set's size), and no full-size temporary is made."""
    order = feed.epoch_order(0)
    x = np.empty((len(order), feed.window), dtype=np.float32)
    y = np.empty(len(order), dtype=np.float32)
    for first in range(0, len(order), chunk):
        ecg, abp = feed.gather(order[first : first + chunk])
        x[first : first + len(ecg)] = feed.stats.scale_ecg(ecg)
        y[first : first + len(abp)] = feed.stats.scale_abp(abp)
        for shard in shards:
            release_pages(shard)
    return x, y


def train_classical(ctx: RunContext, fold: FoldData, data_hash: str) -> None:
    """Fit a classical baseline on a capped sample of training windows."""
    train = ctx.train
    model = models.build(ctx.spec["model"], window=fold.window, **ctx.spec.get("options", {}))
    # One fit on up to `classical_max_windows` windows (all for a model that memorises them),
    # not the deep models' per-epoch cap.
    cap = None if model.every_window else train["classical_max_windows"]
    capped = {**train, "max_windows_per_epoch": cap}
    train_feed, val_feed = _feeds(fold, capped, train["seed"])
    started = time.perf_counter()
    x, y = _sample(train_feed, fold.shards)
    model.fit(x, y)
    elapsed = time.perf_counter() - started
    # Scored on at most `classical_max_windows` of them: a model that memorises every window
    # (knn) would otherwise search its whole training set for a loss it has by construction.
    scored = slice(train["classical_max_windows"])
    train_loss = float(np.mean((model.predict(x[scored]) - y[scored]) ** 2))
    val_loss = train_loss
    if val_feed.n_windows:
        xv, yv = _sample(val_feed, fold.shards)
        val_loss = float(np.mean((model.predict(xv) - yv) ** 2))
    model.save(ctx.artefact_path)
    meta = metadata(ctx, fold, data_hash)
    meta.update(
        kind="classical",
        artefact=ctx.artefact_path.name,
        artefact_sha256=file_sha256(ctx.artefact_path),  # binds the fitted model to this file
        best_epoch=0,
        best_val_loss=val_loss,
    )
    if getattr(model, "record_level", False) and fold.protocol == "temporal":
        meta["record_means"] = fold.record_means("train")  # each record at its own level
    history = [
        {
            "epoch": 0,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "lr": float("nan"),
            "windows_per_s": len(y) / elapsed,
            "seconds": elapsed,
        }
    ]
    _write_outputs(ctx, meta, history)


def train_naive(ctx: RunContext, fold: FoldData, data_hash: str) -> None:
    """The floor: the training mean ABP, and the training beats' mean SBP, DBP and MAP.

    Per record under `temporal` (a calibrated reading), as everything else here; per subject
    of a calibration subset under `pulsedb` (its calibration-based test sets).
    """
    meta = metadata(ctx, fold, data_hash)
    temporal = fold.protocol == "temporal"
    record_means = fold.record_means("train") if temporal else {}
    meta.update(kind="naive", record_means=record_means, best_epoch=0, best_val_loss=float("nan"))
    meta["beat_floor"] = beat_floor(fold, calibrated=temporal or fold.protocol == "pulsedb")
    _write_outputs(ctx, meta, [])


def train_variant(
    variant: str,
    config: dict,
    split_path: Path,
    shard_paths: Sequence[Path],
    fold_index: int,
    out_dir: Path,
    on_epoch: Callable[[dict], None] | None = None,
    seed: int | None = None,
) -> None:
    """Train `variant` (or the naive floor) on one fold with one seed (default: the first of
    `train.seeds`) under its own settings; writes model.pt and history.parquet."""
    torch.set_num_threads(config["threads"])
    spec = variant_spec(config, variant)
    if spec is None:
        raise InputError(f"variant {variant!r}: not declared under `variants` in the config")
    config = job_config(config, variant, seed)
    kind = NAIVE if variant == NAIVE else models.spec(spec["model"]).kind
    ctx = RunContext(variant, spec, config, Path(split_path), Path(out_dir))
    refuse_overwriting(ctx.outputs, [split_path, windows_path(Path(split_path)), *shard_paths])
    fold = load_fold(
        split_path,
        shard_paths,
        fold_index,
        normalisation=config["normalisation"],
        abp=config["abp_normalisation"],
        mapped=True,  # signals read where used: memory does not grow with the shards
    )
    if fold.window != config["window"]:
        raise InputError(
            f"{split_path}: made for window {fold.window}, the config has window {config['window']}"
        )
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    data_hash = fold.fingerprint
    log.info(
        "%s fold %d seed %d (%s): %d train, %d val, %d test windows",
        variant,
        fold_index,
        config["train"]["seed"],
        fold.protocol,
        *(sum(len(s) for s in fold.starts[side]) for side in ("train", "val", "test")),
    )
    ctx.on_epoch = on_epoch
    {"deep": train_deep, "classical": train_classical, NAIVE: train_naive}[kind](
        ctx, fold, data_hash
    )
