"""Peak arithmetic rates of GPUs, for model FLOP utilisation (MFU): vendor figures, dense.

Figures are NVIDIA's datasheet numbers in TFLOP/s without 2:4 structured sparsity (the
datasheets print the sparse figure, twice these, for tensor-core formats): `fp32` is the
CUDA-core FP32 rate, `tf32`, `bf16` and `fp16` the tensor-core rates. A GPU without bf16
(V100, T4) lists none. A device is matched by the words of the name torch reports
(e.g. "NVIDIA H100 80GB HBM3", "Tesla V100S-PCIE-32GB"); the first row whose every word
appears wins, so the more specific rows come first.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Peak:
    part: str  # the part as its datasheet names it
    tflops: dict[str, float]  # precision → dense peak TFLOP/s
    source: str


H100_SXM = {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5}
NVL = {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5}
V100_SXM2 = {"fp32": 15.7, "fp16": 125.0}

# (words the device name must contain, the peak)
PEAKS: tuple[tuple[tuple[str, ...], Peak], ...] = (
    (("H200", "NVL"), Peak("H200 NVL", NVL, "NVIDIA H200 datasheet")),
    (("H200",), Peak("H200 SXM", H100_SXM, "NVIDIA H200 datasheet")),
    (("H100", "NVL"), Peak("H100 NVL", NVL, "NVIDIA H100 datasheet")),
    (
        ("H100", "PCIE"),
        Peak("H100 PCIe", {"fp32": 51.0, "tf32": 378.0, "bf16": 756.5}, "NVIDIA H100 datasheet"),
    ),
    (("H100",), Peak("H100 SXM", H100_SXM, "NVIDIA H100 datasheet")),
    (
        ("A100",),
        Peak("A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0}, "NVIDIA A100 datasheet"),
    ),
    (
        ("L40S",),
        Peak("L40S", {"fp32": 91.6, "tf32": 183.0, "bf16": 362.0}, "NVIDIA L40S datasheet"),
    ),
    (("A10",), Peak("A10", {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0}, "NVIDIA A10 datasheet")),
    (("L4",), Peak("L4", {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0}, "NVIDIA L4 datasheet")),
    (
        ("V100S",),
        Peak("V100S PCIe", {"fp32": 16.4, "fp16": 130.0}, "NVIDIA V100 datasheet"),
    ),
    (
        ("V100", "PCIE"),
        Peak("V100 PCIe", {"fp32": 14.0, "fp16": 112.0}, "NVIDIA V100 datasheet"),
    ),
    (("V100",), Peak("V100 SXM2", V100_SXM2, "NVIDIA V100 datasheet")),
    (("T4",), Peak("T4", {"fp32": 8.1, "fp16": 65.0}, "NVIDIA T4 datasheet")),
)


def find_peak(device_name: str) -> Peak | None:
    """The datasheet peak of a device, by the name torch.cuda.get_device_name() reports."""
    words = set(device_name.upper().replace("-", " ").split())
    return next((peak for needed, peak in PEAKS if set(needed) <= words), None)
