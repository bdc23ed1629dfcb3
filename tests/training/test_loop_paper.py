"""The training loop in the original's mode (config/paper.yaml) against a hand-computed one."""

import copy

import numpy as np
import pytest
import torch
from shard_factory import random_record, write_test_shard
from torch import nn

from ecg2abp.data.shards import open_shard
from ecg2abp.folds.feed import WindowFeed
from ecg2abp.folds.normalisation import compute_stats
from ecg2abp.models.base import BPModel
from ecg2abp.training.loop import Trainer, fresh_state

WINDOW = 88
WEIGHTS = [0.7, 0.8, 0.9, 1.0]
BATCH, ACCUMULATION = 4, 3  # 5 training batches: one full accumulation, then a partial one
PAPER = {
    "epochs": 1,
    "accumulation": ACCUMULATION,
    "lr": 0.1,
    "schedule": "constant",
    "precision": "fp32",
    "checkpoint_minutes": 60.0,
    "patience": 10,
    "val_loss": "weighted_heads",
    "val_batchnorm": "train",
    "accumulation_scaling": "fixed",  # the original divides every loss by the accumulation count
}


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    path = tmp_path_factory.mktemp("loop") / "part_1.h5"
    rng = np.random.default_rng(7)
    write_test_shard(path, {"part_1/0000": random_record(rng, [400])}, window=WINDOW)
    return open_shard(path)


class FourHeads(BPModel):
    """Conv → BatchNorm → ReLU, four linear heads on the last step: every parameter learns."""

    n_heads = 4

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 6, 9, bias=False)
        self.norm = nn.BatchNorm1d(6)
        self.heads = nn.ModuleList(nn.Linear(6, 1) for _ in range(self.n_heads))

    def forward_heads(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = torch.relu(self.norm(self.conv(x)))[:, :, -1]
        return [head(features)[:, 0] for head in self.heads]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_heads(x)[-1]


def by_hand(model, x, y, batch: int) -> list[float]:
    """The original's steps: loss = Σ w·MSE (mmHg²) / accumulation, a step every ACCUMULATION
    batches and one more on what is left; returns the weighted loss of every batch."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model.train()
    losses = []
    n_batches = -(-len(y) // batch)
    for index in range(n_batches):
        xb, yb = x[index * batch : (index + 1) * batch], y[index * batch : (index + 1) * batch]
        heads = model.forward_heads(xb)
        loss = sum(
            w * torch.nn.functional.mse_loss(h, yb) for w, h in zip(WEIGHTS, heads, strict=True)
        )
        losses.append(loss.item())
        (loss / ACCUMULATION).backward()
        if (index + 1) % ACCUMULATION == 0 or index + 1 == n_batches:
            optimizer.step()
            optimizer.zero_grad()
    return losses


def test_two_paper_steps_and_validation_equal_the_hand_computed_ones(shard, tmp_path):
    torch.manual_seed(0)
    model = FourHeads()
    reference = copy.deepcopy(model)
    starts = shard.windows
    train_order = np.array([40, 3, 77, 12, 150, 9, 200, 31, 64, 18, 120, 5, 99, 250, 140, 60, 7])
    val_order = np.array([300, 2, 180, 45, 222, 11, 90])
    stats = compute_stats([shard], [starts[train_order]], WINDOW, "minmax_all", abp="none")
    assert (stats.abp_center, stats.abp_scale) == (0.0, 1.0)  # targets stay in mmHg

    def feed(order: np.ndarray, batch: int) -> WindowFeed:
        chosen = np.sort(starts[order])  # the fold's sorted starts, fed in the given order
        position = np.searchsorted(chosen, starts[order])
        return WindowFeed(
            [shard], [chosen], window=WINDOW, stats=stats, batch_size=batch, seed=0,
            shuffle=False, order=position,
        )  # fmt: skip

    trainer = Trainer(
        model=model,
        optimizer=torch.optim.AdamW(model.parameters(), lr=0.1),
        train_feed=feed(train_order, BATCH),
        val_feed=feed(val_order, 3),
        head_weights=WEIGHTS,
        device=torch.device("cpu"),
        settings=PAPER,
        checkpoint={"path": tmp_path / "checkpoint.pt", "fingerprint": "test"},
        description="test",
    )
    state = trainer.run(fresh_state())
    assert state["step"] == 2  # 3 batches, then the partial accumulation of 2

    def windows(order: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        ecg = np.stack([shard.ecg[s : s + WINDOW] for s in starts[order]])
        x = (ecg.astype(np.float64) - stats.ecg_center) / stats.ecg_scale
        y = shard.abp[starts[order] + WINDOW - 1]
        return torch.tensor(x, dtype=torch.float32)[:, None], torch.tensor(y, dtype=torch.float32)

    x, y = windows(train_order)
    assert float(y.mean()) > 50  # raw mmHg
    by_hand(reference, x, y, BATCH)
    for name, want in reference.named_parameters():
        torch.testing.assert_close(model.get_parameter(name), want, msg=name)
    # validation: the mean over batches of the weighted head losses, in training mode
    xv, yv = windows(val_order)
    with torch.no_grad():
        reference.train()
        losses = []
        for first in range(0, len(yv), 3):
            heads = reference.forward_heads(xv[first : first + 3])
            target = yv[first : first + 3]
            losses.append(
                sum(
                    w * float(((h - target) ** 2).mean())
                    for w, h in zip(WEIGHTS, heads, strict=True)
                )
            )
    assert state["history"][0]["val_loss"] == pytest.approx(np.mean(losses), rel=1e-5)
    # ... which moved BatchNorm's running statistics, kept in the best weights as the original's
    for name, want in reference.state_dict().items():
        torch.testing.assert_close(state["best_state"][name], want, rtol=1e-5, atol=1e-6, msg=name)
