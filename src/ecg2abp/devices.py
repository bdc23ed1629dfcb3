"""Which torch device a job runs on: decided inside the job, never in the workflow's DAG.

Every train and evaluate job logs the device it runs on; one that the environment gave a GPU
(CUDA_VISIBLE_DEVICES naming one: SLURM's --gpus, the gpu_slots pinning) but that sees no CUDA
says so in a warning instead of training on the CPU unnoticed.
"""

import logging
import os

import torch

from ecg2abp.errors import InputError

log = logging.getLogger("ecg2abp.devices")
NO_GPU = ("", "-1", "none", "NoDevFiles")  # CUDA_VISIBLE_DEVICES values that hide every GPU


def assigned_gpus() -> str | None:
    """The GPUs the environment gave this job (CUDA_VISIBLE_DEVICES), None when it gave none."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    return None if value is None or value.strip() in NO_GPU else value


def resolve_device(name: str, *, setting: str = "train.device") -> torch.device:
    """`auto`: CUDA when this process sees it, else the CPU; `cuda[:N]` only where it exists."""
    if name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"{setting}: {name} asked for, but this job sees no CUDA device")
    elif name != "cpu" and not name.startswith("cuda"):
        raise InputError(f"{setting} {name!r}: not a device (use auto, cpu or cuda)")
    else:
        device = torch.device(name)
    gpus = assigned_gpus()
    if name == "auto" and device.type == "cpu" and gpus is not None:
        why = "a torch built without CUDA" if torch.version.cuda is None else "no usable driver"
        log.warning(
            "CUDA_VISIBLE_DEVICES=%s gives this job a GPU, but it sees no CUDA (%s): "
            "running on the CPU",
            gpus,
            why,
        )
    return device


def log_device(device: torch.device, name: str, *, setting: str = "train.device") -> None:
    """Say which device a job runs on (once its inputs are checked, as it starts the work)."""
    described = str(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        described = f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    log.info("%s %s: running on %s", setting, name, described)
