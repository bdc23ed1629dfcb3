"""Training and inference speed of the deep models on each execution path, with its accuracy.

Paths: `reference` (fp32, eager, attention with need_weights=True as the original computes),
`fp32` (fused attention), `bf16` (bf16 autocast, attention included), `bf16_fp32_attention`
(bf16 autocast, MSCA attention kept in fp32) and `compiled` (torch.compile of the fastest eager
path measured). Every fast path's outputs are compared with the reference path's on a model
first trained a few SGD steps, as ‖fast − reference‖ / ‖reference‖.

Each timed path also reports its achieved GFLOP/s (windows/s × the counted FLOPs of one
window's step) and, on CUDA, its peak memory and MFU against the GPU's datasheet peak for
the path's precision (`bench.peaks`). `batch="max"` (CUDA only) times each path at the
largest batch that fits in the GPU's memory.
"""

import copy
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ecg2abp.bench.peaks import Peak, find_peak
from ecg2abp.devices import resolve_device
from ecg2abp.errors import InputError
from ecg2abp.models import build, spec
from ecg2abp.models.inventory import reference_kernels
from ecg2abp.training.objective import head_weights, supervised_loss

PATHS = ("reference", "fp32", "bf16", "bf16_fp32_attention", "compiled")
DEFAULT_PATHS = PATHS
PRETRAIN_STEPS = 3
SEED = 0
PAPER_BATCH = 300  # the original's batch; where `batch="max"` starts its search
MAX = "max"
Batch = int | str  # a number of windows, or MAX


@dataclass(frozen=True)
class EagerPath:
    attention: str  # "reference" or "fused"
    autocast: bool  # bf16 autocast around the step
    attention_precision: str  # "autocast" or "float32"

    @property
    def precision(self) -> str:
        """Which peak rate bounds it: bf16 under autocast, else fp32."""
        return "bf16" if self.autocast else "fp32"


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
    batch: Batch = 64,
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
    batch: Batch = 64,
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
    batch: Batch,
    steps: int,
    warmup: int,
    paths: tuple[str, ...],
    device_name: str,
    threads: int | None,
) -> dict:
    check_arguments(model_name, batch, steps, warmup, paths, threads)
    device = resolve_device(device_name, setting="benchmark device")
    if batch == MAX and device.type != "cuda":
        raise InputError(
            "benchmark batch max: needs a CUDA device (found by running out of memory)"
        )
    with thread_count(threads):
        load_before = os.getloadavg()[0]
        torch.manual_seed(SEED)
        base = build(model_name, window=window, width=width).to(device)
        fixed = PAPER_BATCH if batch == MAX else batch
        x, y = random_batch(fixed, window, device, seed=SEED)
        pretrain(base, x, y)
        probe, _ = random_batch(fixed, window, device, seed=SEED + 1)
        reference = EAGER_PATHS["reference"]
        reference_output = outputs(kind, configured(base, reference), reference, probe)
        work = Workload(kind, x, y, probe, reference_output, steps, warmup)
        gflop = step_gflop(base, window, train=kind == "train")
        results: dict[str, dict[str, Any]] = {}
        for path in [p for p in paths if p != "compiled"]:
            if batch == MAX:
                largest = largest_batch(lambda size, path=path: fits(work, base, path, size))
                sized = resized(work, largest)
            else:
                sized = work
            results[path] = measure_eager(sized, base, path)
        if "compiled" in paths:
            source = fastest_eager(results)
            sized = work if batch != MAX else resized(work, results[source].get("batch", fixed))
            results["compiled"] = measure_compiled(sized, base, source)
        add_speedups(results)
        peak = find_peak(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
        add_rates(results, gflop, peak)
        return {
            "bench": kind,
            "model": model_name,
            "width": width,
            "window": window,
            "batch": batch,
            "steps": steps,
            "warmup": warmup,
            "parameters": sum(p.numel() for p in base.parameters()),
            "gflop_per_window": gflop,
            "flops_counted": FLOPS_COUNTED[kind],
            **machine_facts(device),
            **peak_facts(device, peak),
            "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
            "paths": results,
        }


FLOPS_COUNTED = {
    "train": "one training step per window: every head's forward, the loss and the backward",
    "infer": "one eval-mode forward of every head per window",
}


def step_gflop(model: nn.Module, window: int, *, train: bool) -> float:
    """Counted FLOPs per window / 1e9 of a training step or an inference pass (every head).

    Counted on a CPU copy with the attention unfused, as `ecg2abp models` counts: the
    model's FLOPs, not the padded heads the fused kernels compute.
    """
    model = copy.deepcopy(model).cpu()
    if hasattr(model, "set_attention"):
        model.set_attention("reference")
    model.train(train)
    batch = 2  # BatchNorm in training mode needs more than one value per channel
    counter = FlopCounterMode(display=False)
    with torch.enable_grad(), reference_kernels(), counter:
        heads = model.forward_heads(torch.zeros(batch, 1, window))
        if train:
            loss = supervised_loss(heads, torch.zeros(batch), head_weights(len(heads)))
            loss.backward()
    return counter.get_total_flops() / batch / 1e9


def resized(work: Workload, batch: int) -> Workload:
    """The same workload timed at another batch size (the probe stays as it is)."""
    x, y = random_batch(batch, work.x.shape[-1], work.x.device, seed=SEED)
    return replace(work, x=x, y=y)


def fits(work: Workload, base: nn.Module, path_name: str, batch: int) -> bool:
    """Whether one step of `path_name` at `batch` runs without exhausting the GPU's memory."""
    path = EAGER_PATHS[path_name]
    try:
        step_function(resized(work, batch), configured(base, path), path)()
        torch.cuda.synchronize(work.x.device)
        return True
    except torch.cuda.OutOfMemoryError:
        return False
    finally:
        torch.cuda.empty_cache()


def largest_batch(runs: Callable[[int], bool], limit: int = 1 << 20) -> int:
    """The largest batch (to within ~3 %) for which `runs(batch)` holds: doubling from the
    paper's batch, then halving the gap. At least 1: a batch of 1 that does not fit is left
    for the timed run to report."""
    low, high, batch = 0, None, PAPER_BATCH
    while high is None and batch <= limit:
        if runs(batch):
            low, batch = batch, batch * 2
        else:
            high = batch
    if high is None:
        return low
    while high - low > max(1, low // 32):
        middle = (low + high) // 2
        low, high = (middle, high) if runs(middle) else (low, middle)
    return max(low, 1)


def check_arguments(
    model_name: str,
    batch: Batch,
    steps: int,
    warmup: int,
    paths: tuple[str, ...],
    threads: int | None,
) -> None:
    if spec(model_name).kind != "deep":
        raise InputError(f"model {model_name!r}: only deep models can be benchmarked here")
    numbers = [("steps", steps, 1), ("warmup", warmup, 0)]
    if batch != MAX:
        numbers.append(("batch", batch, 1))
    for name, value, least in numbers:
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


def timing(
    seconds: list[float], batch: int, cpu_seconds: float, device: torch.device
) -> dict[str, Any]:
    """Wall-clock rates; on the CPU also windows per CPU-second of this process, which other
    processes sharing the cores inflate far less than the wall-clock rate."""
    result = {
        "batch": batch,
        "windows_per_s": batch * len(seconds) / sum(seconds),
        "best_windows_per_s": batch / min(seconds),
        "step_s": [round(s, 4) for s in seconds],
        "process_cpu_s_per_step": cpu_seconds / len(seconds),
    }
    if device.type == "cpu" and cpu_seconds > 0:
        result["windows_per_cpu_s"] = batch * len(seconds) / cpu_seconds
    return result


def measure(work: Workload, runner: Runner, path: EagerPath, *, warmup: int) -> dict[str, Any]:
    """Accuracy against the reference path, then warm-up and timed steps."""
    difference = relative_difference(
        outputs(work.kind, runner, path, work.probe), work.reference_output
    )
    step = step_function(work, runner, path)
    device = work.x.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    warm_start = time.perf_counter()
    timed_steps(step, device, warmup)
    warmup_s = time.perf_counter() - warm_start
    cpu_start = time.process_time()
    seconds = timed_steps(step, device, work.steps)
    result = timing(seconds, work.x.shape[0], time.process_time() - cpu_start, device)
    if device.type == "cuda":
        result["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    result["precision"] = path.precision
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


def add_rates(results: dict[str, dict[str, Any]], gflop: float, peak: Peak | None) -> None:
    """Achieved GFLOP/s of each timed path and, with a known peak, its MFU."""
    for result in results.values():
        if "windows_per_s" not in result:
            continue
        result["achieved_gflop_s"] = result["windows_per_s"] * gflop
        if "windows_per_cpu_s" in result:
            result["gflop_per_cpu_s"] = result["windows_per_cpu_s"] * gflop
        rate = peak.tflops.get(result["precision"]) if peak else None
        if rate:
            result["mfu"] = result["achieved_gflop_s"] / (rate * 1000.0)


def peak_facts(device: torch.device, peak: Peak | None) -> dict[str, Any]:
    """The GPU's datasheet peaks MFU is taken against, and the TF32 switches in force."""
    if device.type != "cuda":
        return {}
    facts: dict[str, Any] = {
        "tf32": {
            "matmul": torch.backends.cuda.matmul.allow_tf32,
            "cudnn": torch.backends.cudnn.allow_tf32,
        }
    }
    if peak is None:
        facts["peak"] = {"why_none": "this GPU is not in ecg2abp.bench.peaks: no MFU"}
    else:
        facts["peak"] = {"part": peak.part, "tflops_dense": peak.tflops, "source": peak.source}
    return facts


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
        facts["gpu_memory_mb"] = torch.cuda.get_device_properties(device).total_memory / 2**20
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
