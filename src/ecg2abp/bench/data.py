"""Benchmarks of the data stage: the window feed, the ingest of one part, the shard check."""

import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from ecg2abp.config import validate_config
from ecg2abp.data.shards import SIGNALS, Shard, open_shard, verify_shard


def _synthetic_shard(n_samples: int, window: int, seed: int) -> Shard:
    """An in-memory shard of random signals cut into segments of 1,000–75,000 samples."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1_000, 75_000, size=n_samples // 1_000)
    lengths = lengths[np.cumsum(lengths) <= n_samples]
    stops = np.cumsum(lengths)
    segments = np.stack(
        [np.arange(len(lengths)), stops - lengths, stops, np.zeros(len(lengths), np.int64)], 1
    )
    n = int(stops[-1])
    return Shard(
        path=Path("synthetic.h5"),
        ecg=rng.normal(size=n).astype(np.float32),
        abp=rng.normal(100, 20, size=n).astype(np.float32),
        ppg=np.zeros(n, np.float32),
        segments=segments,
        records=[f"synthetic/{i:04d}" for i in range(len(lengths))],
        attrs={"window": window, "stride": 1},
    )


def bench_windows(
    *,
    shard: Path | None = None,
    batch: int = 1024,
    threads: int = 1,
    mapped: bool = False,
    seconds: float = 2.0,
    window: int = 88,
    n_samples: int = 8_000_000,
    device: str = "cpu",
    resident: bool | None = None,
) -> dict:
    """Windows per second from WindowFeed at `batch`, normalisation included, delivered on
    `device` (`resident`: the feed's placement choice; None lets the feed decide)."""
    import torch

    from ecg2abp.devices import resolve_device
    from ecg2abp.folds.feed import WindowFeed
    from ecg2abp.folds.normalisation import NormStats
    from ecg2abp.folds.windows import all_windows

    torch.set_num_threads(threads)
    source = open_shard(shard, mapped=mapped) if shard else _synthetic_shard(n_samples, window, 0)
    if shard is None and mapped:
        raise ValueError("mapped needs a shard file")
    window = int(source.attrs.get("window", window))
    stats = NormStats("zscore", 0.0, 1.0, 100.0, 20.0)
    target = resolve_device(device, setting="benchmark device")
    feed = WindowFeed(
        [source],
        [all_windows(source)],
        window=window,
        stats=stats,
        batch_size=batch,
        seed=0,
        device=target,
        resident=resident,
    )
    done, epoch, started = 0, 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for x, _ in feed.batches(epoch):
            done += x.shape[0]
            if time.perf_counter() - started >= seconds:
                break
        epoch += 1
    if target.type == "cuda":
        torch.cuda.synchronize(target)
    elapsed = time.perf_counter() - started
    return {
        "benchmark": "windows",
        "windows_per_s": round(done / elapsed),
        "batch": batch,
        "threads": threads,
        "mode": "mapped" if mapped else "in_memory",
        "device": str(target),
        "placement": feed.placement,
        "window": window,
        "windows_available": feed.n_windows,
        "shard": str(shard) if shard else "synthetic (random, in memory)",
    }


def bench_verify(
    *, shard: Path | None = None, n_samples: int = 32_000_000, repeats: int = 3
) -> dict:
    """Seconds and MB/s of the fingerprint check each job makes on every shard it opens (best
    of `repeats`), on a shard file (memory-mapped, as jobs read it) or random signals."""
    source = (
        open_shard(shard, mapped=True, verify=False)
        if shard
        else _synthetic_shard(n_samples, 88, 0)
    )
    megabytes = sum(getattr(source, name).nbytes for name in SIGNALS) / 1e6
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        verify_shard(source)
        times.append(time.perf_counter() - started)
    best = min(times)
    return {
        "shard": str(shard) if shard else "random signals in memory",
        "samples": len(source.ecg),
        "megabytes": round(megabytes, 1),
        "seconds": round(best, 3),
        "mb_per_s": round(megabytes / best),
    }


def _child(task: str, part: str, config: dict, out_dir: str, queue) -> None:
    """Run one measured task in a fresh process and report seconds, samples and peak memory."""
    from ecg2abp.data import readers
    from ecg2abp.data.ingest import ingest_part

    started = time.perf_counter()
    if task == "read":
        samples = sum(len(record.ecg) for record in readers.iter_records(Path(part)))
    else:
        summary = ingest_part(
            Path(part), Path(out_dir) / "part.h5", Path(out_dir) / "part.parquet", config
        )
        samples = summary["samples"]
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put({"seconds": seconds, "samples": samples, "peak_mb": peak_kib / 1024})


def _measure(task: str, part: Path, config: dict, out_dir: str) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(task, str(part), config, out_dir, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def bench_ingest(part: Path, *, config: dict | None = None, bandpass: bool = False) -> dict:
    """Seconds to read `part` alone and to ingest it whole (read, clean, write), one core each."""
    config = validate_config(config or {})
    if not bandpass:
        config["cleaning"]["bandpass_hz"] = None
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    with tempfile.TemporaryDirectory() as out_dir:
        read = _measure("read", part, config, out_dir)
        whole = _measure("ingest", part, config, out_dir)
        shard_mb = (Path(out_dir) / "part.h5").stat().st_size / 2**20
    file_mb = part.stat().st_size / 2**20
    return {
        "benchmark": "ingest",
        "part": str(part),
        "file_mb": round(file_mb, 1),
        "samples": whole["samples"],
        "read_s": round(read["seconds"], 3),
        "ingest_s": round(whole["seconds"], 3),
        "samples_per_s": round(whole["samples"] / whole["seconds"]),
        "peak_mb": round(whole["peak_mb"], 1),
        "peak_over_file": round(whole["peak_mb"] / file_mb, 2),
        "shard_mb": round(shard_mb, 1),
        "bandpass": bandpass,
        "threads": 1,
    }
