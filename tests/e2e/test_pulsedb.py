"""End to end on synthetic PulseDB subsets: `pulsedb` and `subject` with MLflow and the report,
and `record` beside them, on subjects whose pressure level the ECG does not show."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_runner import REPO, snakemake

from ecg2abp.config import deep_merge
from ecg2abp.data.synth import write_pulsedb
from ecg2abp.evaluation.pooling import ALL_FOLDS

# knn finds the nearest training window: where a subject's other segments trained, it finds
# that subject and so its pressure level; on unseen subjects it cannot.
RUN = {
    "variants": {"knn": {"model": "knn"}},
    "run_variants": ["knn"],
    "threads": 1,
    "train": {"device": "cpu", "max_val_windows": 1000},
    "report": {"bootstrap_samples": 200},
}
PROTOCOLS = {  # experiment → split settings (and whether it runs the whole default target)
    "pulsedb": ({"protocol": "pulsedb"}, True),
    "subject": ({"protocol": "subject", "folds": 2}, True),
    "record": ({"protocol": "record", "folds": 2, "block_size": 1}, False),
}


def overlay(data: Path, experiment: str) -> str:
    """config/pulsedb.yaml, then this run's settings."""
    base = yaml.safe_load((REPO / "config" / "pulsedb.yaml").read_text())
    split, _ = PROTOCOLS[experiment]
    mine = {**RUN, "experiment": experiment, "data_dir": str(data), "split": split}
    return yaml.safe_dump(deep_merge(base, mine))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """20 subjects × 4 segments: 16 train (3 segments Train, 1 CalBased), 2 CalFree, 2 AAMI."""
    work = tmp_path_factory.mktemp("pulsedb_run")
    data = work / "data"
    write_pulsedb(data, subjects=20, segments_per_subject=4, seed=1)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    for experiment, (_, whole) in PROTOCOLS.items():
        target = [] if whole else [f"results/{experiment}/metrics.parquet"]
        result = snakemake(work, *target, config=overlay(data, experiment), env=env)
        assert result.returncode == 0, result.stderr[-3000:]
    return work


def pooled(work: Path, experiment: str) -> pd.DataFrame:
    table = pd.read_parquet(work / "results" / experiment / "metrics.parquet")
    return table[table["fold"] == ALL_FOLDS].set_index(["dataset", "variant", "level"])


@pytest.mark.slow
@pytest.mark.extended
def test_pulsedb_scores_each_test_subset_as_its_own_dataset(runs):
    results = runs / "results" / "pulsedb"
    table = pooled(runs, "pulsedb")
    for dataset in ("calfree", "calbased", "aami"):
        for variant in ("knn", "naive"):
            assert table.loc[(dataset, variant, "point"), "n"] > 0, (dataset, variant)
    summary = (results / "summary.md").read_text()
    assert [line for line in summary.splitlines() if line.startswith("## ")] == [
        "## Test set `calfree`",
        "## Test set `calbased`",
        "## Test set `aami`",
    ]
    assert "bootstrap resampling whole units (subject)" in summary
    for name in ("calbased", "aami"):
        metrics = results / "eval" / "naive" / "fold_0" / "seed_0" / "tests" / name
        assert json.loads((metrics / "metrics.json").read_text())["dataset"] == name
    # the report and MLflow show the fold's own test side: calfree
    assert (results / "report" / "summary.html").exists()
    assert (results / "report" / "knn" / "bland_altman.png").exists()
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{runs / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("pulsedb")
    (parent,) = [
        run
        for run in client.search_runs([experiment.experiment_id])
        if run.data.tags["fold"] == "all" and run.data.tags["variant"] == "knn"
    ]
    assert parent.data.metrics["point_mae"] == table.loc[("calfree", "knn", "point"), "mae"]


@pytest.mark.slow
@pytest.mark.extended
def test_subject_wise_scores_are_worse_than_segment_wise_ones(runs):
    """The subjects' pressure levels differ and the ECG hides them: knn, which finds a subject's
    level only where that subject trained, does far worse on unseen subjects."""
    pulsedb = pooled(runs, "pulsedb")
    calbased = pulsedb.loc[("calbased", "knn", "point"), "mae"]
    assert pulsedb.loc[("calfree", "knn", "point"), "mae"] > 1.5 * calbased
    assert pulsedb.loc[("aami", "knn", "point"), "mae"] > 1.5 * calbased
    subject = pooled(runs, "subject").loc[("test", "knn", "point"), "mae"]
    record = pooled(runs, "record").loc[("test", "knn", "point"), "mae"]
    assert subject > 1.5 * record
    split = json.loads((runs / "results" / "subject" / "splits" / "subject.json").read_text())
    for fold in split["folds"]:
        subjects = {s: {e[0].split("/")[0] for e in fold[s]} for s in ("train", "val", "test")}
        assert not subjects["test"] & (subjects["train"] | subjects["val"])
    assert (runs / "results" / "subject" / "report" / "summary.html").exists()
    assert (runs / "results" / "subject" / "mlflow" / "track.json").exists()
