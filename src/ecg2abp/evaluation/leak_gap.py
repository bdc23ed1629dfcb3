"""How much of a score is leakage: the same variants under `paper` and `record`, side by side."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ecg2abp.atomic import atomic_path
from ecg2abp.data.shards import Shard, release_pages
from ecg2abp.errors import InputError
from ecg2abp.evaluation.metrics import find_beats
from ecg2abp.evaluation.pooling import ALL_FOLDS, pool_tables
from ecg2abp.folds.loading import open_split_shards
from ecg2abp.folds.protocols import RECORD_KEY, windows_path
from ecg2abp.folds.windows import windows_per_record

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
    order = {"naive": 0, "template": 1, "knn": 2}
    merged["_order"] = merged["variant"].map(lambda v: (order.get(v, 2), v))
    levels = {"point": 0, "sbp": 1, "dbp": 2, "map": 3}
    merged["_level"] = merged["level"].map(levels)
    merged = merged.sort_values(["_order", "_level"]).reset_index(drop=True)
    return merged[list(COLUMNS)]


def beat_lengths(shard: Shard) -> np.ndarray:
    """Median foot-to-foot beat length (samples) of each record of a shard; NaN: no beat found."""
    fs = float(shard.attrs["fs"])
    durations: dict[int, list[np.ndarray]] = {}
    for record, start, stop, _ in shard.segments:
        beats = find_beats(np.asarray(shard.abp[start:stop], np.float64), fs)
        durations.setdefault(int(record), []).append(beats[:, 1] - beats[:, 0])
    lengths = np.full(len(shard.records), np.nan)
    for record, parts in durations.items():
        found = np.concatenate(parts)
        if len(found):
            lengths[record] = np.median(found)
    return lengths


def _keys(shard: Shard, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Record index and a sortable record × sample key of each window start."""
    record, source = shard.locate(starts)
    return record, record.astype(np.int64) * RECORD_KEY + source


def paper_density(split_path: Path, shard_paths: Sequence[Path]) -> dict:
    """How dense the `paper` draw is: training windows per record, and the share of test
    windows whose record has a training window within one beat (that record's median beat;
    the median over all records where it has none), start to start."""
    document, shards = open_split_shards(Path(split_path), shard_paths, mapped=True)
    if document["protocol"] != "paper":
        raise InputError(f"{split_path}: protocol {document['protocol']}, not paper")
    with np.load(windows_path(Path(split_path)), allow_pickle=False) as drawn:
        train, test = drawn["fold0_train"], drawn["fold0_test"]
    n_records = n_near = 0
    for index, shard in enumerate(shards):
        n_records += int(np.count_nonzero(windows_per_record(shard)))
        train_record, train_key = _keys(shard, np.sort(train[train[:, 0] == index, 1]))
        test_record, test_key = _keys(shard, test[test[:, 0] == index, 1])
        if len(test_key) == 0 or len(train_key) == 0:
            continue
        order = np.argsort(train_key)
        train_key, train_record = train_key[order], train_record[order]
        lengths = beat_lengths(shard)
        release_pages(shard)  # its ABP read for the beats: out of resident memory
        fallback = np.nanmedian(lengths) if np.isfinite(lengths).any() else np.inf
        beat = np.where(np.isnan(lengths), fallback, lengths)[test_record]
        right = np.searchsorted(train_key, test_key).clip(0, len(train_key) - 1)
        left = (right - 1).clip(0)
        gap = np.full(len(test_key), np.inf)
        for neighbour in (left, right):
            same = train_record[neighbour] == test_record
            distance = np.abs(train_key[neighbour] - test_key).astype(np.float64)
            gap = np.minimum(gap, np.where(same, distance, np.inf))
        n_near += int(np.count_nonzero(gap <= beat))
    return {
        "records": n_records,
        "train_windows": len(train),
        "test_windows": len(test),
        "train_windows_per_record": len(train) / n_records if n_records else float("nan"),
        "test_share_within_one_beat": n_near / len(test) if len(test) else float("nan"),
    }


def density_markdown(density: dict) -> str:
    return "\n".join(
        [
            "### Density of the `paper` draw",
            "",
            f"{density['train_windows']} training and {density['test_windows']} test windows "
            f"over {density['records']} records: {density['train_windows_per_record']:.1f} "
            "training windows per record; "
            f"{100 * density['test_share_within_one_beat']:.1f} % of test windows have a training "
            "window of the same record within one beat (start to start, the record's median "
            "beat). The leak grows with both.",
            "",
        ]
    )


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
    lines += [
        "",
        "Errors in mmHg; beat levels are scored under `record` only, where the floors are naive",
        "(the training beats' mean SBP, DBP, MAP) and template (the mean training beat).",
    ]
    return "\n".join(lines) + "\n"


def write_leak_gap(
    paper_files: Sequence[Path],
    record_files: Sequence[Path],
    table_out: Path,
    md_out: Path,
    paper_split: Path,
    shard_paths: Sequence[Path],
) -> None:
    """results/{experiment}/leak_gap.parquet and leak_gap.md (with the paper draw's density)."""
    table = leak_gap_table(paper_files, record_files)
    density = paper_density(paper_split, shard_paths)
    with atomic_path(Path(table_out)) as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(Path(md_out)) as tmp:
        tmp.write_text(leak_gap_markdown(table) + "\n" + density_markdown(density))
