"""Runs the repository's Snakemake workflow in a folder, as a user would from the command line."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

# Two tiny parts, two folds, one network and one classical baseline: the shared pipeline run.
# One thread per job, every job on the CPU: two jobs side by side on 2 cores (as the demo).
SMALL = """
experiment: e2e
synthetic: {parts: 2, records_per_part: 10, min_seconds: 20.0, max_seconds: 40.0, seed: 1}
split: {folds: 2, block_size: 2}
variants:
  msca_cssc_unet: {model: msca_cssc_unet, width: 0.0625}
  ridge: {model: ridge}
run_variants: [msca_cssc_unet, ridge]
threads: 1
train: {epochs: 2, max_windows_per_epoch: 5000, batch_size: 128, lr: 0.003, max_val_windows: 1000,
        calibration_max_windows: 4000, device: cpu}
report: {saliency_windows: 32}
mlflow: {enabled: false}  # MLflow has its own end-to-end runs (tests/e2e/test_tracking.py)
"""


def snakemake(
    workdir: Path, *args: str, config: str = "", env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the workflow in `workdir`, layering `config` on the defaults."""
    overlay = workdir / "test.yaml"
    overlay.write_text(config)
    command = [
        *SNAKEMAKE,
        *args,  # first: a target after --resources would be read as a resource
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(REPO / "config" / "config.yaml"),
        str(overlay),
        "--cores",
        "2",
        "--resources",
        "gpu=1",
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=1200, env=env)
