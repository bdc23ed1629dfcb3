"""End to end: the real Snakemake workflow on a small synthetic data set."""

import pytest
from workflow_runner import SMALL, snakemake


def test_unknown_config_key_stops_before_any_job(tmp_path):
    result = snakemake(tmp_path, "-n", config="experiment: bad\nwindw: 88\n")
    assert result.returncode != 0
    assert "ecg2abp: error: config: unknown key windw" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


def test_a_setting_that_cannot_work_stops_the_dry_run(tmp_path):
    """Checked with the config (tests/test_config.py has every case), not after training."""
    result = snakemake(tmp_path, "-n", config="experiment: bad\nexternal: {x: /nonexistent.mat}\n")
    assert result.returncode != 0
    assert "ecg2abp: error: config: external.x: /nonexistent.mat: no such" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "results").exists()


def test_missing_data_dir_is_one_line(tmp_path):
    result = snakemake(tmp_path, "-n", config=f"data_dir: {tmp_path / 'nowhere'}\n")
    assert result.returncode != 0
    assert "ecg2abp: error: data_dir" in result.stderr and "no such folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_broken_part_does_not_stop_the_others_under_keep_going(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    from ecg2abp.data.synth import write_synthetic

    good = write_synthetic(data, parts=2, records_per_part=3, max_seconds=10.0)
    good[1].write_bytes(good[1].read_bytes()[:500])  # truncate part_2
    result = snakemake(
        tmp_path,
        "--keep-going",
        "results/broken/shards/part_1.h5",
        "results/broken/shards/part_2.h5",
        config=f"experiment: broken\ndata_dir: {data}\n",
    )
    assert result.returncode != 0
    assert (tmp_path / "results" / "broken" / "shards" / "part_1.h5").exists()
    assert not (tmp_path / "results" / "broken" / "shards" / "part_2.h5").exists()
    log = (tmp_path / "logs" / "broken" / "ingest" / "part_2.log").read_text()
    assert "ecg2abp: error:" in log and "part_2.mat" in log


@pytest.mark.slow
def test_every_file_train_writes_is_a_declared_output(tmp_path):
    """A classical variant's fitted model is an output of its train job (deep ones have none)."""
    models = "results/e2e/models"
    job = "ridge/fold_0/seed_0"
    result = snakemake(tmp_path, "-n", f"{models}/{job}/model.classical", config=SMALL)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rule train_classical:" in result.stdout
    assert f"{models}/{job}/model.pt" in result.stdout


def test_leak_gap_in_all_adds_only_the_paper_side_to_the_default_target(tmp_path):
    """config/scale.yaml's setting: the default target also plans the paper protocol's jobs
    (without it no leak_gap job is planned: the dry runs of tests/e2e/test_default_run.py)."""
    small = "experiment: lg\nsynthetic: {parts: 2, records_per_part: 4}\nrun_variants: [ridge]\n"
    paper = snakemake(tmp_path, "-n", config=small + "leak_gap: {in_all: paper}\n")
    assert paper.returncode == 0, paper.stderr[-2000:]
    for variant in ("ridge", "knn", "template", "naive"):
        job = f"{variant}/fold_0/seed_0"
        assert f"results/lg/leak_gap/paper/eval/{job}/metrics.json" in paper.stdout
    assert "leak_gap/record/" not in paper.stdout
    assert "rule leak_gap:" not in paper.stdout  # the table itself is `in_all: table`
