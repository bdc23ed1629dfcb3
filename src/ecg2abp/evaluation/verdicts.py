"""Paired verdicts on the same test records: per-record MAE differences, bootstrap intervals.

Samples of one record are not independent, nor are adjacent records (they may share a
patient), so intervals resample whole units: the split's resampling units (the record
protocol's blocks of adjacent records, the part file under `part`), never samples or single
records. diff = variant − against (MAE, mmHg): negative means the variant errs less; a variant
"wins" a record where its MAE there is lower, and "beats" the other where the whole interval
lies below 0.
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


def record_table(
    n: dict[str, int], sum_abs: dict[str, float], units: dict[str, str]
) -> pd.DataFrame:
    """Per record with something scored: n, MAE and its resampling unit (the record if none)."""
    records = sorted(r for r in n if n[r] > 0)
    frame = pd.DataFrame(
        {
            "n": np.array([n[r] for r in records], np.int64),
            "sum_abs": np.array([sum_abs[r] for r in records], np.float64),
            "unit": [units.get(r, r) for r in records],
        },
        index=pd.Index(records, dtype=object),
    )
    frame["mae"] = frame["sum_abs"] / frame["n"]
    return frame


def paired_difference(
    mine: pd.DataFrame, theirs: pd.DataFrame, what: str, samples: int, seed: int
) -> dict:
    """n_records, n_units, mean per-record MAE difference, its unit-bootstrap interval, wins.

    Both tables (record_table) must hold the same records with the same counts; `what` names
    the pair in the error otherwise.
    """
    if set(mine.index) != set(theirs.index):
        odd = sorted(set(mine.index) ^ set(theirs.index))[0]
        raise InputError(
            f"{what}: record {odd} scored by only one of them (not the same test data)"
        )
    theirs = theirs.loc[mine.index]
    unequal = mine.index[mine["n"].to_numpy() != theirs["n"].to_numpy()]
    if len(unequal):
        raise InputError(
            f"{what}: record {unequal[0]} has different numbers of values (not the same samples)"
        )
    diff = mine["mae"].to_numpy() - theirs["mae"].to_numpy()
    if len(diff) == 0:
        return dict.fromkeys(ROW_KEYS, np.nan) | {"n_records": 0, "n_units": 0}
    low, high = unit_mean_ci(diff, mine["unit"].to_numpy(), samples, seed)
    return {
        "n_records": len(diff),
        "n_units": int(mine["unit"].nunique()),
        "diff_mean": float(diff.mean()),
        "ci_low": low,
        "ci_high": high,
        "win_share": float(np.mean(diff < 0)),
    }


def beats(ci_low: float, ci_high: float) -> str:
    """ "yes" where the interval lies below 0, "no (worse)" above it, else "not shown"."""
    if ci_high < 0:
        return "yes"
    if ci_low > 0:
        return "no (worse)"
    return "not shown (interval includes 0)"
