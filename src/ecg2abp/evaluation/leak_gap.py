"""How much of a score is leakage: the same variants under `paper` and `record`, side by side."""

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ecg2abp.atomic import atomic_path
from ecg2abp.evaluation.pooling import ALL_FOLDS, pool_tables

PROTOCOLS = ("paper", "record")
SHARES = ("bhs_within_5", "bhs_within_10", "bhs_within_15")
COLUMNS = (
    "variant",
    "level",
    "mae_paper",
    "mae_record",
    "ratio",
    *(f"{share}_{p}" for p in PROTOCOLS for share in SHARES),
    "n_paper",
    "n_record",
)


def _pooled(metric_files: Sequence[Path], protocol: str) -> pd.DataFrame:
    """All folds merged, one row per variant × level, columns suffixed by the protocol."""
    table = pool_tables(metric_files)
    table = table[table["fold"] == ALL_FOLDS]
    kept = table[["variant", "level", "mae", "n", *SHARES]]
    return kept.rename(columns={c: f"{c}_{protocol}" for c in ("mae", "n", *SHARES)})


def leak_gap_table(paper_files: Sequence[Path], record_files: Sequence[Path]) -> pd.DataFrame:
    """Per variant × level: MAE and BHS shares under both protocols, and record MAE / paper MAE.

    `paper` scores its sampled windows point-wise only, so beat levels have no paper figures.
    """
    merged = _pooled(paper_files, "paper").merge(
        _pooled(record_files, "record"), on=["variant", "level"], how="outer"
    )
    merged["ratio"] = merged["mae_record"] / merged["mae_paper"]
    order = {"naive": 0, "knn": 1}
    merged["_order"] = merged["variant"].map(lambda v: (order.get(v, 2), v))
    levels = {"point": 0, "sbp": 1, "dbp": 2, "map": 3}
    merged["_level"] = merged["level"].map(levels)
    merged = merged.sort_values(["_order", "_level"]).reset_index(drop=True)
    return merged[list(COLUMNS)]


def _fmt(value: object, digits: int = 2) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def leak_gap_markdown(table: pd.DataFrame) -> str:
    lines = [
        "Same shards, same training settings; only the split differs. `paper`: a random share",
        "of stride-1 windows split at window level (test windows have near-copies in training);",
        "`record`: whole records held out. ratio = MAE record / MAE paper; `knn` learns",
        "nothing but near-copies, so its paper score is the leak itself.",
        "",
        "| variant | level | MAE paper | MAE record | ratio | BHS ≤5/10/15 % paper | "
        "BHS ≤5/10/15 % record |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, row in table.iterrows():
        shares = {p: "/".join(_fmt(row[f"{share}_{p}"], 0) for share in SHARES) for p in PROTOCOLS}
        lines.append(
            f"| {row['variant']} | {row['level']} | {_fmt(row['mae_paper'])} | "
            f"{_fmt(row['mae_record'])} | {_fmt(row['ratio'])} | {shares['paper']} | "
            f"{shares['record']} |"
        )
    lines += ["", "Errors in mmHg; beat levels are scored under `record` only."]
    return "\n".join(lines) + "\n"


def write_leak_gap(
    paper_files: Sequence[Path], record_files: Sequence[Path], table_out: Path, md_out: Path
) -> None:
    """results/{experiment}/leak_gap.parquet and leak_gap.md."""
    table = leak_gap_table(paper_files, record_files)
    with atomic_path(Path(table_out)) as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(Path(md_out)) as tmp:
        tmp.write_text(leak_gap_markdown(table))
