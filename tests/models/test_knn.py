"""The nearest-neighbour baseline: exact neighbours across blocks, files that load safely."""

import numpy as np
import pytest

from ecg2abp import models
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
