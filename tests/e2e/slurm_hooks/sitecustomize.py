"""Test hook for tests/e2e/test_slurm.py, active only in processes that inherit
ECG2ABP_TEST_PAUSE=<folder> and run a workflow's train script.

The first deep training that reaches epoch 1 batch 2 writes <folder>/paused and holds that
batch until SIGTERM has arrived (the test's scancel), so the job is cancelled at a known point
of training, not at a moment that depends on the machine's speed. Later runs pass through.
"""

import os
import sys

PAUSE = os.environ.get("ECG2ABP_TEST_PAUSE")

if PAUSE and sys.argv and sys.argv[0].endswith("train.py"):
    import signal
    import time
    from pathlib import Path

    from ecg2abp.training import jobs

    original_feeds = jobs._feeds

    def stop_requested() -> bool:
        handler = signal.getsignal(signal.SIGTERM)
        return bool(getattr(getattr(handler, "__self__", None), "requested", False))

    def feeds(*args, **kwargs):
        train_feed, val_feed = original_feeds(*args, **kwargs)
        batches = train_feed.batches

        def paused(epoch: int, start_batch: int = 0):
            for index, item in enumerate(batches(epoch, start_batch), start_batch):
                marker = Path(PAUSE) / "paused"
                if (epoch, index) == (1, 2) and not marker.exists():
                    marker.write_text(str(os.getpid()))
                    deadline = time.monotonic() + 300
                    while not stop_requested() and time.monotonic() < deadline:
                        time.sleep(0.1)
                yield item

        train_feed.batches = paused
        return train_feed, val_feed

    jobs._feeds = feeds
