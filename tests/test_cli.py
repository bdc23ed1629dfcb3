"""The command line: bad input ends in one line on stderr and a non-zero status, no traceback."""

import ast
import json
import os
import pickle
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch

import ecg2abp
from ecg2abp.cli import main
from ecg2abp.data.readers import detect_format, iter_records
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
    path = kaggle_part(tmp_path / "part_3.mat", [np.zeros((2, 200)), np.zeros((3, 200))])
    line = one_line_error(capsys, ["ingest", str(path), "--out", str(tmp_path / "s.h5")])
    assert "part_3/0000" in line


def test_empty_part(tmp_path, capsys):
    path = kaggle_part(tmp_path / "part_4.mat", [])
    line = one_line_error(capsys, ["ingest", str(path), "--out", str(tmp_path / "s.h5")])
    assert "part_4.mat" in line


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("windw: 88\n", "windw"),
        ("split:\n  folds: 0\n", "split.folds"),
        ("window: 3\n", "window"),
        ("cleaning: {abp_min: 300, abp_max: 250}\n", "cleaning.abp_min (300)"),
        ("split: {folds: 1}\n", "split.folds 1"),
        ("train: {folds: [7]}\n", "train.folds: fold 7"),
        ("external: {x: /nonexistent.mat}\n", "external.x: /nonexistent.mat"),
    ],
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


def test_synth_pulsedb_layout(tmp_path, capsys):
    out = tmp_path / "pulsedb"
    assert (
        main(["synth", str(out), "--layout", "pulsedb", "--subjects", "4", "--segments", "2"]) == 0
    )
    printed = [Path(p) for p in capsys.readouterr().out.split()]
    assert [p.name for p in printed] == [
        "Train_Subset.mat",
        "CalBased_Test_Subset.mat",
        "CalFree_Test_Subset.mat",
        "AAMI_Test_Subset.mat",
        "AAMI_Cal_Subset.mat",
    ]
    assert {detect_format(p) for p in printed} == {"pulsedb"}
    assert len(list(iter_records(printed[2]))) == 2  # one CalFree subject, both its segments
    line = one_line_error(capsys, ["synth", str(out), "--layout", "pulsedb", "--subjects", "2"])
    assert line == "ecg2abp: error: subjects: need at least 3 (train, CalFree, AAMI), got 2"


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


def test_no_module_of_the_package_imports_snakemake():
    """Snakemake belongs to the workflow extra: the library and its commands must not need it."""
    package = Path(ecg2abp.__file__).parent
    importers = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(name.split(".")[0] == "snakemake" for name in names):
                importers.append(path.relative_to(package))
    assert importers == []


# --- provenance: nothing is applied to other data, every problem is one line ------------------


@dataclass(frozen=True)
class Job:
    """Two ingested parts, their split and a naive model of fold 0, made with the commands."""

    folder: Path
    config: Path
    parts: list[Path]
    shards: list[Path]
    split: Path
    model: Path

    def fold_args(self, fold: int = 0, shards: list[Path] | None = None) -> list[str]:
        given = [str(s) for s in (shards or self.shards)]
        return ["--split", str(self.split), "--fold", str(fold), "--shards", *given,
                "--config", str(self.config)]  # fmt: skip


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Job:
    folder = tmp_path_factory.mktemp("job")
    config = folder / "c.yaml"
    config.write_text("split: {folds: 2, block_size: 1}\nthreads: 1\n")
    parts = write_synthetic(folder / "raw", parts=2, records_per_part=4, max_seconds=10.0)
    shards = [folder / "shards" / f"{p.stem}.h5" for p in parts]
    for part, shard in zip(parts, shards, strict=True):
        assert main(["ingest", str(part), "--out", str(shard), "--config", str(config)]) == 0
    split = folder / "record.json"
    assert main(["split", *map(str, shards), "--out", str(split), "--config", str(config)]) == 0
    made = Job(folder, config, parts, shards, split, folder / "naive" / "model.pt")
    assert main(["train", "naive", *made.fold_args(), "--out", str(made.model.parent)]) == 0
    return made


def evaluate_args(job: Job, model: Path, tmp_path: Path, **fold_args) -> list[str]:
    return ["evaluate", str(model), *job.fold_args(**fold_args), "--out", str(tmp_path / "e")]


def test_shards_with_one_name_are_refused_everywhere(job, tmp_path, capsys):
    twin = tmp_path / "other" / job.shards[0].name
    twin.parent.mkdir()
    shutil.copy(job.shards[0], twin)
    both = [*job.shards, twin]
    split_argv = ["split", *map(str, both), "--out", str(tmp_path / "s.json")]
    for argv in (
        [*split_argv, "--config", str(job.config)],
        ["train", "naive", *job.fold_args(shards=both), "--out", str(tmp_path / "m")],
        evaluate_args(job, job.model, tmp_path, shards=both),
    ):
        line = one_line_error(capsys, argv)
        assert str(job.shards[0]) in line and str(twin) in line, line


def different_shard(job: Job, folder: Path) -> Path:
    """part_1's shard ingested again from other data (part_2's file under part_1's name)."""
    raw = folder / "raw" / job.parts[0].name
    raw.parent.mkdir(parents=True)
    shutil.copy(job.parts[1], raw)
    shard = folder / job.shards[0].name
    assert main(["ingest", str(raw), "--out", str(shard), "--config", str(job.config)]) == 0
    return shard


def test_a_swapped_shard_is_refused_by_train_and_evaluate(job, tmp_path, capsys):
    swapped = [different_shard(job, tmp_path), job.shards[1]]
    capsys.readouterr()
    line = one_line_error(
        capsys, ["train", "naive", *job.fold_args(shards=swapped), "--out", str(tmp_path / "m")]
    )
    assert str(swapped[0]) in line and "differ" in line
    line = one_line_error(capsys, evaluate_args(job, job.model, tmp_path, shards=swapped))
    assert str(swapped[0]) in line and "differ" in line
    assert not (tmp_path / "m").exists() and not (tmp_path / "e").exists()


def test_a_model_is_scored_only_on_its_own_fold_and_data(job, tmp_path, capsys):
    line = one_line_error(capsys, evaluate_args(job, job.model, tmp_path, fold=1))
    assert "fold 0" in line and str(job.model) in line
    resplit = tmp_path / "record.json"
    config = tmp_path / "seed.yaml"
    config.write_text("split: {folds: 2, block_size: 1, seed: 7}\nthreads: 1\n")
    shards = [str(s) for s in job.shards]
    assert main(["split", *shards, "--out", str(resplit), "--config", str(config)]) == 0
    argv = ["evaluate", str(job.model), "--split", str(resplit), "--fold", "0", "--shards",
            *shards, "--out", str(tmp_path / "e"), "--config", str(config)]  # fmt: skip
    line = one_line_error(capsys, argv)
    assert "other data" in line and str(job.model) in line


def test_a_config_window_other_than_the_shards_is_refused(job, tmp_path, capsys):
    config = tmp_path / "w.yaml"
    config.write_text("window: 64\nsplit: {folds: 2, block_size: 1}\nthreads: 1\n")
    argv = ["split", *map(str, job.shards), "--out", str(tmp_path / "s.json")]
    line = one_line_error(capsys, [*argv, "--config", str(config)])
    assert "window 88" in line and "window 64" in line and str(job.shards[0]) in line
    shards = [str(s) for s in job.shards]
    argv = ["train", "naive", "--split", str(job.split), "--fold", "0", "--shards",
            *shards, "--out", str(tmp_path / "m"), "--config", str(config)]  # fmt: skip
    assert "window 64" in one_line_error(capsys, argv)


def test_a_split_file_missing_keys_is_one_line(job, tmp_path, capsys):
    document = json.loads(job.split.read_text())
    del document["n_folds"], document["fingerprints"]
    broken = tmp_path / "old.json"
    broken.write_text(json.dumps(document))
    argv = ["train", "naive", "--split", str(broken), "--fold", "0", "--shards",
            *map(str, job.shards), "--out", str(tmp_path / "m")]  # fmt: skip
    line = one_line_error(capsys, argv)
    assert str(broken) in line and "n_folds" in line and "fingerprints" in line


class RunsCode:
    """A pickle that runs code when loaded: it would create the file `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def broken_model_files(job: Job, folder: Path) -> dict[str, Path]:
    """Every way a model file can be wrong, by name."""
    good = job.model.read_bytes()
    meta = torch.load(job.model, weights_only=True)
    files = {name: folder / f"{name}.pt" for name in
             ("missing", "empty", "truncated", "text", "foreign", "future", "code")}  # fmt: skip
    (folder / "folder.pt").mkdir()
    files["folder"] = folder / "folder.pt"
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(good[: len(good) // 2])
    files["text"].write_text("this is not a model\n")
    torch.save({"weights": torch.zeros(3)}, files["foreign"])
    torch.save({**meta, "format_version": 99}, files["future"])
    with files["code"].open("wb") as handle:
        pickle.dump({**meta, "stats": RunsCode(folder / "ran")}, handle)
    return files


def test_every_model_file_problem_is_one_line_and_no_code_runs(job, tmp_path, capsys):
    expected = {
        "missing": "no such model file",
        "folder": "is a folder",
        "empty": "empty file",
        "truncated": "cannot read model file",
        "text": "cannot read model file",
        "foreign": "missing format_version",
        "future": "format_version 99",
        "code": "cannot read model file",
    }
    for name, path in broken_model_files(job, tmp_path).items():
        line = one_line_error(capsys, evaluate_args(job, path, tmp_path))
        assert str(path) in line and expected[name] in line, (name, line)
    assert not (tmp_path / "ran").exists()  # the pickle's code never ran
    assert not (tmp_path / "e").exists()


def test_output_paths_that_cannot_be_written_are_one_line(job, tmp_path, capsys):
    folder = tmp_path / "taken"
    folder.mkdir()
    afile = tmp_path / "afile"
    afile.write_text("x")
    long_records = write_synthetic(tmp_path, parts=1, records_per_part=2, min_seconds=20.0)
    part = str(long_records[0])  # every record keeps something: no warning before the error
    line = one_line_error(capsys, ["ingest", part, "--out", str(folder)])
    assert str(folder) in line and "folder" in line
    line = one_line_error(capsys, ["ingest", part, "--out", str(afile / "sub" / "s.h5")])
    assert str(afile) in line
    line = one_line_error(capsys, ["synth", str(afile)])
    assert str(afile) in line
    line = one_line_error(capsys, ["train", "naive", *job.fold_args(), "--out", str(afile)])
    assert str(afile) in line
    if Path("/sys").is_dir() and not os.access("/sys", os.W_OK, effective_ids=True):
        pytest.skip("no read-only folder here")
    line = one_line_error(capsys, ["ingest", part, "--out", "/sys/s.h5"])
    assert "/sys/s.h5" in line


def test_outputs_that_would_destroy_inputs_are_refused(job, tmp_path, capsys):
    part = tmp_path / job.parts[0].name
    shutil.copy(job.parts[0], part)
    before = part.read_bytes()
    line = one_line_error(capsys, ["ingest", str(part), "--out", str(part)])
    assert "overwrite the input" in line
    shard = tmp_path / "s.h5"
    line = one_line_error(
        capsys, ["ingest", str(part), "--out", str(shard), "--report", str(shard)]
    )
    assert f"{shard}: would overwrite the output {shard}" in line
    assert part.read_bytes() == before and not shard.exists()
    kept = job.shards[0].read_bytes()
    line = one_line_error(capsys, ["split", *map(str, job.shards), "--out", str(job.shards[0])])
    assert "overwrite the input" in line and job.shards[0].read_bytes() == kept


def test_no_job_writes_over_what_it_reads_by_any_name(job, tmp_path, capsys):
    """Symlinks, hard links and files a job writes beside its --out count too; nothing is lost."""
    kept = {path: path.read_bytes() for path in (*job.shards, job.split, job.config, job.model)}
    hard = tmp_path / "hard.h5"
    os.link(job.shards[1], hard)
    split = ["split", *map(str, job.shards), "--config", str(job.config), "--out"]
    train = ["train", "naive", *job.fold_args(), "--out"]
    inside = tmp_path / "m"  # the split read from the folder train writes model.pt into
    inside.mkdir()
    (inside / "model.pt").symlink_to(job.split)
    scored = evaluate_args(job, job.model, tmp_path)
    scored_dir = tmp_path / "e"
    scored_dir.mkdir()
    (scored_dir / "metrics.json").symlink_to(job.split)
    cases = {
        "split over a hard link of a shard": ([*split, str(hard)], hard),
        "split over its config": ([*split, str(job.config)], job.config),
        "train over a linked split": ([*train, str(inside)], inside / "model.pt"),
        "evaluate over a linked split": (
            [*scored[:-1], str(scored_dir)],
            scored_dir / "metrics.json",
        ),
    }
    for what, (argv, named) in cases.items():
        line = one_line_error(capsys, argv)
        assert "would overwrite the input" in line, what
        assert line.startswith(f"ecg2abp: error: {named}:"), (what, line)
    assert {path: path.read_bytes() for path in kept} == kept


def test_bench_commands_take_device_paths_and_batch(capsys):
    assert main(["bench", "matmul", "--size", "32", "--seconds", "0.01", "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["size"] == 32
    arguments = ["--model", "unet", "--width", "0.0625", "--batch", "2", "--steps", "1"]
    assert main(["bench", "infer", *arguments, "--paths", "fp32", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["paths"]) == {"fp32"} and result["device"] == "cpu"
    assert main(["bench", "train", "--batch", "max", "--device", "cpu", "--paths", "fp32"]) == 2
    assert "ecg2abp: error: benchmark batch max" in capsys.readouterr().err


def test_a_classical_model_is_read_only_with_its_own_fitted_file(job, tmp_path, capsys):
    folders = [tmp_path / f"fold_{fold}" for fold in (0, 1)]
    for fold, folder in enumerate(folders):
        assert main(["train", "ridge", *job.fold_args(fold), "--out", str(folder)]) == 0
    assert main(evaluate_args(job, folders[0] / "model.pt", tmp_path)) == 0
    shutil.copy(folders[1] / "model.classical", folders[0] / "model.classical")
    capsys.readouterr()
    line = one_line_error(capsys, evaluate_args(job, folders[0] / "model.pt", tmp_path))
    assert str(folders[0] / "model.classical") in line and str(folders[0] / "model.pt") in line


def test_a_model_is_scored_only_as_its_own_variant_and_window(job, tmp_path, capsys):
    argv = evaluate_args(job, job.model, tmp_path)
    config = tmp_path / "w.yaml"
    config.write_text("window: 64\nsplit: {folds: 2, block_size: 1}\nthreads: 1\n")
    line = one_line_error(capsys, [*argv, "--config", str(config)])
    assert str(job.model) in line and "window 88" in line and "window 64" in line
    line = one_line_error(capsys, [*argv, "--variant", "ridge"])
    assert str(job.model) in line and "variant naive" in line and "variant ridge" in line
    assert main([*argv, "--variant", "naive"]) == 0


def test_a_shard_edited_after_ingest_is_refused_by_every_job_reading_it(job, tmp_path, capsys):
    edited = [tmp_path / shard.name for shard in job.shards]
    for source, copy in zip(job.shards, edited, strict=True):
        shutil.copy(source, copy)
    with h5py.File(edited[1], "a") as h5:  # one stretch of ABP 100 mmHg higher, as by hand
        h5["abp"][100:400] += 100.0
    for argv in (
        [
            "split",
            *map(str, edited),
            "--config",
            str(job.config),
            "--out",
            str(tmp_path / "s.json"),
        ],
        ["train", "naive", *job.fold_args(shards=edited), "--out", str(tmp_path / "m")],
        evaluate_args(job, job.model, tmp_path, shards=edited),
        [
            "import-original",
            str(job.model),
            "--shards",
            *map(str, edited),
            "--out",
            str(tmp_path / "o.pt"),
        ],
    ):
        line = one_line_error(capsys, argv)
        assert f"{edited[1]}: its data differ from its fingerprint" in line, argv[0]
    assert not any((tmp_path / name).exists() for name in ("s.json", "m", "e", "o.pt"))
