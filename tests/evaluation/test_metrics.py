"""Metrics: hand-worked values, standard boundaries, streaming == batch, beats on real ABP."""

import json
import math

import numpy as np
import pytest
import scipy.io
from real_record import REAL_RECORD

from ecg2abp.errors import InputError
from ecg2abp.evaluation.metrics import (
    LEVELS,
    SBP_BANDS,
    ErrorAccumulator,
    LevelMetrics,
    beat_values,
    bhs_grade,
    find_beats,
    ieee_grade,
)

FIXTURE = REAL_RECORD
FS = 125.0


def accumulate(record_id: str, true: list[float], pred: list[float]) -> dict:
    acc = ErrorAccumulator()
    acc.update(record_id, np.array(true, dtype=float), np.array(pred, dtype=float))
    return acc.result()


def json_round_trip(d: dict) -> dict:
    return json.loads(json.dumps(d))


# --- hand-worked values -------------------------------------------------------------------


def test_metrics_match_hand_arithmetic():
    # true [100, 110, 120, 130], pred [101, 108, 126, 141] -> errors [1, -2, 6, 11]
    r = accumulate("r1", [100, 110, 120, 130], [101, 108, 126, 141])
    assert r["n"] == 4
    assert r["mae"] == pytest.approx(5.0)  # (1 + 2 + 6 + 11) / 4
    assert r["me"] == pytest.approx(4.0)  # (1 - 2 + 6 + 11) / 4
    assert r["mse"] == pytest.approx(40.5)  # (1 + 4 + 36 + 121) / 4
    assert r["rmse"] == pytest.approx(math.sqrt(40.5))
    assert r["sd"] == pytest.approx(math.sqrt(98 / 3))  # (9 + 36 + 4 + 49) / (4 - 1)
    assert r["r2"] == pytest.approx(1 - 162 / 500)  # SST = 225 + 25 + 25 + 225
    # pred deviations from 119: [-18, -11, 7, 22]; true deviations from 115: [-15, -5, 5, 15]
    assert r["pearson_r"] == pytest.approx(690 / math.sqrt(500 * 978))
    assert r["bhs_within_5"] == pytest.approx(50.0)
    assert r["bhs_within_10"] == pytest.approx(75.0)
    assert r["bhs_within_15"] == pytest.approx(100.0)
    assert r["bhs_grade"] == "B"  # exactly 50 / 75 and 100 ≥ 90
    assert r["ieee_grade"] == "A"  # MAE exactly 5
    assert r["aami_me_ok"] is True and r["aami_sd_ok"] is True and r["aami_met"] is True
    assert (r["aami_records_met"], r["aami_records"]) == (1, 1)
    assert "aami_pass" not in r


def test_error_sign_is_pred_minus_true():
    r = accumulate("r1", [100, 100], [97, 95])
    assert r["me"] == pytest.approx(-4.0)


def test_bhs_within_is_inclusive():
    # |errors| [5, 10, 15, 15.5]: each threshold counts the error sitting exactly on it
    r = accumulate("r1", [100, 100, 100, 100], [105, 90, 115, 84.5])
    assert (r["bhs_within_5"], r["bhs_within_10"], r["bhs_within_15"]) == (25.0, 50.0, 75.0)


def test_constant_truth_leaves_r2_and_pearson_undefined():
    r = accumulate("r1", [100, 100, 100], [99, 101, 103])
    assert r["r2"] is None and r["pearson_r"] is None
    assert r["mae"] == pytest.approx(5 / 3)


def test_single_sample_has_no_sd():
    r = accumulate("r1", [100], [103])
    assert r["sd"] is None and r["aami_sd_ok"] is None and r["aami_met"] is None
    assert r["aami_me_ok"] is True
    assert (r["aami_records_met"], r["aami_records"]) == (0, 0)


def test_empty_accumulator_gives_none_everywhere():
    r = ErrorAccumulator().result()
    assert r["n"] == 0
    assert (r["aami_records_met"], r["aami_records"]) == (0, 0)
    counts = ("n", "aami_records_met", "aami_records", "n_sbp_lt90", "n_sbp_90_140", "n_sbp_ge140")
    undefined = {k: v for k, v in r.items() if k not in counts}
    assert len(undefined) == 26  # 15 error measures, 5 tracking measures, band MAE and ME
    assert all(v is None for v in undefined.values())
    assert all(r[k] == 0 for k in counts)
    acc = ErrorAccumulator()
    acc.update("r1", np.array([]), np.array([]))
    assert acc.result() == r


# --- standard boundaries ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shares", "grade"),
    [
        ((60, 85, 95), "A"),
        ((100, 100, 100), "A"),
        ((59.99, 85, 95), "B"),
        ((60, 84.99, 95), "B"),
        ((60, 85, 94.99), "B"),
        ((50, 75, 90), "B"),
        ((49.99, 75, 90), "C"),
        ((50, 74.99, 90), "C"),
        ((50, 75, 89.99), "C"),
        ((40, 65, 85), "C"),
        ((39.99, 65, 85), "D"),
        ((40, 64.99, 85), "D"),
        ((40, 65, 84.99), "D"),
        ((100, 100, 84.99), "D"),
        ((0, 0, 0), "D"),
    ],
)
def test_bhs_grade_boundaries(shares, grade):
    assert bhs_grade(*shares) == grade


@pytest.mark.parametrize(
    ("mae", "grade"),
    [(0.0, "A"), (5.0, "A"), (5.0001, "B"), (6.0, "B"), (6.0001, "C"), (7.0, "C"),
     (7.0001, "D"), (30.0, "D")],
)  # fmt: skip
def test_ieee_grade_boundaries(mae, grade):
    assert ieee_grade(mae) == grade


@pytest.mark.parametrize(
    ("errors", "me_ok", "sd_ok"),
    [
        ([4, 6], True, True),  # ME exactly +5
        ([-4, -6], True, True),  # ME exactly -5
        ([4, 6.5], False, True),  # ME 5.25
        ([-8, 0, 8], True, True),  # SD exactly 8: (64 + 0 + 64) / 2 = 64
        ([-8, 0, 8.5], True, False),  # SD just above 8
        ([-3, 5, 13], True, True),  # ME exactly 5 and SD exactly 8 together
        ([-3, 5, 13.5], False, False),  # both just over
    ],
)
def test_aami_boundaries(errors, me_ok, sd_ok):
    true = [100.0] * len(errors)
    pred = [100.0 + e for e in errors]
    r = accumulate("r1", true, pred)
    assert r["aami_me_ok"] is me_ok
    assert r["aami_sd_ok"] is sd_ok
    assert r["aami_met"] is (me_ok and sd_ok)


def test_aami_records_are_judged_on_their_own():
    acc = ErrorAccumulator()
    acc.update("ok", np.full(4, 100.0), np.array([101.0, 99.0, 101.0, 99.0]))  # ME 0, SD ~1.15
    acc.update("biased", np.full(3, 100.0), np.full(3, 110.0))  # ME 10
    acc.update("edge", np.full(3, 100.0), np.array([92.0, 100.0, 108.0]))  # ME 0, SD exactly 8
    acc.update("single", np.array([100.0]), np.array([100.0]))  # one sample: no SD, not scored
    r = acc.result()
    assert (r["aami_records_met"], r["aami_records"]) == (2, 3)


def test_segments_of_one_record_are_pooled_for_aami():
    # each half alone has SD 0; together errors [0, 0, 20, 20] have ME 10 and SD > 8
    acc = ErrorAccumulator()
    acc.update("r", np.full(2, 100.0), np.full(2, 100.0))
    acc.update("r", np.full(2, 100.0), np.full(2, 120.0))
    r = acc.result()
    assert (r["aami_records_met"], r["aami_records"]) == (0, 1)
    assert r["me"] == pytest.approx(10.0)


# --- streaming, merging, serialising ------------------------------------------------------


def random_records(seed: int, n_records: int = 6) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    records = {}
    for i in range(n_records):
        n = int(rng.integers(50, 3000))
        true = 95 + 25 * rng.standard_normal(n)
        pred = true + rng.normal(2 * i - 5, 2 + 2 * i, size=n)
        records[f"part_1/{i:04d}"] = (true, pred)
    return records


def numpy_reference(records: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    true = np.concatenate([t for t, _ in records.values()])
    pred = np.concatenate([p for _, p in records.values()])
    e = pred - true
    per_record = [p - t for t, p in records.values()]
    return {
        "n": len(e),
        "mae": np.mean(np.abs(e)),
        "mse": np.mean(e**2),
        "rmse": np.sqrt(np.mean(e**2)),
        "r2": 1 - np.sum(e**2) / np.sum((true - true.mean()) ** 2),
        "pearson_r": np.corrcoef(true, pred)[0, 1],
        "me": np.mean(e),
        "sd": np.std(e, ddof=1),
        "bhs_within_5": 100 * np.mean(np.abs(e) <= 5),
        "bhs_within_10": 100 * np.mean(np.abs(e) <= 10),
        "bhs_within_15": 100 * np.mean(np.abs(e) <= 15),
        "aami_records_met": sum(
            abs(r.mean()) <= 5 and r.std(ddof=1) <= 8 for r in per_record if len(r) >= 2
        ),
        "aami_records": len(per_record),
    }


def assert_matches_reference(result: dict, reference: dict) -> None:
    for key, expected in reference.items():
        assert result[key] == pytest.approx(expected, rel=1e-9, abs=1e-9), key


def test_streamed_chunks_and_merged_accumulators_equal_batch():
    records = random_records(seed=1)
    reference = numpy_reference(records)
    rng = np.random.default_rng(2)

    streamed = ErrorAccumulator()
    for record_id, (true, pred) in records.items():
        cuts = np.sort(rng.integers(0, len(true), size=5))
        for t, p in zip(np.split(true, cuts), np.split(pred, cuts), strict=True):
            streamed.update(record_id, t, p)
    assert_matches_reference(streamed.result(), reference)

    per_record = []
    for record_id, (true, pred) in records.items():
        acc = ErrorAccumulator()
        acc.update(record_id, true, pred)
        per_record.append(acc)
    left, right = ErrorAccumulator(), ErrorAccumulator()
    for acc in per_record[:2]:
        left.merge(acc)
    for acc in per_record[:1:-1]:
        right.merge(acc)
    right.merge(left)
    right.merge(ErrorAccumulator())
    assert_matches_reference(right.result(), reference)
    assert reference["aami_records_met"] not in (0, reference["aami_records"])  # a mixed case


def test_moments_keep_precision_far_from_zero():
    # raw sums of squares around 1e7 would lose every digit of a unit variance
    rng = np.random.default_rng(3)
    true = 1e7 + rng.standard_normal(200_000)
    pred = true + 0.1 + 0.5 * rng.standard_normal(200_000)
    acc = ErrorAccumulator()
    for t, p in zip(np.array_split(true, 50), np.array_split(pred, 50), strict=True):
        acc.update("r", t, p)
    r = acc.result()
    e = pred - true
    assert r["sd"] == pytest.approx(np.std(e, ddof=1), rel=1e-6)
    assert r["pearson_r"] == pytest.approx(np.corrcoef(true, pred)[0, 1], rel=1e-6)
    sst = np.sum((true - true.mean()) ** 2)
    assert r["r2"] == pytest.approx(1 - np.sum(e**2) / sst, rel=1e-6)


def test_accumulator_dict_round_trip_is_exact_and_complete():
    records = random_records(seed=4)
    first, second = list(records.items())[:3], list(records.items())[3:]
    acc = ErrorAccumulator()
    for record_id, (true, pred) in first:
        acc.update(record_id, true, pred)
    restored = ErrorAccumulator.from_dict(json_round_trip(acc.to_dict()))
    assert restored.to_dict() == acc.to_dict()
    assert restored.result() == acc.result()
    for record_id, (true, pred) in second:
        acc.update(record_id, true, pred)
        restored.update(record_id, true, pred)
    assert restored.result() == acc.result()


def test_malformed_state_raises_input_error():
    with pytest.raises(InputError, match="accumulator"):
        ErrorAccumulator.from_dict({"true": [0, 0.0, 0.0]})
    with pytest.raises(InputError, match="level-metrics"):
        LevelMetrics.from_dict({"fs": 125.0})


def test_non_finite_values_are_rejected():
    acc = ErrorAccumulator()
    with pytest.raises(InputError, match="part_1/0003"):
        acc.update("part_1/0003", np.array([100.0, np.nan]), np.array([100.0, 100.0]))
    with pytest.raises(ValueError, match="differ"):
        acc.update("part_1/0003", np.array([100.0]), np.array([100.0, 100.0]))
    metrics = LevelMetrics(FS)
    with pytest.raises(InputError, match="part_1/0007"):
        metrics.update_segment("part_1/0007", np.array([100.0, np.inf]), np.array([1.0, 2.0]))
    with pytest.raises(InputError, match="infinite"):
        metrics.update_segment("part_1/0007", np.array([100.0, 90.0]), np.array([np.inf, 2.0]))


# --- beats --------------------------------------------------------------------------------


def test_beat_values_by_hand():
    abp = np.array([1.0, 5.0, 3.0, 2.0, 8.0, 0.0])
    v = beat_values(abp, np.array([[0, 3], [3, 6]]))
    np.testing.assert_allclose(v["sbp"], [5, 8])
    np.testing.assert_allclose(v["dbp"], [1, 0])
    np.testing.assert_allclose(v["map"], [3, 10 / 3])
    gaps = beat_values(abp, np.array([[0, 2], [4, 6]]))  # not adjacent, last one ends the signal
    np.testing.assert_allclose(gaps["sbp"], [5, 8])
    np.testing.assert_allclose(gaps["dbp"], [1, 0])
    np.testing.assert_allclose(gaps["map"], [3, 4])
    empty = beat_values(abp, np.empty((0, 2), dtype=np.int64))
    assert all(len(empty[k]) == 0 for k in ("sbp", "dbp", "map"))


def pulse_train(lengths: list[int], sbp: float = 120.0, dbp: float = 80.0, notch: bool = False):
    """Beats starting at their unique minimum dbp: a fast rise, then a decay towards dbp + 5."""
    beats = []
    for length in lengths:
        rise = max(2, length // 8)
        up = dbp + (sbp - dbp) * np.arange(rise) / rise
        t = np.arange(length - rise)
        down = dbp + 5 + (sbp - dbp - 5) * np.exp(-t / (0.35 * length))
        if notch:  # a dicrotic wave 15 mmHg high, 0.45 beat after the foot
            down += 15 * np.exp(-0.5 * ((t + rise - 0.45 * length) / (0.04 * length)) ** 2)
        beats.append(np.concatenate([up, down]))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.concatenate(beats), starts


def expected_beats(starts: np.ndarray) -> np.ndarray:
    """The first beat has no preceding peak and the last no following one: both are dropped."""
    return np.column_stack([starts[1:-1], starts[2:]])


@pytest.mark.parametrize("notch", [False, True])
def test_find_beats_on_synthetic_pulses(notch):
    rng = np.random.default_rng(5)
    lengths = list(rng.integers(60, 140, size=30))
    abp, starts = pulse_train(lengths, notch=notch)
    abp += rng.normal(0, 0.3, size=len(abp))
    np.testing.assert_array_equal(find_beats(abp, FS), expected_beats(starts))


def test_find_beats_at_200_bpm_and_on_a_flat_signal():
    abp, starts = pulse_train([38, 37] * 10)  # 0.3 s per beat at 125 Hz
    np.testing.assert_array_equal(find_beats(abp, FS), expected_beats(starts))
    flat_with_noise = 90 + np.random.default_rng(7).normal(0, 0.5, size=2000)
    assert find_beats(flat_with_noise, FS).shape == (0, 2)  # no pulse: no beats
    assert find_beats(np.array([80.0, 120.0]), FS).shape == (0, 2)


def test_find_beats_ignores_ringing_of_an_underdamped_line():
    abp, starts = pulse_train([110] * 12)
    for start in starts:  # a 15 mmHg dip 3 samples after each systolic peak
        abp[start + 16 : start + 18] -= 15
    np.testing.assert_array_equal(find_beats(abp, FS), expected_beats(starts))


def test_find_beats_drops_pauses_longer_than_two_seconds():
    abp, starts = pulse_train([100, 100, 100, 300, 100, 100])
    beats = find_beats(abp, FS)
    np.testing.assert_array_equal(beats, [[100, 200], [200, 300], [600, 700]])
    assert starts[3] == 300


# --- the four levels together -------------------------------------------------------------


def test_level_metrics_exclude_unpredicted_samples_and_beats():
    true, _ = pulse_train([100] * 10)  # feet at 0, 100, ..., 900; beats [100, 200) ... [800, 900)
    pred = 1.1 * true
    pred[:250] = np.nan  # e.g. the first window - 1 samples
    pred[555] = np.nan
    metrics = LevelMetrics(FS)
    metrics.update_segment("part_1/0000", true, pred)
    r = metrics.result()
    predicted = ~np.isnan(pred)
    assert r["point"]["n"] == 749 and r["point"]["n_excluded"] == 251
    assert r["point"]["mae"] == pytest.approx(0.1 * true[predicted].mean())
    # beats [100, 200), [200, 300) and [500, 600) touch a NaN: 8 - 3 = 5 remain
    for level in ("sbp", "dbp", "map"):
        assert r[level]["n"] == 5 and r[level]["n_excluded"] == 3
    assert r["sbp"]["me"] == pytest.approx(12.0)  # 1.1 * 120 - 120
    assert r["dbp"]["me"] == pytest.approx(8.0)  # 1.1 * 80 - 80
    assert r["map"]["me"] == pytest.approx(0.1 * true[100:200].mean())
    assert r["sbp"]["sd"] == pytest.approx(0.0, abs=1e-9)


def test_level_metrics_all_unpredicted_gives_empty_levels():
    true, _ = pulse_train([100] * 5)
    metrics = LevelMetrics(FS)
    metrics.update_segment("part_1/0000", true, np.full_like(true, np.nan))
    r = metrics.result()
    assert set(r) == set(LEVELS)
    assert r["point"]["n"] == 0 and r["point"]["n_excluded"] == 500
    assert r["sbp"]["n"] == 0 and r["sbp"]["n_excluded"] == 3
    assert r["map"]["mae"] is None and r["dbp"]["bhs_grade"] is None


def test_level_metrics_merge_and_round_trip():
    rng = np.random.default_rng(6)
    segments = []
    for i in range(4):
        true, _ = pulse_train(list(rng.integers(80, 130, size=12)), sbp=110 + 5 * i)
        pred = true + rng.normal(1, 3, size=len(true))
        pred[:20] = np.nan
        segments.append((f"part_2/{i:04d}", true, pred))
    together = LevelMetrics(FS)
    for segment in segments:
        together.update_segment(*segment)
    halves = [LevelMetrics(FS), LevelMetrics(FS)]
    for i, segment in enumerate(segments):
        halves[i % 2].update_segment(*segment)
    halves[0] = LevelMetrics.from_dict(json_round_trip(halves[0].to_dict()))
    halves[0].merge(halves[1])
    merged, expected = halves[0].result(), together.result()
    for level in LEVELS:
        for key, value in expected[level].items():
            close = pytest.approx(value, rel=1e-12) if isinstance(value, float) else value
            assert merged[level][key] == close, (level, key)
    assert expected["sbp"]["n"] == 4 * (12 - 2)  # no beat starts before sample 20
    with pytest.raises(ValueError, match="fs"):
        together.merge(LevelMetrics(250.0))


def test_a_floor_scores_beats_with_its_constants_not_its_flat_line():
    true, _ = pulse_train([100] * 8)  # SBP 120, DBP 80 per beat
    flat = np.full_like(true, 95.0)
    floor = {"sbp": 121.0, "dbp": 79.0, "map": 95.0}
    metrics = LevelMetrics(FS)
    metrics.update_segment("part_1/0000", true, flat, floor)
    r = metrics.result()
    assert r["sbp"]["me"] == pytest.approx(1.0) and r["dbp"]["me"] == pytest.approx(-1.0)
    assert r["point"]["me"] == pytest.approx(95.0 - true.mean())  # points stay the flat line
    plain = LevelMetrics(FS)
    plain.update_segment("part_1/0000", true, flat)
    assert plain.result()["sbp"]["me"] == pytest.approx(95.0 - 120.0)


# --- tracking measures --------------------------------------------------------------------


def tracking_table(seed: int = 11) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(record index, true, pred) of 5 records of 3 to 40 values, levels differing by record."""
    rng = np.random.default_rng(seed)
    records, true, pred = [], [], []
    for record in range(5):
        n = int(rng.integers(3, 40))
        t = rng.normal(90 + 10 * record, 12, size=n)
        records.append(np.full(n, record))
        true.append(t)
        pred.append(0.6 * t + 30 + rng.normal(0, 6, size=n) + 3 * rng.normal())
    return np.concatenate(records), np.concatenate(true), np.concatenate(pred)


def numpy_tracking(record: np.ndarray, true: np.ndarray, pred: np.ndarray) -> dict:
    """The tracking measures straight from numpy."""
    slope, intercept = np.polyfit(true, pred, 1)
    means = np.array([[true[record == r].mean(), pred[record == r].mean()] for r in range(5)])
    centred_true = true - means[record, 0]
    centred_pred = pred - means[record, 1]
    return {
        "slope": slope,
        "intercept": intercept,
        "pearson_r": np.corrcoef(true, pred)[0, 1],
        "r_within": np.corrcoef(centred_true, centred_pred)[0, 1],
        "r_between": np.corrcoef(means[:, 0], means[:, 1])[0, 1],
        "sd_ratio": pred.std() / true.std(),
    }


def test_tracking_measures_equal_numpy_also_after_merging_chunks_and_folds():
    record, true, pred = tracking_table()
    expected = numpy_tracking(record, true, pred)
    whole = ErrorAccumulator()
    for r in range(5):
        whole.update(f"r{r}", true[record == r], pred[record == r])
    # the same pairs in chunks of 4 split over two "folds", each through JSON, then merged
    folds = [ErrorAccumulator(), ErrorAccumulator()]
    for i, first in enumerate(range(0, len(true), 4)):
        chunk = slice(first, first + 4)
        for r in np.unique(record[chunk]):
            mine = record[chunk] == r
            folds[i % 2].update(f"r{r}", true[chunk][mine], pred[chunk][mine])
    merged = ErrorAccumulator.from_dict(json_round_trip(folds[0].to_dict()))
    merged.merge(ErrorAccumulator.from_dict(json_round_trip(folds[1].to_dict())))
    for result in (whole.result(), merged.result()):
        for key, value in expected.items():
            assert result[key] == pytest.approx(value, rel=1e-9), key


def test_a_fixed_level_does_not_track_and_a_copy_tracks_perfectly():
    record, true, _ = tracking_table()
    for pred, slope, sd_ratio in ((np.full_like(true, 100.0), 0.0, 0.0), (true, 1.0, 1.0)):
        acc = ErrorAccumulator()
        for r in range(5):
            acc.update(f"r{r}", true[record == r], pred[record == r])
        result = acc.result()
        assert result["slope"] == pytest.approx(slope, abs=1e-12)
        assert result["sd_ratio"] == pytest.approx(sd_ratio, abs=1e-12)
    assert result["r_within"] == pytest.approx(1.0) and result["r_between"] == pytest.approx(1.0)


def test_signed_error_per_true_sbp_band():
    sbp = np.array([70.0, 85.0, 100.0, 139.9, 140.0, 200.0])
    error = np.array([1.0, 3.0, -2.0, 2.0, 10.0, -20.0])
    halves = [ErrorAccumulator(), ErrorAccumulator()]
    for i in range(len(sbp)):
        halves[i % 2].update(
            "r", sbp[i : i + 1] - 40, sbp[i : i + 1] - 40 + error[i], sbp[i : i + 1]
        )
    halves[0].merge(halves[1])
    result = halves[0].result()
    keys = [key for _, key, _, _ in SBP_BANDS]
    assert [result[f"n_{k}"] for k in keys] == [2, 2, 2]
    assert [result[f"me_{k}"] for k in keys] == pytest.approx([2.0, 0.0, -5.0])
    assert [result[f"mae_{k}"] for k in keys] == pytest.approx([2.0, 2.0, 15.0])


# --- the real fixture ---------------------------------------------------------------------

# The record's clean stretch: after the clipped flush (ends near 23.4 s) and before the drop to
# -30 / 0 mmHg (starts near 134.0 s). Its ECG has a clean negative QRS of about -0.35 mV.
CLEAN = slice(2950, 16740)  # 23.6 s .. 133.9 s


def test_find_beats_on_real_abp_matches_ecg_heart_rate():
    signals = scipy.io.loadmat(FIXTURE)["p"][0, 0]
    abp, ecg = signals[1, CLEAN], signals[2, CLEAN]
    assert abp.min() > 40 and abp.max() < 200  # the stretch really is clean
    qrs = ecg < -0.2
    r_waves = np.flatnonzero(qrs[1:] & ~qrs[:-1]) + 1
    rr = np.diff(r_waves)
    assert 100 < len(rr) < 130 and rr.min() > 0.27 * FS  # an independent, plausible count

    beats = find_beats(abp, FS)
    durations = (beats[:, 1] - beats[:, 0]) / FS
    assert abs(len(beats) - len(rr)) <= 2
    assert np.median(durations) == pytest.approx(np.median(rr) / FS, rel=0.03)
    assert durations.min() >= 0.27 and durations.max() <= 1.5
    values = beat_values(abp, beats)
    assert np.all(values["sbp"] > values["dbp"])
    assert np.all((values["dbp"] <= values["map"]) & (values["map"] <= values["sbp"]))
    assert np.all(beats[1:, 0] >= beats[:-1, 1])


def test_constant_prediction_has_no_correlation_even_after_rounding():
    """A constant predictor (the naive floor) has no Pearson r, however its mean rounds."""
    rng = np.random.default_rng(5)
    acc = ErrorAccumulator()
    level = 93.123456789
    for index in range(20):
        true = rng.normal(95.0, 15.0, size=int(rng.integers(50, 5000)))
        acc.update(f"r{index}", true, np.full(len(true), level))
    result = acc.result()
    assert result["pearson_r"] is None
    assert result["r2"] is not None and result["r2"] < 0.05
