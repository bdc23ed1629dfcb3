"""The pipeline on a real single-node SLURM through profiles/slurm (run alone: pytest -m slurm).

Needs root and Debian's slurm-wlm, munge, slurmdbd and mariadb-server. Where they are missing
the tests skip and say why, except under CI=true, where they are installed with apt-get and a
failure fails. Every daemon is started here and stopped by PID, also when a test fails.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from slurm_cluster import SlurmCluster, missing_packages
from workflow_runner import REPO, snakemake

pytestmark = pytest.mark.slurm

HOOKS = Path(__file__).with_name("slurm_hooks")
CONFIG = """
experiment: slurm
synthetic: {parts: 1, records_per_part: 8, min_seconds: 20.0, max_seconds: 30.0, seed: 2}
split: {folds: 2, block_size: 2}
variants:
  tiny: {model: resnet1d, width: 0.125}
run_variants: [tiny]
threads: 1
train: {folds: [0], epochs: 2, max_windows_per_epoch: 640, batch_size: 64, max_val_windows: 256,
        checkpoint_minutes: 0, classical_max_windows: 2000}
evaluate: {stride: 4}
"""
# Status checks often, so that the tests do not wait on the profile's cluster-friendly pace.
FAST = ("--slurm-init-seconds-before-status-checks=2", "--seconds-between-status-checks=2")
REQUESTED = "ReqMem,TimelimitRaw"
APT = ["slurm-wlm", "munge", "slurmdbd", "mariadb-server"]


def ensure_installed(accounting: bool) -> None:
    """Skip (saying why) without root, packages or the executor plugin; under CI install them."""
    in_ci = os.environ.get("CI") == "true"
    problems = []
    if os.geteuid() != 0:
        problems.append("needs root (slurm.conf must be /etc/slurm/slurm.conf)")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        problems.append('needs the executor plugin: pip install -e ".[slurm]"')
    missing = missing_packages(accounting)
    if missing and in_ci and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *APT], check=True, env=env)
        missing = missing_packages(accounting)
    if missing:
        problems.append(f"needs Debian packages: apt-get install -y {' '.join(missing)}")
    if problems:
        message = "real SLURM test: " + "; ".join(problems)
        if in_ci:
            pytest.fail(message)
        pytest.skip(message)


def cluster_fixture(tmp_path_factory, accounting: bool):
    ensure_installed(accounting)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), accounting=accounting)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def accounting_cluster(tmp_path_factory):
    yield from cluster_fixture(tmp_path_factory, accounting=True)


def slurm_env(pause_dir: Path | None = None) -> dict:
    """The test's environment for the jobs (they inherit it through sbatch)."""
    env = {**os.environ}
    if pause_dir is not None:
        env["ECG2ABP_TEST_PAUSE"] = str(pause_dir)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HOOKS), env.get("PYTHONPATH")]))
    return env


def sacct_jobs() -> list[dict]:
    """Every job SLURM accounted: id, state, rule comment, requested memory (MB), time limit
    (minutes) and allocated TRES."""
    result = subprocess.run(
        [
            "sacct",
            "-X",
            "-n",
            "-P",
            "-a",
            "-o",
            "JobID,State,Comment,ReqMem,TimelimitRaw,AllocTRES",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    jobs = []
    for line in result.stdout.splitlines():
        job_id, state, comment, memory, minutes, tres = line.split("|")
        megabytes = int(re.fullmatch(r"(\d+)M[nc]?", memory).group(1))
        jobs.append(
            {
                "id": job_id,
                "state": state,
                "rule": comment,
                "mem_mb": megabytes,
                "minutes": int(minutes),
                "tres": tres,
            }
        )
    return jobs


def profile_resources() -> tuple[dict[str, dict], dict[str, int]]:
    """profiles/slurm's set-resources (rule → {mem_mb, runtime?}) and default-resources."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    defaults = dict(item.split("=") for item in profile["default-resources"])
    return profile["set-resources"], {key: int(value) for key, value in defaults.items()}


def on_slurm(workdir: Path, *targets: str) -> list[str]:
    """The snakemake command running CONFIG's workflow in `workdir` through profiles/slurm."""
    overlay = workdir / "test.yaml"
    overlay.write_text(CONFIG)
    return [
        *(sys.executable, "-m", "snakemake", *targets),
        *("--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)),
        *("--configfile", str(REPO / "config" / "config.yaml"), str(overlay)),
        *("--profile", str(REPO / "profiles" / "slurm"), *FAST),
    ]


def cancel_when_paused(pause_dir: Path, run: subprocess.Popen) -> str:
    """Wait for the deep training to pause at epoch 1 batch 2, then scancel its job."""
    deadline = time.monotonic() + 240
    while not (pause_dir / "paused").exists():
        assert run.poll() is None, "the workflow ended before training paused"
        assert time.monotonic() < deadline, "deep training never reached epoch 1 batch 2"
        time.sleep(0.5)
    listed = subprocess.run(
        ["squeue", "-h", "-o", "%i %k"], capture_output=True, text=True, check=True
    ).stdout
    found = [line.split()[0] for line in listed.splitlines() if "rule_train_wildcards_tiny" in line]
    assert len(found) == 1, listed
    subprocess.run(["scancel", found[0]], check=True)
    return found[0]


def metrics(workdir: Path) -> dict:
    found = sorted((workdir / "results" / "slurm" / "eval").glob("*/fold_*/seed_*/metrics.json"))
    assert found
    return {str(p.relative_to(workdir)): json.loads(p.read_text())["levels"] for p in found}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    """The same workflow on this machine (profiles/gpu, two pretend GPUs): the reference."""
    workdir = tmp_path_factory.mktemp("local")
    result = snakemake(workdir, "--profile", str(REPO / "profiles" / "gpu"), config=CONFIG)
    assert result.returncode == 0, result.stderr[-3000:]
    for rule in ("train", "evaluate"):
        log = (workdir / "logs" / "slurm" / rule / "tiny" / "fold_0" / "seed_0.log").read_text()
        assert "GPU slot 0: CUDA_VISIBLE_DEVICES=0" in log, log
    return workdir


@pytest.fixture(scope="module")
def slurm_run(accounting_cluster, tmp_path_factory) -> tuple[Path, str]:
    """The workflow through profiles/slurm; its deep training is scancelled once mid-epoch
    (the profile's retry then resumes it). The folder and the cancelled job's id."""
    workdir = tmp_path_factory.mktemp("on_slurm")
    pause = workdir / "pause"
    pause.mkdir()
    log = (workdir / "snakemake.out").open("w")
    with subprocess.Popen(
        on_slurm(workdir), stdout=log, stderr=subprocess.STDOUT, env=slurm_env(pause), text=True
    ) as run:
        try:
            cancelled = cancel_when_paused(pause, run)
            run.wait(timeout=600)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
            log.close()
    output = (workdir / "snakemake.out").read_text()
    assert run.returncode == 0, output[-4000:]
    return workdir, cancelled


def test_each_deep_job_is_its_own_slurm_job_with_one_gpu(slurm_run, local_run):
    workdir, cancelled = slurm_run
    jobs = sacct_jobs()
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        by_rule.setdefault(job["rule"], []).append(job)
    deep = [rule for rule in by_rule if re.match(r"rule_(train|evaluate)_wildcards_tiny_", rule)]
    # job names: the rule and its wildcards (variant, fold, seed)
    assert sorted(deep) == ["rule_evaluate_wildcards_tiny_0_0", "rule_train_wildcards_tiny_0_0"]
    for rule, rule_jobs in by_rule.items():
        for job in rule_jobs:
            gpus = re.findall(r"gres/gpu=(\d+)", job["tres"])
            assert gpus == (["1"] if rule in deep else []), (rule, job)
    # The scancelled training and its resumed retry: two jobs; every other rule ran once.
    assert {job["id"]: job["state"] for job in jobs}[cancelled].startswith("CANCELLED")
    retried = "rule_train_wildcards_tiny_0_0"
    assert all(len(js) == 1 for rule, js in by_rule.items() if rule != retried), by_rule
    assert {"rule_ingest_wildcards_part_1", "rule_train_wildcards_naive_0_0"} <= set(by_rule)
    assert not any(rule.startswith(("rule_pool", "rule_synth")) for rule in by_rule)
    assert metrics(workdir) == metrics(local_run)


def test_each_job_asks_for_the_memory_and_time_its_rule_was_measured_to_need(slurm_run):
    """profiles/slurm's measured set-resources reach SLURM as each job's --mem and --time."""
    measured, defaults = profile_resources()
    checked = set()
    for job in sacct_jobs():
        rule = re.fullmatch(r"rule_(\w+?)_wildcards_.*|rule_(\w+)", job["rule"])
        name = rule.group(1) or rule.group(2)
        asked = measured.get(name, defaults)  # a rule not measured at scale: the defaults
        assert job["mem_mb"] == asked["mem_mb"], job
        if name in measured and "runtime" in asked:
            assert job["minutes"] == asked["runtime"], job
        checked.add(name)
    assert {"ingest", "split", "train", "evaluate"} <= checked <= {*measured, "report_saliency"}


def test_a_scancelled_training_resumes_and_ends_as_the_local_run(slurm_run, local_run):
    workdir, _ = slurm_run
    log = (workdir / "logs" / "slurm" / "train" / "tiny" / "fold_0" / "seed_0.log").read_text()
    # SIGTERM arrived while batch 2 of epoch 1 was in hand: checkpoint after it, then resume.
    assert "resuming from" in log and "(epoch 1, batch 3)" in log, log
    model = workdir / "results" / "slurm" / "models" / "tiny" / "fold_0" / "seed_0"
    local_model = local_run / "results" / "slurm" / "models" / "tiny" / "fold_0" / "seed_0"
    assert (model / "history.parquet").read_bytes() != b""
    assert not (model / "checkpoint.pt").exists()
    got = json.loads((workdir / "results/slurm/eval/tiny/fold_0/seed_0/metrics.json").read_text())
    want = json.loads((local_model.parents[3] / "eval/tiny/fold_0/seed_0/metrics.json").read_text())
    assert got["levels"] == want["levels"]


def test_without_accounting_the_squeue_status_path_finishes(tmp_path_factory):
    gen = cluster_fixture(tmp_path_factory, accounting=False)
    next(gen)
    try:
        assert subprocess.run(["sacct"], capture_output=True).returncode != 0  # no slurmdbd
        workdir = tmp_path_factory.mktemp("no_accounting")
        target = "results/slurm/shards/part_1.h5"
        # A hang (the plugin's sacct status path without slurmdbd) fails at the timeout.
        result = subprocess.run(on_slurm(workdir, target), capture_output=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert (workdir / target).exists()
    finally:
        gen.close()
