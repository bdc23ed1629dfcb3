"""End to end: the real Snakemake workflow on a small synthetic data set."""

import json

import pandas as pd
import pytest
from workflow_runner import SMALL, snakemake


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
            assert (results / "models" / variant / f"fold_{fold}" / "model.pt").exists()
            assert (results / "eval" / variant / f"fold_{fold}" / "metrics.json").exists()
            assert (tmp_path / "logs" / "e2e" / "train" / variant / f"fold_{fold}.log").exists()
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


def test_unknown_config_key_stops_before_any_job(tmp_path):
    result = snakemake(tmp_path, "-n", config="experiment: bad\nwindw: 88\n")
    assert result.returncode != 0
    assert "ecg2abp: error: config: unknown key windw" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


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
    result = snakemake(tmp_path, "-n", f"{models}/ridge/fold_0/model.classical", config=SMALL)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rule train_classical:" in result.stdout
    assert f"{models}/ridge/fold_0/model.pt" in result.stdout
