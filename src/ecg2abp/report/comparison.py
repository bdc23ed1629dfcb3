"""Paired comparison of variants on the same test records, with bootstrap intervals over records.

Samples of one record are not independent, so intervals resample records, never samples; with
several seeds, the same seed and fold are paired and intervals resample seeds too.
diff = variant − against (MAE, mmHg): negative means the variant errs less; a variant "wins" a
record where its MAE there is lower.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ecg2abp.atomic import atomic_path
from ecg2abp.errors import InputError
from ecg2abp.evaluation.metrics import LEVELS
from ecg2abp.report.streaming import VariantStream
from ecg2abp.report.tables import write_html, write_markdown

NAIVE = "naive"
COLUMNS = (
    "variant",
    "against",
    "level",
    "n_records",
    "diff_mean",
    "ci_low",
    "ci_high",
    "win_share",
)
DRAWS_PER_CHUNK = 1 << 22  # resampled values held at once


def bootstrap_ratio_ci(
    numerator: np.ndarray, denominator: np.ndarray, samples: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of Σ numerator / Σ denominator over records drawn with replacement."""
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
    """Percentile interval of the mean of `values` (one per record), records resampled."""
    values = np.asarray(values, np.float64)
    return bootstrap_ratio_ci(values, np.ones_like(values), samples, seed, level)


def bootstrap_two_way_ci(
    matrix: np.ndarray, samples: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the mean of `matrix` [records × seeds], records and seeds each
    drawn with replacement (with one seed: bootstrap_mean_ci)."""
    matrix = np.asarray(matrix, np.float64)
    n, m = matrix.shape
    if m == 1 or n == 0:
        return bootstrap_mean_ci(matrix[:, 0] if n else np.zeros(0), samples, seed, level)
    rng = np.random.default_rng(seed)
    stats = np.empty(samples)
    chunk = max(1, DRAWS_PER_CHUNK // n)
    for first in range(0, samples, chunk):
        count = min(chunk, samples - first)
        rows = rng.integers(0, n, size=(count, n))
        drawn_seeds = rng.integers(0, m, size=(count, m))
        weights = np.stack([np.bincount(d, minlength=m) for d in drawn_seeds]) / m
        per_record = weights @ matrix.T  # [count, n]: each record's mean over the drawn seeds
        stats[first : first + count] = np.take_along_axis(per_record, rows, axis=1).mean(1)
    tail = (1.0 - level) / 2
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return float(low), float(high)


def record_mae(stream: VariantStream, level: str, by_seed: bool = False) -> pd.DataFrame:
    """n and MAE of one level per record (every seed's samples together) or, `by_seed`, per
    (seed, record); records with nothing scored there left out."""
    index = LEVELS.index(level)
    keys = sorted(stream.record_n)
    frame = pd.DataFrame(
        {
            "seed": [seed for seed, _ in keys],
            "record": [record for _, record in keys],
            "n": np.array([stream.record_n[k][index] for k in keys], np.int64),
            "sum_abs": np.array([stream.record_abs[k][index] for k in keys], np.float64),
        }
    )
    if by_seed:
        frame = frame.set_index(["seed", "record"])
    else:
        frame = frame.groupby("record")[["n", "sum_abs"]].sum()
        frame.index.name = None
    frame = frame[frame["n"] > 0].copy()
    frame["mae"] = frame["sum_abs"] / frame["n"]
    return frame


def paired(
    variant: VariantStream, against: VariantStream, level: str, samples: int, seed: int
) -> dict:
    """One row of the comparison table."""
    mine = record_mae(variant, level, by_seed=True)
    theirs = record_mae(against, level, by_seed=True)
    if set(mine.index) != set(theirs.index):
        seed, odd = sorted(set(mine.index) ^ set(theirs.index))[0]
        raise InputError(
            f"{variant.variant} vs {against.variant}: record {odd} (seed {seed}) scored at "
            f"level {level} by only one of them (not the same test data and seeds)"
        )
    theirs = theirs.loc[mine.index]
    unequal = mine.index[mine["n"].to_numpy() != theirs["n"].to_numpy()]
    if len(unequal):
        seed, record = unequal[0]
        raise InputError(
            f"{variant.variant} vs {against.variant}: record {record} (seed {seed}) has different "
            f"numbers of {level} values (not the same test samples)"
        )
    diff = mine["mae"] - theirs["mae"]  # same seed, same record (so same fold)
    matrix = diff.unstack("seed").to_numpy()  # records × seeds
    low, high = bootstrap_two_way_ci(matrix, samples, seed) if len(diff) else (np.nan, np.nan)
    diff = diff.to_numpy()
    return {
        "variant": variant.variant,
        "against": against.variant,
        "level": level,
        "n_records": len(matrix),
        "diff_mean": float(matrix.mean()) if len(diff) else np.nan,
        "ci_low": low,
        "ci_high": high,
        "win_share": float(np.mean(diff < 0)) if len(diff) else np.nan,
    }


def compare_variants(
    streams: Sequence[VariantStream], reference: str, samples: int, seed: int
) -> pd.DataFrame:
    """Every variant but naive against the reference (when it ran) and naive, level by level."""
    by_name = {s.variant: s for s in streams}
    if NAIVE not in by_name:
        raise InputError("comparison: the naive floor's predictions are missing")
    targets = [name for name in (reference, NAIVE) if name in by_name]
    rows = []
    for name in sorted(set(by_name) - {NAIVE}):
        for against in targets:
            if name == against:
                continue
            for level in LEVELS:
                row = paired(by_name[name], by_name[against], level, samples, seed)
                if row["n_records"] > 0:
                    rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def verdict(row) -> str:
    """A lead only where the interval excludes 0."""
    if row.ci_high < 0:
        return f"{row.variant} leads"
    if row.ci_low > 0:
        return f"{row.against} leads"
    return "no clear lead (interval includes 0)"


def comparison_display(table: pd.DataFrame) -> pd.DataFrame:
    """The table formatted for reading, with each row's verdict."""
    return pd.DataFrame(
        {
            "variant": table["variant"],
            "against": table["against"],
            "level": table["level"],
            "records": table["n_records"],
            "Δ MAE (95 % CI)": [
                f"{r.diff_mean:+.2f} ({r.ci_low:+.2f} to {r.ci_high:+.2f})"
                for r in table.itertuples()
            ],
            "wins": [f"{100 * share:.0f} %" for share in table["win_share"]],
            "verdict": [verdict(r) for r in table.itertuples()],
        }
    )


def comparison_notes(reference: str, ran_reference: bool, samples: int) -> list[str]:
    notes = [
        "Δ MAE = variant − against: mean over records of the per-record MAE difference on the "
        "same test samples (mmHg; negative: the variant errs less). Interval: percentile "
        f"bootstrap, {samples} resamplings of records (and of seeds, where several ran: each "
        "seed paired with the same seed). wins: share of records (× seeds) where the "
        "variant's MAE is lower."
    ]
    if not ran_reference:
        notes.append(f"Reference variant {reference} was not run: compared with naive only.")
    return notes


def write_comparison(
    stream_files: Sequence[Path],
    outputs: dict[str, Path],
    reference: str,
    samples: int,
    seed: int,
) -> pd.DataFrame:
    """comparison.parquet, .md and .html from the variants' stream files."""
    streams = [VariantStream.load(Path(p)) for p in stream_files]
    table = compare_variants(streams, reference, samples, seed)
    notes = comparison_notes(reference, any(s.variant == reference for s in streams), samples)
    with atomic_path(outputs["table"]) as tmp:
        table.to_parquet(tmp, index=False)
    display = comparison_display(table)
    write_markdown(display, outputs["markdown"], notes)
    write_html(display, outputs["html"], "Paired comparison", notes)
    return table
