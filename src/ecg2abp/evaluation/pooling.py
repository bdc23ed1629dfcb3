"""Per-job metrics pooled into one table: every fold × seed, and all merged, per variant."""

import json
import statistics
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ecg2abp.atomic import atomic_path
from ecg2abp.data.ingest import kept_nothing
from ecg2abp.errors import InputError
from ecg2abp.evaluation.metrics import LEVELS, ErrorAccumulator, LevelMetrics

ALL_FOLDS = -1  # the fold (and seed) of the rows merging every fold and seed
SEED_SPREAD = ("mae", "me", "sd", "rmse", "pearson_r")  # each also as `{metric}_seed_sd`
TEST = "test"  # the dataset of the folds' own test sides; external sets carry their name
COLUMNS = (
    "n",
    "mae",
    "me",
    "sd",
    "rmse",
    "r2",
    "pearson_r",
    "bhs_within_5",
    "bhs_within_10",
    "bhs_within_15",
    "bhs_grade",
    "ieee_grade",
    "aami_met",
    "aami_records_met",
    "aami_records",
    *(f"{metric}_seed_sd" for metric in SEED_SPREAD),
)


def _read(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: cannot read metrics ({err})") from None


def _rows(meta: dict, fold: int, seed: int | None, levels: dict) -> list[dict]:
    rows = []
    for level in LEVELS:
        values = levels.get(level, {})
        if values.get("applies") is False:
            continue
        rows.append(
            {
                "dataset": meta.get("dataset", TEST),
                "variant": meta["variant"],
                "model": meta["model"],
                "kind": meta["kind"],
                "protocol": meta["protocol"],
                "leaky": meta["leaky"],
                "fold": fold,
                "seed": seed,
                "level": level,
                **{column: values.get(column) for column in COLUMNS},
            }
        )
    return rows


def _merged_levels(documents: list[dict]) -> dict:
    """All folds of one variant merged from their accumulators (not averaged)."""
    if documents[0]["protocol"] == "paper" and documents[0].get("dataset", TEST) == TEST:
        point = ErrorAccumulator.from_dict(documents[0]["state"]["point"])
        for document in documents[1:]:
            point.merge(ErrorAccumulator.from_dict(document["state"]["point"]))
        not_applying = {level: documents[0]["levels"][level] for level in LEVELS[1:]}
        return {"point": point.result(), **not_applying}
    merged = LevelMetrics.from_dict(documents[0]["state"])
    for document in documents[1:]:
        merged.merge(LevelMetrics.from_dict(document["state"]))
    return merged.result()


def _seed_spread(documents: list[dict]) -> dict[str, dict]:
    """Per level, the SD over seeds of each SEED_SPREAD metric, every seed's folds merged
    (NaN with one seed)."""
    by_seed: dict = {}
    for document in documents:
        by_seed.setdefault(document.get("seed"), []).append(document)
    results = [_merged_levels(group) for group in by_seed.values()]
    spread = {}
    for level in LEVELS:
        spread[level] = {}
        for metric in SEED_SPREAD:
            values = [r[level].get(metric) for r in results if r[level].get("applies") is not False]
            values = [v for v in values if v is not None]
            sd = statistics.stdev(values) if len(values) >= 2 else float("nan")
            spread[level][f"{metric}_seed_sd"] = sd
    return spread


def pool_tables(metric_files: Sequence[Path]) -> pd.DataFrame:
    """One row per dataset × variant × fold × seed × level, plus fold = seed = -1 for all folds
    and seeds merged (merged like folds: one accumulator), with the SDs over seeds."""
    by_variant: dict[tuple[str, str], list[dict]] = {}
    for path in metric_files:
        document = _read(path)
        key = (document.get("dataset", TEST), document["variant"])
        by_variant.setdefault(key, []).append(document)
    rows = []
    for documents in by_variant.values():
        documents.sort(key=lambda d: (d["fold"], d.get("seed") or 0))
        for document in documents:
            rows.extend(_rows(document, document["fold"], document.get("seed"), document["levels"]))
        merged, spread = _merged_levels(documents), _seed_spread(documents)
        levels = {level: {**values, **spread[level]} for level, values in merged.items()}
        rows.extend(_rows(documents[0], ALL_FOLDS, ALL_FOLDS, levels))
    return pd.DataFrame(rows)


def _fmt(value: object, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def summary_markdown(table: pd.DataFrame) -> str:
    """A table of all folds merged per dataset: MAE and ME ± SD per level, BHS and IEEE grades."""
    datasets = table["dataset"] if "dataset" in table else pd.Series(TEST, index=table.index)
    text = _summary_of(table[datasets == TEST])
    for name in sorted(set(datasets) - {TEST}):
        text += f"\n## External data set `{name}`\n\n" + _summary_of(table[datasets == name])
    return text


def _summary_of(table: pd.DataFrame) -> str:
    pooled = table[table["fold"] == ALL_FOLDS]
    lines = []
    if bool(table["leaky"].any()):
        lines += [
            "**leaky**: protocol `paper` — test windows overlap training windows; these figures",
            "do not measure accuracy on unseen data.",
            "",
        ]
    job_rows = table[table["fold"] != ALL_FOLDS]
    seeds = sorted(int(s) for s in job_rows["seed"].dropna().unique()) if "seed" in table else []
    spread = len(seeds) >= 2  # the SD over seeds, where there is one
    lines += [
        "| variant | level | n | MAE | ME ± SD | r | BHS ≤5/10/15 % | BHS | IEEE | AAMI met |"
        + (" MAE SD over seeds |" if spread else ""),
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if spread else ""),
    ]
    order = ["naive", *sorted(v for v in pooled["variant"].unique() if v != "naive")]
    for variant in order:
        for _, row in pooled[(pooled["variant"] == variant) & (pooled["n"] > 0)].iterrows():
            within = "/".join(_fmt(row[f"bhs_within_{k}"], 0) for k in (5, 10, 15))
            lines.append(
                f"| {variant} | {row['level']} | {row['n']} | {_fmt(row['mae'])} | "
                f"{_fmt(row['me'])} ± {_fmt(row['sd'])} | {_fmt(row['pearson_r'])} | {within} | "
                f"{_fmt(row['bhs_grade'])} | {_fmt(row['ieee_grade'])} | "
                f"{row['aami_records_met']}/{row['aami_records']} |"
                + (f" {_fmt(row['mae_seed_sd'])} |" if spread else "")
            )
    folds = sorted(int(f) for f in table["fold"].unique() if f != ALL_FOLDS)
    protocol = table["protocol"].iloc[0]
    merged = f"folds {folds}" + (f" × seeds {seeds}" if spread else "")
    lines += [
        "",
        f"Protocol `{protocol}`, {merged} merged; errors in mmHg (pred − true). Levels with",
        "nothing scored are left out (beats need every sample predicted: evaluate.stride 1).",
    ]
    return "\n".join(lines) + "\n"


def kept_nothing_markdown(clean_reports: Sequence[Path], shown: int = 20) -> str:
    """A note listing the parts and records that cleaning left empty ("" when none)."""
    lines = []
    for report in clean_reports:
        empty = kept_nothing(Path(report))
        more = f", and {len(empty) - shown} more" if len(empty) > shown else ""
        if empty:
            lines.append(f"- {Path(report).stem}: {', '.join(empty[:shown])}{more}")
    if not lines:
        return ""
    return "\nKept nothing after cleaning (see clean/{part}.parquet):\n\n" + "\n".join(lines) + "\n"


def pool_metrics(
    metric_files: Sequence[Path],
    table_out: Path,
    summary_out: Path,
    clean_reports: Sequence[Path] = (),
) -> None:
    """Write the pooled Parquet table and its Markdown summary (with what cleaning emptied)."""
    table = pool_tables(metric_files)
    with atomic_path(table_out) as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(summary_out) as tmp:
        tmp.write_text(summary_markdown(table) + kept_nothing_markdown(clean_reports))
