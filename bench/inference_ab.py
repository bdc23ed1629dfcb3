"""A/B of the inference forward: models/inference.py at a git revision against the working tree.

    PYTHONPATH=src python bench/inference_ab.py [REV] [--precision bf16|fp32] [--rounds N]

Both run in this one process on one thread, interleaved (A, B, A, B, ...), on the same untrained
width-1/16 msca_cssc_unet as `ecg2abp bench predict`, at batch 1024 under the autocast the
Predictor uses. Timed by CPU time (time.process_time), which other jobs on a shared machine
inflate far less than the wall clock; prints windows per CPU-second (median and best of the
rounds) for each side and B's relative difference from A. REV defaults to HEAD~1.
"""

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ecg2abp.bench.serving import untrained_model_file
from ecg2abp.models.inference import InferenceUNet
from ecg2abp.serving.ensemble import load_model

BATCH = 1024


def inference_at(revision: str):
    """The InferenceUNet class of models/inference.py as it was at `revision`."""
    source = subprocess.run(
        ["git", "show", f"{revision}:src/ecg2abp/models/inference.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "inference_at_revision.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("inference_at_revision", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.InferenceUNet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("revision", nargs="?", default="HEAD~1")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp())
    model = load_model(untrained_model_file(folder, 1 / 16, args.precision)).members[0].model
    forwards = {
        f"A {args.revision}": inference_at(args.revision)(model, args.precision),
        "B working tree": InferenceUNet(model, args.precision),
    }
    x = torch.randn(BATCH, 1, model.window, generator=torch.Generator().manual_seed(0))
    bf16 = args.precision == "bf16"
    times: dict[str, list[float]] = {name: [] for name in forwards}
    outputs = {}
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for name, forward in forwards.items():
            outputs[name] = forward(x).float()  # warm-up, and the outputs to compare
        for _ in range(args.rounds):
            for name, forward in forwards.items():
                started = time.process_time()
                forward(x)
                times[name].append(time.process_time() - started)
    a, b = outputs.values()
    print(f"{args.precision}, batch {BATCH}, one thread, {args.rounds} interleaved rounds")
    print(f"B vs A: max |B − A| / max |A| = {float((b - a).abs().max() / a.abs().max()):.2e}")
    rates = {}
    for name, seconds in times.items():
        rates[name] = BATCH / statistics.median(seconds)
        print(
            f"{name}: {rates[name]:,.0f} windows per CPU-second "
            f"(median; best {BATCH / min(seconds):,.0f})"
        )
    first, second = rates.values()
    print(f"B / A: {second / first:.3f}")


if __name__ == "__main__":
    sys.exit(main())
