"""Benchmark of the knn baseline at the paper protocol's scale (~1.15 M training windows)."""

import time

import numpy as np


def bench_knn(*, train: int = 1_150_000, queries: int = 2048, threads: int = 2) -> dict:
    """Fit and query times of exact 1-NN over random windows; GFLOP/s of the distance GEMMs."""
    import torch

    from ecg2abp.models.knn import build_knn  # imported before timing: sklearn is slow to load

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(train, 88)).astype(np.float32)
    y = rng.normal(size=train)
    q = rng.normal(size=(queries, 88)).astype(np.float32)
    started = time.perf_counter()
    model = build_knn().fit(x, y)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    model.predict(q)
    predict_s = time.perf_counter() - started
    return {
        "train_windows": train,
        "queries": queries,
        "threads": threads,
        "fit_s": round(fit_s, 2),
        "predict_s": round(predict_s, 2),
        "queries_per_s": round(queries / predict_s, 1),
        "gflop_per_s": round(2 * 88 * train * queries / predict_s / 1e9, 1),
    }
