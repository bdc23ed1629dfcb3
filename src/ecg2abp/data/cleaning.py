"""Segment-wise cleaning of one record: which samples to keep, and why the others go.

Only ECG (the model input) and ABP (the target) decide; PPG never causes a rejection. Each rule
marks artefacts, each artefact is widened by a margin, and every sample is counted once, under
the first reason in REASONS that claims it. What survives is cut into segments; pieces too short
to be useful go too. The causal ECG band-pass for kept segments and live streams lives here too.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import convolve1d, maximum_filter1d, minimum_filter1d
from scipy.signal import butter, sosfilt, sosfilt_zi

from ecg2abp.errors import InputError

# The most specific diagnosis claims a sample first: a 270 mmHg plateau is "clipped" and a
# 0 mmHg transducer-off line is "flat", although both are also out of range.
REASONS: tuple[str, ...] = (
    "missing_channel",  # no finite ECG or no finite ABP at all (e.g. a WFDB record without ABP)
    "nonfinite",
    "abp_clipped",
    "ecg_saturated",
    "abp_flat",
    "ecg_flat",
    "abp_range",
    "beat_implausible",
    "short_segment",
)
KEPT = -1  # label of a kept sample in label_samples' output

# Per-beat statistics: the ABP max and min over about 1.5 s around each sample, taken over
# blocks of 0.3 s (5 blocks) so that the sliding extremes run on 38x fewer values. Next to
# removed stretches only part of that window survives; it is judged only when at least
# 0.75 s of it does (most of a beat), else a sliver of one beat would look like a damped line.
BEAT_BLOCK_SECONDS = 0.3
BEAT_BLOCKS = 5
BEAT_MIN_FREE_SECONDS = 0.75


@dataclass(frozen=True)
class CleaningSettings:
    """Cleaning rules and their thresholds (the `cleaning:` config section)."""

    enabled: bool = True  # False = the paper's protocol: only nonfinite + short_segment
    # Kept pieces must span this long (and hold one window): bp-benchmark analyses 5 s segments
    # of this data set; shorter islands between artefacts are mostly artefact edges.
    min_segment_seconds: float = 5.0
    window: int = 88
    # Point-wise bounds: below 20 mmHg is transducer off/flush or zeroing, not a beat's
    # diastole (DBP floor 30 below); 250 mmHg sits above the beat ceiling and below the
    # ~270 mmHg transducer ceiling.
    abp_min: float = 20.0
    abp_max: float = 250.0
    # Per-beat bounds. Kachuee et al. (2017) dropped SBP <= 80 or >= 180 and DBP <= 60 or
    # >= 130, which discards much real hypotensive and hypertensive ICU data. We take the
    # wider ranges of bp-benchmark (Gonzalez et al., Sci Data 2023): upper bounds from its
    # config for this very data set (UCI: SBP <= 220, DBP <= 120, PP <= 120), lower bounds
    # from its wider `sensors` config (DBP >= 30, PP >= 10), so vasopressor-range hypotension
    # stays. SBP >= 60 is ours: lower "beats" in ICU traces are mostly damped lines or flushes.
    sbp_min: float = 60.0
    sbp_max: float = 220.0
    dbp_min: float = 30.0
    dbp_max: float = 120.0
    pp_min: float = 10.0
    pp_max: float = 120.0
    # Exactly constant for 1 s is a dead channel: on real 125 Hz MIMIC records the longest
    # constant stretches of live, coarsely quantised signals last ~0.1 s (ABP), ~0.3 s (ECG).
    flat_seconds: float = 1.0
    # 10 samples (80 ms at 125 Hz) pinned at the extreme: longer than a QRS peak or a
    # quantised systolic peak stays at one value.
    clip_min_samples: int = 10
    margin_seconds: float = 0.5
    bandpass_hz: tuple[float, float] | None = (0.5, 40.0)
    bandpass_order: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.bandpass_hz, list):
            object.__setattr__(self, "bandpass_hz", tuple(self.bandpass_hz))
        _check_settings(self)


@dataclass(frozen=True)
class CleanedRecord:
    """Kept segments of one record and the samples removed per reason."""

    segments: list[tuple[int, int]]  # half-open [start, stop), sorted, each >= one window
    removed: dict[str, int]  # every reason in REASONS, 0 if none
    n_samples: int


def _check_settings(s: CleaningSettings) -> None:
    """Raise InputError for bounds the schema cannot check: each pair's low below its high."""
    for low, high in (
        ("abp_min", "abp_max"),
        ("sbp_min", "sbp_max"),
        ("dbp_min", "dbp_max"),
        ("pp_min", "pp_max"),
    ):
        if not getattr(s, low) < getattr(s, high):
            raise InputError(
                f"cleaning.{low} ({getattr(s, low):g}) must be below cleaning.{high} "
                f"({getattr(s, high):g})"
            )
    band = s.bandpass_hz
    if band is not None and not band[0] < band[1]:
        raise InputError(f"cleaning.bandpass_hz must be [low, high] with low < high, got {band!r}")


def settings_from_config(config: Mapping) -> CleaningSettings:
    """Settings from a validated config: its `cleaning:` section and the model window.

    Types, ranges and defaults come from the config schema (ecg2abp.config.validate_config).
    """
    section = dict(config["cleaning"])
    if section.get("bandpass_hz") is not None:
        section["bandpass_hz"] = tuple(float(v) for v in section["bandpass_hz"])
    settings = CleaningSettings(**section, window=config["window"])
    if settings.bandpass_hz is not None:  # the band must fit the rate: designed once here
        _bandpass_sos(float(config["fs"]), *settings.bandpass_hz, settings.bandpass_order)
    return settings


# --- run and interval helpers -------------------------------------------------------------


def _true_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and stops (half-open) of the runs of True in a boolean array."""
    if len(mask) == 0:
        return _no_runs()
    changes = np.flatnonzero(mask[1:] != mask[:-1]) + 1
    edges = np.concatenate(([0] if mask[0] else [], changes, [len(mask)] if mask[-1] else []))
    edges = edges.astype(np.intp, copy=False)
    return edges[0::2], edges[1::2]


def _long_true_runs(mask: np.ndarray, min_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Runs of True at least `min_len` long."""
    starts, stops = _true_runs(mask)
    long = stops - starts >= min_len
    return starts[long], stops[long]


def _constant_runs(x: np.ndarray, min_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Stretches where `x` stays exactly at one value for at least `min_len` samples."""
    if len(x) < min_len:
        return _no_runs()
    if min_len == 1:
        return np.arange(len(x)), np.arange(1, len(x) + 1)
    starts, stops = _long_true_runs(x[1:] == x[:-1], min_len - 1)
    return starts, stops + 1


def _runs_at(x: np.ndarray, value: float, min_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Runs of at least `min_len` samples exactly equal to `value`."""
    pinned = x == value
    if np.count_nonzero(pinned) < min_len:
        return _no_runs()
    return _long_true_runs(pinned, min_len)


def _no_runs() -> tuple[np.ndarray, np.ndarray]:
    empty = np.zeros(0, dtype=np.intp)
    return empty, empty


def _mask_of(n: int, starts: np.ndarray, stops: np.ndarray, margin: int) -> np.ndarray:
    """Boolean mask of sorted disjoint runs, each widened by `margin` samples either side."""
    starts = np.maximum(starts - margin, 0)
    stops = np.minimum(stops + margin, n)
    separate = starts[1:] > stops[:-1]  # widened runs that touch or overlap merge
    bounds = np.empty(2 * np.count_nonzero(separate) + 4, dtype=np.intp)
    bounds[0], bounds[-1] = 0, n
    bounds[1:-1:2] = starts[np.r_[True, separate]]
    bounds[2:-1:2] = stops[np.r_[separate, True]]
    inside = np.zeros(len(bounds) - 1, dtype=bool)
    inside[1::2] = True  # the pieces between bounds alternate outside, inside, ...
    return np.repeat(inside, np.diff(bounds))


def _samples(seconds: float, fs: float) -> int:
    return round(seconds * fs)


# --- rules --------------------------------------------------------------------------------


def _finite_max(x: np.ndarray, all_finite: bool) -> float:
    return float(x.max()) if all_finite else float(np.max(x, where=np.isfinite(x), initial=-np.inf))


def _finite_min(x: np.ndarray, all_finite: bool) -> float:
    return float(x.min()) if all_finite else float(np.min(x, where=np.isfinite(x), initial=np.inf))


def _nonfinite(ecg: np.ndarray, abp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _true_runs(~(np.isfinite(ecg) & np.isfinite(abp)))


def _abp_clipped(
    abp: np.ndarray, finite: bool, s: CleaningSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Plateaus at the record's own maximum, when that maximum is above any plausible SBP."""
    top = _finite_max(abp, finite)
    if not top > s.sbp_max:
        return _no_runs()
    return _runs_at(abp, top, s.clip_min_samples)


def _ecg_saturated(
    ecg: np.ndarray, finite: bool, s: CleaningSettings, extremes: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Plateaus at the record's ECG maximum or minimum (a constant ECG counts as flat)."""
    top, bottom = extremes or (_finite_max(ecg, finite), _finite_min(ecg, finite))
    if not top > bottom:
        return _no_runs()
    high = _runs_at(ecg, top, s.clip_min_samples)
    low = _runs_at(ecg, bottom, s.clip_min_samples)
    order = np.argsort(np.r_[high[0], low[0]], kind="stable")
    return np.r_[high[0], low[0]][order], np.r_[high[1], low[1]][order]


def _abp_out_of_range(abp: np.ndarray, s: CleaningSettings) -> tuple[np.ndarray, np.ndarray]:
    """Samples outside [abp_min, abp_max] (NaN is neither: it fails both comparisons)."""
    if abp.min() >= s.abp_min and abp.max() <= s.abp_max:
        return _no_runs()
    return _true_runs((abp < s.abp_min) | (abp > s.abp_max))


def _free_block_extremes(
    abp: np.ndarray, free: np.ndarray, block: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per block of `block` samples: max and min of the free samples (-inf/inf if none), count."""
    n = len(abp)
    block_starts = np.arange(0, n, block)
    high = np.maximum.reduceat(abp, block_starts)
    low = np.minimum.reduceat(abp, block_starts)
    if free.all():
        return high, low, np.diff(np.append(block_starts, n))
    count = np.add.reduceat(free.view(np.uint8), block_starts, dtype=np.intp)
    high[count == 0], low[count == 0] = -np.inf, np.inf
    partial = np.flatnonzero((count > 0) & (count < np.diff(np.append(block_starts, n))))
    # Blocks next to removed stretches: redo only those with the removed samples left out.
    index = np.minimum(block_starts[partial, None] + np.arange(block), n - 1)
    taken = ~free[index]
    high[partial] = np.where(taken, -np.inf, abp[index]).max(axis=1)
    low[partial] = np.where(taken, np.inf, abp[index]).min(axis=1)
    return high, low, count


def _beat_implausible(
    abp: np.ndarray, free: np.ndarray, fs: float, s: CleaningSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Samples whose surrounding ~1.5 s of surviving ABP has implausible SBP, DBP or PP.

    The record is cut into blocks of BEAT_BLOCK_SECONDS; a block's SBP and DBP are the max
    and min of the still-free samples in it and the BEAT_BLOCKS // 2 blocks either side,
    judged where those hold BEAT_MIN_FREE_SECONDS of free samples.
    """
    block = max(1, _samples(BEAT_BLOCK_SECONDS, fs))
    high, low, count = _free_block_extremes(abp, free, block)
    sbp = maximum_filter1d(high, BEAT_BLOCKS, mode="constant", cval=-np.inf)
    dbp = minimum_filter1d(low, BEAT_BLOCKS, mode="constant", cval=np.inf)
    with np.errstate(invalid="ignore"):  # blocks with no free samples around: -inf - inf
        pp = sbp - dbp
    free_around = convolve1d(count, np.ones(BEAT_BLOCKS, np.intp), mode="constant")
    bad = (
        (sbp < s.sbp_min)
        | (sbp > s.sbp_max)
        | (dbp < s.dbp_min)
        | (dbp > s.dbp_max)
        | (pp < s.pp_min)
        | (pp > s.pp_max)
    ) & (free_around >= BEAT_MIN_FREE_SECONDS * fs)
    starts, stops = _true_runs(bad)
    return starts * block, np.minimum(stops * block, len(abp))


# --- labelling ----------------------------------------------------------------------------


def _claim(
    labels: np.ndarray, reason: str, runs: tuple[np.ndarray, np.ndarray], margin: int
) -> None:
    """Label the still-kept samples of `runs` (widened by `margin`) with `reason`, in place."""
    if len(runs[0]) == 0:
        return
    claimed = _mask_of(len(labels), *runs, margin) & (labels == KEPT)
    np.copyto(labels, REASONS.index(reason), where=claimed)


def label_samples(
    ecg: np.ndarray, abp: np.ndarray, fs: float, settings: CleaningSettings
) -> np.ndarray:
    """Per-sample int8 label: KEPT (-1), or the index in REASONS of the reason that claims it."""
    ecg, abp = np.asarray(ecg), np.asarray(abp)
    if ecg.ndim != 1 or ecg.shape != abp.shape:
        raise ValueError(
            f"ecg and abp must be 1-D and of equal length, got {ecg.shape} and {abp.shape}"
        )
    if not fs > 0:
        raise ValueError(f"fs must be > 0, got {fs!r}")
    labels = np.full(len(ecg), KEPT, dtype=np.int8)
    if len(labels) == 0:
        return labels
    finite = bool(np.isfinite(ecg.sum()) and np.isfinite(abp.sum()))
    if not finite and not (np.isfinite(ecg).any() and np.isfinite(abp).any()):
        labels[:] = REASONS.index("missing_channel")
        return labels
    margin = _samples(settings.margin_seconds, fs) if settings.enabled else 0
    if not finite:
        _claim(labels, "nonfinite", _nonfinite(ecg, abp), margin)
    if settings.enabled:
        flat = max(1, _samples(settings.flat_seconds, fs))
        _claim(labels, "abp_clipped", _abp_clipped(abp, finite, settings), margin)
        _claim(labels, "ecg_saturated", _ecg_saturated(ecg, finite, settings), margin)
        _claim(labels, "abp_flat", _constant_runs(abp, flat), margin)
        _claim(labels, "ecg_flat", _constant_runs(ecg, flat), margin)
        _claim(labels, "abp_range", _abp_out_of_range(abp, settings), margin)
        free = labels == KEPT
        if free.any():
            beats = _beat_implausible(abp, free, fs, settings)
            _claim(labels, "beat_implausible", beats, margin)
    shortest = max(math.ceil(settings.min_segment_seconds * fs), settings.window)
    kept_starts, kept_stops = _true_runs(labels == KEPT)
    short = kept_stops - kept_starts < shortest
    _claim(labels, "short_segment", (kept_starts[short], kept_stops[short]), 0)
    return labels


def ecg_extremes(ecg: np.ndarray) -> tuple[float, float]:
    """The finite maximum and minimum of an ECG: the levels saturation is judged at."""
    ecg = np.asarray(ecg)
    finite = bool(np.isfinite(ecg.sum()))
    return _finite_max(ecg, finite), _finite_min(ecg, finite)


def label_ecg(
    ecg: np.ndarray,
    fs: float,
    settings: CleaningSettings,
    extremes: tuple[float, float] | None = None,
) -> np.ndarray:
    """Per-sample labels from the ECG rules alone (non-finite, saturated, flat), for recordings
    without ABP: KEPT (-1) or the index in REASONS. `extremes`: the saturation levels (default:
    this array's own finite maximum and minimum, as `label_samples` uses)."""
    ecg = np.asarray(ecg, dtype=np.float64)
    labels = np.full(len(ecg), KEPT, dtype=np.int8)
    if len(labels) == 0:
        return labels
    finite = bool(np.isfinite(ecg.sum()))
    margin = _samples(settings.margin_seconds, fs) if settings.enabled else 0
    if not finite:
        _claim(labels, "nonfinite", _true_runs(~np.isfinite(ecg)), margin)
    if settings.enabled:
        flat = max(1, _samples(settings.flat_seconds, fs))
        _claim(labels, "ecg_saturated", _ecg_saturated(ecg, finite, settings, extremes), margin)
        _claim(labels, "ecg_flat", _constant_runs(ecg, flat), margin)
    return labels


def clean_record(
    ecg: np.ndarray, abp: np.ndarray, fs: float, settings: CleaningSettings
) -> CleanedRecord:
    """Kept segments and per-reason removed counts of one record."""
    labels = label_samples(ecg, abp, fs, settings)
    starts, stops = _true_runs(labels == KEPT)
    return CleanedRecord(
        segments=[(int(a), int(b)) for a, b in zip(starts, stops, strict=True)],
        removed={r: int(np.count_nonzero(labels == i)) for i, r in enumerate(REASONS)},
        n_samples=len(labels),
    )


# --- causal ECG band-pass -----------------------------------------------------------------


@lru_cache(maxsize=32)
def _bandpass_sos(fs: float, low: float, high: float, order: int) -> np.ndarray:
    if not 0 < low < high < fs / 2:
        raise InputError(
            f"cleaning.bandpass_hz: need 0 < low < high < fs/2 = {fs / 2:g} Hz, "
            f"got [{low:g}, {high:g}]"
        )
    return butter(order, (low, high), btype="bandpass", fs=fs, output="sos")


@lru_cache(maxsize=32)
def _bandpass_steady_state(fs: float, low: float, high: float, order: int) -> np.ndarray:
    """Filter state [sections, 2] of a unit constant input held forever."""
    return sosfilt_zi(_bandpass_sos(fs, low, high, order))


def filter_ecg_segment(ecg: np.ndarray, fs: float, settings: CleaningSettings) -> np.ndarray:
    """Causal band-pass of one kept segment, as float32.

    The filter starts in the steady state of its first sample held forever (still causal: it
    uses that sample only), so a segment's offset does not ring through its first second.
    """
    if settings.bandpass_hz is None:
        return np.asarray(ecg, dtype=np.float32)
    return CausalBandpass(fs, settings.bandpass_hz, settings.bandpass_order)(ecg)


class CausalBandpass:
    """The same band-pass for a live stream fed in chunks: the filter state carries over.

    The first sample seen sets the starting state, as for a whole segment.
    """

    def __init__(self, fs: float, band: tuple[float, float], order: int = 2) -> None:
        key = (float(fs), float(band[0]), float(band[1]), order)
        self._sos = _bandpass_sos(*key)
        self._steady = _bandpass_steady_state(*key)
        self._state: np.ndarray | None = None

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        chunk = np.asarray(chunk, dtype=np.float64)
        if len(chunk) == 0:
            return np.zeros(0, dtype=np.float32)
        if self._state is None:
            self._state = self._steady * chunk[0]
        out, self._state = sosfilt(self._sos, chunk, zi=self._state)
        return out.astype(np.float32)
