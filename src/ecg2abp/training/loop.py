"""The deep-model training loop: epochs of accumulated steps, validation, best weights."""

import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ecg2abp.folds.feed import WindowFeed
from ecg2abp.training.checkpoint import Interrupted, StopRequested, save_checkpoint
from ecg2abp.training.objective import autocast, learning_rate, supervised_loss

log = logging.getLogger("ecg2abp.training")


def fresh_state() -> dict:
    """Loop state before the first step; the checkpoint stores it with the weights."""
    return {
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


@dataclass
class Trainer:
    """One deep model, its optimizer and feeds, and where its checkpoint goes."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    train_feed: WindowFeed
    val_feed: WindowFeed
    head_weights: list[float]
    device: torch.device
    settings: dict  # the config's `train` section
    checkpoint: dict  # path and config fingerprint, written into every checkpoint
    description: str  # "variant fold k", for the progress bar
    on_epoch: Callable[[dict], None] | None = None  # called with each new history row

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_feed) / self.settings["accumulation"])

    def divisor(self, batch: int) -> int:
        """What a batch's loss is divided by: its step's batch count (the epoch's last, shorter
        group too), or always `accumulation` as the original code does (`fixed`)."""
        accumulation = self.settings["accumulation"]
        if self.settings.get("accumulation_scaling", "group") == "fixed":
            return accumulation
        return min(accumulation, len(self.train_feed) - batch // accumulation * accumulation)

    def restore(self, state: dict) -> None:
        if "model" in state:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            set_rng_state(state)
            for name, parameter in self.model.named_parameters():
                if name in state.get("gradients", {}):
                    parameter.grad = state["gradients"][name].to(self.device)

    def snapshot(self, state: dict) -> dict:
        """The loop state with weights, optimizer, random stream and any gradients accumulated
        since the last optimizer step (a stop mid-accumulation resumes with them)."""
        return {
            **state,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **rng_state(),
            "gradients": {
                name: parameter.grad.detach().cpu().clone()
                for name, parameter in self.model.named_parameters()
                if parameter.grad is not None
            },
            "config_fingerprint": self.checkpoint["fingerprint"],
        }

    def save(self, state: dict) -> None:
        save_checkpoint(self.checkpoint["path"], self.snapshot(state))

    def run(self, state: dict) -> dict:
        """Train until the last epoch or early stop; returns the final loop state.

        SIGTERM (preemption, time limit) is honoured after the current batch, whether training
        or validating: the checkpoint then holds a state from which a rerun ends with the same
        weights as an uninterrupted run, and the process exits with status 143."""
        stop = StopRequested()
        self.model.train()
        try:
            while not state["done"] and state["epoch"] < self.settings["epochs"]:
                started = time.perf_counter()
                seen = self.train_epoch(state, stop)
                self.end_epoch(state, seen, time.perf_counter() - started, stop)
                self.save(state)
        except Interrupted:
            self.save(state)
            log.warning(
                "SIGTERM: checkpoint written at epoch %d batch %d", state["epoch"], state["batch"]
            )
            raise SystemExit(143) from None
        finally:
            stop.restore()
        return state

    def train_epoch(self, state: dict, stop: StopRequested) -> int:
        """The rest of the current epoch from `state["batch"]`; returns windows seen."""
        train = self.settings
        accumulation = train["accumulation"]
        total_steps = self.steps_per_epoch * train["epochs"]
        every = train["checkpoint_minutes"] * 60.0
        last_save = time.monotonic()
        seen = 0
        bar = _progress(
            len(self.train_feed), state["batch"], f"{self.description} epoch {state['epoch']}"
        )
        for x, y in self.train_feed.batches(state["epoch"], start_batch=state["batch"]):
            x, y = x.to(self.device), y.to(self.device)
            with autocast(self.device, train["precision"]):
                heads = self.model.forward_heads(x)
            (supervised_loss(heads, y, self.head_weights) / self.divisor(state["batch"])).backward()
            state["epoch_loss_sum"] = state.get("epoch_loss_sum", 0.0) + float(
                heads[-1].detach().float().sub(y).pow(2).sum()
            )
            state["epoch_loss_count"] = state.get("epoch_loss_count", 0) + len(y)
            seen += len(y)
            state["batch"] += 1
            bar.update(1)
            bar.set_postfix(loss=f"{state['epoch_loss_sum'] / state['epoch_loss_count']:.4f}")
            if state["batch"] % accumulation == 0 or state["batch"] == len(self.train_feed):
                for group in self.optimizer.param_groups:
                    group["lr"] = learning_rate(
                        state["step"], total_steps, train["lr"], train["schedule"]
                    )
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
                if time.monotonic() - last_save >= every:
                    self.save(state)
                    last_save = time.monotonic()
            if stop.requested:
                raise Interrupted
        bar.close()
        return seen

    def end_epoch(self, state: dict, seen: int, elapsed: float, stop: StopRequested) -> None:
        """Validate, record the epoch in the history, keep the best weights, early-stop."""
        loss_sum = state.get("epoch_loss_sum", 0.0)
        loss_count = max(state.get("epoch_loss_count", 0), 1)
        weighted = self.settings["val_loss"] == "weighted_heads"
        before = before_validation(self.model)
        try:
            val = (
                validation_loss(
                    self.model,
                    self.val_feed,
                    self.device,
                    self.settings["precision"],
                    stop,
                    head_weights=self.head_weights if weighted else None,
                    batchnorm=self.settings["val_batchnorm"],
                )
                if self.val_feed.n_windows
                else loss_sum / loss_count
            )
        except Interrupted:  # the checkpoint holds the model as validation found it
            rewind(self.model, before)
            raise
        epoch = state["epoch"]
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / loss_count,
            "val_loss": val,
            "lr": self.optimizer.param_groups[0]["lr"],
            "windows_per_s": seen / elapsed if elapsed > 0 else float("nan"),
            "seconds": elapsed,
        }
        state["history"].append(row)
        if self.on_epoch is not None:
            self.on_epoch(row)
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
                k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()
            }
        else:
            state["bad_epochs"] += 1
            if state["bad_epochs"] >= self.settings["patience"]:
                log.info("early stop: no better validation loss for %d epochs", state["bad_epochs"])
                state["done"] = True
        state.update(epoch=epoch + 1, batch=0, epoch_loss_sum=0.0, epoch_loss_count=0)


def rng_state() -> dict:
    """The CPU random stream and every visible GPU's (an empty list without CUDA)."""
    return {"torch_rng": torch.get_rng_state(), "cuda_rng": torch.cuda.get_rng_state_all()}


def set_rng_state(state: dict) -> None:
    """Restore `rng_state()`; GPU streams for as many GPUs as both runs see (none in older
    checkpoints)."""
    torch.set_rng_state(state["torch_rng"])
    for index, cuda in enumerate(state.get("cuda_rng", [])[: torch.cuda.device_count()]):
        torch.cuda.set_rng_state(cuda, index)


def before_validation(model: nn.Module) -> dict:
    """What a validation pass may change: BatchNorm's running statistics (val_batchnorm
    train) and the random streams (dropout in training mode)."""
    buffers = {name: buffer.detach().clone() for name, buffer in model.named_buffers()}
    return {"buffers": buffers, **rng_state()}


def rewind(model: nn.Module, before: dict) -> None:
    """Undo an interrupted validation pass, so that the rerun validates from the same state."""
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            buffer.copy_(before["buffers"][name])
    set_rng_state(before)


def validation_loss(
    model: nn.Module,
    feed: WindowFeed,
    device: torch.device,
    precision: str,
    stop: StopRequested | None = None,
    *,
    head_weights: Sequence[float] | None = None,
    batchnorm: str = "eval",
) -> float:
    """MSE of the final head over the validation feed (normalised units).

    With `head_weights`, the original's loss instead: the mean over batches of the weighted
    sum of every head's MSE. `batchnorm` "train" validates as the original does, the model in
    training mode: BatchNorm on batch statistics, its running statistics updated. Raises
    Interrupted after the current batch once `stop` is requested (the partial sum is dropped).
    """
    model.train(batchnorm == "train")
    total, count = 0.0, 0
    try:
        with torch.no_grad(), autocast(device, precision):
            for x, y in feed.batches(0):
                x, y = x.to(device), y.to(device)
                if head_weights is None:
                    total += float(torch.sum((model(x).float() - y) ** 2))
                    count += len(y)
                else:
                    total += float(supervised_loss(model.forward_heads(x), y, head_weights))
                    count += 1
                if stop is not None and stop.requested:
                    raise Interrupted
    finally:
        model.train()
    return total / max(count, 1)


def _progress(total: int, initial: int, description: str):
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=description,
        unit="batch",
        disable=not sys.stderr.isatty(),
    )
