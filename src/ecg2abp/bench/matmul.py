"""The machine's dense matrix-product rate: what the model benchmarks' GFLOP/s compare with."""

import os
import time
from typing import Any

import torch

from ecg2abp.bench.models import machine_facts, peak_facts, thread_count
from ecg2abp.bench.peaks import find_peak
from ecg2abp.devices import resolve_device
from ecg2abp.errors import InputError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def bench_matmul(
    *,
    size: int = 2048,
    precision: str = "fp32",
    device: str = "auto",
    threads: int | None = None,
    seconds: float = 2.0,
) -> dict[str, Any]:
    """GFLOP/s of repeated `size`×`size` products (2·size³ FLOPs each) for about `seconds`."""
    if precision not in DTYPES:
        raise InputError(f"matmul precision {precision!r}: choose from {', '.join(DTYPES)}")
    if not isinstance(size, int) or size < 1:
        raise InputError(f"matmul size {size!r}: must be a positive integer")
    if not seconds > 0:
        raise InputError(f"matmul seconds {seconds!r}: must be positive")
    target = resolve_device(device, setting="benchmark device")
    with thread_count(threads):
        generator = torch.Generator().manual_seed(0)
        a, b = (
            torch.randn(size, size, generator=generator).to(target, DTYPES[precision])
            for _ in range(2)
        )
        load_before = os.getloadavg()[0]
        torch.matmul(a, b)  # warm-up: kernels chosen, caches filled
        synchronize(target)
        count, cpu_start, started = 0, time.process_time(), time.perf_counter()
        while time.perf_counter() - started < seconds:
            torch.matmul(a, b)
            count += 1
            if count % 8 == 0:
                synchronize(target)
        synchronize(target)
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_start
        flops = 2.0 * size**3 * count
        result: dict[str, Any] = {
            "bench": "matmul",
            "size": size,
            "precision": precision,
            "products": count,
            "gflop_s": flops / wall / 1e9,
            **machine_facts(target),
            "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        }
    if target.type == "cpu":
        result["gflop_per_cpu_s"] = flops / cpu / 1e9
    else:
        peak = find_peak(torch.cuda.get_device_name(target))
        result |= peak_facts(target, peak)
        rate = peak.tflops.get(precision) if peak else None
        if rate:
            result["fraction_of_peak"] = result["gflop_s"] / (rate * 1000.0)
    return result


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
