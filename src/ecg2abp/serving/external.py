"""External evaluation: a trained model scored on recordings from elsewhere that carry ABP.

Records are cleaned as ingest cleans them (the model's stored cleaning settings, ECG and ABP
rules), each kept segment is band-passed from its start, every full window is predicted, and
the same LevelMetrics as the pipeline's scores it. The naive floor is the training means
stored in the model (ABP at the point level; the training beats' mean SBP, DBP and MAP at the
beat levels), scored on exactly the samples the model predicted. When cleaning leaves
no window to score, that is an error naming the counts, not an empty metrics.json.
"""

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from ecg2abp.atomic import refuse_overwriting, write_json
from ecg2abp.data.cleaning import REASONS, clean_record, filter_ecg_segment, label_ecg
from ecg2abp.errors import InputError
from ecg2abp.evaluation.metrics import LevelMetrics
from ecg2abp.evaluation.predictions import PredictionWriter
from ecg2abp.serving.ensemble import load_model
from ecg2abp.serving.inputs import UNUSABLE_ECG
from ecg2abp.serving.predict import InputOptions, input_files, model_inputs

log = logging.getLogger("ecg2abp.serving")


def evaluate_external(
    model_path: Path,
    input_path: Path,
    out_dir: Path,
    *,
    options: InputOptions | None = None,
    dataset: str | None = None,
    threads: int | None = None,
    batch_size: int = 1024,
) -> dict:
    """Write predictions.parquet and metrics.json (model and naive floor) into `out_dir`.

    `dataset` names the data set in the pooled table (default: the input's name)."""
    started = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    model = load_model(Path(model_path), torch.device("cpu"))
    outputs = [Path(out_dir) / "predictions.parquet", Path(out_dir) / "metrics.json"]
    refuse_overwriting(outputs, [*model.files, *input_files(Path(input_path))])
    settings, fs, window = model.cleaning, model.fs, model.window
    if not math.isfinite(model.train_abp_mean):
        log.warning(
            "%s: holds no training ABP mean, so no naive floor (an import-original without "
            "--split and --fold)",
            model_path,
        )
    beat_means = model.train_beat_means
    if beat_means is None:
        log.warning(
            "%s: holds no training beat means, so the naive floor's SBP/DBP/MAP are its flat "
            "line's (a model file written before they were stored: train it again)",
            model_path,
        )
    scored, floor = LevelMetrics(fs), LevelMetrics(fs)
    removed = dict.fromkeys(REASONS, 0)
    n_records = n_samples = n_predicted = 0
    writer = PredictionWriter(Path(out_dir) / "predictions.parquet")
    ok = False
    try:
        for record in model_inputs(model, Path(input_path), options or InputOptions()):
            abp = record.abp()  # cleaning and scoring take the whole record
            if abp is None:
                raise InputError(f"{input_path}: record {record.record_id} has no ABP to score")
            whole = record.ecg()
            n_records += 1
            n_samples += len(whole)
            cleaned = clean_record(whole, abp, fs, settings)
            labels = label_ecg(whole, fs, settings)
            blamed = np.isin(labels, [REASONS.index(reason) for reason in UNUSABLE_ECG])
            record.check_lead(int(np.count_nonzero(blamed)), len(whole))
            removed = {reason: removed[reason] + cleaned.removed[reason] for reason in REASONS}
            for start, stop in cleaned.segments:
                ecg = filter_ecg_segment(whole[start:stop], fs, settings)
                true = abp[start:stop]
                predicted = np.full(len(true), np.nan)
                if len(ecg) >= window:
                    windows = sliding_window_view(ecg, window)
                    mean, _ = model.predict(record.record_id, windows, batch_size)
                    ends = np.arange(len(windows)) + window - 1
                    predicted[ends] = mean
                    n_predicted += len(ends)
                    samples = record.source_samples(start + ends)
                    writer.add(record.record_id, samples, true[ends], mean)
                scored.update_segment(record.record_id, true, predicted)
                naive = np.where(np.isnan(predicted), np.nan, model.train_abp_mean)
                floor.update_segment(record.record_id, true, naive, beat_means)
        if n_records == 0:
            raise InputError(f"{input_path}: holds no recordings")
        if n_predicted == 0:
            raise InputError(f"{input_path}: {nothing_to_score(n_records, n_samples, removed)}")
        ok = True
    finally:
        writer.close(ok)
    meta = model.meta
    result = {
        **model.describe(),
        "dataset": dataset or Path(input_path).stem,
        "input": str(input_path),
        "kind": meta.get("kind"),
        "fold": meta.get("fold") if len(model.members) == 1 else -1,
        "records": n_records,
        "samples": n_samples,
        "removed": removed,
        "naive_mean": model.train_abp_mean,
        "naive_beat_means": beat_means,
        "seconds": round(time.perf_counter() - started, 3),
        "levels": scored.result(),
        "state": scored.to_dict(),
        "naive": {"levels": floor.result(), "state": floor.to_dict()},
    }
    write_json(Path(out_dir) / "metrics.json", result)
    return result


def nothing_to_score(records: int, samples: int, removed: dict[str, int]) -> str:
    """Why nothing was scored, with the counts: samples read and removed per reason."""
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in removed.items() if n) or "none"
    return (
        f"cleaning left nothing to score: {samples:,} samples read from {records} record(s), "
        f"removed: {reasons} (no kept stretch holds a full window)"
    )
