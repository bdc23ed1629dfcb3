"""Training and inference speed of the deep models on each execution path, with its accuracy.

Paths: `reference` (fp32, eager, attention with need_weights=True as the original computes),
`fp32` (fused attention), `bf16` (bf16 autocast, attention included), `bf16_fp32_attention`
(bf16 autocast, MSCA attention kept in fp32) and `compiled` (torch.compile of the fastest eager
path measured). Every fast path's outputs are compared with the reference path's on a model
first trained a few SGD steps, as ‖fast − reference‖ / ‖reference‖.
"""

import copy
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ecg2abp.devices import resolve_device
from ecg2abp.errors import InputError
from ecg2abp.models import build, spec
from ecg2abp.training.objective import head_weights, supervised_loss

PATHS = ("reference", "fp32", "bf16", "bf16_fp32_attention", "compiled")
DEFAULT_PATHS = PATHS
PRETRAIN_STEPS = 3
SEED = 0


@dataclass(frozen=True)
class EagerPath:
    attention: str  # "reference" or "fused"
    autocast: bool  # bf16 autocast around the step
    attention_precision: str  # "autocast" or "float32"


@dataclass(frozen=True)
class Runner:
    """A configured model copy and its (possibly compiled) forward_heads."""

    model: nn.Module
    heads: Callable[[torch.Tensor], list[torch.Tensor]]


@dataclass(frozen=True)
class Workload:
    """What every path runs: the timed batch, the comparison probe and the step counts."""

    kind: str  # "train" or "infer"
    x: torch.Tensor
    y: torch.Tensor
    probe: torch.Tensor
    reference_output: torch.Tensor  # the reference path's outputs on `probe`
    steps: int
    warmup: int


EAGER_PATHS = {
    "reference": EagerPath("reference", False, "autocast"),
    "fp32": EagerPath("fused", False, "autocast"),
    "bf16": EagerPath("fused", True, "autocast"),
    "bf16_fp32_attention": EagerPath("fused", True, "float32"),
}


def bench_train(
    model: str = "msca_cssc_unet",
    *,
    width: float = 1.0,
    window: int = 88,
    batch: int = 64,
    steps: int = 3,
    warmup: int = 1,
    paths: tuple[str, ...] = DEFAULT_PATHS,
    device: str = "auto",
    threads: int | None = None,
) -> dict:
    """Windows/s of full training steps (forward, deep-supervision loss, backward, AdamW)."""
    return run_bench("train", model, width, window, batch, steps, warmup, paths, device, threads)


def bench_infer(
    model: str = "msca_cssc_unet",
    *,
    width: float = 1.0,
    window: int = 88,
    batch: int = 64,
    steps: int = 3,
    warmup: int = 1,
    paths: tuple[str, ...] = DEFAULT_PATHS,
    device: str = "auto",
    threads: int | None = None,
) -> dict:
    """Windows/s of eval-mode forward passes (every head) under inference_mode."""
    return run_bench("infer", model, width, window, batch, steps, warmup, paths, device, threads)


def run_bench(
    kind: str,
    model_name: str,
    width: float,
    window: int,
    batch: int,
    steps: int,
    warmup: int,
    paths: tuple[str, ...],
    device_name: str,
    threads: int | None,
) -> dict:
    check_arguments(model_name, batch, steps, warmup, paths, threads)
    device = resolve_device(device_name, setting="benchmark device")
    with thread_count(threads):
        load_before = os.getloadavg()[0]
        torch.manual_seed(SEED)
        base = build(model_name, window=window, width=width).to(device)
        x, y = random_batch(batch, window, device, seed=SEED)
        pretrain(base, x, y)
        probe, _ = random_batch(batch, window, device, seed=SEED + 1)
        reference = EAGER_PATHS["reference"]
        reference_output = outputs(kind, configured(base, reference), reference, probe)
        work = Workload(kind, x, y, probe, reference_output, steps, warmup)
        results: dict[str, dict[str, Any]] = {}
        for path in [p for p in paths if p != "compiled"]:
            results[path] = measure_eager(work, base, path)
        if "compiled" in paths:
            results["compiled"] = measure_compiled(work, base, fastest_eager(results))
        add_speedups(results)
        return {
            "bench": kind,
            "model": model_name,
            "width": width,
            "window": window,
            "batch": batch,
            "steps": steps,
            "warmup": warmup,
            "parameters": sum(p.numel() for p in base.parameters()),
            **machine_facts(device),
            "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
            "paths": results,
        }


def check_arguments(
    model_name: str,
    batch: int,
    steps: int,
    warmup: int,
    paths: tuple[str, ...],
    threads: int | None,
) -> None:
    if spec(model_name).kind != "deep":
        raise InputError(f"model {model_name!r}: only deep models can be benchmarked here")
    for name, value, least in (("batch", batch, 1), ("steps", steps, 1), ("warmup", warmup, 0)):
        if not isinstance(value, int) or value < least:
            raise InputError(f"benchmark {name} {value!r}: must be an integer ≥ {least}")
    unknown = [p for p in paths if p not in PATHS]
    if unknown or not paths:
        raise InputError(f"benchmark paths {list(paths)!r}: choose from {', '.join(PATHS)}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InputError(f"benchmark threads {threads!r}: must be a positive integer")


@contextmanager
def thread_count(threads: int | None) -> Iterator[None]:
    """Set torch's intra-op threads for the block, then restore them."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def random_batch(
    batch: int, window: int, device: torch.device, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, window, generator=generator)
    y = torch.randn(batch, generator=generator)
    return x.to(device), y.to(device)


def training_loss(
    heads: Callable[[torch.Tensor], list[torch.Tensor]], x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    predictions = heads(x)
    return supervised_loss(predictions, y, head_weights(len(predictions)))


def pretrain(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """A few SGD steps, so outputs vary between windows before paths are compared."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    for _ in range(PRETRAIN_STEPS):
        optimizer.zero_grad(set_to_none=True)
        training_loss(model.forward_heads, x, y).backward()
        optimizer.step()


def configured(base: nn.Module, path: EagerPath, *, compiled: bool = False) -> Runner:
    """A copy of `base` with the path's attention settings, optionally torch.compile'd."""
    model = copy.deepcopy(base)
    if hasattr(model, "set_attention"):
        model.set_attention(path.attention)
        model.set_attention_precision(path.attention_precision)
    if compiled:
        return Runner(model, torch.compile(model.forward_heads))
    return Runner(model, model.forward_heads)


def autocast(device: torch.device, path: EagerPath) -> Any:
    if not path.autocast:
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def outputs(kind: str, runner: Runner, path: EagerPath, probe: torch.Tensor) -> torch.Tensor:
    """Every head's prediction on `probe`, fp32, in train mode (train) or eval mode (infer)."""
    runner.model.train(kind == "train")
    with torch.no_grad(), autocast(probe.device, path):
        return torch.stack([p.float() for p in runner.heads(probe)])


def relative_difference(fast: torch.Tensor, reference: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(fast - reference) / torch.linalg.vector_norm(reference))


def bf16_unavailable(device: torch.device) -> str | None:
    """Why bf16 autocast cannot run here, or None when it can."""
    if device.type == "cuda":
        return None if torch.cuda.is_bf16_supported() else "this GPU has no bf16 support"
    if not torch.backends.mkldnn.is_available():
        return "oneDNN (mkldnn) is not available in this torch build"
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "this CPU has no bf16 support in oneDNN (needs AVX512-BW or newer)"
    return None


def step_function(work: Workload, runner: Runner, path: EagerPath) -> Callable[[], None]:
    """One timed unit of work: a training step or an inference batch."""
    x, y = work.x, work.y
    if work.kind == "train":
        runner.model.train()
        optimizer = torch.optim.AdamW(runner.model.parameters(), lr=1e-3)

        def train_step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with autocast(x.device, path):
                loss = training_loss(runner.heads, x, y)
            loss.backward()
            optimizer.step()

        return train_step
    runner.model.eval()

    def infer_step() -> None:
        with torch.inference_mode(), autocast(x.device, path):
            runner.heads(x)

    return infer_step


def timed_steps(step: Callable[[], None], device: torch.device, count: int) -> list[float]:
    """Wall seconds of each of `count` calls."""
    seconds = []
    for _ in range(count):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def timing(seconds: list[float], batch: int, cpu_seconds: float) -> dict[str, Any]:
    return {
        "windows_per_s": batch * len(seconds) / sum(seconds),
        "best_windows_per_s": batch / min(seconds),
        "step_s": [round(s, 4) for s in seconds],
        "process_cpu_s_per_step": cpu_seconds / len(seconds),
    }


def measure(work: Workload, runner: Runner, path: EagerPath, *, warmup: int) -> dict[str, Any]:
    """Accuracy against the reference path, then warm-up and timed steps."""
    difference = relative_difference(
        outputs(work.kind, runner, path, work.probe), work.reference_output
    )
    step = step_function(work, runner, path)
    device = work.x.device
    warm_start = time.perf_counter()
    timed_steps(step, device, warmup)
    warmup_s = time.perf_counter() - warm_start
    cpu_start = time.process_time()
    seconds = timed_steps(step, device, work.steps)
    result = timing(seconds, work.x.shape[0], time.process_time() - cpu_start)
    return result | {"warmup_s": round(warmup_s, 3), "relative_difference": difference}


def measure_eager(work: Workload, base: nn.Module, path_name: str) -> dict[str, Any]:
    path = EAGER_PATHS[path_name]
    if path.autocast and (reason := bf16_unavailable(work.x.device)):
        return {"skipped": reason}
    return measure(work, configured(base, path), path, warmup=work.warmup)


def fastest_eager(results: dict[str, dict[str, Any]]) -> str:
    """The fastest measured eager fast path (the reference path only if nothing else ran)."""
    timed = {name: r["windows_per_s"] for name, r in results.items() if "windows_per_s" in r}
    fast = {name: speed for name, speed in timed.items() if name != "reference"} or timed
    if not fast:
        return "fp32"
    return max(fast, key=fast.__getitem__)


def measure_compiled(work: Workload, base: nn.Module, source: str) -> dict[str, Any]:
    """torch.compile of eager path `source`; skipped with the reason when compiling fails.

    The warm-up (at least one step) includes the compilation.
    """
    path = EAGER_PATHS[source]
    runner = configured(base, path, compiled=True)
    try:
        result = measure(work, runner, path, warmup=max(work.warmup, 1))
    except Exception as error:  # compile errors come in many types; report, don't crash
        first_line = (str(error).strip().splitlines() or [""])[0]
        return {"skipped": f"torch.compile failed: {type(error).__name__}: {first_line}"}
    return result | {"compiled_from": source}


def add_speedups(results: dict[str, dict[str, Any]]) -> None:
    """Each timed path's windows/s over the reference path's, when the reference was timed."""
    reference = results.get("reference", {}).get("windows_per_s")
    if reference is None:
        return
    for result in results.values():
        if "windows_per_s" in result:
            result["speedup"] = result["windows_per_s"] / reference


def machine_facts(device: torch.device) -> dict[str, Any]:
    flags = cpu_flags()
    facts: dict[str, Any] = {
        "device": str(device),
        "cpu_model": cpu_model(),
        "cpu_bf16": {"avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(device)
    return facts


def cpuinfo_field(field: str) -> str | None:
    """The first value of `field` in /proc/cpuinfo, or None off Linux."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return None
    for line in cpuinfo.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == field:
            return value.strip()
    return None


def cpu_model() -> str:
    return cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    return set((cpuinfo_field("flags") or "").split())
