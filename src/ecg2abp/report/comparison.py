"""Paired comparison of variants on the same test records: every variant against the reference
variant and the floors (naive, template), with bootstrap intervals over the split's resampling
units and, where several ran, over seeds (each seed paired with the same seed; see
evaluation.verdicts)."""

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ecg2abp.atomic import atomic_path
from ecg2abp.errors import InputError
from ecg2abp.evaluation.metrics import LEVELS
from ecg2abp.evaluation.verdicts import FLOORS, paired_difference, record_table
from ecg2abp.report.streaming import VariantStream
from ecg2abp.report.tables import write_html, write_markdown

COLUMNS = (
    "variant",
    "against",
    "level",
    "n_records",
    "n_units",
    "unit",
    "diff_mean",
    "ci_low",
    "ci_high",
    "win_share",
)


def record_mae(stream: VariantStream, level: str) -> pd.DataFrame:
    """Per (seed, record): n, MAE and resampling unit of one level (nothing scored: left out)."""
    index = LEVELS.index(level)
    n = {key: int(values[index]) for key, values in stream.record_n.items()}
    total = {key: float(values[index]) for key, values in stream.record_abs.items()}
    return record_table(n, total, stream.record_units)


def paired(
    variant: VariantStream, against: VariantStream, level: str, samples: int, seed: int
) -> dict:
    """One row of the comparison table."""
    what = f"{variant.variant} vs {against.variant} at level {level}"
    row = paired_difference(
        record_mae(variant, level), record_mae(against, level), what, samples, seed
    )
    unit = variant.resampling_unit or "record"
    names = {"variant": variant.variant, "against": against.variant, "level": level, "unit": unit}
    return names | row


def compare_variants(
    streams: Sequence[VariantStream], reference: str, samples: int, seed: int
) -> pd.DataFrame:
    """Every variant but naive against the reference and the floors that ran, level by level."""
    by_name = {s.variant: s for s in streams}
    if FLOORS[0] not in by_name:
        raise InputError("comparison: the naive floor's predictions are missing")
    targets = [name for name in (reference, *FLOORS) if name in by_name]
    rows = []
    for name in sorted(set(by_name) - {FLOORS[0]}):
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
            "units": table["n_units"],
            "Δ MAE (95 % CI)": [
                f"{r.diff_mean:+.2f} ({r.ci_low:+.2f} to {r.ci_high:+.2f})"
                for r in table.itertuples()
            ],
            "wins": [f"{100 * share:.0f} %" for share in table["win_share"]],
            "verdict": [verdict(r) for r in table.itertuples()],
        }
    )


def comparison_notes(reference: str, ran: set[str], samples: int, units: set[str]) -> list[str]:
    what = " / ".join(sorted(units)) or "record"
    notes = [
        "Δ MAE = variant − against: mean over records of the per-record MAE difference on the "
        "same test samples (mmHg; negative: the variant errs less). Interval: percentile "
        f"bootstrap, {samples} resamplings of whole resampling units ({what}; units: how many), "
        "never of single records, and of seeds where several ran (each seed paired with the "
        "same seed). wins: share of records (× seeds) where the variant's MAE is lower. "
        "A lead is stated only where the interval excludes 0.",
        "Floors: naive predicts the training mean ABP, and at the beat levels the training "
        "beats' mean SBP, DBP and MAP; template draws the mean training beat against the time "
        "since the window's last R peak. Both from training data only (per record under "
        "temporal).",
    ]
    missing = [name for name in (reference, *FLOORS) if name not in ran]
    if missing:
        notes.append(f"Not run, so not compared against: {', '.join(missing)}.")
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
    ran = {s.variant for s in streams}
    units = {s.resampling_unit for s in streams if s.resampling_unit}
    notes = comparison_notes(reference, ran, samples, units)
    with atomic_path(outputs["table"]) as tmp:
        table.to_parquet(tmp, index=False)
    display = comparison_display(table)
    write_markdown(display, outputs["markdown"], notes)
    write_html(display, outputs["html"], "Paired comparison", notes)
    return table
