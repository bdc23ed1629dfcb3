"""Training of one variant on one fold: resumable, deterministic on CPU, best-validation weights."""

import hashlib
import json
import logging
import math
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ecg2abp import models
from ecg2abp.atomic import atomic_path
from ecg2abp.errors import InputError
from ecg2abp.folds.feed import WindowFeed
from ecg2abp.folds.loading import FoldData, load_fold

FORMAT_VERSION = 1
NAIVE = "naive"
RUN_ONLY_TRAIN_KEYS = ("folds", "device", "checkpoint_minutes")
log = logging.getLogger("ecg2abp.training.jobs")


def resolve_device(name: str) -> torch.device:
    """`auto`: CUDA when present, else CPU (decided inside the job, never in the DAG)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("train.device: cuda asked for, but this job sees no CUDA device")
    return torch.device(name)


def learning_rate(step: int, total_steps: int, base: float, schedule: str) -> float:
    """Learning rate at optimizer step `step` (0-based) of `total_steps`."""
    if schedule == "constant":
        return base
    return 0.5 * base * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


def head_weights(n_heads: int, weights: Sequence[float]) -> list[float]:
    """Deep-supervision weights for a model's heads; single-head models use weight 1."""
    if n_heads == 1:
        return [1.0]
    if len(weights) != n_heads:
        raise InputError(
            f"train.deep_supervision_weights: {len(weights)} weights for a model with "
            f"{n_heads} heads"
        )
    return list(weights)


def fingerprint(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


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


def data_fingerprint(split_path: Path, fold: FoldData) -> str:
    sources = [
        (s.name, s.attrs.get("source_sha256", ""), s.attrs.get("cleaning", "")) for s in fold.shards
    ]
    return fingerprint({"split": Path(split_path).read_text(), "shards": sources})


def _optimizer(model: nn.Module, train: dict) -> torch.optim.Optimizer:
    params = model.parameters()
    if train["optimizer"] == "sgd":
        return torch.optim.SGD(
            params, lr=train["lr"], momentum=0.9, weight_decay=train["weight_decay"]
        )
    if train["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=train["lr"], weight_decay=train["weight_decay"])
    return torch.optim.AdamW(params, lr=train["lr"], weight_decay=train["weight_decay"])


class StopRequested:
    """Turns SIGTERM (cluster preemption) into a flag the loop checks after each step."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True

    def restore(self) -> None:
        signal.signal(signal.SIGTERM, self._previous)


@dataclass
class RunContext:
    """What a training job needs besides the data: where to write and the settings."""

    variant: str
    spec: dict  # the variant's config entry: model, width, options
    config: dict
    split_path: Path
    out_dir: Path

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

    def config_fingerprint(self) -> str:
        """What decides the trained weights (not where or how often it runs or checkpoints)."""
        keys = ("window", "fs", "normalisation", "cleaning", "split")
        train = {k: v for k, v in self.train.items() if k not in RUN_ONLY_TRAIN_KEYS}
        return fingerprint(
            {"variant": self.spec, "train": train, **{k: self.config[k] for k in keys}}
        )


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
        "train_abp_mean": float(fold.targets("train").mean()),
        "data_fingerprint": data_hash,
        "config_fingerprint": ctx.config_fingerprint(),
        "git_commit": git_commit(),
    }


def _autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def validation_loss(
    model: nn.Module, feed: WindowFeed, device: torch.device, precision: str
) -> float:
    """MSE of the final head over the validation feed (normalised units)."""
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode(), _autocast(device, precision):
        for x, y in feed.batches(0):
            prediction = model(x.to(device)).float()
            total += float(torch.sum((prediction - y.to(device)) ** 2))
            count += len(y)
    model.train()
    return total / max(count, 1)


def _feeds(fold: FoldData, train: dict, seed: int) -> tuple[WindowFeed, WindowFeed]:
    common = {"window": fold.window, "stats": fold.stats, "batch_size": train["batch_size"]}
    train_feed = WindowFeed(
        fold.shards,
        fold.starts["train"],
        seed=seed,
        max_windows=train["max_windows_per_epoch"],
        **common,
    )
    val_feed = WindowFeed(
        fold.shards,
        fold.starts["val"],
        seed=seed + 1,
        max_windows=train["max_val_windows"],
        **common,
    )
    if train_feed.n_windows == 0:
        raise InputError(f"fold {fold.fold}: the training side has no window")
    return train_feed, val_feed


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(ctx: RunContext) -> dict | None:
    if not ctx.checkpoint_path.exists():
        return None
    state = torch.load(ctx.checkpoint_path, map_location="cpu", weights_only=True)
    if state.get("config_fingerprint") != ctx.config_fingerprint():
        log.warning(
            "%s: settings changed since it was written; starting afresh", ctx.checkpoint_path
        )
        return None
    log.info(
        "resuming from %s (epoch %d, batch %d)", ctx.checkpoint_path, state["epoch"], state["batch"]
    )
    return state


def _progress(total: int, initial: int, description: str):
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=description,
        unit="batch",
        disable=not sys.stderr.isatty(),
    )


def train_deep(ctx: RunContext, fold: FoldData, data_hash: str) -> None:
    """Train a deep model with deep supervision, checkpoints and early stopping."""
    train = ctx.train
    torch.manual_seed(train["seed"])
    device = resolve_device(train["device"])
    model = models.build(
        ctx.spec["model"],
        window=fold.window,
        width=ctx.spec.get("width", 1.0),
        **ctx.spec.get("options", {}),
    ).to(device)
    weights = head_weights(model.n_heads, train["deep_supervision_weights"])
    optimizer = _optimizer(model, train)
    train_feed, val_feed = _feeds(fold, train, train["seed"])
    steps_per_epoch = math.ceil(len(train_feed) / train["accumulation"])
    total_steps = steps_per_epoch * train["epochs"]
    state = _load_checkpoint(ctx) or {
        "epoch": 0,
        "batch": 0,
        "step": 0,
        "best_val": float("inf"),
        "best_epoch": -1,
        "best_state": None,
        "bad_epochs": 0,
        "history": [],
        "done": False,
    }
    if "model" in state:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])

    def snapshot() -> dict:
        return {
            **state,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "config_fingerprint": ctx.config_fingerprint(),
        }

    stop = StopRequested()
    last_save = time.monotonic()
    every = train["checkpoint_minutes"] * 60.0
    model.train()
    try:
        while not state["done"] and state["epoch"] < train["epochs"]:
            epoch = state["epoch"]
            started, seen = time.perf_counter(), 0
            loss_sum = state.get("epoch_loss_sum", 0.0)
            loss_count = state.get("epoch_loss_count", 0)
            bar = _progress(
                len(train_feed), state["batch"], f"{ctx.variant} fold {fold.fold} epoch {epoch}"
            )
            for x, y in train_feed.batches(epoch, start_batch=state["batch"]):
                x, y = x.to(device), y.to(device)
                with _autocast(device, train["precision"]):
                    heads = model.forward_heads(x)
                loss = sum(
                    w * torch.mean((h.float() - y) ** 2)
                    for w, h in zip(weights, heads, strict=True)
                )
                (loss / train["accumulation"]).backward()
                loss_sum += float(heads[-1].detach().float().sub(y).pow(2).sum())
                loss_count += len(y)
                seen += len(y)
                state["batch"] += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / loss_count:.4f}")
                if state["batch"] % train["accumulation"] and state["batch"] < len(train_feed):
                    continue
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(
                        state["step"], total_steps, train["lr"], train["schedule"]
                    )
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
                state["epoch_loss_sum"], state["epoch_loss_count"] = loss_sum, loss_count
                if stop.requested or time.monotonic() - last_save >= every:
                    _save_checkpoint(ctx.checkpoint_path, snapshot())
                    last_save = time.monotonic()
                    if stop.requested:
                        log.warning(
                            "SIGTERM: checkpoint written at epoch %d batch %d",
                            epoch,
                            state["batch"],
                        )
                        raise SystemExit(143)
            bar.close()
            elapsed = time.perf_counter() - started
            val = (
                validation_loss(model, val_feed, device, train["precision"])
                if val_feed.n_windows
                else loss_sum / max(loss_count, 1)
            )
            row = {
                "epoch": epoch,
                "train_loss": loss_sum / max(loss_count, 1),
                "val_loss": val,
                "lr": optimizer.param_groups[0]["lr"],
                "windows_per_s": seen / elapsed if elapsed > 0 else float("nan"),
                "seconds": elapsed,
            }
            state["history"].append(row)
            log.info(
                "epoch %d: train %.4f val %.4f lr %.2e %.0f windows/s",
                epoch,
                row["train_loss"],
                val,
                row["lr"],
                row["windows_per_s"],
            )
            if val < state["best_val"]:
                state["best_val"], state["best_epoch"], state["bad_epochs"] = val, epoch, 0
                state["best_state"] = {
                    k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                }
            else:
                state["bad_epochs"] += 1
                if state["bad_epochs"] >= train["patience"]:
                    log.info(
                        "early stop: no better validation loss for %d epochs", state["bad_epochs"]
                    )
                    state["done"] = True
            state.update(epoch=epoch + 1, batch=0, epoch_loss_sum=0.0, epoch_loss_count=0)
            _save_checkpoint(ctx.checkpoint_path, snapshot())
            last_save = time.monotonic()
    finally:
        stop.restore()
    meta = metadata(ctx, fold, data_hash)
    meta.update(best_epoch=state["best_epoch"], best_val_loss=state["best_val"], kind="deep")
    _write_outputs(ctx, {**meta, "state_dict": state["best_state"]}, state["history"])


def _write_outputs(ctx: RunContext, model_file: dict, history: list[dict]) -> None:
    with atomic_path(ctx.history_path) as tmp:
        columns = ["epoch", "train_loss", "val_loss", "lr", "windows_per_s", "seconds"]
        pd.DataFrame(history, columns=columns).to_parquet(tmp, index=False)
    with atomic_path(ctx.model_path) as tmp:
        torch.save(model_file, tmp)
    ctx.checkpoint_path.unlink(missing_ok=True)


def _sample(feed: WindowFeed) -> tuple[np.ndarray, np.ndarray]:
    """The feed's first-epoch windows as arrays: normalised ECG [n, W] and ABP targets [n]."""
    x, y = feed.normalise(*feed.gather(feed.epoch_order(0)))
    return x[:, 0].numpy(), y.numpy()


def train_classical(ctx: RunContext, fold: FoldData, data_hash: str) -> None:
    """Fit a classical baseline on a capped sample of training windows."""
    train = ctx.train
    model = models.build(ctx.spec["model"], window=fold.window, **ctx.spec.get("options", {}))
    # One fit on up to `classical_max_windows` windows, not the deep models' per-epoch cap.
    capped = {**train, "max_windows_per_epoch": train["classical_max_windows"]}
    train_feed, val_feed = _feeds(fold, capped, train["seed"])
    started = time.perf_counter()
    x, y = _sample(train_feed)
    model.fit(x, y)
    elapsed = time.perf_counter() - started
    train_loss = float(np.mean((model.predict(x) - y) ** 2))
    val_loss = train_loss
    if val_feed.n_windows:
        xv, yv = _sample(val_feed)
        val_loss = float(np.mean((model.predict(xv) - yv) ** 2))
    artefact = ctx.out_dir / "model.classical"
    model.save(artefact)
    meta = metadata(ctx, fold, data_hash)
    meta.update(kind="classical", artefact=artefact.name, best_epoch=0, best_val_loss=val_loss)
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
    """The floor: the training mean ABP (per record under `temporal`, a calibrated reading)."""
    meta = metadata(ctx, fold, data_hash)
    record_means = fold.record_means("train") if fold.protocol == "temporal" else {}
    meta.update(kind="naive", record_means=record_means, best_epoch=0, best_val_loss=float("nan"))
    _write_outputs(ctx, meta, [])


def train_variant(
    variant: str,
    config: dict,
    split_path: Path,
    shard_paths: Sequence[Path],
    fold_index: int,
    out_dir: Path,
) -> None:
    """Train `variant` (or the naive floor) on one fold; writes model.pt and history.parquet."""
    torch.set_num_threads(config["threads"])
    spec = {"model": NAIVE} if variant == NAIVE else config["variants"].get(variant)
    if spec is None:
        raise InputError(f"variant {variant!r}: not declared under `variants` in the config")
    kind = NAIVE if variant == NAIVE else models.spec(spec["model"]).kind
    normalisation = config["normalisation"]
    fold = load_fold(split_path, shard_paths, fold_index, normalisation=normalisation)
    ctx = RunContext(variant, spec, config, Path(split_path), Path(out_dir))
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ctx.out_dir.glob(".*.tmp-*"):  # left by a job killed mid-write
        stale.unlink()
    data_hash = data_fingerprint(split_path, fold)
    log.info(
        "%s fold %d (%s): %d train, %d val, %d test windows",
        variant,
        fold_index,
        fold.protocol,
        *(sum(len(s) for s in fold.starts[side]) for side in ("train", "val", "test")),
    )
    {"deep": train_deep, "classical": train_classical, NAIVE: train_naive}[kind](
        ctx, fold, data_hash
    )
