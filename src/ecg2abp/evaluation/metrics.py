"""Streaming BP error metrics: point-wise and per-beat (SBP, DBP, MAP), BHS, AAMI and IEEE 1708.

Accumulators take one record (or one segment) at a time, merge across folds and serialise to a
plain dict, so no stage ever holds all predictions at once. Error convention: e = pred − true.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.signal import find_peaks

from ecg2abp.errors import InputError

LEVELS = ("point", "sbp", "dbp", "map")
BEAT_LEVELS = LEVELS[1:]
# True-SBP bands of a beat (name, key, low, high): beat-level errors are also told per band.
SBP_BANDS = (
    ("SBP < 90", "sbp_lt90", -np.inf, 90.0),
    ("90 ≤ SBP < 140", "sbp_90_140", 90.0, 140.0),
    ("SBP ≥ 140", "sbp_ge140", 140.0, np.inf),
)

MAX_HEART_RATE_BPM = 220.0
MIN_HEART_RATE_BPM = 30.0
MIN_PROMINENCE_MMHG = 5.0
PROMINENCE_FRACTION = 0.3
PULSE_BLOCK_S = 2.0

BHS_THRESHOLDS_MMHG = (5.0, 10.0, 15.0)
BHS_GRADES = (("A", (60.0, 85.0, 95.0)), ("B", (50.0, 75.0, 90.0)), ("C", (40.0, 65.0, 85.0)))
IEEE_GRADES = (("A", 5.0), ("B", 6.0), ("C", 7.0))
AAMI_MAX_ABS_ME_MMHG = 5.0
AAMI_MAX_SD_MMHG = 8.0
UNDEFINED_WHEN_EMPTY = (
    *("mae", "mse", "rmse", "r2", "pearson_r", "me", "sd"),
    *("bhs_within_5", "bhs_within_10", "bhs_within_15", "bhs_grade", "ieee_grade"),
    *("aami_me_ok", "aami_sd_ok", "aami_met"),
    *("slope", "intercept", "r_within", "r_between", "sd_ratio"),
)


def typical_pulse_amplitude(abp: np.ndarray, fs: float) -> float:
    """Median peak-to-peak range over consecutive 2 s blocks (the whole signal if shorter)."""
    block = max(1, int(PULSE_BLOCK_S * fs))
    n_blocks = len(abp) // block
    if n_blocks == 0:
        return float(np.ptp(abp))
    blocks = abp[: n_blocks * block].reshape(n_blocks, block)
    return float(np.median(np.ptp(blocks, axis=1)))


def last_minima(x: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Index of the last minimum of x[bounds[i]:bounds[i + 1]] for each consecutive pair."""
    starts = bounds[:-1]
    lengths = np.diff(bounds)
    span = x[bounds[0] : bounds[-1]]
    minima = np.repeat(np.minimum.reduceat(span, starts - bounds[0]), lengths)
    positions = np.arange(bounds[0], bounds[-1])
    return np.maximum.reduceat(np.where(span == minima, positions, -1), starts - bounds[0])


def find_beats(abp_true: np.ndarray, fs: float) -> np.ndarray:
    """Foot-to-foot beats of one contiguous true-ABP segment, as [n_beats, 2] int64 [start, stop).

    Rule: systolic peaks are found with scipy.signal.find_peaks at least 60/220 s apart (heart
    rate ≤ 220 bpm) with a prominence of at least max(5 mmHg, 0.3 × the median peak-to-peak
    range of 2 s blocks), so dicrotic waves and noise are not peaks. The foot before a systolic
    peak is the lowest sample since the previous peak (the last one if tied, i.e. the one next
    to the upstroke). A beat runs from one foot up to (not including) the next, so it holds
    exactly one systolic peak; the samples before the first foot and after the last are in no
    beat. Beats shorter than 60/220 s or longer than 60/30 s (a missed peak or a pause) are
    left out.
    """
    abp = np.asarray(abp_true, dtype=np.float64)
    if abp.ndim != 1:
        raise ValueError(f"find_beats: abp must be 1-D, got shape {abp.shape}")
    if fs <= 0:
        raise ValueError(f"find_beats: fs must be positive, got {fs}")
    if not np.all(np.isfinite(abp)):
        raise ValueError("find_beats: abp contains non-finite values")
    no_beats = np.empty((0, 2), dtype=np.int64)
    if len(abp) < 3:
        return no_beats
    prominence = max(MIN_PROMINENCE_MMHG, PROMINENCE_FRACTION * typical_pulse_amplitude(abp, fs))
    shortest = fs * 60.0 / MAX_HEART_RATE_BPM
    longest = fs * 60.0 / MIN_HEART_RATE_BPM
    peaks, _ = find_peaks(abp, distance=max(1, int(shortest)), prominence=prominence)
    if len(peaks) < 3:
        return no_beats
    feet = last_minima(abp, peaks)
    beats = np.column_stack([feet[:-1], feet[1:]]).astype(np.int64)
    durations = beats[:, 1] - beats[:, 0]
    return beats[(durations >= shortest) & (durations <= longest)]


def beat_values(abp: np.ndarray, beats: np.ndarray) -> dict[str, np.ndarray]:
    """Per-beat SBP (max), DBP (min) and MAP (mean) of `abp` over non-empty [start, stop) beats."""
    abp = np.asarray(abp, dtype=np.float64)
    beats = np.asarray(beats, dtype=np.int64).reshape(-1, 2)
    if len(beats) == 0:
        empty = np.empty(0, dtype=np.float64)
        return {"sbp": empty, "dbp": empty.copy(), "map": empty.copy()}
    starts, stops = beats[:, 0], beats[:, 1]
    if np.any(stops <= starts) or starts.min() < 0 or stops.max() > len(abp):
        raise ValueError("beat_values: beats must be non-empty ranges inside the signal")
    # reduceat over [s0, e0, s1, e1, ...] reduces a[s_i:e_i] at the even positions; one padding
    # sample keeps the last stop a valid index.
    padded = np.append(abp, 0.0)
    bounds = beats.ravel()
    return {
        "sbp": np.maximum.reduceat(padded, bounds)[::2],
        "dbp": np.minimum.reduceat(padded, bounds)[::2],
        "map": np.add.reduceat(padded, bounds)[::2] / (stops - starts),
    }


def bhs_grade(within5: float, within10: float, within15: float) -> str:
    """BHS grade from the percentages of |error| ≤ 5, 10, 15 mmHg (all three, inclusive)."""
    shares = (within5, within10, within15)
    for grade, minimum in BHS_GRADES:
        if all(share >= need for share, need in zip(shares, minimum, strict=True)):
            return grade
    return "D"


def ieee_grade(mae: float) -> str:
    """IEEE 1708 grade: A if MAE ≤ 5, B if ≤ 6, C if ≤ 7 mmHg, else D."""
    for grade, maximum in IEEE_GRADES:
        if mae <= maximum:
            return grade
    return "D"


@dataclass
class Moments:
    """Count, mean and sum of squared deviations of one variable (Chan et al. merging)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @classmethod
    def of(cls, x: np.ndarray) -> Moments:
        mean = float(x.mean())
        return cls(len(x), mean, float(np.sum((x - mean) ** 2)))

    def merge(self, other: Moments) -> None:
        if other.n == 0:
            return
        n = self.n + other.n
        delta = other.mean - self.mean
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.mean += delta * other.n / n
        self.n = n

    def varies(self) -> bool:
        """Whether the values are not constant beyond float rounding (SD > 1e-10 × |mean|)."""
        return self.m2 > 1e-20 * self.n * max(1.0, self.mean * self.mean)

    def to_list(self) -> list[float]:
        return [self.n, self.mean, self.m2]

    @classmethod
    def from_list(cls, values: list[float]) -> Moments:
        n, mean, m2 = values
        return cls(int(n), float(mean), float(m2))


@dataclass
class PairMoments:
    """Moments of (true, pred) pairs and their co-moment Σ (t − mean t)(p − mean p), mergeable."""

    true: Moments = field(default_factory=Moments)
    pred: Moments = field(default_factory=Moments)
    co: float = 0.0

    @classmethod
    def of(cls, true: np.ndarray, pred: np.ndarray) -> PairMoments:
        pair = cls(Moments.of(true), Moments.of(pred))
        pair.co = float(np.sum((true - pair.true.mean) * (pred - pair.pred.mean)))
        return pair

    def merge(self, other: PairMoments) -> None:
        n = self.true.n + other.true.n
        if n > 0:
            delta_true = other.true.mean - self.true.mean
            delta_pred = other.pred.mean - self.pred.mean
            self.co += other.co + delta_true * delta_pred * self.true.n * other.true.n / n
        self.true.merge(other.true)
        self.pred.merge(other.pred)

    def to_list(self) -> list[float]:
        return [*self.true.to_list(), *self.pred.to_list(), self.co]

    @classmethod
    def from_list(cls, values: list[float]) -> PairMoments:
        if len(values) != 7:
            raise ValueError(f"pair moments need 7 numbers, got {len(values)}")
        return cls(Moments.from_list(values[:3]), Moments.from_list(values[3:6]), float(values[6]))


def correlation(pairs: PairMoments) -> float | None:
    """Pearson r of the pairs; None when either side is constant beyond float rounding."""
    if not (pairs.true.varies() and pairs.pred.varies()):
        return None
    return pairs.co / math.sqrt(pairs.true.m2 * pairs.pred.m2)


def tracking(pairs: PairMoments, records: dict[str, PairMoments]) -> dict[str, float | None]:
    """Slope and intercept of pred on true, SD ratio, r within and between records.

    Within: every pair about its record's means (pooled within-record co-moment over pooled
    within-record spreads). Between: one point per record, its mean true and mean pred.
    """
    out: dict[str, float | None] = dict.fromkeys(("slope", "intercept", "sd_ratio"))
    if pairs.true.varies():
        varies = pairs.pred.varies()  # a constant prediction: exactly 0, not rounding noise
        slope = pairs.co / pairs.true.m2 if varies else 0.0
        out["slope"] = slope
        out["intercept"] = pairs.pred.mean - slope * pairs.true.mean
        out["sd_ratio"] = math.sqrt(pairs.pred.m2 / pairs.true.m2) if varies else 0.0
    mine = [p for p in records.values() if p.true.n > 0]
    within = PairMoments(
        Moments(pairs.true.n, pairs.true.mean, sum(p.true.m2 for p in mine)),
        Moments(pairs.pred.n, pairs.pred.mean, sum(p.pred.m2 for p in mine)),
        sum(p.co for p in mine),
    )
    out["r_within"] = correlation(within)
    means = np.array([[p.true.mean, p.pred.mean] for p in mine]).reshape(-1, 2)
    out["r_between"] = correlation(PairMoments.of(means[:, 0], means[:, 1])) if len(mine) else None
    return out


class ErrorAccumulator:
    """Streams (true, pred) pairs of one level; keeps per-record moments (AAMI, tracking).

    Optionally each pair carries its beat's true SBP, which sorts it into SBP_BANDS.
    """

    def __init__(self) -> None:
        self.pairs = PairMoments()
        self.error = Moments()
        self.sum_abs_error = 0.0
        self.within = [0, 0, 0]  # counts of |e| ≤ 5, 10, 15 mmHg
        self.records: dict[str, Moments] = {}  # error moments per record
        self.record_pairs: dict[str, PairMoments] = {}
        self.record_abs: dict[str, float] = {}  # Σ|e| per record
        self.band_n = [0] * len(SBP_BANDS)
        self.band_error = [0.0] * len(SBP_BANDS)  # Σ e per band
        self.band_abs = [0.0] * len(SBP_BANDS)  # Σ |e| per band

    @property
    def true(self) -> Moments:
        return self.pairs.true

    @property
    def pred(self) -> Moments:
        return self.pairs.pred

    @property
    def co_moment(self) -> float:
        return self.pairs.co

    def update(
        self, record_id: str, true: np.ndarray, pred: np.ndarray, sbp: np.ndarray | None = None
    ) -> None:
        """Add the pairs of one record (or one stretch of it); every value must be finite.

        `sbp`: each pair's beat's true SBP (beat levels), which puts the pair in a band.
        """
        true = np.asarray(true, dtype=np.float64)
        pred = np.asarray(pred, dtype=np.float64)
        if true.ndim != 1 or true.shape != pred.shape:
            raise ValueError(f"record {record_id}: true {true.shape} and pred {pred.shape} differ")
        if sbp is not None and np.shape(sbp) != true.shape:
            raise ValueError(f"record {record_id}: {np.shape(sbp)} band SBPs for {true.shape}")
        if len(true) == 0:
            return
        if not (np.all(np.isfinite(true)) and np.all(np.isfinite(pred))):
            raise InputError(f"record {record_id}: non-finite ABP value passed to the metrics")
        self.merge(ErrorAccumulator.of_chunk(record_id, true, pred, sbp))

    @classmethod
    def of_chunk(
        cls, record_id: str, true: np.ndarray, pred: np.ndarray, sbp: np.ndarray | None = None
    ) -> ErrorAccumulator:
        """Accumulator of one non-empty chunk, moments taken around the chunk's own means."""
        chunk = cls()
        error = pred - true
        chunk.pairs, chunk.error = PairMoments.of(true, pred), Moments.of(error)
        abs_error = np.abs(error)
        chunk.sum_abs_error = float(abs_error.sum())
        chunk.within = [int(np.count_nonzero(abs_error <= limit)) for limit in BHS_THRESHOLDS_MMHG]
        chunk.records = {record_id: replace(chunk.error)}
        chunk.record_pairs = {record_id: PairMoments.of(true, pred)}
        chunk.record_abs = {record_id: chunk.sum_abs_error}
        if sbp is not None:
            for band, (_, _, low, high) in enumerate(SBP_BANDS):
                inside = (sbp >= low) & (sbp < high)
                chunk.band_n[band] = int(np.count_nonzero(inside))
                chunk.band_error[band] = float(error[inside].sum())
                chunk.band_abs[band] = float(abs_error[inside].sum())
        return chunk

    def merge(self, other: ErrorAccumulator) -> None:
        """Add everything `other` has seen (records seen by both are pooled)."""
        self.pairs.merge(other.pairs)
        self.error.merge(other.error)
        self.sum_abs_error += other.sum_abs_error
        self.within = [a + b for a, b in zip(self.within, other.within, strict=True)]
        for record_id, moments in other.records.items():
            self.records.setdefault(record_id, Moments()).merge(moments)
        for record_id, pair in other.record_pairs.items():
            self.record_pairs.setdefault(record_id, PairMoments()).merge(pair)
        for record_id, total in other.record_abs.items():
            self.record_abs[record_id] = self.record_abs.get(record_id, 0.0) + total
        self.band_n = [a + b for a, b in zip(self.band_n, other.band_n, strict=True)]
        self.band_error = [a + b for a, b in zip(self.band_error, other.band_error, strict=True)]
        self.band_abs = [a + b for a, b in zip(self.band_abs, other.band_abs, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready state (floats round-trip exactly through JSON)."""
        return {
            "true": self.true.to_list(),
            "pred": self.pred.to_list(),
            "error": self.error.to_list(),
            "co_moment": self.co_moment,
            "sum_abs_error": self.sum_abs_error,
            "within": list(self.within),
            "records": {rid: m.to_list() for rid, m in self.records.items()},
            "record_pairs": {rid: p.to_list() for rid, p in self.record_pairs.items()},
            "record_abs": dict(self.record_abs),
            "bands": {"n": self.band_n, "error": self.band_error, "abs": self.band_abs},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ErrorAccumulator:
        acc = cls()
        try:
            acc.pairs = PairMoments(
                Moments.from_list(d["true"]), Moments.from_list(d["pred"]), float(d["co_moment"])
            )
            acc.error = Moments.from_list(d["error"])
            acc.sum_abs_error = float(d["sum_abs_error"])
            acc.within = [int(c) for c in d["within"]]
            acc.records = {rid: Moments.from_list(m) for rid, m in d["records"].items()}
            acc.record_pairs = {
                rid: PairMoments.from_list(p) for rid, p in d["record_pairs"].items()
            }
            acc.record_abs = {rid: float(total) for rid, total in d["record_abs"].items()}
            bands = d["bands"]
            acc.band_n = [int(c) for c in bands["n"]]
            acc.band_error = [float(v) for v in bands["error"]]
            acc.band_abs = [float(v) for v in bands["abs"]]
            if not len(acc.band_n) == len(acc.band_error) == len(acc.band_abs) == len(SBP_BANDS):
                raise ValueError(f"bands must hold {len(SBP_BANDS)} values each")
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"metrics state: malformed accumulator dict ({exc!r}; metrics written before "
                "the tracking measures must be evaluated again)"
            ) from exc
        return acc

    def band_results(self) -> dict[str, Any]:
        """n, MAE and ME of the pairs in each true-SBP band (None where a band is empty)."""
        out: dict[str, Any] = {}
        for (_, key, _, _), n, error, absolute in zip(
            SBP_BANDS, self.band_n, self.band_error, self.band_abs, strict=True
        ):
            out[f"n_{key}"] = n
            out[f"mae_{key}"] = absolute / n if n else None
            out[f"me_{key}"] = error / n if n else None
        return out

    def aami_record_counts(self) -> tuple[int, int]:
        """(records meeting |ME| ≤ 5 and SD ≤ 8 on their own, records scored: n ≥ 2)."""
        scored = [m for m in self.records.values() if m.n >= 2]
        met = sum(
            abs(m.mean) <= AAMI_MAX_ABS_ME_MMHG and math.sqrt(m.m2 / (m.n - 1)) <= AAMI_MAX_SD_MMHG
            for m in scored
        )
        return met, len(scored)

    def result(self) -> dict[str, Any]:
        """Metrics of everything seen (e = pred − true, SD with ddof = 1).

        With n = 0 every value but the counts is None. sd, aami_sd_ok and aami_met need n ≥ 2,
        r2 a non-constant truth, pearson_r non-constant truth and prediction; else they are None.
        """
        n = self.error.n
        if n == 0:
            return {
                "n": 0,
                **dict.fromkeys(UNDEFINED_WHEN_EMPTY),
                "aami_records_met": 0,
                "aami_records": 0,
                **self.band_results(),
            }
        me = self.error.mean
        sse = self.error.m2 + n * me * me
        mse = sse / n
        mae = self.sum_abs_error / n
        sd = math.sqrt(self.error.m2 / (n - 1)) if n >= 2 else None
        within = [100.0 * count / n for count in self.within]
        records_met, records_scored = self.aami_record_counts()
        me_ok = abs(me) <= AAMI_MAX_ABS_ME_MMHG
        sd_ok = sd <= AAMI_MAX_SD_MMHG if sd is not None else None
        return {
            "n": n,
            "mae": mae,
            "mse": mse,
            "rmse": math.sqrt(mse),
            "r2": 1.0 - sse / self.true.m2 if self.true.varies() else None,
            "pearson_r": correlation(self.pairs),
            "me": me,
            "sd": sd,
            "bhs_within_5": within[0],
            "bhs_within_10": within[1],
            "bhs_within_15": within[2],
            "bhs_grade": bhs_grade(*within),
            "ieee_grade": ieee_grade(mae),
            "aami_me_ok": me_ok,
            "aami_sd_ok": sd_ok,
            "aami_met": me_ok and sd_ok if sd_ok is not None else None,
            "aami_records_met": records_met,
            "aami_records": records_scored,
            **tracking(self.pairs, self.record_pairs),
            **self.band_results(),
        }


def floor_for(floor: dict | None, record_id: str) -> dict[str, float] | None:
    """A beat floor's SBP, DBP and MAP for one record: its own where it has them, else overall."""
    if not floor:
        return None
    return floor["records"].get(record_id, floor["overall"])


@dataclass
class SegmentPairs:
    """The (true, pred) pairs one contiguous stretch contributes to each level."""

    levels: dict[str, tuple[np.ndarray, np.ndarray]]
    samples_unpredicted: int
    beats_unpredicted: int


def segment_pairs(
    true: np.ndarray, pred: np.ndarray, fs: float, floor: dict[str, float] | None = None
) -> SegmentPairs:
    """Pairs of one stretch per level; NaN in `pred` marks an unpredicted sample.

    Unpredicted samples are left out of `point`; beats (found on `true`) that touch one are left
    out of sbp/dbp/map. Both are counted. With `floor` (level → constant), every complete beat's
    predicted SBP, DBP and MAP are those constants instead of values of `pred`.
    """
    predicted = ~np.isnan(pred)
    beats = find_beats(true, fs)
    missing_before = np.concatenate([[0], np.cumsum(~predicted)])
    complete = missing_before[beats[:, 1]] == missing_before[beats[:, 0]]
    true_values = beat_values(true, beats[complete])
    pred_values = beat_values(pred, beats[complete])
    if floor is not None:
        pred_values = {
            level: np.full(len(pred_values[level]), floor[level]) for level in pred_values
        }
    levels = {"point": (true[predicted], pred[predicted])}
    levels |= {level: (true_values[level], pred_values[level]) for level in ("sbp", "dbp", "map")}
    return SegmentPairs(
        levels,
        int(len(pred) - np.count_nonzero(predicted)),
        int(len(beats) - np.count_nonzero(complete)),
    )


class LevelMetrics:
    """Point, SBP, DBP and MAP accumulators of one model × fold, with exclusion counts."""

    def __init__(self, fs: float):
        if fs <= 0:
            raise ValueError(f"LevelMetrics: fs must be positive, got {fs}")
        self.fs = float(fs)
        self.levels = {level: ErrorAccumulator() for level in LEVELS}
        self.samples_unpredicted = 0
        self.beats_unpredicted = 0

    def update_segment(
        self,
        record_id: str,
        true: np.ndarray,
        pred: np.ndarray,
        floor: dict[str, float] | None = None,
    ) -> None:
        """Score one contiguous stretch of one record; NaN in `pred` marks an unpredicted sample.

        Unpredicted samples are left out of `point` and counted; beats (found on `true`) that
        touch one are left out of sbp/dbp/map and counted.
        """
        true = np.asarray(true, dtype=np.float64)
        pred = np.asarray(pred, dtype=np.float64)
        if true.ndim != 1 or true.shape != pred.shape:
            raise ValueError(f"record {record_id}: true {true.shape} and pred {pred.shape} differ")
        if not np.all(np.isfinite(true)):
            raise InputError(f"record {record_id}: true ABP segment contains non-finite values")
        if np.any(np.isinf(pred)):
            raise InputError(f"record {record_id}: prediction contains infinite values")
        pairs = segment_pairs(true, pred, self.fs, floor)
        self.samples_unpredicted += pairs.samples_unpredicted
        self.beats_unpredicted += pairs.beats_unpredicted
        self.levels["point"].update(record_id, *pairs.levels["point"])
        sbp = pairs.levels["sbp"][0]
        for level in BEAT_LEVELS:
            self.levels[level].update(record_id, *pairs.levels[level], sbp)

    def merge(self, other: LevelMetrics) -> None:
        """Add everything `other` has seen; both must share one sampling rate."""
        if other.fs != self.fs:
            raise ValueError(f"LevelMetrics.merge: fs {other.fs} differs from {self.fs}")
        for level in LEVELS:
            self.levels[level].merge(other.levels[level])
        self.samples_unpredicted += other.samples_unpredicted
        self.beats_unpredicted += other.beats_unpredicted

    def to_dict(self) -> dict[str, Any]:
        return {
            "fs": self.fs,
            "samples_unpredicted": self.samples_unpredicted,
            "beats_unpredicted": self.beats_unpredicted,
            "levels": {level: acc.to_dict() for level, acc in self.levels.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LevelMetrics:
        try:
            metrics = cls(float(d["fs"]))
            metrics.samples_unpredicted = int(d["samples_unpredicted"])
            metrics.beats_unpredicted = int(d["beats_unpredicted"])
            levels = d["levels"]
            metrics.levels = {level: ErrorAccumulator.from_dict(levels[level]) for level in LEVELS}
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"metrics state: malformed level-metrics dict ({exc!r})") from exc
        return metrics

    def result(self) -> dict[str, dict[str, Any]]:
        """Per level: ErrorAccumulator.result() plus n_excluded (samples for point, else beats)."""
        excluded = {"point": self.samples_unpredicted}
        excluded |= dict.fromkeys(("sbp", "dbp", "map"), self.beats_unpredicted)
        return {
            level: acc.result() | {"n_excluded": excluded[level]}
            for level, acc in self.levels.items()
        }
