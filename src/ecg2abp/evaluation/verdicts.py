"""Paired verdicts on the same test records: per-record MAE differences, bootstrap intervals.

Samples of one record are not independent, nor are adjacent records (they may share a
patient), so intervals resample whole units: the split's resampling units (the record
protocol's blocks of adjacent records, the part file under `part`), never samples or single
records. With several training seeds, the same seed and record are paired, and intervals also
resample seeds. diff = variant − against (MAE, mmHg): negative means the variant errs less; a
variant "wins" a record where its MAE there is lower, and "beats" the other where the whole
interval lies below 0.
"""

import numpy as np
import pandas as pd

from ecg2abp.errors import InputError

FLOORS = ("naive", "template")
DRAWS_PER_CHUNK = 1 << 22  # resampled values held at once
ROW_KEYS = ("n_records", "n_units", "diff_mean", "ci_low", "ci_high", "win_share")


def bootstrap_ratio_ci(
    numerator: np.ndarray, denominator: np.ndarray, samples: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of Σ numerator / Σ denominator over units drawn with replacement."""
    numerator = np.asarray(numerator, np.float64)
    denominator = np.asarray(denominator, np.float64)
    n = len(numerator)
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    stats = np.empty(samples)
    chunk = max(1, DRAWS_PER_CHUNK // n)
    for first in range(0, samples, chunk):
        count = min(chunk, samples - first)
        drawn = rng.integers(0, n, size=(count, n))
        stats[first : first + count] = numerator[drawn].sum(1) / denominator[drawn].sum(1)
    tail = (1.0 - level) / 2
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_mean_ci(
    values: np.ndarray, samples: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the mean of `values` (one per unit), units resampled."""
    values = np.asarray(values, np.float64)
    return bootstrap_ratio_ci(values, np.ones_like(values), samples, seed, level)


def unit_mean_ci(
    values: np.ndarray, units: np.ndarray, samples: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Interval of the mean of per-record `values`, each draw taking whole units of records.

    A draw's statistic is Σ values / Σ records over the units drawn: the records of a unit
    always enter (or stay out) together.
    """
    _, unit_of = np.unique(np.asarray(units), return_inverse=True)
    sums = np.bincount(unit_of, weights=np.asarray(values, np.float64))
    counts = np.bincount(unit_of).astype(np.float64)
    return bootstrap_ratio_ci(sums, counts, samples, seed, level)


def unit_seed_mean_ci(
    values: np.ndarray,
    units: np.ndarray,
    seeds: np.ndarray,
    samples: int,
    seed: int,
    level: float = 0.95,
) -> tuple[float, float]:
    """Interval of the mean of per-(seed, record) `values`, each draw taking whole units of
    records and, independently, seeds with replacement (with one seed: unit_mean_ci).

    A draw's statistic is Σ w_unit · v_seed · value / Σ w_unit · v_seed over the (seed, record)
    pairs, w and v counting how often each unit and seed was drawn.
    """
    seed_ids, seed_of = np.unique(np.asarray(seeds), return_inverse=True)
    if len(seed_ids) <= 1:
        return unit_mean_ci(values, units, samples, seed, level)
    _, unit_of = np.unique(np.asarray(units), return_inverse=True)
    n_units, n_seeds = unit_of.max() + 1, len(seed_ids)
    sums = np.zeros((n_units, n_seeds))
    counts = np.zeros((n_units, n_seeds))
    np.add.at(sums, (unit_of, seed_of), np.asarray(values, np.float64))
    np.add.at(counts, (unit_of, seed_of), 1.0)
    rng = np.random.default_rng(seed)
    stats = np.empty(samples)
    chunk = max(1, DRAWS_PER_CHUNK // (n_units + n_seeds))
    for first in range(0, samples, chunk):
        count = min(chunk, samples - first)
        unit_weights = _draw_counts(rng, count, n_units)
        seed_weights = _draw_counts(rng, count, n_seeds)
        total = np.einsum("cu,us,cs->c", unit_weights, sums, seed_weights)
        stats[first : first + count] = total / np.einsum(
            "cu,us,cs->c", unit_weights, counts, seed_weights
        )
    tail = (1.0 - level) / 2
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return float(low), float(high)


def _draw_counts(rng: np.random.Generator, draws: int, n: int) -> np.ndarray:
    """[draws, n]: how often each of n items was drawn in n draws with replacement, per draw."""
    drawn = rng.integers(0, n, size=(draws, n))
    offsets = (np.arange(draws) * n)[:, None]
    return np.bincount((drawn + offsets).ravel(), minlength=draws * n).reshape(draws, n)


def record_table(
    n: dict[str, int] | dict[tuple[int, str], int],
    sum_abs: dict,
    units: dict[str, str],
) -> pd.DataFrame:
    """Per record — or per (seed, record) where the keys are pairs — with something scored:
    seed (0 for plain record keys), record, n, MAE and the record's resampling unit (the record
    itself if none)."""
    keys = sorted(k for k in n if n[k] > 0)
    pairs = [key if isinstance(key, tuple) else (0, key) for key in keys]
    frame = pd.DataFrame(
        {
            "seed": np.array([s for s, _ in pairs], np.int64),
            "record": pd.Series([r for _, r in pairs], dtype=object),
            "n": np.array([n[k] for k in keys], np.int64),
            "sum_abs": np.array([sum_abs[k] for k in keys], np.float64),
            "unit": pd.Series([units.get(r, r) for _, r in pairs], dtype=object),
        }
    )
    frame["mae"] = frame["sum_abs"] / frame["n"]
    return frame


def paired_difference(
    mine: pd.DataFrame, theirs: pd.DataFrame, what: str, samples: int, seed: int
) -> dict:
    """n_records, n_units, mean per-(seed, record) MAE difference, its unit × seed bootstrap
    interval, wins.

    Both tables (record_table) must hold the same records and seeds with the same counts (the
    same seed and record are paired); `what` names the pair in the error otherwise.
    """
    key = ["seed", "record"]
    joined = mine.merge(
        theirs[[*key, "n", "mae"]], on=key, how="outer", suffixes=("", "_other"), indicator=True
    )
    several_seeds = joined["seed"].nunique() > 1
    odd = joined[joined["_merge"] != "both"]
    if len(odd):
        at = _where(odd.iloc[0], several_seeds)
        raise InputError(f"{what}: record {at} scored by only one of them (not the same test data)")
    unequal = joined[joined["n"] != joined["n_other"]]
    if len(unequal):
        at = _where(unequal.iloc[0], several_seeds)
        raise InputError(
            f"{what}: record {at} has different numbers of values (not the same samples)"
        )
    diff = (joined["mae"] - joined["mae_other"]).to_numpy()
    if len(diff) == 0:
        return dict.fromkeys(ROW_KEYS, np.nan) | {"n_records": 0, "n_units": 0}
    units, seeds = joined["unit"].to_numpy(), joined["seed"].to_numpy()
    low, high = unit_seed_mean_ci(diff, units, seeds, samples, seed)
    return {
        "n_records": int(joined["record"].nunique()),
        "n_units": int(joined["unit"].nunique()),
        "diff_mean": float(diff.mean()),
        "ci_low": low,
        "ci_high": high,
        "win_share": float(np.mean(diff < 0)),
    }


def _where(row: pd.Series, with_seed: bool) -> str:
    return f"{row['record']} (seed {row['seed']})" if with_seed else str(row["record"])


def beats(ci_low: float, ci_high: float) -> str:
    """ "yes" where the interval lies below 0, "no (worse)" above it, else "not shown"."""
    if ci_high < 0:
        return "yes"
    if ci_low > 0:
        return "no (worse)"
    return "not shown (interval includes 0)"
