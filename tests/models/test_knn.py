"""The nearest-neighbour baseline: exact neighbours across blocks, an inverted-file index that
finds them on leak-like data, files that load safely."""

import numpy as np
import pytest

from ecg2abp import models
from ecg2abp.bench.knn import paper_style_windows
from ecg2abp.errors import InputError
from ecg2abp.models import knn


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 12)), rng.normal(100, 15, size=n)


@pytest.mark.parametrize("k", [1, 3])
def test_predicts_the_mean_target_of_the_exact_nearest_windows(k, monkeypatch):
    monkeypatch.setattr(knn, "TRAIN_BLOCK", 37)  # many training blocks, a partial last one
    monkeypatch.setattr(knn, "QUERY_BLOCK", 16)
    x, y = data(500, 0)
    queries, _ = data(50, 1)
    model = models.build("knn", window=12, k=k).fit(x, y)
    distance = ((queries[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    nearest = np.argsort(distance, axis=1)[:, :k]
    np.testing.assert_array_equal(model.neighbours(queries), nearest)
    np.testing.assert_allclose(model.predict(queries), y[nearest].mean(1))
    # a training window is its own nearest neighbour: the leak it measures
    np.testing.assert_array_equal(models.build("knn", window=12).fit(x, y).predict(x), y)


def test_saved_model_loads_without_pickle_and_predicts_the_same(tmp_path):
    x, y = data(200, 2)
    model = models.build("knn", window=12, k=2).fit(x, y)
    path = tmp_path / "model.classical"
    model.save(path)
    loaded = knn.KNNWindowModel.load(path)
    np.testing.assert_array_equal(loaded.predict(x[:20]), model.predict(x[:20]))
    with open(path, "wb") as handle:  # a tampered file: non-finite targets
        np.savez(handle, format=np.array(knn.KNN_FORMAT), window=12, k=2, x=x, y=y * np.nan)
    with pytest.raises(InputError, match="not finite"):
        knn.KNNWindowModel.load(path)


def test_k_larger_than_the_training_set_is_refused():
    with pytest.raises(InputError, match="k = 5 but only 3"):
        models.build("knn", window=12, k=5).fit(*data(3, 0))
    with pytest.raises(InputError, match="k must be an integer"):
        models.build("knn", window=12, k=0)
    with pytest.raises(InputError, match="index must be one of auto, exact, ivf, got 'hnsw'"):
        models.build("knn", window=12, index="hnsw")


def test_auto_searches_exactly_below_ivf_from(monkeypatch):
    x, y = data(500, 3)
    assert models.build("knn", window=12).fit(x, y).search == "exact"
    monkeypatch.setattr(knn, "IVF_FROM", 500)
    assert models.build("knn", window=12).fit(x, y).search == "ivf"


def test_ivf_finds_the_exact_neighbour_where_the_paper_split_leaks():
    # paper-style windows of two records: each test window's nearest training window is of its
    # own record (the same phase of another beat), the leak knn measures
    train, test, records = paper_style_windows(3000, 0.2, seed=3)
    exact = models.build("knn", index="exact").fit(train.x, train.y).neighbours(test.x)[:, 0]
    model = models.build("knn", index="ivf").fit(train.x, train.y)
    found = model.neighbours(test.x)[:, 0]
    assert records > 1 and model.search == "ivf" and len(model.centroids) > 1
    assert np.mean(train.record[exact] == test.record) > 0.95
    assert np.mean(found == exact) > 0.99


def test_ivf_falls_back_to_every_cell_where_its_cells_hold_fewer_than_k():
    x, y = data(500, 4)
    queries, _ = data(30, 5)
    model = models.build("knn", window=12, k=100, index="ivf", nprobe=1).fit(x, y)
    exact = models.build("knn", window=12, k=100, index="exact").fit(x, y)
    assert len(x) / len(model.centroids) < 100
    found, expected = model.neighbours(queries), exact.neighbours(queries)
    np.testing.assert_array_equal(np.sort(found, 1), np.sort(expected, 1))


def test_saved_ivf_model_predicts_the_same_and_tampered_cells_are_refused(tmp_path):
    x, y = data(2000, 6)
    model = models.build("knn", window=12, k=2, index="ivf", nprobe=3).fit(x, y)
    path = tmp_path / "model.classical"
    model.save(path)
    loaded = knn.KNNWindowModel.load(path)
    assert (loaded.search, loaded.nprobe) == ("ivf", 3)
    queries, _ = data(300, 7)
    np.testing.assert_array_equal(loaded.predict(queries), model.predict(queries))
    with np.load(path) as saved:
        arrays = dict(saved)
    arrays["cells"][0] = len(arrays["centroids"])
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    with pytest.raises(InputError, match=f"^{path}: knn cells or nprobe out of range$"):
        knn.KNNWindowModel.load(path)
