"""Model benchmarks: the result's shape and the accuracy of each fast path (no timing checks)."""

import json

import pytest
import torch

from ecg2abp.bench.models import bench_infer, bench_train
from ecg2abp.errors import InputError

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
