"""End to end: the workflow's default target on SMALL, run once (the `small_run` fixture);
every check here only reads its outputs. They share this module so that pytest-xdist's
`--dist loadfile` (run.sh test) sends them, and the run, to one worker."""

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from doc_blocks import DEMO_OUTPUTS, REPO, shell_blocks
from workflow_runner import SMALL, snakemake

from ecg2abp.config import deep_merge
from ecg2abp.data.cleaning import REASONS
from ecg2abp.evaluation.pooling import ALL_FOLDS
from ecg2abp.report import plots
from ecg2abp.report.streaming import VariantStream

VARIANTS = ("msca_cssc_unet", "ridge", "naive")
PER_VARIANT = ("bland_altman", "predicted_vs_true", "error_cdf", "error_by_band", "example")


@pytest.mark.slow
def test_two_variants_two_folds(small_run):
    tmp_path = small_run
    results = tmp_path / "results" / "e2e"
    for part in ("part_1", "part_2"):
        assert (results / "shards" / f"{part}.h5").exists()
        assert (results / "clean" / f"{part}.parquet").exists()
        assert (tmp_path / "logs" / "e2e" / "ingest" / f"{part}.log").exists()
    split = json.loads((results / "splits" / "record.json").read_text())
    assert split["n_folds"] == 2
    for variant in ("msca_cssc_unet", "ridge", "naive"):
        for fold in (0, 1):
            job = f"{variant}/fold_{fold}/seed_0"
            assert (results / "models" / job / "model.pt").exists()
            assert (results / "eval" / job / "metrics.json").exists()
            assert (tmp_path / "logs" / "e2e" / "train" / f"{job}.log").exists()
    table = pd.read_parquet(results / "metrics.parquet")
    pooled = table[table["fold"] == -1].set_index(["variant", "level"])
    assert (
        pooled.loc[("msca_cssc_unet", "point"), "mae"]
        <= 0.8 * pooled.loc[("naive", "point"), "mae"]
    )
    assert (pooled.xs("sbp", level="level")["n"] > 0).all()  # stride 1: whole beats predicted
    summary = (results / "summary.md").read_text()
    assert summary.index("| naive |") < summary.index("| msca_cssc_unet |")

    again = snakemake(tmp_path, "-n", config=SMALL)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_the_offline_report_holds_every_plot(small_run):
    results = small_run / "results" / "e2e"
    report = results / "report.html"
    result = snakemake(small_run, "--report", str(report), config=SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    page = report.read_text()
    plots_made = sorted((results / "report").rglob("*.png"))
    expected = [f"{v}/{name}.png" for v in VARIANTS for name in PER_VARIANT]
    expected += ["msca_cssc_unet/saliency.png", "mae_across_variants.png", "bhs_shares.png"]
    expected += ["cleaning.png"]
    assert sorted(str(p.relative_to(results / "report")) for p in plots_made) == sorted(expected)
    for png in plots_made:  # every figure embedded, byte for byte
        assert str(png.relative_to(small_run)) in page, png
        assert base64.b64encode(png.read_bytes()).decode() in page, png
    for page_name in ("comparison.html", "cleaning.html", "summary.html", "config.html"):
        assert f"results/e2e/report/{page_name}" in page
    assert not re.search(r"<script[^>]+src=[\"']https?://", page)  # opens with no network


@pytest.mark.slow
def test_plotted_numbers_equal_the_metrics_table(small_run):
    results = small_run / "results" / "e2e"
    table = pd.read_parquet(results / "metrics.parquet")
    for variant in ("msca_cssc_unet", "naive"):
        stream = VariantStream.load(results / "report" / variant / "stream.npz")
        pooled = table[(table["variant"] == variant) & (table["fold"] == ALL_FOLDS)]
        pooled = pooled.set_index("level")
        figure, numbers = plots.bland_altman(stream)
        labels = [t.get_text() for ax in figure.axes for t in ax.texts]
        for level, drawn in numbers.items():
            assert f"ME: {pooled.loc[level, 'me']:.2f}" in labels
            assert round(drawn["sd"], 2) == round(pooled.loc[level, "sd"], 2)
        _, numbers = plots.predicted_vs_true(stream)
        for level, drawn in numbers.items():
            assert round(drawn["pearson_r"], 2) == round(pooled.loc[level, "pearson_r"], 2)


@pytest.mark.slow
def test_comparison_states_a_lead_only_where_the_interval_excludes_zero(small_run):
    results = small_run / "results" / "e2e"
    table = pd.read_parquet(results / "comparison.parquet")
    assert set(zip(table["variant"], table["against"], strict=True)) == {
        ("msca_cssc_unet", "naive"),
        ("ridge", "msca_cssc_unet"),
        ("ridge", "naive"),
    }
    assert (table["ci_low"] <= table["diff_mean"]).all()
    assert (table["diff_mean"] <= table["ci_high"]).all()
    summary = (results / "comparison.md").read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| ") and "---" not in line]
    for line, row in zip(rows[1:], table.itertuples(), strict=True):
        excludes_zero = row.ci_high < 0 or row.ci_low > 0
        assert ("leads" in line) == excludes_zero, line


@pytest.mark.slow
def test_cleaning_summary_adds_up_the_parts(small_run):
    results = small_run / "results" / "e2e"
    summary = pd.read_parquet(results / "report" / "cleaning.parquet").set_index("part")
    for part in ("part_1", "part_2"):
        report = pd.read_parquet(results / "clean" / f"{part}.parquet")
        records = report[report["level"] == "record"]
        removed = [int(records[f"removed_{r}"].sum()) for r in REASONS]
        assert summary.loc[part, list(REASONS)].tolist() == removed
        assert summary.loc[part, "n_samples"] == records["n_samples"].sum()
    assert np.all(
        summary["kept_samples"] + summary[list(REASONS)].sum(axis=1) == summary["n_samples"]
    )


def planned(workdir, change: dict, comment: str = "") -> tuple[dict[str, int], str]:
    """What `snakemake -n` would run with `change` laid over SMALL: rule → jobs, and its text."""
    config = yaml.safe_dump(deep_merge(yaml.safe_load(SMALL), change), sort_keys=False)
    result = snakemake(workdir, "-n", "--quiet", "rules", config=config + comment)
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout + result.stderr
    stats = re.search(r"Job stats:\n.*?\n-+ +-+\n(.*?)\ntotal", text, re.S)
    jobs = dict(line.split() for line in stats.group(1).splitlines()) if stats else {}
    return {rule: int(n) for rule, n in jobs.items()}, text


def params_changed(text: str) -> set[str]:
    """The rules Snakemake reruns because their params (the settings' fingerprints) changed."""
    found = re.search(r"params have changed since last execution:\n\s+(.*)\n", text)
    return set(found.group(1).replace(",", " ").split()) if found else set()


# What reads the models of every variant: after any change to a variant's training or upstream.
DOWNSTREAM = {"pool": 1, "report_across_variants": 1, "report_comparison": 1, "report_pages": 1}
EVERY_VARIANT = {**DOWNSTREAM, "report_stream": 3, "report_variant_plots": 3, "report_saliency": 1}


# One kind of change in the default suite; the others in the extended tier CI runs (each dry
# run costs about 5 s, and the default suite stays under 4 minutes).
EXTENDED = pytest.mark.extended


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "changed", "jobs"),
    [
        pytest.param(  # from ingest on; the training jobs join once the split (a checkpoint) reruns
            {"cleaning": {"abp_min": 25.0}},
            {"ingest"},
            {"ingest": 2, "report_cleaning": 1, "split": 1, **EVERY_VARIANT},
            id="cleaning",
            marks=EXTENDED,
        ),
        pytest.param(
            {"split": {"block_size": 1}},
            {"split"},
            {"split": 1, **EVERY_VARIANT},
            id="split",
            marks=EXTENDED,
        ),
        pytest.param(  # a shared training setting: every variant's training, the naive floor's too
            {"train": {"lr": 0.002}},
            {"train", "train_classical", "report_pages"},
            {"train": 4, "train_classical": 2, "evaluate": 6, **EVERY_VARIANT},
            id="train",
            marks=EXTENDED,
        ),
        pytest.param(  # one variant's own setting: that variant alone (ridge: no saliency)
            {"variants": {"ridge": {"train": {"classical_max_windows": 20000}}}},
            {"train_classical", "report_pages"},
            {"train_classical": 2, "evaluate": 2, "report_stream": 1, "report_variant_plots": 1}
            | DOWNSTREAM,
            id="variant",
        ),
        pytest.param(  # the report alone: the jobs that read `bootstrap_samples`, the config page
            {"report": {"bootstrap_samples": 500}},
            {"report_across_variants", "report_comparison", "report_pages"},
            {"report_across_variants": 1, "report_comparison": 1, "report_pages": 1},
            id="report",
            marks=EXTENDED,
        ),
    ],
)
def test_a_config_change_reruns_exactly_the_jobs_it_affects(small_run, change, changed, jobs):
    planned_jobs, text = planned(small_run, change)
    assert params_changed(text) == changed
    assert planned_jobs == {**jobs, "all": 1}


@pytest.mark.slow
def test_a_comment_or_a_setting_of_how_jobs_run_reruns_nothing(small_run):
    how = {
        "threads": 2,
        "train": {"device": "auto", "checkpoint_minutes": 1.0},
        "cluster": {"partition": "elsewhere", "runtime_minutes": {"fit": 30}},
        "mlflow": {"request_timeout_s": 9},
    }
    jobs, text = planned(small_run, how, comment="\n# a comment\n")
    assert jobs == {} and "Nothing to be done" in text, text[-2000:]


@pytest.mark.extended  # a minute of prediction on the real record: CI's extended tier
def test_the_documented_commands_run_on_the_demo_s_outputs(small_run, tmp_path):
    """Every block marked `<!-- run: demo outputs -->`, as written, in a folder laid out like a
    clone after `bash run.sh demo` (results/demo/ is this run's outputs)."""
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("tests", "config", "workflow", "profiles", "docs", "Snakefile"):
        (clone / name).symlink_to(REPO / name)
    (clone / ".venv").symlink_to(Path(sys.prefix))
    (clone / "results").mkdir()
    (clone / "results" / "demo").symlink_to(small_run / "results" / "e2e")
    blocks = [b for b in shell_blocks() if b.run == DEMO_OUTPUTS]
    assert blocks
    for block in blocks:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.text],
            cwd=clone,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{block.where}:\n{block.text}\n{done.stderr[-2000:]}"
    assert (clone / "real.png").stat().st_size > 0  # the README's predict example
    assert (clone / "data" / "synthetic" / "part_2.mat").exists()
