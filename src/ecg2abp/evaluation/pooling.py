"""Per-job metrics pooled into one table: every fold × seed, and all merged, per variant."""

import json
import statistics
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ecg2abp.atomic import atomic_path
from ecg2abp.data.ingest import kept_nothing
from ecg2abp.errors import InputError
from ecg2abp.evaluation.metrics import LEVELS, SBP_BANDS, ErrorAccumulator, LevelMetrics
from ecg2abp.evaluation.verdicts import FLOORS, beats, paired_difference, record_table
from ecg2abp.folds.protocols import describe_test_set, test_set_key

ALL_FOLDS = -1  # the fold (and seed) of the rows merging every fold and seed
SEED_SPREAD = ("mae", "me", "sd", "rmse", "pearson_r")  # each also as `{metric}_seed_sd`
TEST = "test"  # the dataset of the folds' own test sides; external sets carry their name
MAIN = "test"  # the `side` of the rows of the folds' own test side (the report draws those)
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
    *("slope", "intercept", "r_within", "r_between", "sd_ratio"),
    *(f"{measure}_{key}" for _, key, _, _ in SBP_BANDS for measure in ("n", "mae", "me")),
    *(f"{metric}_seed_sd" for metric in SEED_SPREAD),
)
BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0


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
                "side": _side(meta),
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


def _side(document: dict) -> str | None:
    """The split side a metrics document scores (MAIN, or a test set's name); None: external."""
    if "side" in document:
        return document["side"]
    return MAIN if document.get("dataset", TEST) == TEST else None


def main_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the folds' own test side: the ones the report's figures and MLflow show."""
    return table[table["side"] == MAIN] if "side" in table else table


def _sampled_windows(documents: list[dict]) -> bool:
    return documents[0]["protocol"] == "paper" and documents[0].get("dataset", TEST) == TEST


def merged_accumulators(documents: list[dict]) -> dict[str, ErrorAccumulator]:
    """Level → all folds of one variant merged from their accumulators (not averaged)."""
    if _sampled_windows(documents):
        point = ErrorAccumulator.from_dict(documents[0]["state"]["point"])
        for document in documents[1:]:
            point.merge(ErrorAccumulator.from_dict(document["state"]["point"]))
        return {"point": point}
    merged = LevelMetrics.from_dict(documents[0]["state"])
    for document in documents[1:]:
        merged.merge(LevelMetrics.from_dict(document["state"]))
    return merged.levels


def _merged_levels(documents: list[dict]) -> dict:
    """All folds of one variant merged: each level's result (and the levels that do not apply)."""
    if _sampled_windows(documents):
        point = merged_accumulators(documents)["point"]
        not_applying = {level: documents[0]["levels"][level] for level in LEVELS[1:]}
        return {"point": point.result(), **not_applying}
    merged = LevelMetrics.from_dict(documents[0]["state"])
    for document in documents[1:]:
        merged.merge(LevelMetrics.from_dict(document["state"]))
    not_applying = {  # e.g. beats under evaluate.stride > 1
        level: values
        for level, values in documents[0]["levels"].items()
        if values.get("applies") is False
    }
    return merged.result() | not_applying


def _seed_spread(documents: list[dict]) -> dict[str, dict]:
    """Per level, the SD over seeds of each SEED_SPREAD metric, every seed's folds merged
    (NaN with one seed)."""
    spread = {}
    results = [_merged_levels(group) for group in _by_seed(documents).values()]
    for level in LEVELS:
        spread[level] = {}
        for metric in SEED_SPREAD:
            values = [r[level].get(metric) for r in results if r[level].get("applies") is not False]
            values = [v for v in values if v is not None]
            sd = statistics.stdev(values) if len(values) >= 2 else float("nan")
            spread[level][f"{metric}_seed_sd"] = sd
    return spread


def _by_seed(documents: list[dict]) -> dict[int, list[dict]]:
    by_seed: dict[int, list[dict]] = {}
    for document in documents:
        by_seed.setdefault(int(document.get("seed") or 0), []).append(document)
    return by_seed


def grouped_documents(metric_files: Sequence[Path]) -> dict[tuple[str, str], list[dict]]:
    """(dataset, variant) → its metrics.json documents in fold and seed order."""
    by_variant: dict[tuple[str, str], list[dict]] = {}
    for path in metric_files:
        document = _read(path)
        key = (document.get("dataset", TEST), document["variant"])
        by_variant.setdefault(key, []).append(document)
    for documents in by_variant.values():
        documents.sort(key=lambda d: (d["fold"], d.get("seed") or 0))
    return by_variant


def pool_tables(metric_files: Sequence[Path]) -> pd.DataFrame:
    """One row per dataset × variant × fold × seed × level, plus fold = seed = -1 for all folds
    and seeds merged (merged like folds: one accumulator), with the SDs over seeds."""
    return _pool(grouped_documents(metric_files))


def _pool(by_variant: dict[tuple[str, str], list[dict]]) -> pd.DataFrame:
    rows = []
    for documents in by_variant.values():
        for document in documents:
            rows.extend(_rows(document, document["fold"], document.get("seed"), document["levels"]))
        merged, spread = _merged_levels(documents), _seed_spread(documents)
        levels = {level: {**values, **spread[level]} for level, values in merged.items()}
        rows.extend(_rows(documents[0], ALL_FOLDS, ALL_FOLDS, levels))
    return pd.DataFrame(rows)


def _record_tables(documents: list[dict]) -> dict[str, pd.DataFrame]:
    """Level → per (seed, record) n, MAE and resampling unit over every fold of one variant."""
    units: dict[str, str] = {}
    for document in documents:
        units |= document.get("units", {})
    n: dict[str, dict] = {}
    total: dict[str, dict] = {}
    for seed, group in _by_seed(documents).items():
        for level, acc in merged_accumulators(group).items():
            n.setdefault(level, {}).update({(seed, r): m.n for r, m in acc.records.items()})
            total.setdefault(level, {}).update(
                {(seed, r): value for r, value in acc.record_abs.items()}
            )
    return {level: record_table(n[level], total[level], units) for level in n}


def floor_verdicts(
    by_variant: dict[tuple[str, str], list[dict]], samples: int, seed: int
) -> pd.DataFrame:
    """Every variant of each of the split's test sets against each floor that ran, level by
    level (external data sets have no per-record floor beside them)."""
    rows = []
    own = {d for (d, _), docs in by_variant.items() if _side(docs[0]) is not None}
    for dataset in sorted(own):
        tables = {v: _record_tables(docs) for (d, v), docs in by_variant.items() if d == dataset}
        for variant in sorted(set(tables) - {FLOORS[0]}):
            for floor in (f for f in FLOORS if f in tables and f != variant):
                for level, mine in tables[variant].items():
                    theirs = tables[floor].get(level)
                    if theirs is None or len(mine) == 0:
                        continue
                    what = f"{dataset}: {variant} vs {floor} at level {level}"
                    row = paired_difference(mine, theirs, what, samples, seed)
                    rows.append(
                        {"dataset": dataset, "variant": variant, "floor": floor, "level": level}
                        | row
                    )
    return pd.DataFrame(rows)


def _fmt(value: object, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def summary_markdown(
    table: pd.DataFrame, verdicts: pd.DataFrame | None = None, unit: str = "record"
) -> str:
    """All folds merged per dataset: MAE and ME ± SD per level, grades, tracking and verdicts
    for the split's test sets (its own test side first, then any named test set), then each
    external data set's scores."""
    datasets = table["dataset"] if "dataset" in table else pd.Series(TEST, index=table.index)
    sides = table["side"] if "side" in table else datasets.where(datasets == TEST)
    main = set(datasets[sides == MAIN])
    own = sorted(set(datasets[sides.notna()]), key=lambda d: (d not in main, test_set_key(d)))
    text = ""
    for rank, name in enumerate(own):
        if name != TEST:
            text += (
                "\n" if rank else ""
            ) + f"## Test set `{name}`\n\n{describe_test_set(name)}\n\n"
        rows = table[datasets == name]
        text += _summary_of(rows) + "\n" + tracking_markdown(rows)
        mine = (
            verdicts[verdicts["dataset"] == name] if verdicts is not None and len(verdicts) else []
        )
        if len(mine):
            text += "\n" + verdicts_markdown(mine, unit)
    for name in sorted(set(datasets[sides.isna()])):
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
    for variant in _order(pooled["variant"]):
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


def _order(variants) -> list[str]:
    return [*(f for f in FLOORS if f in set(variants)), *sorted(set(variants) - set(FLOORS))]


def tracking_markdown(table: pd.DataFrame) -> str:
    """Does the prediction follow the pressure? Fit, correlations and SD ratio; ME per SBP band."""
    pooled = table[(table["fold"] == ALL_FOLDS) & (table["n"] > 0)]
    bands = [name for name, _, _, _ in SBP_BANDS]
    lines = [
        "### Tracking",
        "",
        "| variant | level | slope | intercept | r | r within records | r between records | "
        "SD ratio | " + " | ".join(f"ME {b} (n)" for b in bands) + " |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(bands),
    ]
    for variant in _order(pooled["variant"]):
        for _, row in pooled[pooled["variant"] == variant].iterrows():
            banded = [
                f"{_fmt(row[f'me_{key}'])} ({_fmt(row[f'n_{key}'])})"
                if row["level"] != "point"
                else "–"
                for _, key, _, _ in SBP_BANDS
            ]
            lines.append(
                f"| {variant} | {row['level']} | {_fmt(row['slope'])} | "
                f"{_fmt(row['intercept'])} | {_fmt(row['pearson_r'])} | {_fmt(row['r_within'])} | "
                f"{_fmt(row['r_between'])} | {_fmt(row['sd_ratio'])} | " + " | ".join(banded) + " |"
            )
    lines += [
        "",
        "Least-squares fit of predicted on true (slope 1, intercept 0: follows the pressure;",
        "slope 0: a fixed level). r within records: each value about its record's mean; between",
        "records: one point per record (its means). SD ratio: SD predicted / SD true. ME per band",
        "of the beat's true SBP (pred − true, mmHg), beside the band MAE in the report's",
        "error_by_band.",
    ]
    return "\n".join(lines) + "\n"


def verdicts_markdown(verdicts: pd.DataFrame, unit: str) -> str:
    """Per variant and level: does it beat naive and template, with the paired interval."""
    lines = [
        "### Against the floors",
        "",
        "| variant | level | floor | Δ MAE (95 % CI) | units | beats the floor |",
        "|---|---|---|---|---|---|",
    ]
    for variant in _order(verdicts["variant"]):
        mine = verdicts[verdicts["variant"] == variant]
        for level in LEVELS:
            for row in mine[mine["level"] == level].itertuples():
                lines.append(
                    f"| {variant} | {level} | {row.floor} | {row.diff_mean:+.2f} "
                    f"({row.ci_low:+.2f} to {row.ci_high:+.2f}) | {row.n_units} | "
                    f"{beats(row.ci_low, row.ci_high)} |"
                )
    lines += [
        "",
        "Floors, from training data only (per record under `temporal`): naive = the training",
        "mean ABP, and at sbp/dbp/map the training beats' mean SBP, DBP, MAP; template = the mean",
        "training beat against time since the window's last R peak. Δ MAE = variant − floor, the",
        "mean over test records of the per-record MAE difference (mmHg). Interval: percentile",
        f"bootstrap resampling whole units ({unit}), never single records; a variant beats a",
        "floor only where the whole interval lies below 0.",
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
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> None:
    """Write the pooled Parquet table and its Markdown summary (with what cleaning emptied)."""
    by_variant = grouped_documents(metric_files)
    table = _pool(by_variant)
    verdicts = floor_verdicts(by_variant, samples, seed)
    units = {d.get("resampling_unit", "record") for docs in by_variant.values() for d in docs}
    with atomic_path(table_out) as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(summary_out) as tmp:
        text = summary_markdown(table, verdicts, " / ".join(sorted(units)))
        tmp.write_text(text + kept_nothing_markdown(clean_reports))
