"""What training minimises and how it steps: deep-supervised loss, optimizer, schedule."""

import math
from collections.abc import Sequence

import torch
from torch import nn

from ecg2abp.errors import InputError

PAPER_HEAD_WEIGHTS = (0.7, 0.8, 0.9, 1.0)


def head_weights(n_heads: int, weights: Sequence[float] = PAPER_HEAD_WEIGHTS) -> list[float]:
    """Deep-supervision weights for a model's heads, final head last; one head weighs 1."""
    if n_heads == 1:
        return [1.0]
    if len(weights) != n_heads:
        raise InputError(
            f"train.deep_supervision_weights: {len(weights)} weights for a model with "
            f"{n_heads} heads"
        )
    return [float(w) for w in weights]


def supervised_loss(
    heads: Sequence[torch.Tensor], target: torch.Tensor, weights: Sequence[float]
) -> torch.Tensor:
    """Σ weight × MSE(head, target), computed in float32 whatever the heads' precision."""
    return sum(
        w * torch.mean((h.float() - target) ** 2) for w, h in zip(weights, heads, strict=True)
    )


def learning_rate(step: int, total_steps: int, base: float, schedule: str) -> float:
    """Learning rate at optimizer step `step` (0-based) of `total_steps`."""
    if schedule == "constant":
        return base
    return 0.5 * base * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


def build_optimizer(model: nn.Module, train: dict) -> torch.optim.Optimizer:
    params = model.parameters()
    if train["optimizer"] == "sgd":
        return torch.optim.SGD(
            params, lr=train["lr"], momentum=0.9, weight_decay=train["weight_decay"]
        )
    if train["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=train["lr"], weight_decay=train["weight_decay"])
    return torch.optim.AdamW(params, lr=train["lr"], weight_decay=train["weight_decay"])


def autocast(device: torch.device, precision: str):
    """bf16 autocast when `precision` is bf16, else a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
