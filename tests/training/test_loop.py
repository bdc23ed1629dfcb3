"""The training loop against a hand-written one: accumulation, optimizers, schedules, bf16."""

import copy

import pytest
import torch
from pipeline_factory import ingest_parts, synthetic_parts, tiny_config, write_split

from ecg2abp import models
from ecg2abp.folds.feed import WindowFeed
from ecg2abp.folds.loading import FoldData, load_fold
from ecg2abp.training.loop import Trainer, fresh_state, rng_state, set_rng_state
from ecg2abp.training.objective import build_optimizer, learning_rate

WINDOW = 88
BATCH = 16
BATCHES = 7  # with accumulation 3: steps of 3, 3 and a last one of 1 batch


@pytest.fixture(scope="module")
def fold(tmp_path_factory) -> FoldData:
    folder = tmp_path_factory.mktemp("loop")
    config = tiny_config({"split": {"folds": 2, "block_size": 2}})
    shards = ingest_parts(folder, synthetic_parts(folder, records=6), config)
    return load_fold(write_split(folder, shards, config), shards, 0, normalisation="zscore")


def settings(**overrides) -> dict:
    fixed = {"epochs": 2, "accumulation": 3, "checkpoint_minutes": 60}
    return {**tiny_config()["train"], **fixed, **overrides}


def feeds(fold: FoldData) -> tuple[WindowFeed, WindowFeed]:
    common = {"window": WINDOW, "stats": fold.stats, "batch_size": BATCH}
    train = WindowFeed(fold.shards, fold.starts["train"], seed=1, max_windows=BATCHES * BATCH - 5,
                       **common)  # fmt: skip
    val = WindowFeed(fold.shards, fold.starts["val"], seed=2, max_windows=BATCH, **common)
    assert len(train) == BATCHES
    return train, val


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return models.build("resnet1d", window=WINDOW, width=0.125)


def trained(fold: FoldData, model: torch.nn.Module, train: dict, tmp_path) -> dict:
    train_feed, val_feed = feeds(fold)
    trainer = Trainer(
        model=model,
        optimizer=build_optimizer(model, train),
        train_feed=train_feed,
        val_feed=val_feed,
        head_weights=[1.0],
        device=torch.device("cpu"),
        settings=train,
        checkpoint={"path": tmp_path / "checkpoint.pt", "fingerprint": "test"},
        description="test",
    )
    return trainer.run(fresh_state())


def by_hand(fold: FoldData, model: torch.nn.Module, train: dict) -> torch.nn.Module:
    """The same training written out: each step averages the gradients of its batches."""
    optimizer = {
        "sgd": lambda p: torch.optim.SGD(
            p, lr=1.0, momentum=0.9, weight_decay=train["weight_decay"]
        ),
        "adam": lambda p: torch.optim.Adam(p, lr=1.0, weight_decay=train["weight_decay"]),
        "adamw": lambda p: torch.optim.AdamW(p, lr=1.0, weight_decay=train["weight_decay"]),
    }[train["optimizer"]](model.parameters())
    train_feed, _ = feeds(fold)
    groups = [[0, 1, 2], [3, 4, 5], [6]]
    step = 0
    for epoch in range(train["epochs"]):
        batches = list(train_feed.batches(epoch))
        for group in groups:
            model.train()
            optimizer.zero_grad()
            for index in group:
                x, y = batches[index]
                loss = torch.mean((model(x) - y) ** 2) / len(group)
                loss.backward()
            lr = learning_rate(step, len(groups) * train["epochs"], train["lr"], train["schedule"])
            for parameters in optimizer.param_groups:
                parameters["lr"] = lr
            optimizer.step()
            step += 1
    return model


@pytest.mark.slow
@pytest.mark.parametrize(
    ("optimizer", "schedule"), [("sgd", "constant"), ("adam", "cosine"), ("adamw", "constant")]
)
def test_accumulated_steps_match_a_hand_written_loop(fold, tmp_path, optimizer, schedule):
    train = settings(optimizer=optimizer, schedule=schedule, lr=0.01)
    model = small_model()
    reference = by_hand(fold, copy.deepcopy(model), train)
    state = trained(fold, model, train, tmp_path)
    assert state["step"] == 3 * train["epochs"]
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value, rtol=1e-4, atol=1e-6)
    rates = [row["lr"] for row in state["history"]]
    if schedule == "constant":
        assert rates == [0.01, 0.01]
    else:
        assert rates == pytest.approx([learning_rate(s, 6, 0.01, "cosine") for s in (2, 5)])


def test_bf16_training_runs_the_model_in_bf16_and_keeps_fp32_weights(fold, tmp_path):
    seen = set()
    model = small_model()
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv1d))
    first.register_forward_hook(lambda module, args, out: seen.add(out.dtype))
    before = copy.deepcopy(model.state_dict())
    state = trained(fold, model, settings(precision="bf16", epochs=1), tmp_path)
    assert seen == {torch.bfloat16}
    assert all(v.dtype == before[k].dtype for k, v in model.state_dict().items())
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(torch.isfinite(torch.tensor([row["train_loss"], row["val_loss"]])).all()
               for row in state["history"])  # fmt: skip

    fp32 = small_model()
    trained(fold, fp32, settings(epochs=1), tmp_path)
    assert any(not torch.equal(v, fp32.state_dict()[k]) for k, v in model.state_dict().items())


def test_random_streams_are_saved_with_the_gpus_and_restored_without_them():
    saved = rng_state()
    assert set(saved) == {"torch_rng", "cuda_rng"}
    assert len(saved["cuda_rng"]) == torch.cuda.device_count()
    expected = torch.rand(5)
    set_rng_state(saved)
    assert torch.equal(torch.rand(5), expected)
    set_rng_state({"torch_rng": saved["torch_rng"]})  # a checkpoint written before GPU streams
    assert torch.equal(torch.rand(5), expected)
