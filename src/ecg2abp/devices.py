"""Which torch device a job runs on: decided inside the job, never in the workflow's DAG."""

import torch

from ecg2abp.errors import InputError


def resolve_device(name: str, *, setting: str = "train.device") -> torch.device:
    """`auto`: CUDA when this process sees it, else the CPU; `cuda[:N]` only where it exists."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"{setting}: {name} asked for, but this job sees no CUDA device")
    if name != "cpu" and not name.startswith("cuda"):
        raise InputError(f"{setting} {name!r}: not a device (use auto, cpu or cuda)")
    return torch.device(name)
