"""Which part of the ECG window drives a deep model's prediction: |gradient × input| over time."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ecg2abp.data.shards import Shard
from ecg2abp.evaluation.scoring import Predictor
from ecg2abp.folds.feed import select_windows, side_ranges
from ecg2abp.folds.loading import open_split_shards


def test_windows(shards: Sequence[Shard], side: list[list], window: int, count: int) -> np.ndarray:
    """Up to `count` raw ECG windows [n, window] of a split side, evenly spaced over it."""
    sets = [select_windows(shard, side_ranges(side), window) for shard in shards]
    offsets = np.cumsum([0, *(len(s) for s in sets)])
    total = int(offsets[-1])
    if total == 0:
        return np.empty((0, window), np.float32)
    picks = np.unique(np.linspace(0, total - 1, min(count, total)).astype(int))
    rows = []
    for pick in picks:
        index = int(np.searchsorted(offsets, pick, side="right") - 1)
        start = int(sets[index].at(np.array([pick - offsets[index]]))[0])
        rows.append(np.asarray(shards[index].ecg[start : start + window]))
    return np.stack(rows)


def gradient_x_input(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Mean over windows of |∂ output / ∂ input × input| at each position of [n, window] inputs."""
    tensor = torch.from_numpy(np.ascontiguousarray(x, np.float32)).unsqueeze(1)
    tensor.requires_grad_(True)
    (gradient,) = torch.autograd.grad(model.eval()(tensor).sum(), tensor)
    return (gradient * tensor).abs().squeeze(1).mean(0).detach().numpy().astype(np.float64)


def variant_saliency(
    model_files: Sequence[Path], split_path: Path, shard_paths: Sequence[Path], count: int
) -> tuple[np.ndarray, int]:
    """Mean |gradient × input| over every fold's test windows, and how many windows that was."""
    document, shards = open_split_shards(split_path, shard_paths, mapped=True)
    total, n = None, 0
    for model_file in model_files:
        predictor = Predictor(Path(model_file), torch.device("cpu"))
        side = document["folds"][int(predictor.meta["fold"])]["test"]
        windows = test_windows(shards, side, int(document["window"]), count)
        if len(windows) == 0:
            continue
        scaled = predictor.stats.scale_ecg(windows)
        profile = gradient_x_input(predictor.model, scaled) * len(windows)
        total = profile if total is None else total + profile
        n += len(windows)
    return (total / n if n else np.empty(0)), n


def saliency_figure(variant: str, profile: np.ndarray, n_windows: int, fs: float) -> Figure:
    """The profile against time before the predicted sample (the window's last)."""
    figure = Figure(figsize=(6.5, 3.5), layout="constrained")
    ax = figure.add_subplot()
    if len(profile):
        t_ms = 1000.0 * (np.arange(len(profile)) - (len(profile) - 1)) / fs
        ax.plot(t_ms, profile)
        ax.set(xlabel="time before the predicted sample (ms)", ylabel="mean |gradient × input|")
    ax.set_title(f"{variant}: saliency over {n_windows} test windows, all folds")
    return figure
