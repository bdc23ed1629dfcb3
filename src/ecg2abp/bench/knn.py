"""Benchmark of the knn baseline at the paper protocol's scale (~1.15 M training windows).

The windows are realistic, not noise: synthetic records of the full-size part's lengths, the
default config's causal ECG band-pass, and the `paper` protocol's draw (each stride-1 window
with probability `fraction`, then 60/20/20 train/validation/test), z-scored by the training
windows' ECG. A test window's nearest training window is of its own record (what `paper`
leaks) as often as under `paper`: `own_record_share` of the output. Recall is the share of
queries whose nearest window is the exact search's; the MAEs are of predicted ABP, in mmHg.
"""

import time
from dataclasses import dataclass

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from ecg2abp.data.cleaning import CausalBandpass, CleaningSettings
from ecg2abp.data.synth import FS, FULL_SIZE_SECONDS, LENGTH_SKEW, synth_record
from ecg2abp.errors import InputError
from ecg2abp.models.knn import NPROBE, KNNWindowModel, build_knn

WINDOW = 88
SIDES = (0.6, 0.2, 0.2)  # the paper's train / validation / test shares


@dataclass(frozen=True)
class DrawnWindows:
    """One side's windows: normalised ECG [n, WINDOW], ABP target (mmHg), record and start."""

    x: np.ndarray
    y: np.ndarray
    record: np.ndarray
    start: np.ndarray


def paper_style_windows(
    train: int, fraction: float, seed: int
) -> tuple[DrawnWindows, DrawnWindows, int]:
    """Training windows (`train` or a few more: whole records) and the test windows drawn beside
    them; also how many records were made."""
    if not 0 < fraction <= 1:
        raise InputError(f"bench knn: fraction must be in (0, 1], got {fraction!r}")
    rng = np.random.default_rng(seed)
    band = CleaningSettings()  # the default config's band-pass
    shortest, longest = FULL_SIZE_SECONDS
    drawn: dict[int, list] = {0: [], 2: []}  # side → (windows, targets, record, starts) pieces
    n_train = records = 0
    while n_train < train:
        n_samples = round(FS * (shortest + (longest - shortest) * rng.random() ** LENGTH_SKEW))
        ecg, abp, _ = synth_record(np.random.default_rng([seed, records]), n_samples)
        ecg = CausalBandpass(FS, band.bandpass_hz, band.bandpass_order)(ecg)  # state per record
        starts = np.flatnonzero(rng.random(n_samples - WINDOW + 1) < fraction)
        side = rng.choice(len(SIDES), size=len(starts), p=SIDES)
        for chosen, pieces in drawn.items():
            mine = starts[side == chosen]
            windows = sliding_window_view(ecg, WINDOW)[mine]
            pieces.append((windows, abp[mine + WINDOW - 1], np.full(len(mine), records), mine))
        n_train += int(np.count_nonzero(side == 0))
        records += 1
    train_x, train_y, train_record, train_start = (
        np.concatenate(column) for column in zip(*drawn[0], strict=True)
    )
    test_x, test_y, test_record, test_start = (
        np.concatenate(column) for column in zip(*drawn[2], strict=True)
    )
    center, scale = float(train_x.mean(dtype=np.float64)), float(train_x.std(dtype=np.float64))
    return (
        DrawnWindows((train_x - center) / scale, train_y, train_record, train_start),
        DrawnWindows((test_x - center) / scale, test_y, test_record, test_start),
        records,
    )


def bench_knn(
    *,
    train: int = 1_150_000,
    queries: int = 2048,
    threads: int = 2,
    fraction: float = 0.005,
    index: str = "auto",
    nprobe: int = NPROBE,
    seed: int = 0,
) -> dict:
    """Build time, query speed and exact-neighbour recall of knn over paper-style windows."""
    if train < 1 or queries < 1:
        raise InputError(f"bench knn: train and queries must be ≥ 1, got {train}, {queries}")
    torch.set_num_threads(threads)
    started = time.perf_counter()
    known, test, records = paper_style_windows(train, fraction, seed)
    data_s = time.perf_counter() - started
    pick = np.random.default_rng(seed).permutation(len(test.y))[:queries]
    x, y = test.x[pick], test.y[pick]

    def timed(model: KNNWindowModel) -> tuple[np.ndarray, float, float]:
        """The nearest training window of each query, fit seconds and query seconds."""
        started = time.perf_counter()
        model.fit(known.x, known.y)
        fitted = time.perf_counter()
        nearest = model.neighbours(x)[:, 0]
        return nearest, fitted - started, time.perf_counter() - fitted

    model = build_knn(index=index, nprobe=nprobe)
    found, build_s, query_s = timed(model)
    exact, exact_s = found, query_s
    if model.search == "ivf":
        exact, _, exact_s = timed(build_knn(index="exact"))
    own_record = known.record[exact] == test.record[pick]
    hit = found == exact
    test_windows = round(train * SIDES[2] / SIDES[0])
    return {
        "train_windows": len(known.y),
        "records": records,
        "fraction": fraction,
        "queries": len(y),
        "threads": threads,
        "index": model.search,
        "cells": None if model.centroids is None else len(model.centroids),
        "nprobe": nprobe if model.search == "ivf" else None,
        "data_s": round(data_s, 1),
        "build_s": round(build_s, 2),
        "queries_per_s": round(len(y) / query_s, 1),
        "test_windows": test_windows,
        "projected_test_s": round(test_windows * query_s / len(y), 1),
        "exact_queries_per_s": round(len(y) / exact_s, 1),
        "exact_gflop_per_s": round(2 * WINDOW * len(known.y) * len(y) / exact_s / 1e9, 1),
        "recall_at_1": round(float(hit.mean()), 4),
        "own_record_share": round(float(own_record.mean()), 4),
        "recall_at_1_own_record": (
            round(float(hit[own_record].mean()), 4) if own_record.any() else None
        ),
        "mae_exact": round(float(np.abs(known.y[exact] - y).mean()), 3),
        "mae_index": round(float(np.abs(known.y[found] - y).mean()), 3),
        "mean_prediction_change": round(float(np.abs(known.y[found] - known.y[exact]).mean()), 3),
    }
