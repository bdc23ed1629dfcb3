"""Pooling: per-fold rows and all folds merged, checked against the predictions themselves."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pipeline_factory import ingest_parts, synthetic_parts, tiny_config, write_split

from ecg2abp.data.ingest import REPORT_COLUMNS
from ecg2abp.errors import InputError
from ecg2abp.evaluation.metrics import LEVELS
from ecg2abp.evaluation.pooling import ALL_FOLDS, pool_metrics, pool_tables
from ecg2abp.evaluation.predictions import HALF_STEP_MMHG, read_predictions
from ecg2abp.evaluation.scoring import evaluate_variant
from ecg2abp.training.jobs import train_variant

VARIANTS = ("naive", "template", "linear")  # `linear` (ridge) sorts before the floors


def evaluated(folder: Path, parts: list[Path], split: dict) -> list[Path]:
    """metrics.json of every variant × fold of `split`, trained and evaluated."""
    config = tiny_config({"split": split, "variants": {"template": {"model": "template"}}})
    shards = ingest_parts(folder, parts, config)
    split_path = write_split(folder, shards, config)
    n_folds = split.get("folds", 1) if split["protocol"] in ("record", "part") else 1
    files = []
    for variant in VARIANTS:
        for fold in range(n_folds):
            model = folder / "models" / variant / f"fold_{fold}"
            train_variant(variant, config, split_path, shards, fold, model)
            out = folder / "eval" / variant / f"fold_{fold}"
            evaluate_variant(model / "model.pt", split_path, shards, fold, out, config)
            files.append(out / "metrics.json")
    return files


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> list[Path]:
    return synthetic_parts(tmp_path_factory.mktemp("parts"))


@pytest.fixture(scope="module")
def two_folds(tmp_path_factory, parts) -> list[Path]:
    split = {"protocol": "record", "folds": 2, "block_size": 2}
    return evaluated(tmp_path_factory.mktemp("record"), parts, split)


@pytest.fixture(scope="module")
def leaky(tmp_path_factory, parts) -> list[Path]:
    split = {"protocol": "paper", "paper_fraction": 0.05}
    return evaluated(tmp_path_factory.mktemp("paper"), parts, split)


# Stored true and predicted ABP are each within half a step of the values scored, so each stored
# error is within one step of the scored one.
ONE_STEP = 2 * HALF_STEP_MMHG
WITHIN = {"bhs_within_5": 5.0, "bhs_within_15": 15.0}


def by_hand(predictions: pd.DataFrame, within_slack: float = 0.0) -> dict:
    """Point metrics straight from (true, predicted) pairs; the BHS shares with their bounds
    widened by `within_slack` mmHg."""
    true = predictions["abp_true"].to_numpy(np.float64)
    pred = predictions["abp_pred"].to_numpy(np.float64)
    error = pred - true
    return {
        "n": len(error),
        "mae": np.abs(error).mean(),
        "me": error.mean(),
        "sd": error.std(ddof=1),
        "rmse": np.sqrt(np.mean(error**2)),
        **{
            key: 100.0 * np.mean(np.abs(error) <= bound + within_slack)
            for key, bound in WITHIN.items()
        },
    }


def predictions_of(metric_file: Path) -> pd.DataFrame:
    return read_predictions(metric_file.with_name("predictions.parquet"))


def test_fold_rows_and_merged_rows_equal_metrics_of_the_predictions(two_folds):
    table = pool_tables(two_folds)
    assert sorted(table["fold"].unique()) == [ALL_FOLDS, 0, 1]
    for variant in VARIANTS:
        files = [f for f in two_folds if f.parent.parent.name == variant]
        folds = {0: predictions_of(files[0]), 1: predictions_of(files[1])}
        folds[ALL_FOLDS] = pd.concat(folds.values())
        rows = table[(table["variant"] == variant) & (table["level"] == "point")]
        for fold, predictions in folds.items():
            (row,) = rows[rows["fold"] == fold].to_dict("records")
            expected = by_hand(predictions)
            low, high = by_hand(predictions, -ONE_STEP), by_hand(predictions, ONE_STEP)
            assert row["n"] == expected.pop("n"), (variant, fold)
            for column, value in expected.items():
                if column in WITHIN:
                    assert low[column] <= row[column] <= high[column], (variant, fold, column)
                else:
                    assert row[column] == pytest.approx(value, abs=ONE_STEP), (variant, fold)
        for level in LEVELS[1:]:
            beats = table[(table["variant"] == variant) & (table["level"] == level)]
            per_fold = beats[beats["fold"] != ALL_FOLDS]["n"]
            assert len(per_fold) == 2 and beats[beats["fold"] == ALL_FOLDS]["n"].item() == sum(
                per_fold
            )


def summary_rows(summary: str, table: int = 0) -> list[str]:
    """The variant column of the body of the summary's `table`-th table, top to bottom."""
    blocks = summary.split("\n\n")
    tables = [b for b in blocks if b.startswith("| ")]
    lines = tables[table].splitlines()
    return [line.split("|")[1].strip() for line in lines[2:]]


def test_summary_lists_naive_first_and_writes_the_table(two_folds, tmp_path):
    pool_metrics(two_folds, tmp_path / "pooled.parquet", tmp_path / "summary.md")
    written = pd.read_parquet(tmp_path / "pooled.parquet")
    assert len(written) == len(pool_tables(two_folds)) == 3 * 3 * len(LEVELS)
    summary = (tmp_path / "summary.md").read_text()
    variants = summary_rows(summary)
    assert variants == ["naive"] * len(LEVELS) + ["template"] * 4 + ["linear"] * len(LEVELS)
    assert summary_rows(summary, 1) == variants  # the tracking table, same order
    assert "leaky" not in summary
    assert not written["leaky"].any()


def test_leaky_runs_are_flagged_and_keep_only_the_point_level(leaky, tmp_path):
    pool_metrics(leaky, tmp_path / "pooled.parquet", tmp_path / "summary.md")
    table = pd.read_parquet(tmp_path / "pooled.parquet")
    assert table["leaky"].all() and set(table["protocol"]) == {"paper"}
    # beat levels do not apply to sampled windows, merged over folds or not
    assert set(table["level"]) == {"point"}
    assert sorted(table["fold"]) == [ALL_FOLDS] * 3 + [0] * 3
    summary = (tmp_path / "summary.md").read_text()
    assert "**leaky**" in summary.splitlines()[0]
    assert summary_rows(summary) == ["naive", "template", "linear"]
    for variant in VARIANTS:
        (file,) = [f for f in leaky if f.parent.parent.name == variant]
        (row,) = table[(table["variant"] == variant) & (table["fold"] == ALL_FOLDS)].to_dict(
            "records"
        )
        assert row["mae"] == pytest.approx(by_hand(predictions_of(file))["mae"], abs=ONE_STEP)


def test_naive_scores_beats_with_the_training_beats_means(two_folds):
    for path in two_folds:
        if path.parent.parent.name != "naive":
            continue
        document = json.loads(path.read_text())
        floor = document["beat_floor"]["overall"]
        for level in LEVELS[1:]:
            predicted = document["state"]["levels"][level]["pred"]  # [n, mean, m2]
            assert predicted[1] == pytest.approx(floor[level]) and predicted[2] == pytest.approx(0)
        assert floor["sbp"] > floor["map"] > floor["dbp"]


def test_test_sides_hold_whole_resampling_units(two_folds):
    units = {}
    documents = [json.loads(p.read_text()) for p in two_folds]
    for document in documents:
        units |= document["units"]
    by_fold: dict[str, set] = {}
    for document in documents:
        for unit in document["units"].values():
            by_fold.setdefault(unit, set()).add(document["fold"])
    assert all(len(folds) == 1 for folds in by_fold.values())  # a block is tested in one fold
    assert len(set(units.values())) < len(units)  # blocks of 2 records: fewer units
    assert {d["resampling_unit"] for d in documents} == {
        "block of up to 2 adjacent records of a part"
    }


def test_summary_says_whether_each_variant_beats_each_floor_as_its_interval_does(
    two_folds, tmp_path
):
    from ecg2abp.evaluation.pooling import floor_verdicts, grouped_documents

    pool_metrics(two_folds, tmp_path / "pooled.parquet", tmp_path / "summary.md", (), 300, 1)
    verdicts = floor_verdicts(grouped_documents(two_folds), 300, 1)
    assert set(zip(verdicts["variant"], verdicts["floor"], strict=True)) == {
        ("linear", "naive"),
        ("linear", "template"),
        ("template", "naive"),
    }
    assert len(verdicts) == 3 * len(LEVELS)
    lines = (tmp_path / "summary.md").read_text().split("### Against the floors")[1].splitlines()
    for row in verdicts.itertuples():
        (line,) = [
            line
            for line in lines
            if line.startswith(f"| {row.variant} | {row.level} | {row.floor} |")
        ]
        said = line.split("|")[-2].strip()
        if row.ci_high < 0:
            assert said == "yes"
        elif row.ci_low > 0:
            assert said == "no (worse)"
        else:
            assert said.startswith("not shown")
        assert f"({row.ci_low:+.2f} to {row.ci_high:+.2f})" in line


def test_an_unreadable_metrics_file_is_named(tmp_path):
    broken = tmp_path / "metrics.json"
    broken.write_text("{not json")
    with pytest.raises(InputError, match=r"metrics\.json"):
        pool_tables([broken])


def clean_report(path: Path, part: str, kept: dict[str, int]) -> Path:
    """A cleaning report of records with the given kept samples (the rest: missing channel)."""
    rows = [
        {"level": "record", "record_id": record, "n_samples": 100, "kept_samples": n}
        for record, n in kept.items()
    ]
    rows.append({"level": "part", "record_id": f"{part}/*", "n_samples": 100 * len(kept),
                 "kept_samples": sum(kept.values())})  # fmt: skip
    report = pd.DataFrame(rows, columns=list(REPORT_COLUMNS)).fillna(0)
    report["removed_missing_channel"] = report["n_samples"] - report["kept_samples"]
    report.to_parquet(path)
    return path


def test_summary_lists_the_parts_and_records_cleaning_emptied(two_folds, tmp_path):
    reports = [
        clean_report(tmp_path / "part_1.parquet", "part_1", {"part_1/0000": 100, "part_1/0001": 0}),
        clean_report(tmp_path / "part_2.parquet", "part_2", {"part_2/0000": 0}),
        clean_report(tmp_path / "part_3.parquet", "part_3", {"part_3/0000": 100}),
    ]
    pool_metrics(two_folds, tmp_path / "pooled.parquet", tmp_path / "summary.md", reports)
    summary = (tmp_path / "summary.md").read_text()
    assert "Kept nothing after cleaning" in summary
    assert "- part_1: part_1/0001 (missing_channel)\n" in summary
    assert "- part_2: part_2 (all 1 records)\n" in summary
    assert "part_3" not in summary and "part_1/0000" not in summary
    pool_metrics(two_folds, tmp_path / "pooled.parquet", tmp_path / "summary.md", reports[2:])
    assert "Kept nothing" not in (tmp_path / "summary.md").read_text()


def test_external_data_sets_get_their_own_rows_and_summary_section(tmp_path):
    from ecg2abp.atomic import write_json
    from ecg2abp.evaluation.metrics import LevelMetrics
    from ecg2abp.evaluation.pooling import summary_markdown

    rng = np.random.default_rng(0)
    files = []
    for dataset, fold, offset in (("test", 0, 0.0), ("test", 1, 0.0), ("uci", 0, 5.0)):
        metrics = LevelMetrics(125.0)
        true = 90 + 20 * np.sin(np.arange(2000) / 15.0)
        metrics.update_segment("r", true, true + offset + rng.normal(0, 1, len(true)))
        document = {
            "variant": "v",
            "model": "m",
            "kind": "deep",
            "protocol": "record",
            "leaky": False,
            "fold": fold,
            "levels": metrics.result(),
            "state": metrics.to_dict(),
        }
        if dataset != "test":
            document["dataset"] = dataset  # external documents name their data set
        files.append(tmp_path / f"{dataset}{fold}.json")
        write_json(files[-1], document)
    pooled = pool_tables(files[1:])  # one test fold and the external one
    merged = pooled[pooled["fold"] == ALL_FOLDS].set_index(["dataset", "level"])
    assert merged.loc[("uci", "point"), "me"] == pytest.approx(5.0, abs=0.1)
    assert merged.loc[("uci", "point"), "n"] == merged.loc[("test", "point"), "n"]
    assert "## External data set `uci`" in summary_markdown(pool_tables(files))


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory, parts) -> list[Path]:
    """metrics.json of ridge on two folds × two seeds (each seed samples other windows)."""
    folder = tmp_path_factory.mktemp("seeds")
    config = tiny_config(
        {
            "split": {"protocol": "record", "folds": 2, "block_size": 2},
            "train": {"seeds": [0, 1], "classical_max_windows": 300},
        }
    )
    shards = ingest_parts(folder, parts, config)
    split_path = write_split(folder, shards, config)
    files = []
    for fold in (0, 1):
        for seed in (0, 1):
            model = folder / "models" / f"fold_{fold}" / f"seed_{seed}"
            train_variant("linear", config, split_path, shards, fold, model, seed=seed)
            out = folder / "eval" / f"fold_{fold}" / f"seed_{seed}"
            evaluate_variant(model / "model.pt", split_path, shards, fold, out, config)
            files.append(out / "metrics.json")
    return files


def test_seeds_merge_like_folds_and_their_spread_is_given(two_seeds, tmp_path):
    table = pool_tables(two_seeds)
    jobs = table[(table["fold"] != ALL_FOLDS) & (table["level"] == "point")]
    assert sorted(zip(jobs["fold"], jobs["seed"], strict=True)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    pooled = table[(table["fold"] == ALL_FOLDS) & (table["level"] == "point")].iloc[0]
    assert pooled["seed"] == ALL_FOLDS
    every = pd.concat([predictions_of(f) for f in two_seeds])
    assert pooled["mae"] == pytest.approx(by_hand(every)["mae"], abs=ONE_STEP)
    per_seed = [
        by_hand(pd.concat([predictions_of(f) for f in two_seeds if f.parent.name == f"seed_{s}"]))
        for s in (0, 1)
    ]
    assert per_seed[0]["mae"] != per_seed[1]["mae"]  # the seed drew other training windows
    for metric in ("mae", "me", "rmse"):
        spread = np.std([s[metric] for s in per_seed], ddof=1)
        # the SD of two values, each within one step: within two steps / sqrt(2)
        assert pooled[f"{metric}_seed_sd"] == pytest.approx(spread, abs=np.sqrt(2) * ONE_STEP)
    pool_metrics(two_seeds, tmp_path / "m.parquet", tmp_path / "s.md")
    summary = (tmp_path / "s.md").read_text()
    assert "MAE SD over seeds" in summary and "× seeds [0, 1] merged" in summary
    assert f"| {pooled['mae_seed_sd']:.2f} |" in summary.splitlines()[2]


def test_one_seed_has_no_spread_column(two_folds, tmp_path):
    pooled = pool_tables(two_folds)
    assert pooled[pooled["fold"] == ALL_FOLDS]["mae_seed_sd"].isna().all()
    pool_metrics(two_folds, tmp_path / "m.parquet", tmp_path / "s.md")
    assert "seeds" not in (tmp_path / "s.md").read_text()
