"""Classical baselines: learning, R-peak features, safe save/load, refused input and files."""

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import skops.io
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_limits

from ecg2abp.errors import InputError
from ecg2abp.models import build
from ecg2abp.models.classical import GBMWindowModel, RidgeWindowModel, end_slope, last_r_peak

SMALL_GBM = {"max_iter": 40}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """OpenMP boosting on a shared, busy 2-core machine is many times faster on one thread."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def problem_2d(learnable_problem):
    """The shared problem with windows as [n, window] rows."""
    p = learnable_problem
    return p.x_train[:, 0], p.y_train, p.x_test[:, 0], p.y_test


@pytest.fixture(scope="module")
def fitted(problem_2d) -> dict:
    x_train, y_train, _, _ = problem_2d
    return {
        "ridge": build("ridge", alpha=1.0).fit(x_train, y_train),
        "gbm": build("gbm", **SMALL_GBM).fit(x_train, y_train),
    }


@pytest.mark.parametrize("name", ["ridge", "gbm"])
def test_beats_the_training_mean(name: str, fitted: dict, problem_2d) -> None:
    _, y_train, x_test, y_test = problem_2d
    predicted = fitted[name].predict(x_test)
    assert predicted.shape == y_test.shape
    assert np.mean((predicted - y_test) ** 2) < 0.6 * np.mean((y_train.mean() - y_test) ** 2)


def test_gbm_features_help_beyond_the_raw_window(fitted: dict, problem_2d) -> None:
    """The target is spike height plus time since the spike: timing features make it easy."""
    _, _, x_test, y_test = problem_2d
    gbm_mse = np.mean((fitted["gbm"].predict(x_test) - y_test) ** 2)
    ridge_mse = np.mean((fitted["ridge"].predict(x_test) - y_test) ** 2)
    assert gbm_mse < 0.25 * ridge_mse


def test_ridge_predicts_like_scikit_learn(fitted: dict, problem_2d) -> None:
    x_train, y_train, x_test, _ = problem_2d
    reference = Ridge(alpha=1.0).fit(x_train.astype(np.float64), y_train).predict(x_test)
    np.testing.assert_allclose(fitted["ridge"].predict(x_test), reference, atol=1e-5)


def spike_windows(spikes: list[dict[int, float]], window: int = 40) -> np.ndarray:
    """Windows at 0.1 with spikes {position: height}."""
    x = np.full((len(spikes), window), 0.1)
    for row, heights in enumerate(spikes):
        for position, height in heights.items():
            x[row, position] = height
    return x


def test_last_r_peak_time_and_height() -> None:
    x = spike_windows([{5: 1.5, 20: 2.0}, {12: 1.0}, {}, {39: 1.0}, {10: 1.0, 39: 1.2}])
    since, height = last_r_peak(x)
    np.testing.assert_array_equal(since[:2], [39 - 20, 39 - 12])
    np.testing.assert_allclose(height[:2], [2.0 - 0.1, 1.0 - 0.1])
    assert np.isnan(since[2]) and np.isnan(height[2])  # flat window: no peak
    assert np.isnan(since[3])  # a maximum on the last sample is not yet a confirmed peak
    assert since[4] == 39 - 10


def test_small_bumps_are_not_r_peaks() -> None:
    since, _ = last_r_peak(spike_windows([{8: 2.0, 30: 0.5}]))
    assert since[0] == 39 - 8


def test_end_slope_of_a_ramp() -> None:
    t = np.arange(30.0)
    x = np.stack([2.0 * t, -0.5 * t + 3, np.r_[np.zeros(22), np.arange(8.0)]])
    np.testing.assert_allclose(end_slope(x, 8), [2.0, -0.5, 1.0])


@pytest.mark.parametrize(("name", "cls"), [("ridge", RidgeWindowModel), ("gbm", GBMWindowModel)])
def test_save_load_round_trip(name: str, cls: type, fitted: dict, problem_2d, tmp_path) -> None:
    _, _, x_test, _ = problem_2d
    path = tmp_path / "nested" / f"{name}.model"
    fitted[name].save(path)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind
    loaded = cls.load(path)
    assert loaded.kind == "classical" and loaded.window == fitted[name].window
    np.testing.assert_array_equal(loaded.predict(x_test), fitted[name].predict(x_test))


def write_npz(path: Path, **arrays) -> Path:
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    return path


def tampered_ridge_files(tmp_path: Path, fitted_ridge: RidgeWindowModel) -> list[Path]:
    good = tmp_path / "good.npz"
    fitted_ridge.save(good)
    arrays = dict(np.load(good))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a model at all")
    pickled = write_npz(tmp_path / "pickled.npz", **{**arrays, "coef": np.array([{"a": 1}])})
    short = write_npz(tmp_path / "short.npz", **{**arrays, "coef": arrays["coef"][:-1]})
    renamed = write_npz(tmp_path / "renamed.npz", **{**arrays, "format": np.array("other")})
    missing = write_npz(tmp_path / "missing.npz", coef=arrays["coef"])
    return [garbage, pickled, short, renamed, missing, tmp_path / "absent.npz"]


def test_tampered_ridge_files_are_refused(fitted: dict, tmp_path) -> None:
    for path in tampered_ridge_files(tmp_path, fitted["ridge"]):
        with pytest.raises(InputError, match=re.escape(str(path))):
            RidgeWindowModel.load(path)


def test_tampered_gbm_files_are_refused(fitted: dict, tmp_path) -> None:
    gbm = fitted["gbm"]
    payload = {"format": "ecg2abp-gbm-1", "window": 88, "slope_span": 8, "estimator": gbm.estimator}
    hooked = tmp_path / "hooked.skops"
    skops.io.dump({**payload, "hook": os.system}, hooked)
    other_estimator = tmp_path / "ridge-inside.skops"
    skops.io.dump({**payload, "estimator": Ridge().fit(np.eye(3), np.ones(3))}, other_estimator)
    wrong_window = tmp_path / "wrong-window.skops"
    skops.io.dump({**payload, "window": 50}, wrong_window)
    garbage = tmp_path / "garbage.skops"
    garbage.write_bytes(b"PK\x03\x04 truncated")
    ridge_file = tmp_path / "ridge.npz"
    fitted["ridge"].save(ridge_file)
    with pytest.raises(InputError, match=r"hooked\.skops: .*[Uu]ntrusted"):
        GBMWindowModel.load(hooked)
    for path in [other_estimator, wrong_window, garbage, ridge_file, tmp_path / "absent.skops"]:
        with pytest.raises(InputError, match=re.escape(str(path))):
            GBMWindowModel.load(path)


@pytest.mark.parametrize("name", ["ridge", "gbm"])
def test_bad_windows_are_refused(name: str, fitted: dict) -> None:
    model = fitted[name]
    with pytest.raises(InputError, match="shape"):
        model.predict(np.zeros((4, 87)))
    with pytest.raises(InputError, match="shape"):
        model.predict(np.zeros((4, 1, 88)))
    with pytest.raises(InputError, match="1 non-finite"):
        model.predict(np.r_[np.zeros(87), np.nan][None, :])
    with pytest.raises(InputError, match="targets"):
        build(name).fit(np.zeros((4, 88)), np.zeros(3))


@pytest.mark.parametrize("name", ["ridge", "gbm"])
def test_unfitted_model_cannot_predict_or_save(name: str, tmp_path) -> None:
    model = build(name)
    with pytest.raises(RuntimeError, match="fit"):
        model.predict(np.zeros((1, 88)))
    with pytest.raises(RuntimeError, match="fit"):
        model.save(tmp_path / "model")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("ridge", {"alpha": -1.0}),
        ("ridge", {"window": 0}),
        ("gbm", {"max_iter": 0}),
        ("gbm", {"learning_rate": 0.0}),
        ("gbm", {"slope_span": 1}),
        ("gbm", {"window": 5}),  # shorter than the default slope span of 8
    ],
)
def test_impossible_settings_are_refused(name: str, settings: dict) -> None:
    with pytest.raises(InputError, match=f"model {name}: "):
        build(name, **settings)


def spiky_record(n: int, peaks: np.ndarray) -> np.ndarray:
    """A flat ECG with unit spikes at `peaks` (one sample each)."""
    ecg = np.zeros(n)
    ecg[peaks] = 1.0
    return ecg


def test_template_is_the_mean_target_per_sample_since_the_last_r_peak(tmp_path: Path) -> None:
    """On a record with known R peaks, each bin is the hand-computed mean of its windows."""
    window, n = 12, 400
    rng = np.random.default_rng(5)
    peaks = np.cumsum(rng.integers(5, 9, size=80))
    peaks = peaks[peaks < n - 1]
    ecg, abp = spiky_record(n, peaks), rng.normal(90.0, 15.0, size=n)
    starts = np.arange(n - window + 1)
    x = np.stack([ecg[s : s + window] for s in starts])
    y = abp[starts + window - 1]
    model = build("template", window=window).fit(x, y)
    # by hand: the last known peak strictly before a window's last sample, inside its window
    by_bin: dict[int, list[float]] = {}
    for start, target in zip(starts, y, strict=True):
        end = start + window - 1
        inside = peaks[(peaks > start) & (peaks < end)]
        since = int(end - inside[-1]) if len(inside) else window
        by_bin.setdefault(since, []).append(float(target))
    expected = np.full(window + 1, y.mean())
    for since, targets in by_bin.items():
        expected[since] = np.mean(targets)
    assert model.beat == pytest.approx(expected, rel=1e-12)
    predicted = model.predict(x)
    assert predicted == pytest.approx([expected[b] for b in model.bins(x)])
    model.save(tmp_path / "template.npz")
    loaded = type(model).load(tmp_path / "template.npz")
    assert np.array_equal(loaded.predict(x), predicted)


def test_template_refuses_a_file_of_another_model(tmp_path: Path, fitted: dict) -> None:
    fitted["ridge"].save(tmp_path / "ridge.npz")
    with pytest.raises(InputError, match="not a template model file"):
        build("template").load(tmp_path / "ridge.npz")
