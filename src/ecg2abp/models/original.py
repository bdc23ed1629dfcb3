"""Checkpoints of the original MSCA-CSSC-UNet code (MSCA_CSSC_UNet.pth) onto this project's model.

The original names its modules after the nodes (`conv{i}_{j}`), the attention blocks
(`attblock{i}_{j}`, with `.models.{k}` when a node has several dense skips), the cross-scale
upsamplers (`x{i}_{j}_up` or `x{i}_{j}_up_{k}`, deepest source first) and the heads
(`final1` … `final4`); shapes match this project's `msca_cssc_unet` one to one. Its fixed
positional tables (`….pe.pe`) are not weights: they are checked against ours, not loaded.

Imported against a fold of a split (`bind_to_fold`), the model file is bound to that fold's
data as a trained one is: its data fingerprint, fold number and training ABP mean (the naive
floor) come from the fold, so `evaluate` and `external` score it, floor included.
"""

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from ecg2abp import models
from ecg2abp.atomic import atomic_path
from ecg2abp.data.cleaning import CleaningSettings
from ecg2abp.data.shards import open_shard
from ecg2abp.errors import InputError
from ecg2abp.folds.loading import FoldData, load_fold
from ecg2abp.folds.normalisation import NormStats, compute_stats
from ecg2abp.folds.windows import all_windows
from ecg2abp.models.unetpp import PAPER_WIDTHS, UNetPlusPlus
from ecg2abp.training.jobs import FORMAT_VERSION, git_commit

WINDOW = 88
FS = 125.0
RULES = (
    (re.compile(r"conv(\d)_(\d)\.conv\.(\d)\.(.+)"), "nodes.x{0}_{1}.{2}.{3}"),
    (re.compile(r"attblock(\d)_(\d)\.MHA\.(.+)"), "msca.x{0}_{1}.0.attention.{2}"),
    (re.compile(r"attblock(\d)_(\d)\.models\.(\d+)\.MHA\.(.+)"), "msca.x{0}_{1}.{2}.attention.{3}"),
    (re.compile(r"x(\d)_(\d)_up\.channel_reduce\.(.+)"), "cssc.x{0}_{1}.0.reduce.{2}"),
    (re.compile(r"x(\d)_(\d)_up\.refine\.(.+)"), "cssc.x{0}_{1}.0.refine.{2}"),
    (re.compile(r"x(\d)_(\d)_up_(\d)\.channel_reduce\.(.+)"), "cssc.x{0}_{1}.{2}.reduce.{3}"),
    (re.compile(r"x(\d)_(\d)_up_(\d)\.refine\.(.+)"), "cssc.x{0}_{1}.{2}.refine.{3}"),
    (re.compile(r"final(\d)\.(.+)"), "heads.x0_{0}.{1}"),
)
TABLE = re.compile(r"attblock(\d)_(\d)\.(?:models\.(\d+)\.)?pe\.pe")
TABLE_TOLERANCE = 1e-6


def project_name(name: str) -> str | None:
    """This project's state-dict name for one of the original's (None: not a known name)."""
    for pattern, template in RULES:
        match = pattern.fullmatch(name)
        if match:
            return template.format(*match.groups())
    return None


def _check_table(name: str, table: torch.Tensor, model: UNetPlusPlus) -> None:
    level, column, index = TABLE.fullmatch(name).groups()
    block = model.msca[f"x{level}_{column}"][int(index or 0)]
    ours = block.position_table
    theirs = table.reshape(-1, table.shape[-1])[: len(ours)].float()
    if theirs.shape != ours.shape or not torch.allclose(theirs, ours, atol=TABLE_TOLERANCE):
        raise InputError(f"original checkpoint: {name} is not the sinusoidal table expected")


def map_state_dict(original: Mapping[str, torch.Tensor], model: UNetPlusPlus) -> dict:
    """The original's state dict renamed onto `model`'s, every name and shape checked."""
    ours = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for raw_name, tensor in original.items():
        name = raw_name.removeprefix("module.")  # saved from nn.DataParallel
        if TABLE.fullmatch(name):
            _check_table(name, tensor, model)
            continue
        target = project_name(name)
        if target is None or target not in ours:
            raise InputError(f"original checkpoint: unknown key {raw_name}")
        if tuple(tensor.shape) != tuple(ours[target].shape):
            raise InputError(
                f"original checkpoint: {raw_name} has shape {tuple(tensor.shape)}, "
                f"expected {tuple(ours[target].shape)}"
            )
        mapped[target] = tensor
    missing = [name for name in ours if name not in mapped]
    if missing:
        raise InputError(f"original checkpoint: no key for {missing[0]} ({len(missing)} missing)")
    return mapped


def _width(original: Mapping[str, torch.Tensor]) -> float:
    key = next((k for k in original if k.removeprefix("module.") == "conv0_0.conv.0.weight"), None)
    if key is None:
        raise InputError("original checkpoint: no conv0_0.conv.0.weight; not MSCA-CSSC-UNet")
    return original[key].shape[0] / PAPER_WIDTHS[0]


def load_original(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's state dict, read without executing code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except Exception as err:  # torch raises many kinds for a file that is not a checkpoint
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{path}: not a loadable state dict ({problem})") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise InputError(f"{path}: not a state dict of tensors")
    return dict(state)


def original_stats(ecg_min: float, ecg_max: float) -> NormStats:
    """The original's preprocessing: ECG min-max over every record, targets in mmHg."""
    if not ecg_max > ecg_min:
        raise InputError(f"ECG min {ecg_min} must be below ECG max {ecg_max}")
    return NormStats("minmax_all", float(ecg_min), float(ecg_max - ecg_min), 0.0, 1.0)


def stats_from_shards(shard_paths: Sequence[Path]) -> NormStats:
    """The original's statistics from shards of every part (ingested with config/paper.yaml)."""
    shards = [open_shard(path, mapped=True) for path in shard_paths]
    starts = [all_windows(shard) for shard in shards]
    return compute_stats(shards, starts, WINDOW, "minmax_all", abp="none")


def original_fold(split: Path, shard_paths: Sequence[Path], fold: int) -> FoldData:
    """A fold of a split with the original's statistics (ECG min-max over every shard)."""
    data = load_fold(split, shard_paths, fold, normalisation="minmax_all", abp="none", mapped=True)
    if data.window != WINDOW:
        raise InputError(f"{split}: made for window {data.window}; the original reads {WINDOW}")
    return data


def bind_to_fold(fold: FoldData) -> dict:
    """What binds an imported model to a fold's data: the model-file keys `evaluate` checks and
    the training means (ABP, and the beats' SBP, DBP, MAP) `external`'s floor predicts."""
    from ecg2abp.evaluation.floors import beat_floor  # evaluation imports the models

    return {
        "fold": fold.fold,
        "train_abp_mean": fold.target_mean("train"),
        "beat_floor": beat_floor(fold, calibrated=False),
        "data_fingerprint": fold.fingerprint,
    }


def import_original(
    checkpoint: Path,
    out: Path,
    stats: NormStats,
    *,
    fold: FoldData | None = None,
    variant: str = "msca_cssc_unet",
) -> dict:
    """Write a model file `evaluate` and `predict` use, from a checkpoint of the original code;
    bound to `fold`'s data when given (else `evaluate` refuses it and `external` has no floor)."""
    original = load_original(checkpoint)
    width = _width(original)
    model = models.build("msca_cssc_unet", window=WINDOW, width=width)
    model.load_state_dict(map_state_dict(original, model))
    no_cleaning = CleaningSettings(enabled=False, min_segment_seconds=0, bandpass_hz=None)
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": "deep",
        "variant": variant,
        "model": "msca_cssc_unet",
        "width": float(width),
        "options": {},
        "window": WINDOW,
        "fs": FS,
        "precision": "fp32",
        "stats": stats.to_dict(),
        "preprocessing": {
            "bandpass_hz": None,
            "bandpass_order": None,
            "cleaning": asdict(no_cleaning),
        },
        # trained on windows drawn from every record: no test record is unseen by it
        "protocol": "paper",
        "leaky": True,
        "fold": 0,
        "train_abp_mean": float("nan"),
        "beat_floor": None,
        "data_fingerprint": "",  # bound to no data
        **(bind_to_fold(fold) if fold is not None else {}),
        "checkpoint_sha256": hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest(),
        "config_fingerprint": "",
        "git_commit": git_commit(),
        "best_epoch": -1,
        "best_val_loss": float("nan"),
        "source": f"original checkpoint {Path(checkpoint).name}",
        "state_dict": model.state_dict(),
    }
    with atomic_path(Path(out)) as tmp:
        torch.save(meta, tmp)
    bound = None if fold is None else fold.fold
    return {"model": str(out), "width": width, "tensors": len(original), "fold": bound}
