"""Nearest-neighbour baseline: the ABP target of the training window whose ECG is nearest.

It learns nothing about physiology, so whatever it scores comes from what the training side
gives away about the test windows: the leak detector of `leak_gap`. (On synthetic records the
nearest window is seldom an overlapping one, whose R peak sits samples off, but the same phase
of another beat: of the test window's own record for 14 % of them at the paper's draw.)

Two searches, chosen by the `index` option (`auto`: exact below IVF_FROM training windows):

- `exact`: blocked matrix products (torch's threaded GEMM, faster here than faiss's flat
  index). A k-d or ball tree does no better than brute force in 88 dimensions, and blocks keep
  memory bounded. Deterministic, and quick for the tests and the demo, but linear in the
  training windows: too slow for the paper's 1.15 M (half an hour for its test set on 2 cores).
- `ivf`: faiss's inverted file. k-means on a sample cuts the training windows into 2·√n cells;
  a query is compared with the windows of its `nprobe` nearest cells only. Over paper-style
  windows it found the exact nearest window for every sampled query, about 30× faster than
  exact search (`ecg2abp bench knn`; docs/performance.md gives the figures). An inverted file
  rather than a graph (HNSW, not measured): its build is a few k-means iterations on a sample
  and one assignment pass, and its state is two plain arrays (centroids, the cell of each window)
  that save with the rest and rebuild the same index at load, with no faiss binary to parse.
"""

import math
from pathlib import Path
from typing import Self

import faiss
import numpy as np
import torch
from faiss.contrib.ivf_tools import add_preassigned

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

KNN_FORMAT = "ecg2abp-knn-1"  # an ivf model adds `nprobe`, `centroids` and `cells`
INDEXES = ("auto", "exact", "ivf")
IVF_FROM = 100_000  # `auto` builds an ivf index from this many training windows
CELLS_PER_ROOT = 2  # ivf cells: 2 × √(training windows)
MIN_PER_CELL = 39  # training windows per cell at least (below it faiss's k-means warns)
KMEANS_PER_CELL = 32  # k-means sample: this many windows per cell
KMEANS_ITERATIONS = 10
NPROBE = 16  # cells searched per query by default
QUERY_BLOCK = 1024  # queries per distance block
TRAIN_BLOCK = 32768  # training windows per distance block: 1024 × 32768 float32 = 128 MiB


class KNNWindowModel:
    """Mean target of the k training windows nearest in Euclidean distance."""

    kind = "classical"
    name = "knn"
    every_window = True  # it memorises: fitted on every training window, never a sample

    def __init__(self, window: int, k: int, index: str, nprobe: int):
        self.window = window
        self.k = k
        self.index = index
        self.nprobe = nprobe
        self.x: torch.Tensor | None = None  # [n, window] float32
        self.y: np.ndarray | None = None  # [n] float64
        self._norms: torch.Tensor | None = None
        self.centroids: np.ndarray | None = None  # ivf: [cells, window] float32
        self.cells: np.ndarray | None = None  # ivf: [n] int64, the cell of each training window
        self._ivf: faiss.IndexIVFFlat | None = None  # built from centroids and cells

    @property
    def search(self) -> str:
        """How the fitted model searches: "exact" or "ivf"."""
        return "exact" if self._ivf is None else "ivf"

    def fit(self, x: np.ndarray, y: np.ndarray) -> Self:
        x = np.ascontiguousarray(as_windows(x, self.window, self.name), np.float32)
        self._remember(x, as_targets(y, len(x), self.name))
        if self.index == "ivf" or (self.index == "auto" and len(x) >= IVF_FROM):
            self.centroids, self.cells = _partition(x)
            self._ivf = _ivf_index(x, self.centroids, self.cells)
        return self

    def _remember(self, x: np.ndarray, y: np.ndarray) -> None:
        if len(x) < self.k:
            raise InputError(f"model knn: k = {self.k} but only {len(x)} training windows")
        self.x = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        self.y = np.asarray(y, np.float64)
        self._norms = torch.cat(  # in float64 a block at a time: no full-size double copy
            [(block.double() ** 2).sum(1).float() for block in self.x.split(TRAIN_BLOCK)]
        )

    def neighbours(self, x: np.ndarray) -> np.ndarray:
        """Indices [n, k] of the nearest training windows, nearest first."""
        if self.x is None:
            raise not_fitted(self.name)
        queries = np.ascontiguousarray(as_windows(x, self.window, self.name), np.float32)
        if self._ivf is not None:
            return self._search_cells(queries)
        queries = torch.from_numpy(queries)
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

    def _search_cells(self, queries: np.ndarray) -> np.ndarray:
        """The k nearest among the windows of each query's `nprobe` nearest cells."""
        faiss.omp_set_num_threads(torch.get_num_threads())  # the job's thread count
        self._ivf.nprobe = min(self.nprobe, self._ivf.nlist)
        found = self._ivf.search(queries, self.k)[1]
        short = np.flatnonzero((found < 0).any(axis=1))  # fewer than k windows in those cells
        if len(short):
            self._ivf.nprobe = self._ivf.nlist  # every cell: exact for those few queries
            found[short] = self._ivf.search(queries[short], self.k)[1]
        return found

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
        if self._ivf is not None:
            arrays |= {
                "nprobe": np.array(self.nprobe),
                "centroids": self.centroids,
                "cells": self.cells,
            }
        save_arrays(path, arrays)

    @classmethod
    def load(cls, path: Path) -> Self:
        saved = load_arrays(path, KNN_FORMAT, "knn")
        try:
            window, k = int(saved["window"]), int(saved["k"])
            x, y = saved["x"], saved["y"]
            ivf = "centroids" in saved
            nprobe = int(saved["nprobe"]) if ivf else 1
        except UNREADABLE as error:
            raise InputError(f"{path}: not a knn model file ({one_line(error)})") from None
        if x.ndim != 2 or x.shape[1] != window or y.shape != (len(x),):
            raise InputError(f"{path}: knn windows and targets are malformed")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise InputError(f"{path}: knn windows or targets are not finite")
        model = cls(window, k, "ivf" if ivf else "exact", nprobe)
        model._remember(x, y)
        if ivf:
            model.centroids, model.cells = _checked_cells(path, saved, len(x), window, nprobe)
            model._ivf = _ivf_index(model.x.numpy(), model.centroids, model.cells)
        return model


def _partition(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """k-means centroids [cells, window] on a sample of `x`, and the nearest one to each row."""
    faiss.omp_set_num_threads(torch.get_num_threads())
    n_cells = max(1, min(round(CELLS_PER_ROOT * math.sqrt(len(x))), len(x) // MIN_PER_CELL))
    kmeans = faiss.Kmeans(
        x.shape[1],
        n_cells,
        niter=KMEANS_ITERATIONS,
        max_points_per_centroid=KMEANS_PER_CELL,
        seed=0,
    )
    kmeans.train(x)  # samples KMEANS_PER_CELL × cells rows with its own fixed seed
    cells = kmeans.index.search(x, 1)[1][:, 0]
    return kmeans.centroids, cells.astype(np.int64)


def _ivf_index(x: np.ndarray, centroids: np.ndarray, cells: np.ndarray) -> faiss.IndexIVFFlat:
    """An inverted-file index holding row i of `x` under id i in cell `cells[i]`."""
    quantiser = faiss.IndexFlatL2(x.shape[1])
    quantiser.add(centroids)
    index = faiss.IndexIVFFlat(quantiser, x.shape[1], len(centroids))  # keeps a reference
    add_preassigned(index, x, cells)
    return index


def _checked_cells(
    path: Path, saved: dict[str, np.ndarray], n: int, window: int, nprobe: int
) -> tuple[np.ndarray, np.ndarray]:
    """The saved centroids and cells, or an InputError naming the file."""
    centroids, cells = saved["centroids"], saved["cells"]
    if centroids.ndim != 2 or centroids.shape[1] != window or len(centroids) == 0:
        raise InputError(f"{path}: knn cell centroids are malformed")
    if not np.isfinite(centroids).all():
        raise InputError(f"{path}: knn cell centroids are not finite")
    if cells.shape != (n,) or not np.issubdtype(cells.dtype, np.integer):
        raise InputError(f"{path}: knn cells are malformed")
    if cells.min() < 0 or cells.max() >= len(centroids) or nprobe < 1:
        raise InputError(f"{path}: knn cells or nprobe out of range")
    return np.ascontiguousarray(centroids, np.float32), cells.astype(np.int64)


def build_knn(
    *, window: int = 88, width: float = 1.0, k: int = 1, index: str = "auto", nprobe: int = NPROBE
) -> KNNWindowModel:
    """k nearest training windows; `width` is accepted for the common interface and ignored."""
    check_integer("knn", "window", window, 1)
    check_integer("knn", "k", k, 1)
    check_integer("knn", "nprobe", nprobe, 1)
    if index not in INDEXES:
        raise InputError(f"model knn: index must be one of {', '.join(INDEXES)}, got {index!r}")
    return KNNWindowModel(window, k, index, nprobe)
