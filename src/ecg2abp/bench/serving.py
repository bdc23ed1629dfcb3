"""`ecg2abp bench predict`: the causal prediction pipeline's speed and memory on long ECG.

Each (path, duration) runs in a fresh process on one thread with an untrained model of the given
width (speed does not depend on the weights). Input `memory` feeds synthetic ECG to the pipeline
in its chunks, so no whole recording is ever held; input `wfdb` first writes a synthetic WFDB
record of that length (at `source_fs`) and runs `predict_file` on it: the real file path with
its reading, resampling, two passes and Parquet output. Reported: predictions/s, the real-time
factor (predictions/s ÷ the model's 125 Hz: how many live patients one core follows) and the
process's peak RSS; also predictions per CPU-second of the process, which other processes
sharing the cores inflate far less than the wall-clock rate.
"""

import multiprocessing
import resource
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from queue import Empty

import numpy as np
import torch

from ecg2abp import models
from ecg2abp.data.cleaning import CleaningSettings, ecg_extremes
from ecg2abp.data.synth import synth_record, write_wfdb_lead
from ecg2abp.errors import InputError
from ecg2abp.folds.normalisation import NormStats
from ecg2abp.training.jobs import FORMAT_VERSION

PATHS = ("fp32", "bf16", "onnxruntime")
INPUTS = ("memory", "wfdb")
MODEL = "msca_cssc_unet"
FS = 125.0
WINDOW = 88
TILE_SECONDS = 60.0
CHUNK = 1 << 15


def untrained_model_file(folder: Path, width: float, precision: str) -> Path:
    """A model.pt as training writes it, with freshly initialised weights."""
    torch.manual_seed(0)
    model = models.build(MODEL, window=WINDOW, width=width)
    cleaning = {**asdict(CleaningSettings()), "window": WINDOW}
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": "deep",
        "variant": f"{MODEL}_w{width:g}",
        "model": MODEL,
        "width": width,
        "options": {},
        "window": WINDOW,
        "fs": FS,
        "precision": precision,
        "stats": NormStats("zscore", 0.0, 1.0, 90.0, 20.0).to_dict(),
        "preprocessing": {
            "bandpass_hz": cleaning["bandpass_hz"],
            "bandpass_order": cleaning["bandpass_order"],
            "cleaning": cleaning,
        },
        "protocol": "bench",
        "leaky": False,
        "fold": 0,
        "train_abp_mean": 90.0,
        "data_fingerprint": "untrained: bench",
        "state_dict": model.state_dict(),
    }
    path = folder / f"{meta['variant']}_{precision}.pt"
    torch.save(meta, path)
    return path


def _serving_model(folder: Path, path_name: str, width: float):
    from ecg2abp.serving.ensemble import load_model

    precision = "bf16" if path_name == "bf16" else "fp32"
    model_file = untrained_model_file(folder, width, precision)
    if path_name != "onnxruntime":
        return load_model(model_file)
    from ecg2abp.serving.export import export_onnx
    from ecg2abp.serving.inputs import in_memory

    tile = synth_record(np.random.default_rng(1), int(10 * FS))[0]
    check = [in_memory("bench", FS, tile)]
    onnx_file = folder / "model.onnx"
    export_onnx(model_file, onnx_file, check)
    return load_model(onnx_file)


def _run(path_name: str, width: float, seconds: float, record: str | None, queue) -> None:
    """Child process: one path over `seconds` of ECG (or the WFDB `record`); puts its result."""
    torch.set_num_threads(1)
    from ecg2abp.serving.pipeline import CausalPipeline
    from ecg2abp.serving.predict import predict_file

    with tempfile.TemporaryDirectory() as folder:
        model = _serving_model(Path(folder), path_name, width)
        tile = synth_record(np.random.default_rng(0), int(TILE_SECONDS * FS))[0]
        started, cpu_started = time.perf_counter(), time.process_time()
        if record is not None:
            out = Path(folder) / "predictions.parquet"
            predictions = predict_file(Path(folder), Path(record), out, model=model)["predicted"]
        else:
            pipeline = CausalPipeline(model, "bench", extremes=ecg_extremes(tile), batch_size=1024)
            total = int(seconds * FS)
            predictions = 0
            for first in range(0, total, CHUNK):
                n = min(CHUNK, total - first)
                positions = (first + np.arange(n)) % len(tile)
                predictions += int(np.count_nonzero(pipeline.push(tile[positions]).flag == 0))
            predictions += int(np.count_nonzero(pipeline.finish().flag == 0))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    rate = predictions / elapsed
    queue.put(
        {
            "bench": "predict",
            "path": path_name,
            "input": "memory" if record is None else "wfdb",
            "model": MODEL,
            "width": width,
            "threads": 1,
            "ecg_seconds": seconds,
            "predictions": predictions,
            "seconds": round(elapsed, 2),
            "predictions_per_s": round(rate, 1),
            "realtime_factor": round(rate / FS, 2),
            "cpu_seconds": round(cpu, 2),
            "predictions_per_cpu_s": round(predictions / cpu, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    )


def _in_child(path_name: str, width: float, seconds: float, record: Path | None = None) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    where = None if record is None else str(record)
    child = context.Process(target=_run, args=(path_name, width, seconds, where, queue))
    child.start()
    while child.is_alive() or not queue.empty():
        try:
            return queue.get(timeout=1.0)
        except Empty:
            continue
    child.join()
    raise InputError(f"bench predict: the {path_name} run failed (exit code {child.exitcode})")


def write_long_record(folder: Path, seconds: float, fs: float) -> Path:
    """A one-lead (II) WFDB record of `seconds` of synthetic ECG at `fs` (a repeated minute)."""
    tile = synth_record(np.random.default_rng(0), int(TILE_SECONDS * fs), fs)[0]
    n = int(seconds * fs)
    return write_wfdb_lead(folder, "bench", np.tile(tile, -(-n // len(tile)))[:n], fs)


def _measured(path_name: str, width: float, seconds: float, source: str, source_fs: float) -> dict:
    """One run in a fresh process, on a record written first for the `wfdb` input."""
    if source == "memory":
        return _in_child(path_name, width, seconds)
    with tempfile.TemporaryDirectory() as folder:
        record = write_long_record(Path(folder), seconds, source_fs)
        return {**_in_child(path_name, width, seconds, record), "source_fs": source_fs}


def bench_predict(
    *,
    width: float = 0.0625,
    hours: Sequence[float] = (1.0, 3.0),
    full_seconds: float = 60.0,
    paths: Sequence[str] = PATHS,
    source: str = "memory",
    source_fs: float = FS,
) -> Iterator[dict]:
    """One result per (path, duration) at `width`, then per path at full width (if asked)."""
    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        raise InputError(f"bench predict: unknown path {unknown[0]!r} (known: {', '.join(PATHS)})")
    if source not in INPUTS:
        raise InputError(f"bench predict: unknown input {source!r} (known: {', '.join(INPUTS)})")
    for path_name in paths:
        for duration in hours:
            yield _measured(path_name, width, duration * 3600.0, source, source_fs)
    if full_seconds > 0:
        for path_name in paths:
            yield _measured(path_name, 1.0, full_seconds, source, source_fs)
