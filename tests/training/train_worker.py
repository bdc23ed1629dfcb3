"""Run `train_variant` in its own process, for the kill and SIGTERM tests.

Usage: python train_worker.py [--signal KILL|TERM --phase train|val --epoch E --batch B]
                              CONFIG_JSON VARIANT SPLIT OUT_DIR SHARD [SHARD ...]

With --signal the worker sends itself that signal when the loop is handed batch B of epoch E
(`train`: that training batch; `val`: batch B of that epoch's validation pass): the
interruption happens at a named point of the run, never at a time that depends on the machine.
"""

import argparse
import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from ecg2abp.folds.feed import WindowFeed
from ecg2abp.training import jobs
from ecg2abp.training.jobs import train_variant


@contextmanager
def signal_at(signum: int, phase: str, epoch: int, batch: int) -> Iterator[None]:
    """While active, training sends itself `signum` when handed batch `batch` of `epoch`'s
    training (`phase="train"`) or validation (`phase="val"`) pass."""
    original = jobs._feeds

    def feeds(*args, **kwargs) -> tuple[WindowFeed, WindowFeed]:
        train_feed, val_feed = original(*args, **kwargs)
        train_batches, val_batches = train_feed.batches, val_feed.batches
        current = {"epoch": -1}  # the epoch being trained, hence validated next

        def training(at_epoch: int, start_batch: int = 0):
            current["epoch"] = at_epoch
            for index, item in enumerate(train_batches(at_epoch, start_batch), start_batch):
                if phase == "train" and (at_epoch, index) == (epoch, batch):
                    os.kill(os.getpid(), signum)
                yield item

        def validation(at_epoch: int, start_batch: int = 0):
            for index, item in enumerate(val_batches(at_epoch, start_batch), start_batch):
                if phase == "val" and (current["epoch"], index) == (epoch, batch):
                    os.kill(os.getpid(), signum)
                yield item

        train_feed.batches, val_feed.batches = training, validation
        return train_feed, val_feed

    jobs._feeds = feeds
    try:
        yield
    finally:
        jobs._feeds = original


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--signal", choices=["KILL", "TERM"])
    parser.add_argument("--phase", choices=["train", "val"], default="train")
    parser.add_argument("--epoch", type=int, default=0)
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("config")
    parser.add_argument("variant")
    parser.add_argument("split", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("shards", type=Path, nargs="+")
    args = parser.parse_args(argv)
    config = json.loads(Path(args.config).read_text())
    hook = (
        signal_at(getattr(signal, f"SIG{args.signal}"), args.phase, args.epoch, args.batch)
        if args.signal
        else nullcontext()
    )
    with hook:
        train_variant(args.variant, config, args.split, args.shards, 0, args.out_dir)


if __name__ == "__main__":
    main()
