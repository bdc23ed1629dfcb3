#!/usr/bin/env bash
# GPU benchmarks, ready for a machine with one CUDA GPU: prints one JSON line per measurement
# (stdout) and stops each step at its own time limit, so the whole script ends within about
# GPU_BENCH_MINUTES (default 9) even where a step hangs or compiles for long.
#   bash bench/gpu.sh                     # uses .venv/bin/python (bash run.sh test builds it)
#   PYTHON=python3 bash bench/gpu.sh      # any interpreter with ecg2abp and CUDA torch
# What it measures, all at full width (the paper's 128 → 2048 channels, 2.39 GFLOP/window):
#   - the GPU and driver (nvidia-smi), the dense matmul rate in fp32 and bf16;
#   - the window feed: signals resident on the GPU vs gathered on the host into pinned memory;
#   - training and inference windows/s, peak GPU memory and MFU of every path (reference, fp32
#     fused attention, bf16 autocast, bf16 with fp32 attention, torch.compile), each checked
#     against the fp32 reference, at the paper's batch (300) and at the largest batch that fits.
# A step that fails prints {"step": ..., "failed": exit status} and the script goes on; one
# the time budget no longer allows prints {"step": ..., "skipped": ...}.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
minutes=${GPU_BENCH_MINUTES:-9}
deadline=$((SECONDS + minutes * 60))

bench() {  # bench NAME SECONDS ecg2abp-arguments...: one measurement, never past the deadline
  local name=$1 limit=$2
  shift 2
  local left=$((deadline - SECONDS))
  if ((left < 10)); then
    printf '{"step": "%s", "skipped": "time budget spent"}\n' "$name"
    return
  fi
  ((limit > left)) && limit=$left
  timeout --signal=TERM --kill-after=10 "$limit" "$PYTHON" -m ecg2abp.cli "$@"
  local status=$?
  ((status != 0)) && printf '{"step": "%s", "failed": %d}\n' "$name" "$status"
}

timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit \
  --format=csv,noheader |
  "$PYTHON" -c 'import json, sys
keys = ("gpu", "memory", "driver", "max_sm_clock", "power_limit")
for line in sys.stdin:
    print(json.dumps({"step": "nvidia-smi", **dict(zip(keys, map(str.strip, line.split(","))))}))'

bench matmul-fp32 40 bench matmul --device cuda --size 8192 --precision fp32 --seconds 5
bench matmul-bf16 40 bench matmul --device cuda --size 8192 --precision bf16 --seconds 5
bench feed-resident 60 bench windows --device cuda --resident --batch 300 --seconds 5
bench feed-pinned 60 bench windows --device cuda --no-resident --batch 300 --seconds 5
eager=reference,fp32,bf16,bf16_fp32_attention
bench train-300 120 bench train --device cuda --batch 300 --steps 10 --warmup 3 --paths $eager
bench infer-300 90 bench infer --device cuda --batch 300 --steps 10 --warmup 3 --paths $eager
bench train-max 150 bench train --device cuda --batch max --steps 5 --warmup 2 --paths fp32,bf16
bench infer-max 90 bench infer --device cuda --batch max --steps 5 --warmup 2 --paths fp32,bf16
bench train-compiled 150 bench train --device cuda --batch 300 --steps 10 --warmup 2 \
  --paths fp32,bf16,compiled
exit 0
