"""Per-rule resources from Snakemake's benchmark files, and the SLURM limits they imply."""

import json

import pytest

from ecg2abp.bench.resources import (
    asked_memory_mb,
    asked_minutes,
    bench_resources,
    per_rule,
    read_benchmarks,
)
from ecg2abp.cli import main
from ecg2abp.errors import InputError

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_benchmark(path, wall, rss, cpu, written="0.5"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{wall}\t0:00:{wall}\t{rss}\t1\t1\t1\t0\t{written}\t50\t{cpu}\n")


@pytest.fixture
def run_folder(tmp_path):
    folder = tmp_path / "benchmarks" / "scale"
    write_benchmark(folder / "train" / "ridge" / "fold_0" / "seed_0.tsv", 50, 900, 40)
    write_benchmark(folder / "train" / "naive" / "fold_1" / "seed_0.tsv", 70, 1000, 45)
    write_benchmark(folder / "ingest" / "part_1.tsv", 20, 370, 5, written="800")
    write_benchmark(folder / "pool.tsv", 3, 200, 2, written="NA")
    return folder


def test_jobs_are_grouped_by_the_rule_their_benchmark_file_sits_under(run_folder):
    jobs = read_benchmarks(run_folder)
    assert sorted(jobs["rule"]) == ["ingest", "pool", "train", "train"]
    table = per_rule(jobs).set_index("rule")
    assert table.loc["train", "jobs"] == 2
    assert table.loc["train", "wall_s"] == 120 and table.loc["train", "longest_s"] == 70
    assert table.loc["train", "cpu_s"] == 85 and table.loc["train", "peak_rss_mb"] == 1000
    assert table.loc["ingest", "written_mb"] == 800
    assert table.loc["pool", "written_mb"] == 0  # NA (not measured) adds nothing


def test_limits_take_the_highest_peak_and_the_longest_job_with_margins():
    assert asked_memory_mb(1000) == 1500  # × 1.5, in 250 MB steps
    assert asked_memory_mb(1001) == 1750
    assert asked_memory_mb(100) == 1000  # never below the floor
    assert asked_minutes(70) == 10  # 3.5 min × 3 → the 10-minute floor
    assert asked_minutes(600) == 30
    assert asked_minutes(600, scale=2.0) == 60  # twice the data, twice the time


def test_train_s_benchmarks_set_both_training_rules(run_folder):
    resources = bench_resources(run_folder)["set_resources"]
    assert resources["train"] == resources["train_classical"] == {"mem_mb": 1500, "runtime": 10}
    assert resources["ingest"] == {"mem_mb": 1000, "runtime": 10}


def test_the_command_prints_json_or_the_markdown_table(run_folder, capsys):
    main(["bench", "resources", str(run_folder)])
    result = json.loads(capsys.readouterr().out)
    assert result["set_resources"]["train"]["mem_mb"] == 1500
    main(["bench", "resources", str(run_folder), "--markdown"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| rule | jobs |")
    assert "| train | 2 | 120 | 70 | 85 | 1,000 | 1 |" in lines


def test_a_folder_without_benchmarks_or_a_foreign_file_is_one_line(tmp_path):
    with pytest.raises(InputError, match="no Snakemake benchmark files"):
        read_benchmarks(tmp_path)
    (tmp_path / "x.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(InputError, match=r"x\.tsv: not a Snakemake benchmark file \(no cpu_time"):
        read_benchmarks(tmp_path)
