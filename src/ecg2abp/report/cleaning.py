"""What cleaning removed: samples per rule and part, as a table and a bar chart."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ecg2abp.data.cleaning import REASONS
from ecg2abp.errors import InputError


def cleaning_table(report_files: Sequence[Path]) -> pd.DataFrame:
    """One row per part: samples, kept, and removed per rule (from the parts' total rows)."""
    rows = []
    for path in report_files:
        try:
            report = pd.read_parquet(path)
        except (OSError, ValueError) as err:
            raise InputError(f"{path}: cannot read cleaning report ({err})") from None
        total = report[report["level"] == "part"]
        if len(total) != 1:
            raise InputError(f"{path}: expected one part total row, found {len(total)}")
        row = total.iloc[0]
        rows.append(
            {
                "part": Path(path).stem,
                "n_samples": int(row["n_samples"]),
                "kept_samples": int(row["kept_samples"]),
                **{reason: int(row[f"removed_{reason}"]) for reason in REASONS},
            }
        )
    return pd.DataFrame(rows, columns=["part", "n_samples", "kept_samples", *REASONS])


def cleaning_display(table: pd.DataFrame) -> pd.DataFrame:
    """The table with a total row and the kept share."""
    total = {"part": "all", **table.drop(columns="part").sum().to_dict()}
    frame = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    kept = 100.0 * frame["kept_samples"] / frame["n_samples"].where(frame["n_samples"] > 0)
    return pd.DataFrame(
        {
            "part": frame["part"],
            "samples": frame["n_samples"].astype(int),
            "kept %": [f"{k:.1f}" for k in kept],
            **{reason: frame[reason].astype(int) for reason in REASONS},
        }
    )


CLEANING_NOTES = [
    "Removed samples per rule; each sample counts under the first rule that claimed it."
]


def cleaning_chart(table: pd.DataFrame) -> Figure:
    """Removed samples per rule, one bar segment per part."""
    figure = Figure(figsize=(7, 4), layout="constrained")
    ax = figure.add_subplot()
    bottom = np.zeros(len(REASONS))
    for row in table.itertuples(index=False):
        values = np.array([getattr(row, reason) for reason in REASONS], float)
        ax.bar(REASONS, values, bottom=bottom, label=row.part)
        bottom += values
    ax.set_xticks(range(len(REASONS)))
    ax.set_xticklabels(REASONS, rotation=30, ha="right")
    ax.set(ylabel="removed samples", title="Cleaning: removed samples per rule and part")
    ax.legend(fontsize=8)
    return figure
