"""Deep baselines: shapes, gradients, settings refused, and learning a small problem."""

import numpy as np
import pytest
import torch

from ecg2abp.errors import InputError
from ecg2abp.models import build
from ecg2abp.models.base import BPModel
from ecg2abp.models.baselines import scaled_size

DEEP_BASELINES = ["lstm", "resnet1d", "transformer"]


@pytest.mark.parametrize("name", DEEP_BASELINES)
@pytest.mark.parametrize("width", [0.25, 1.0])
@pytest.mark.parametrize("batch", [1, 5])
def test_output_is_one_value_per_window(name: str, width: float, batch: int) -> None:
    torch.manual_seed(0)
    model = build(name, window=88, width=width)
    assert isinstance(model, BPModel) and model.n_heads == 1
    x = torch.randn(batch, 1, 88)
    trained = model.train()(x)
    assert trained.shape == (batch,) and torch.isfinite(trained).all()
    model.eval()
    with torch.no_grad():
        heads = model.forward_heads(x)
        assert len(heads) == 1
        assert torch.equal(heads[-1], model(x))


@pytest.mark.parametrize("name", DEEP_BASELINES)
def test_other_window_lengths(name: str) -> None:
    for window in [125, 57]:
        model = build(name, window=window, width=0.25).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 1, window)).shape == (2,)


def test_transformer_pads_a_partial_patch_at_the_start() -> None:
    torch.manual_seed(0)
    model = build("transformer", window=90, width=0.25, patch_size=8, dropout=0.0).eval()
    x = torch.randn(1, 1, 90)
    changed_first, changed_last = x.clone(), x.clone()
    changed_first[..., 0] += 1.0
    changed_last[..., -1] += 1.0
    with torch.no_grad():
        y = model(x)
        assert not torch.equal(model(changed_first), y)
        assert not torch.equal(model(changed_last), y)


@pytest.mark.parametrize("name", DEEP_BASELINES)
def test_gradient_reaches_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    model = build(name, width=0.25).train()
    model(torch.randn(3, 1, 88)).square().sum().backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert parameter.grad.abs().sum() > 0, parameter_name


def test_width_scales_hidden_sizes() -> None:
    assert build("lstm", width=1.0).lstm.hidden_size == 128
    assert build("lstm", width=0.25).lstm.hidden_size == 32
    assert build("lstm", width=0.01).lstm.hidden_size == 8  # the minimum
    channels = [block.body[0].out_channels for block in build("resnet1d", width=0.5).stages]
    assert sorted(set(channels)) == [32, 64, 128]
    d_model = build("transformer", width=0.3, n_attention_heads=3).embed.out_features
    assert d_model % 3 == 0 and abs(d_model - 128 * 0.3) <= 1.5


def test_scaled_size_rounds_to_a_multiple_above_the_minimum() -> None:
    assert scaled_size(128, 0.3, minimum=8, multiple=4) == 40  # 38.4 → 40
    assert scaled_size(128, 0.01, minimum=6, multiple=4) == 8  # minimum 6 rounded up to 8
    assert scaled_size(64, 2.0, minimum=8) == 128


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("lstm", {"num_layers": 0}),
        ("lstm", {"dropout": 1.0}),
        ("lstm", {"width": 0.0}),
        ("lstm", {"window": 0}),
        ("resnet1d", {"kernel_size": 4}),
        ("resnet1d", {"window": 4}),
        ("resnet1d", {"blocks_per_stage": 0}),
        ("transformer", {"patch_size": 100}),
        ("transformer", {"n_attention_heads": 0}),
        ("transformer", {"width": float("nan")}),
    ],
)
def test_impossible_settings_are_refused(name: str, settings: dict) -> None:
    with pytest.raises(InputError, match=f"model {name}: "):
        build(name, **settings)


def train_briefly(model: BPModel, x: np.ndarray, y: np.ndarray, lr: float) -> None:
    """200 Adam steps on random batches of 64."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    x_all, y_all = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(200):
        batch = torch.randint(0, len(x_all), (64,), generator=generator)
        loss = torch.nn.functional.mse_loss(model(x_all[batch]), y_all[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "lr"), [("lstm", 1e-2), ("resnet1d", 1e-3), ("transformer", 2e-3)]
)
def test_beats_the_training_mean(name: str, lr: float, learnable_problem) -> None:
    problem = learnable_problem
    torch.manual_seed(0)
    model = build(name, window=problem.window, width=0.25)
    train_briefly(model, problem.x_train, problem.y_train, lr)
    with torch.no_grad():
        predicted = model.eval()(torch.from_numpy(problem.x_test)).numpy()
    model_mse = np.mean((predicted - problem.y_test) ** 2)
    mean_mse = np.mean((problem.y_train.mean() - problem.y_test) ** 2)
    assert model_mse < 0.5 * mean_mse
