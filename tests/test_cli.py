"""The command line: bad input ends in one line on stderr and a non-zero status, no traceback."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from ecg2abp.cli import main
from ecg2abp.data.synth import write_synthetic


def one_line_error(capsys, argv: list[str]) -> str:
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ecg2abp: error: ")
    assert "Traceback" not in captured.err
    return lines[0]


def kaggle_part(path: Path, matrices: list) -> Path:
    cell = np.empty((1, len(matrices)), dtype=object)
    for index, matrix in enumerate(matrices):
        cell[0, index] = matrix
    scipy.io.savemat(path, {"p": cell})
    return path


@pytest.fixture
def good_part(tmp_path) -> Path:
    return write_synthetic(tmp_path / "raw", parts=1, records_per_part=2, max_seconds=10.0)[0]


def test_truncated_file(tmp_path, good_part, capsys):
    data = good_part.read_bytes()
    cut = tmp_path / "part_5.mat"
    cut.write_bytes(data[: len(data) // 2])
    line = one_line_error(capsys, ["ingest", str(cut), "--out", str(tmp_path / "s.h5")])
    assert "part_5.mat" in line
    assert not (tmp_path / "s.h5").exists()


def test_not_matlab(tmp_path, capsys):
    text = tmp_path / "part_1.mat"
    text.write_text("id,ecg,abp\n1,0.1,80\n")
    line = one_line_error(capsys, ["ingest", str(text), "--out", str(tmp_path / "s.h5")])
    assert "part_1.mat" in line and "not a MATLAB" in line


def test_missing_variable(tmp_path, capsys):
    path = tmp_path / "part_2.mat"
    scipy.io.savemat(path, {"q": np.zeros((3, 100))})
    line = one_line_error(capsys, ["ingest", str(path), "--out", str(tmp_path / "s.h5")])
    assert "part_2.mat" in line and "'p'" in line


def test_record_not_three_rows(tmp_path, capsys):
    path = kaggle_part(tmp_path / "part_3.mat", [np.zeros((3, 200)), np.zeros((2, 200))])
    line = one_line_error(capsys, ["ingest", str(path), "--out", str(tmp_path / "s.h5")])
    assert "part_3/0001" in line


def test_empty_part(tmp_path, capsys):
    path = kaggle_part(tmp_path / "part_4.mat", [])
    line = one_line_error(capsys, ["ingest", str(path), "--out", str(tmp_path / "s.h5")])
    assert "part_4.mat" in line


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [("windw: 88\n", "windw"), ("split:\n  folds: 0\n", "split.folds"), ("window: 3\n", "window")],
)
def test_config_refused_before_work(tmp_path, good_part, capsys, yaml_text, key):
    config = tmp_path / "my.yaml"
    config.write_text(yaml_text)
    argv = ["ingest", str(good_part), "--out", str(tmp_path / "s.h5"), "--config", str(config)]
    assert key in one_line_error(capsys, argv)
    assert not (tmp_path / "s.h5").exists()


def test_real_process_prints_no_traceback(tmp_path):
    missing = tmp_path / "nothing_here.mat"
    result = subprocess.run(
        [sys.executable, "-m", "ecg2abp.cli", "ingest", str(missing), "--out", "x.h5"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "nothing_here.mat" in result.stderr
    assert "Traceback" not in result.stderr


def test_synth_then_ingest(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "raw"), "--parts", "2", "--records", "3"]) == 0
    printed = capsys.readouterr().out.split()
    assert [Path(p).name for p in printed] == ["part_1.mat", "part_2.mat"]
    shard = tmp_path / "part_1.h5"
    assert main(["ingest", printed[0], "--out", str(shard)]) == 0
    assert shard.exists() and shard.with_suffix(".clean.parquet").exists()


def test_models_lists_the_configured_variants(tmp_path, capsys):
    import json

    import torch

    from ecg2abp import models

    config = tmp_path / "variants.yaml"
    config.write_text(
        "window: 88\nvariants:\n  small_unet: {model: unet, width: 0.125}\n  lin: {model: ridge}\n"
    )
    assert main(["models", "--config", str(config), "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"small_unet", "lin"}
    built = models.build("unet", window=88, width=0.125)
    assert rows["small_unet"]["parameters"] == sum(p.numel() for p in built.parameters())
    assert isinstance(built, torch.nn.Module) and rows["small_unet"]["width"] == 0.125
    assert rows["lin"]["parameters"] is None


def test_split_train_evaluate_commands_share_the_rules_code(tmp_path, capsys):
    import json

    config = tmp_path / "c.yaml"
    config.write_text(
        "split: {folds: 2, block_size: 1}\nvariants: {lin: {model: ridge}}\nthreads: 1\n"
        "cleaning: {bandpass_hz: null}\n"
    )
    parts = write_synthetic(tmp_path / "raw", parts=1, records_per_part=6, max_seconds=12.0)
    shard = tmp_path / "part_1.h5"
    assert main(["ingest", str(parts[0]), "--out", str(shard), "--config", str(config)]) == 0
    split = tmp_path / "record.json"
    assert main(["split", str(shard), "--out", str(split), "--config", str(config)]) == 0
    common = ["--split", str(split), "--fold", "1", "--shards", str(shard), "--config", str(config)]
    assert main(["train", "lin", *common, "--out", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    assert (
        main(["evaluate", str(tmp_path / "m" / "model.pt"), *common, "--out", str(tmp_path / "e")])
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    stored = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert stored["fold"] == 1 and stored["variant"] == "lin"
    assert printed["point"] == stored["levels"]["point"]["mae"] > 0
    line = one_line_error(capsys, ["train", "absent", *common, "--out", str(tmp_path / "x")])
    assert "absent" in line


def test_bench_commands_take_device_paths_and_batch(capsys):
    assert main(["bench", "matmul", "--size", "32", "--seconds", "0.01", "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["size"] == 32
    arguments = ["--model", "unet", "--width", "0.0625", "--batch", "2", "--steps", "1"]
    assert main(["bench", "infer", *arguments, "--paths", "fp32", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["paths"]) == {"fp32"} and result["device"] == "cpu"
    assert main(["bench", "train", "--batch", "max", "--device", "cpu", "--paths", "fp32"]) == 2
    assert "ecg2abp: error: benchmark batch max" in capsys.readouterr().err
