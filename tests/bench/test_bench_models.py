"""Model benchmarks: the result's shape and the accuracy of each fast path (no timing checks)."""

import json

import pytest
import torch

from ecg2abp.bench.matmul import bench_matmul
from ecg2abp.bench.models import bench_infer, bench_train, largest_batch, step_gflop
from ecg2abp.bench.peaks import find_peak
from ecg2abp.errors import InputError
from ecg2abp.models import build
from ecg2abp.models.inventory import count_gflop

EAGER = ("reference", "fp32", "bf16", "bf16_fp32_attention")
TINY = {"width": 1 / 16, "batch": 3, "steps": 2, "warmup": 1, "device": "cpu"}


def cpu_has_fast_bf16() -> bool:
    """oneDNN's own answer (AVX512-BW or newer): where it says yes, bf16 must be measured."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def compiling_works() -> bool:
    """Whether torch.compile can compile and run a trivial function here."""
    try:
        return bool(torch.compile(lambda x: x * 2 + 1)(torch.ones(3)).eq(3).all())
    except Exception:  # no C compiler, unsupported platform, …
        return False


def check_timed(entry: dict, steps: int) -> None:
    assert entry["windows_per_s"] > 0
    assert entry["best_windows_per_s"] >= entry["windows_per_s"] * 0.999
    assert len(entry["step_s"]) == steps and all(s > 0 for s in entry["step_s"])
    assert isinstance(entry["relative_difference"], float)


@pytest.mark.parametrize("bench", [bench_infer, bench_train])
def test_result_names_the_machine_and_every_path(bench):
    result = bench("msca_cssc_unet", paths=EAGER, threads=1, **TINY)
    json.dumps(result, allow_nan=False)
    assert result["bench"] == ("infer" if bench is bench_infer else "train")
    assert result["model"] == "msca_cssc_unet"
    assert (result["width"], result["window"], result["batch"]) == (1 / 16, 88, 3)
    assert result["device"] == "cpu"
    assert isinstance(result["cpu_model"], str) and result["cpu_model"]
    assert result["torch"] == torch.__version__
    assert result["threads"] == 1
    assert result["parameters"] > 0
    assert set(result["load_average_1m"]) == {"before", "after"}
    assert set(result["paths"]) == set(EAGER)
    reference = result["paths"]["reference"]
    check_timed(reference, steps=2)
    assert reference["relative_difference"] == 0.0
    assert reference["speedup"] == 1.0
    fp32 = result["paths"]["fp32"]
    check_timed(fp32, steps=2)
    assert fp32["relative_difference"] < 1e-5
    assert fp32["speedup"] == pytest.approx(fp32["windows_per_s"] / reference["windows_per_s"])
    for name in ("bf16", "bf16_fp32_attention"):
        entry = result["paths"][name]
        if not cpu_has_fast_bf16():  # only then may the bf16 paths be skipped
            assert isinstance(entry.get("skipped"), str) and entry["skipped"]
            continue
        check_timed(entry, steps=2)
        assert 0 < entry["relative_difference"] < 5e-2


def test_threads_are_restored_after_the_benchmark():
    before = torch.get_num_threads()
    bench_infer("unet", paths=("fp32",), threads=1, **TINY)
    assert torch.get_num_threads() == before


def test_single_head_model_trains_without_a_reference_speedup():
    result = bench_train("unet", paths=("fp32",), **TINY)
    entry = result["paths"]["fp32"]
    check_timed(entry, steps=2)
    assert "speedup" not in entry
    assert entry["relative_difference"] < 1e-5


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"model": "ridge"}, "only deep models"),
        ({"model": "nope"}, "unknown model"),
        ({"paths": ("fp64",)}, "paths"),
        ({"paths": ()}, "paths"),
        ({"steps": 0}, "steps 0"),
        ({"batch": 0}, "batch 0"),
        ({"threads": 0}, "threads 0"),
        ({"device": "tpu"}, "device 'tpu'"),
    ],
)
def test_bad_arguments_are_refused(arguments, fragment):
    with pytest.raises(InputError, match=fragment):
        bench_infer(**{**TINY, "paths": ("fp32",), **arguments})


@pytest.mark.slow
def test_compiled_path_matches_the_reference_or_says_why_not():
    result = bench_infer("unet", paths=("fp32", "compiled"), **{**TINY, "steps": 1})
    entry = result["paths"]["compiled"]
    if not compiling_works():  # only then may the compiled path be skipped
        assert entry["skipped"].startswith("torch.compile failed: ")
        return
    check_timed(entry, steps=1)
    assert entry["compiled_from"] == "fp32"
    assert entry["relative_difference"] < 1e-4


def test_rates_are_counted_flops_times_windows_per_second():
    result = bench_train("unet", paths=("fp32",), threads=1, **TINY)
    entry = result["paths"]["fp32"]
    assert result["gflop_per_window"] == step_gflop(build("unet", width=1 / 16), 88, train=True)
    assert entry["achieved_gflop_s"] == pytest.approx(
        entry["windows_per_s"] * result["gflop_per_window"]
    )
    assert entry["windows_per_cpu_s"] > 0 and entry["precision"] == "fp32"
    assert entry["gflop_per_cpu_s"] == pytest.approx(
        entry["windows_per_cpu_s"] * result["gflop_per_window"]
    )
    assert "mfu" not in entry and "peak" not in result  # no GPU, no datasheet peak


def test_step_flops_are_the_inventory_count_plus_a_backward():
    model = build("unet", width=1 / 16)  # one head: its inference pass is the inventory's forward
    forward = count_gflop(build("unet", width=1 / 16), 88)
    assert step_gflop(model, 88, train=False) == pytest.approx(forward, rel=1e-12)
    assert 2 * forward < step_gflop(model, 88, train=True) <= 3 * forward
    assert model.attention_mode == "fused" and model.training  # counted on a copy


def test_largest_batch_needs_a_gpu():
    with pytest.raises(InputError, match="batch max: needs a CUDA device"):
        bench_train("unet", paths=("fp32",), **{**TINY, "batch": "max"})


@pytest.mark.parametrize(
    ("name", "part", "bf16"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM", 989.5),
        ("NVIDIA H100 PCIe", "H100 PCIe", 756.5),
        ("NVIDIA H200", "H200 SXM", 989.5),
        ("NVIDIA H200 NVL", "H200 NVL", 835.5),
        ("NVIDIA A100-SXM4-80GB", "A100", 312.0),
        ("NVIDIA A10", "A10", 125.0),
        ("Tesla V100S-PCIE-32GB", "V100S PCIe", None),
        ("Tesla V100-SXM2-16GB", "V100 SXM2", None),
    ],
)
def test_datasheet_peaks_are_found_by_the_name_torch_reports(name, part, bf16):
    peak = find_peak(name)
    assert peak.part == part and peak.tflops.get("bf16") == bf16 and peak.tflops["fp32"] > 0


def test_an_unknown_gpu_has_no_peak():
    assert find_peak("NVIDIA GeForce RTX 4090") is None


def test_matmul_rate_counts_two_flops_per_multiply_add():
    result = bench_matmul(size=64, device="cpu", threads=1, seconds=0.05)
    json.dumps(result, allow_nan=False)
    assert result["products"] >= 1 and result["gflop_s"] > 0 and result["gflop_per_cpu_s"] > 0
    assert (result["size"], result["precision"], result["threads"]) == (64, "fp32", 1)


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [({"precision": "fp64"}, "precision 'fp64'"), ({"size": 0}, "size 0"), ({"seconds": 0}, "0")],
)
def test_bad_matmul_arguments_are_refused(arguments, fragment):
    with pytest.raises(InputError, match=fragment):
        bench_matmul(**{"device": "cpu", **arguments})


@pytest.mark.parametrize("limit", [1, 299, 300, 301, 1234, 100_000])
def test_largest_batch_search_ends_just_below_the_limit(limit):
    asked = []

    def runs(batch: int) -> bool:
        asked.append(batch)
        return batch <= limit

    found = largest_batch(runs)
    assert found <= limit and found >= limit * 0.96
    assert len(asked) < 40 and asked[0] == 300  # starts at the paper's batch
