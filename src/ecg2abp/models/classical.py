"""Classical baselines on ECG windows: ridge, histogram gradient boosting and the beat template.

All save to files that load without executing code: ridge and template as plain `.npz` arrays,
gbm through `skops.io` with an explicit list of trusted types (never pickle).
"""

import math
import zipfile
from pathlib import Path
from typing import Any, Self

import numpy as np
import skops.io
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge

from ecg2abp.atomic import atomic_path
from ecg2abp.errors import InputError

RIDGE_FORMAT = "ecg2abp-ridge-1"
GBM_FORMAT = "ecg2abp-gbm-1"
TEMPLATE_FORMAT = "ecg2abp-template-1"
# Types outside skops' defaults that a fitted HistGradientBoostingRegressor needs, and no more.
GBM_TRUSTED_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
R_PEAK_THRESHOLD = 0.6  # a local maximum above min + 0.6 × (max − min) of its window is an R peak
SUMMARY_FEATURES = ("since_r_peak", "r_amplitude", "mean", "std", "min", "max", "end_slope")
# Errors a malformed or tampered model file can raise while being read.
UNREADABLE = (OSError, zipfile.BadZipFile, LookupError, ValueError, TypeError, AttributeError)


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A model as a plain .npz of arrays (no pickle), written atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        np.savez(file, **arrays)


def load_arrays(path: Path, file_format: str, what: str) -> dict[str, np.ndarray]:
    """The arrays of a model saved by `save_arrays`, refused in one line if not `file_format`."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["format"]) != file_format:
                raise ValueError(f"format {str(saved['format'])!r}, not {file_format!r}")
            return {name: saved[name] for name in saved.files}
    except UNREADABLE as error:
        raise InputError(f"{path}: not a {what} model file ({one_line(error)})") from None


def check_integer(model: str, name: str, value: int, minimum: int) -> None:
    """Refuse an integer setting below `minimum` (or not an integer)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"model {model}: {name} must be an integer ≥ {minimum}, got {value!r}")


def as_windows(x: np.ndarray, window: int, model: str) -> np.ndarray:
    """`x` as a finite float array [n, window], or an InputError saying what is wrong."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if x.ndim != 2 or x.shape[1] != window or x.shape[0] == 0:
        raise InputError(f"model {model}: expected windows of shape [n, {window}], got {x.shape}")
    if not np.isfinite(x).all():
        raise InputError(f"model {model}: {np.count_nonzero(~np.isfinite(x))} non-finite samples")
    return x


def as_targets(y: np.ndarray, n: int, model: str) -> np.ndarray:
    """`y` as a finite float array [n], or an InputError."""
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (n,):
        raise InputError(f"model {model}: expected {n} targets, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise InputError(f"model {model}: {np.count_nonzero(~np.isfinite(y))} non-finite targets")
    return y


def last_r_peak(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per window: samples from the last R peak to the window's end, and its height over the median.

    A peak is a sample at or above the window's R threshold, not below its left neighbour and
    above its right one (so the last sample is never one). NaN where a window has no peak.
    """
    low, high = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    threshold = low + R_PEAK_THRESHOLD * (high - low)
    inner = x[:, 1:-1]
    is_peak = (inner >= threshold) & (inner >= x[:, :-2]) & (inner > x[:, 2:])
    found = is_peak.any(axis=1)
    peak = inner.shape[1] - np.argmax(is_peak[:, ::-1], axis=1)  # sample index in x
    since = np.where(found, x.shape[1] - 1 - peak, np.nan)
    baseline = np.median(x, axis=1)
    height = np.where(found, x[np.arange(len(x)), peak] - baseline, np.nan)
    return since, height


def end_slope(x: np.ndarray, span: int) -> np.ndarray:
    """Least-squares slope (per sample) of each window's last `span` samples."""
    t = np.arange(span) - (span - 1) / 2
    return x[:, -span:] @ t / (t @ t)


def gbm_features(x: np.ndarray, slope_span: int) -> np.ndarray:
    """The window's samples followed by the columns named in SUMMARY_FEATURES."""
    since, height = last_r_peak(x)
    summaries = [since, height, x.mean(axis=1), x.std(axis=1), x.min(axis=1), x.max(axis=1)]
    return np.column_stack([x, *summaries, end_slope(x, slope_span)])


def not_fitted(model: str) -> RuntimeError:
    return RuntimeError(f"model {model}: call fit before predict or save")


class RidgeWindowModel:
    """Ridge regression from the raw window to the ABP at its last sample."""

    kind = "classical"
    name = "ridge"
    every_window = False  # fitted on a sample of train.classical_max_windows

    def __init__(self, window: int, alpha: float):
        self.window = window
        self.alpha = alpha
        self.coef: np.ndarray | None = None
        self.intercept = 0.0

    def fit(self, x: np.ndarray, y: np.ndarray) -> Self:
        x = as_windows(x, self.window, self.name)
        regression = Ridge(alpha=self.alpha).fit(x, as_targets(y, len(x), self.name))
        self.coef = regression.coef_.astype(np.float64)
        self.intercept = float(regression.intercept_)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.coef is None:
            raise not_fitted(self.name)
        return as_windows(x, self.window, self.name).astype(np.float64) @ self.coef + self.intercept

    def save(self, path: Path) -> None:
        if self.coef is None:
            raise not_fitted(self.name)
        arrays = {
            "format": np.array(RIDGE_FORMAT),
            "window": np.array(self.window),
            "alpha": np.array(self.alpha),
            "coef": self.coef,
            "intercept": np.array(self.intercept),
        }
        save_arrays(path, arrays)

    @classmethod
    def load(cls, path: Path) -> Self:
        saved = load_arrays(path, RIDGE_FORMAT, "ridge")
        try:
            window, alpha = int(saved["window"]), float(saved["alpha"])
            coef, intercept = saved["coef"], float(saved["intercept"])
        except UNREADABLE as error:
            raise InputError(f"{path}: not a ridge model file ({one_line(error)})") from None
        if coef.shape != (window,) or not np.isfinite(coef).all() or not math.isfinite(intercept):
            raise InputError(f"{path}: ridge coefficients are malformed or not finite")
        model = cls(window, alpha)
        model.coef, model.intercept = coef.astype(np.float64), intercept
        return model


class TemplateBeatModel:
    """The mean training ABP beat against the time since the window's last R peak (a floor).

    Bin k (k samples since the last R peak found by `last_r_peak`, only the window's own
    samples) predicts the mean target of the training windows in that bin; the last bin holds
    the windows without a peak, and a bin no training window fell in predicts the mean of all.
    It draws an average beat at the training-mean level and knows nothing of pressure.
    """

    kind = "classical"
    name = "template"
    every_window = False
    record_level = True  # under `temporal`, shifted to each record's own training mean

    def __init__(self, window: int):
        self.window = window
        self.beat: np.ndarray | None = None  # [window + 1]: bins 0..window-1, then "no peak"
        self.counts: np.ndarray | None = None

    def bins(self, x: np.ndarray) -> np.ndarray:
        since, _ = last_r_peak(as_windows(x, self.window, self.name))
        return np.where(np.isnan(since), self.window, np.nan_to_num(since)).astype(np.int64)

    def fit(self, x: np.ndarray, y: np.ndarray) -> Self:
        bins = self.bins(x)
        y = as_targets(y, len(bins), self.name)
        counts = np.bincount(bins, minlength=self.window + 1)
        sums = np.bincount(bins, weights=y, minlength=self.window + 1)
        self.beat = np.where(counts > 0, sums / np.maximum(counts, 1), y.mean())
        self.counts = counts
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.beat is None:
            raise not_fitted(self.name)
        return self.beat[self.bins(x)]

    def save(self, path: Path) -> None:
        if self.beat is None or self.counts is None:
            raise not_fitted(self.name)
        arrays = {
            "format": np.array(TEMPLATE_FORMAT),
            "window": np.array(self.window),
            "beat": self.beat,
            "counts": self.counts,
        }
        save_arrays(path, arrays)

    @classmethod
    def load(cls, path: Path) -> Self:
        saved = load_arrays(path, TEMPLATE_FORMAT, "template")
        try:
            window, beat, counts = int(saved["window"]), saved["beat"], saved["counts"]
        except UNREADABLE as error:
            raise InputError(f"{path}: not a template model file ({one_line(error)})") from None
        if beat.shape != (window + 1,) or counts.shape != beat.shape or not np.isfinite(beat).all():
            raise InputError(f"{path}: template beat is malformed or not finite")
        model = cls(window)
        model.beat, model.counts = beat.astype(np.float64), counts.astype(np.int64)
        return model


class GBMWindowModel:
    """Histogram gradient boosting on the window plus R-peak timing and summary features."""

    kind = "classical"
    name = "gbm"
    every_window = False

    def __init__(self, window: int, slope_span: int, estimator: HistGradientBoostingRegressor):
        self.window = window
        self.slope_span = slope_span
        self.estimator = estimator
        self.fitted = False

    def features(self, x: np.ndarray) -> np.ndarray:
        return gbm_features(as_windows(x, self.window, self.name), self.slope_span)

    def fit(self, x: np.ndarray, y: np.ndarray) -> Self:
        features = self.features(x)
        self.estimator.fit(features, as_targets(y, len(features), self.name))
        self.fitted = True
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        if not self.fitted:
            raise not_fitted(self.name)
        return self.estimator.predict(self.features(x))

    def save(self, path: Path) -> None:
        if not self.fitted:
            raise not_fitted(self.name)
        payload = {
            "format": GBM_FORMAT,
            "window": self.window,
            "slope_span": self.slope_span,
            "estimator": self.estimator,
        }
        with atomic_path(path) as tmp:
            skops.io.dump(payload, tmp)

    @classmethod
    def load(cls, path: Path) -> Self:
        try:
            payload: Any = skops.io.load(path, trusted=GBM_TRUSTED_TYPES)
        except UNREADABLE as error:  # untrusted types raise a TypeError subclass
            raise InputError(f"{path}: not a loadable gbm model file ({one_line(error)})") from None
        if not is_gbm_payload(payload):
            raise InputError(f"{path}: not a fitted {GBM_FORMAT} model file")
        model = cls(payload["window"], payload["slope_span"], payload["estimator"])
        model.fitted = True
        return model


def is_gbm_payload(payload: Any) -> bool:
    """Whether a loaded gbm file holds exactly what `GBMWindowModel.save` writes, consistent."""
    if not (
        isinstance(payload, dict)
        and set(payload) == {"format", "window", "slope_span", "estimator"}
        and payload["format"] == GBM_FORMAT
        and isinstance(payload["window"], int)
        and isinstance(payload["slope_span"], int)
        and isinstance(payload["estimator"], HistGradientBoostingRegressor)
    ):
        return False
    n_features = payload["window"] + len(SUMMARY_FEATURES)
    return (
        2 <= payload["slope_span"] <= payload["window"]
        and getattr(payload["estimator"], "n_features_in_", None) == n_features
    )


def one_line(error: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(error).split()) or type(error).__name__


def build_ridge(*, window: int = 88, width: float = 1.0, alpha: float = 1.0) -> RidgeWindowModel:
    """Ridge on the raw window; `width` is accepted for the common interface and ignored."""
    check_integer("ridge", "window", window, 1)
    if not isinstance(alpha, int | float) or not math.isfinite(alpha) or alpha < 0:
        raise InputError(f"model ridge: alpha must be a finite number ≥ 0, got {alpha!r}")
    return RidgeWindowModel(window, float(alpha))


def build_template(*, window: int = 88, width: float = 1.0) -> TemplateBeatModel:
    """The mean-beat floor; `width` is accepted for the common interface and ignored."""
    check_integer("template", "window", window, 3)  # an R peak needs neighbours on both sides
    return TemplateBeatModel(window)


def build_gbm(
    *,
    window: int = 88,
    width: float = 1.0,
    max_iter: int = 300,
    learning_rate: float = 0.1,
    max_leaf_nodes: int = 31,
    slope_span: int = 8,
    seed: int = 0,
) -> GBMWindowModel:
    """Gradient boosting on window + features; `width` is accepted and ignored."""
    check_integer("gbm", "max_iter", max_iter, 1)
    check_integer("gbm", "max_leaf_nodes", max_leaf_nodes, 2)
    check_integer("gbm", "slope_span", slope_span, 2)
    check_integer("gbm", "seed", seed, 0)
    check_integer("gbm", "window", window, max(3, slope_span))  # R peaks need 3, the slope its span
    if not isinstance(learning_rate, int | float) or not 0 < learning_rate <= 1:
        raise InputError(f"model gbm: learning_rate must be in (0, 1], got {learning_rate!r}")
    estimator = HistGradientBoostingRegressor(
        max_iter=max_iter,
        learning_rate=learning_rate,
        max_leaf_nodes=max_leaf_nodes,
        random_state=seed,
    )
    return GBMWindowModel(window, slope_span, estimator)
