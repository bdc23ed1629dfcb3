"""Nearest-neighbour baseline: the ABP target of the training window whose ECG is nearest.

It learns nothing about physiology, so whatever it scores comes from near-copies of test
windows on the training side: the leak detector of `leak_gap`. Exact search by blocked
matrix products (torch's threaded GEMM): for ~1 M training windows of 88 samples a k-d or
ball tree does no better than brute force (88 dimensions), and blocks keep memory bounded.
"""

import math
from pathlib import Path
from typing import Self

import numpy as np
import torch

from ecg2abp.errors import InputError
from ecg2abp.models.classical import (
    UNREADABLE,
    as_targets,
    as_windows,
    check_integer,
    load_arrays,
    not_fitted,
    one_line,
    save_arrays,
)

KNN_FORMAT = "ecg2abp-knn-1"
QUERY_BLOCK = 1024  # queries per distance block
TRAIN_BLOCK = 32768  # training windows per distance block: 1024 × 32768 float32 = 128 MiB


class KNNWindowModel:
    """Mean target of the k training windows nearest in Euclidean distance."""

    kind = "classical"
    name = "knn"
    every_window = True  # it memorises: fitted on every training window, never a sample

    def __init__(self, window: int, k: int):
        self.window = window
        self.k = k
        self.x: torch.Tensor | None = None  # [n, window] float32
        self.y: np.ndarray | None = None  # [n] float64
        self._norms: torch.Tensor | None = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> Self:
        x = as_windows(x, self.window, self.name)
        self._remember(np.asarray(x, np.float32), as_targets(y, len(x), self.name))
        return self

    def _remember(self, x: np.ndarray, y: np.ndarray) -> None:
        if len(x) < self.k:
            raise InputError(f"model knn: k = {self.k} but only {len(x)} training windows")
        self.x = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        self.y = np.asarray(y, np.float64)
        self._norms = (self.x.double() ** 2).sum(1).float()

    def neighbours(self, x: np.ndarray) -> np.ndarray:
        """Indices [n, k] of the nearest training windows, nearest first."""
        if self.x is None:
            raise not_fitted(self.name)
        queries = torch.from_numpy(np.asarray(as_windows(x, self.window, self.name), np.float32))
        found = np.empty((len(queries), self.k), dtype=np.int64)
        with torch.no_grad():
            for first in range(0, len(queries), QUERY_BLOCK):
                block = queries[first : first + QUERY_BLOCK]
                found[first : first + len(block)] = self._nearest(block).numpy()
        return found

    def _nearest(self, queries: torch.Tensor) -> torch.Tensor:
        """|t|² − 2 q·t per training block (|q|² is the same for every t), best k kept."""
        best_distance = torch.full((len(queries), 0), math.inf)
        best_index = torch.zeros((len(queries), 0), dtype=torch.int64)
        for first in range(0, len(self.x), TRAIN_BLOCK):
            train = self.x[first : first + TRAIN_BLOCK]
            norms = self._norms[first : first + len(train)]
            distance = torch.addmm(norms, queries, train.T, alpha=-2.0)  # one fused pass
            if self.k == 1:
                distance, index = distance.min(1, keepdim=True)  # cheaper than a top-k
            else:
                distance, index = torch.topk(distance, min(self.k, len(train)), 1, largest=False)
            distance = torch.cat([best_distance, distance], 1)
            index = torch.cat([best_index, index + first], 1)
            best_distance, chosen = torch.topk(
                distance, min(self.k, distance.shape[1]), 1, largest=False
            )
            best_index = torch.gather(index, 1, chosen)
        return best_index

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.y[self.neighbours(x)].mean(axis=1)

    def save(self, path: Path) -> None:
        if self.x is None:
            raise not_fitted(self.name)
        arrays = {
            "format": np.array(KNN_FORMAT),
            "window": np.array(self.window),
            "k": np.array(self.k),
            "x": self.x.numpy(),
            "y": self.y,
        }
        save_arrays(path, arrays)

    @classmethod
    def load(cls, path: Path) -> Self:
        saved = load_arrays(path, KNN_FORMAT, "knn")
        try:
            window, k = int(saved["window"]), int(saved["k"])
            x, y = saved["x"], saved["y"]
        except UNREADABLE as error:
            raise InputError(f"{path}: not a knn model file ({one_line(error)})") from None
        if x.ndim != 2 or x.shape[1] != window or y.shape != (len(x),):
            raise InputError(f"{path}: knn windows and targets are malformed")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise InputError(f"{path}: knn windows or targets are not finite")
        model = cls(window, k)
        model._remember(x, y)
        return model


def build_knn(*, window: int = 88, width: float = 1.0, k: int = 1) -> KNNWindowModel:
    """k nearest training windows; `width` is accepted for the common interface and ignored."""
    check_integer("knn", "window", window, 1)
    check_integer("knn", "k", k, 1)
    return KNNWindowModel(window, k)
