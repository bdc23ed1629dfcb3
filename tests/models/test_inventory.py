"""Model inventory: parameter and FLOP counts checked against hand formulas, and the table."""

import pytest
import torch
from torch import nn

from ecg2abp.errors import InputError
from ecg2abp.models import REGISTRY
from ecg2abp.models.base import BPModel
from ecg2abp.models.inventory import count_gflop, describe_models, format_table

OWN_MODELS = ["lstm", "resnet1d", "transformer", "ridge", "gbm"]


def lstm_sizes(hidden: int, layers: int, window: int) -> tuple[int, int]:
    """Parameters and forward FLOPs of an LSTM(1 → hidden, layers) plus a linear head."""
    inputs = [1] + [hidden] * (layers - 1)
    gate_weights = [4 * hidden * (n_in + hidden) for n_in in inputs]  # W_ih and W_hh
    parameters = sum(w + 2 * 4 * hidden for w in gate_weights) + hidden + 1
    flops = 2 * window * sum(gate_weights) + 2 * hidden
    return parameters, flops


def transformer_sizes(d: int, layers: int, patch: int, window: int) -> tuple[int, int]:
    """Parameters and forward FLOPs (matrix products) of the patch transformer."""
    n = -(-window // patch)
    per_layer_parameters = (3 * d * d + 3 * d) + (d * d + d) + (8 * d * d + 5 * d) + 4 * d
    parameters = (patch * d + d) + n * d + layers * per_layer_parameters + 2 * d + (d + 1)
    projections = 2 * n * d * (3 * d + d + 4 * d + 4 * d)
    attention = 2 * 2 * n * n * d  # scores and weighted sum
    flops = 2 * n * patch * d + layers * (projections + attention) + 2 * d
    return parameters, flops


@pytest.mark.parametrize(("width", "hidden"), [(1.0, 128), (0.25, 32)])
def test_lstm_counts_match_the_formula(width: float, hidden: int) -> None:
    (row,) = describe_models(width=width, names=["lstm"])
    parameters, flops = lstm_sizes(hidden, layers=2, window=88)
    assert row["parameters"] == parameters
    assert row["gflop_per_window"] == pytest.approx(flops / 1e9, rel=1e-12)


def test_transformer_counts_include_attention() -> None:
    (row,) = describe_models(window=90, width=0.25, names=["transformer"])
    parameters, flops = transformer_sizes(d=32, layers=4, patch=8, window=90)
    assert row["parameters"] == parameters
    assert row["gflop_per_window"] == pytest.approx(flops / 1e9, rel=1e-12)


class LinearOnWindow(BPModel):
    """Ridge-like: one weight per sample."""

    def __init__(self, window: int):
        super().__init__()
        self.linear = nn.Linear(window, 1)
        self.attention_mode = "fused"

    def set_attention(self, mode: str) -> None:
        self.attention_mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x[:, 0]).squeeze(-1)


def test_flops_of_a_linear_model_and_reference_attention() -> None:
    model = LinearOnWindow(88)
    assert count_gflop(model, 88) == pytest.approx(2 * 88 / 1e9, rel=1e-12)
    assert model.attention_mode == "reference"


def test_rows_follow_the_requested_names() -> None:
    rows = describe_models(width=0.25, names=["gbm", "resnet1d", "ridge"])
    assert [row["name"] for row in rows] == ["gbm", "resnet1d", "ridge"]
    assert {tuple(row) for row in rows} == {
        ("name", "kind", "summary", "parameters", "gflop_per_window")
    }
    gbm, resnet, ridge = rows
    assert gbm["kind"] == ridge["kind"] == "classical"
    assert gbm["parameters"] is None and gbm["gflop_per_window"] is None
    assert resnet["summary"] == REGISTRY["resnet1d"].summary
    assert resnet["parameters"] > 0 and resnet["gflop_per_window"] > 0


def test_deep_costs_grow_with_width() -> None:
    narrow, wide = (describe_models(width=w, names=["resnet1d"])[0] for w in (0.25, 0.5))
    assert wide["parameters"] > 3 * narrow["parameters"]  # conv weights grow as width²
    assert wide["gflop_per_window"] > 3 * narrow["gflop_per_window"]


def test_unknown_model_is_refused() -> None:
    with pytest.raises(InputError, match="'nonesuch'"):
        describe_models(names=["nonesuch"])


def test_markdown_table() -> None:
    rows = [
        {
            "name": "deep_one",
            "kind": "deep",
            "summary": "a | b",
            "parameters": 1234567,
            "gflop_per_window": 2.3851,
        },
        {
            "name": "flat_one",
            "kind": "classical",
            "summary": "tabular",
            "parameters": None,
            "gflop_per_window": None,
        },
    ]
    lines = format_table(rows).splitlines()
    assert len(lines) == 4
    assert [cell.strip() for cell in lines[0].strip("|").split("|")] == [
        "name",
        "what it is",
        "parameters",
        "GFLOP/window",
    ]
    assert set(lines[1]) <= set("|-: ")
    assert "1,234,567" in lines[2] and "2.39" in lines[2] and "a \\| b" in lines[2]
    assert "depends on fit" in lines[3]
    for line in lines:
        assert line.replace("\\|", "").count("|") == 5  # four columns


def test_table_of_own_models_lists_each_once() -> None:
    table = format_table(describe_models(width=0.25, names=OWN_MODELS))
    for name in OWN_MODELS:
        assert table.count(f"`{name}`") == 1
