import numpy as np
import pytest

from ecg2abp.errors import InputError
from ecg2abp.evaluation.verdicts import bootstrap_mean_ci
from ecg2abp.report.comparison import compare_variants, paired
from ecg2abp.report.streaming import VariantStream

RNG_SEED = 3


def stream_with_errors(name: str, errors_per_record: dict[str, np.ndarray]) -> VariantStream:
    """A stream whose point level saw these errors (true 100 mmHg) per record."""
    stream = VariantStream(name)
    for record_id, errors in errors_per_record.items():
        true = np.full(len(errors), 100.0)
        stream.add_pairs(record_id, {"point": (true, true + errors)})
    return stream


def test_the_interval_contains_the_mean_and_narrows_as_records_are_added():
    diffs = np.random.default_rng(RNG_SEED).normal(-1.0, 2.0, size=20)
    low, high = bootstrap_mean_ci(diffs, samples=2000, seed=0)
    assert low < diffs.mean() < high
    more = np.tile(diffs, 10)  # same spread, ten times the records
    low_more, high_more = bootstrap_mean_ci(more, samples=2000, seed=0)
    assert low_more < more.mean() < high_more
    assert high_more - low_more < 0.5 * (high - low)


def test_the_interval_is_reproducible_from_its_seed():
    diffs = np.random.default_rng(RNG_SEED).normal(size=30)
    assert bootstrap_mean_ci(diffs, 500, seed=7) == bootstrap_mean_ci(diffs, 500, seed=7)
    assert bootstrap_mean_ci(diffs, 500, seed=7) != bootstrap_mean_ci(diffs, 500, seed=8)


def test_a_variant_against_itself_is_exactly_zero():
    rng = np.random.default_rng(RNG_SEED)
    stream = stream_with_errors("a", {f"r{i}": rng.normal(size=50) for i in range(8)})
    row = paired(stream, stream, "point", samples=1000, seed=0)
    assert (row["diff_mean"], row["ci_low"], row["ci_high"], row["win_share"]) == (0, 0, 0, 0)
    assert row["n_records"] == 8


def test_differences_are_per_record_maes_and_wins_count_records():
    better = stream_with_errors("better", {"r1": np.array([1.0, -1.0]), "r2": np.array([4.0])})
    worse = stream_with_errors("worse", {"r1": np.array([3.0, 3.0]), "r2": np.array([2.0])})
    row = paired(better, worse, "point", samples=1000, seed=0)
    # r1: MAE 1 vs 3 → -2; r2: 4 vs 2 → +2; the mean over records is 0, one win in two.
    assert row["diff_mean"] == pytest.approx(0.0)
    assert row["win_share"] == 0.5
    assert row["ci_low"] <= -2.0 + 1e-9 and row["ci_high"] >= 2.0 - 1e-9


def test_intervals_resample_the_streams_units_and_say_so():
    errors = {f"r{i}": np.linspace(0.5, 1.5, 20) for i in range(6)}  # positive: MAE + 9 below
    a, b = (
        stream_with_errors("a", errors),
        stream_with_errors("b", errors | {"r0": errors["r0"] + 9}),
    )
    for stream in (a, b):
        stream.record_units = {f"r{i}": f"u{i // 3}" for i in range(6)}  # two blocks of three
        stream.resampling_unit = "block of up to 3 adjacent records of a part"
    row = paired(b, a, "point", samples=2000, seed=0)
    assert (row["n_records"], row["n_units"]) == (6, 2)
    assert row["unit"] == "block of up to 3 adjacent records of a part"
    # whole blocks: the mean over drawn records is 0 (block u1 twice), 9/6 or 9/3 (u0 twice)
    assert row["ci_low"] == pytest.approx(0.0, abs=1e-9)
    assert row["ci_high"] == pytest.approx(3.0, abs=1e-9)


def test_different_test_samples_are_refused_naming_the_record():
    a = stream_with_errors("a", {"r1": np.ones(3)})
    b = stream_with_errors("b", {"r1": np.ones(4)})
    with pytest.raises(InputError, match="record r1"):
        paired(a, b, "point", samples=100, seed=0)


def test_every_variant_is_compared_with_the_reference_and_both_floors():
    errors = {f"r{i}": np.full(5, float(i)) for i in range(4)}
    streams = [
        stream_with_errors("naive", {k: v + 5 for k, v in errors.items()}),
        stream_with_errors("template", {k: v + 3 for k, v in errors.items()}),
        stream_with_errors("ref", errors),
        stream_with_errors("other", {k: v + 1 for k, v in errors.items()}),
    ]
    table = compare_variants(streams, "ref", samples=200, seed=0)
    pairs = set(zip(table["variant"], table["against"], strict=True))
    assert pairs == {
        ("other", "ref"),
        ("other", "naive"),
        ("other", "template"),
        ("ref", "naive"),
        ("ref", "template"),
        ("template", "ref"),
        ("template", "naive"),
    }
    other_vs_ref = table[(table["variant"] == "other") & (table["against"] == "ref")].iloc[0]
    assert other_vs_ref["diff_mean"] == pytest.approx(1.0)
    assert other_vs_ref["ci_low"] == pytest.approx(1.0)  # every record differs by exactly 1
    assert other_vs_ref["win_share"] == 0.0


def seeded_stream(name: str, errors: dict[tuple[int, str], np.ndarray]) -> VariantStream:
    """A stream whose point level saw these errors (true 100 mmHg) per (seed, record)."""
    stream = VariantStream(name)
    for (seed, record_id), error in errors.items():
        true = np.full(len(error), 100.0)
        stream.add_pairs(record_id, {"point": (true, true + error)}, seed)
    return stream


def test_seeds_are_paired_with_the_same_seed_not_pooled():
    # Seed 0: a errs by 1, b by 3; seed 1 the other way round. Pooled over seeds they tie on
    # every record; paired seed by seed, a wins half the (record, seed) pairs by 2 mmHg.
    records = [f"r{i}" for i in range(6)]
    a = seeded_stream("a", {(s, r): np.full(4, 1.0 + 2 * s) for s in (0, 1) for r in records})
    b = seeded_stream("b", {(s, r): np.full(4, 3.0 - 2 * s) for s in (0, 1) for r in records})
    row = paired(a, b, "point", samples=500, seed=0)
    assert row["n_records"] == 6 and row["diff_mean"] == pytest.approx(0.0)
    assert row["win_share"] == 0.5


def test_the_interval_covers_the_spread_over_seeds_as_well_as_records():
    # Every record gains 1 mmHg under seed 0 and loses 1 under seed 1: records alone vary
    # nothing, so only resampling seeds can show that the sign is the seed's.
    records = [f"r{i}" for i in range(20)]
    a = seeded_stream("a", {(s, r): np.full(3, 2.0 - 2 * s) for s in (0, 1) for r in records})
    b = seeded_stream("b", {(s, r): np.full(3, 1.0) for s in (0, 1) for r in records})
    row = paired(a, b, "point", samples=2000, seed=0)
    assert row["diff_mean"] == pytest.approx(0.0)
    assert row["ci_low"] <= -0.9 and row["ci_high"] >= 0.9


def test_a_seed_run_by_one_variant_only_is_refused_naming_it():
    a = seeded_stream("a", {(0, "r1"): np.ones(3), (1, "r1"): np.ones(3)})
    b = seeded_stream("b", {(0, "r1"): np.ones(3)})
    with pytest.raises(InputError, match=r"record r1 \(seed 1\)"):
        paired(a, b, "point", samples=100, seed=0)
