"""What `ecg2abp models` prints: every registered model's size and cost, computed by building it."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ecg2abp.models import REGISTRY, build, spec

DEPENDS_ON_FIT = "depends on fit"


@contextmanager
def reference_kernels() -> Iterator[None]:
    """Route attention and recurrent layers through their unfused paths, which the counter sees.

    The fused CPU kernels (flash attention, oneDNN LSTM) are single opaque operators that
    `FlopCounterMode` does not count; the math paths spell them out as matrix products.
    """
    mkldnn_off = torch.backends.mkldnn.flags(
        enabled=False, deterministic=None, allow_tf32=None, fp32_precision=None
    )
    with mkldnn_off, sdpa_kernel(SDPBackend.MATH):
        yield


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters())


def count_gflop(model: nn.Module, window: int) -> float:
    """Forward FLOPs of one window / 1e9; switches `model` to eval mode and reference attention."""
    if hasattr(model, "set_attention"):
        model.set_attention("reference")
    model.eval()
    counter = FlopCounterMode(display=False)
    # Gradients enabled: under no_grad, transformer encoder layers take an uncounted fast path.
    with torch.enable_grad(), reference_kernels(), counter:
        model(torch.zeros(1, 1, window))
    return counter.get_total_flops() / 1e9


def describe_model(
    name: str, *, window: int, width: float, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One inventory row: name, kind, summary, parameters, gflop_per_window."""
    entry = spec(name)
    row: dict[str, Any] = {
        "name": entry.name,
        "kind": entry.kind,
        "summary": entry.summary,
        "parameters": None,
        "gflop_per_window": None,
    }
    if entry.kind == "deep":
        model = build(name, window=window, width=width, **(options or {}))
        row["parameters"] = count_parameters(model)
        row["gflop_per_window"] = count_gflop(model, window)
    return row


def describe_models(
    *, window: int = 88, width: float = 1.0, names: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Rows for `names` (default: the whole registry, in order); classical sizes are None."""
    chosen = list(REGISTRY) if names is None else list(names)
    return [describe_model(name, window=window, width=width) for name in chosen]


def describe_variants(variants: dict[str, dict], *, window: int) -> list[dict[str, Any]]:
    """Rows for configured variants (name → model, width, options), named by variant."""
    rows = []
    for variant, entry in variants.items():
        width = entry.get("width", 1.0)
        row = describe_model(
            entry["model"], window=window, width=width, options=entry.get("options")
        )
        rows.append({**row, "name": variant, "model": entry["model"], "width": width})
    return rows


def format_parameters(parameters: int | None) -> str:
    return DEPENDS_ON_FIT if parameters is None else f"{parameters:,}"


def format_gflop(gflop: float | None) -> str:
    return "–" if gflop is None else f"{gflop:.3g}"


def format_table(rows: Iterable[dict[str, Any]]) -> str:
    """A Markdown table: name | what it is | parameters | GFLOP/window."""
    lines = ["| name | what it is | parameters | GFLOP/window |", "|---|---|---:|---:|"]
    for row in rows:
        cells = [
            f"`{row['name']}`",
            str(row["summary"]).replace("|", "\\|"),
            format_parameters(row["parameters"]),
            format_gflop(row["gflop_per_window"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
