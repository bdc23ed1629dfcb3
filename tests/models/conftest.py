"""A small learnable problem shared by the model tests."""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch


@dataclass(frozen=True)
class LearnableProblem:
    x_train: np.ndarray  # [n, 1, window] float32
    y_train: np.ndarray  # [n] float32, zero mean / unit variance over the training set
    x_test: np.ndarray
    y_test: np.ndarray
    window: int


def make_learnable_problem(n_train: int, n_test: int, window: int, seed: int) -> LearnableProblem:
    """Spike trains whose target is their amplitude plus the time since the last spike."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    t = np.arange(window)
    period = rng.uniform(20, 40, size=n)
    phase = rng.uniform(0, 1, size=n) * period
    amplitude = rng.uniform(0.5, 2.0, size=n)
    since = (t[None, :] - phase[:, None]) % period[:, None]
    x = amplitude[:, None] * np.exp(-0.5 * (since / 1.5) ** 2) + 0.05 * rng.normal(size=(n, window))
    y = amplitude + 0.03 * since[:, -1]
    y = (y - y[:n_train].mean()) / y[:n_train].std()
    x = x[:, None, :].astype(np.float32)
    y = y.astype(np.float32)
    return LearnableProblem(x[:n_train], y[:n_train], x[n_train:], y[n_train:], window)


@pytest.fixture(scope="session")
def learnable_problem() -> LearnableProblem:
    return make_learnable_problem(n_train=2048, n_test=512, window=88, seed=0)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Small models run faster on one thread, far faster on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
