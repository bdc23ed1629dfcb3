"""Paired comparison of variants on the same test records, with bootstrap intervals over records.

Samples of one record are not independent, so intervals resample records, never samples.
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


def record_mae(stream: VariantStream, level: str) -> pd.DataFrame:
    """Per-record n and MAE of one level (records with nothing scored there left out)."""
    index = LEVELS.index(level)
    records = sorted(stream.record_n)
    n = np.array([stream.record_n[r][index] for r in records], np.int64)
    total = np.array([stream.record_abs[r][index] for r in records], np.float64)
    keep = n > 0
    frame = pd.DataFrame({"n": n[keep], "sum_abs": total[keep]}, index=np.array(records)[keep])
    frame["mae"] = frame["sum_abs"] / frame["n"]
    return frame


def paired(
    variant: VariantStream, against: VariantStream, level: str, samples: int, seed: int
) -> dict:
    """One row of the comparison table."""
    mine, theirs = record_mae(variant, level), record_mae(against, level)
    if set(mine.index) != set(theirs.index):
        odd = sorted(set(mine.index) ^ set(theirs.index))[0]
        raise InputError(
            f"{variant.variant} vs {against.variant}: record {odd} scored at level {level} "
            "by only one of them (not the same test data)"
        )
    theirs = theirs.loc[mine.index]
    unequal = mine.index[mine["n"].to_numpy() != theirs["n"].to_numpy()]
    if len(unequal):
        raise InputError(
            f"{variant.variant} vs {against.variant}: record {unequal[0]} has different "
            f"numbers of {level} values (not the same test samples)"
        )
    diff = mine["mae"].to_numpy() - theirs["mae"].to_numpy()
    low, high = bootstrap_mean_ci(diff, samples, seed) if len(diff) else (np.nan, np.nan)
    return {
        "variant": variant.variant,
        "against": against.variant,
        "level": level,
        "n_records": len(diff),
        "diff_mean": float(diff.mean()) if len(diff) else np.nan,
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
        f"bootstrap, {samples} resamplings of records. wins: share of records where the "
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
