"""The trained-model file (model.pt): written atomically, read without executing code."""

from pathlib import Path
from typing import Any

import torch

from ecg2abp.atomic import atomic_path
from ecg2abp.errors import InputError

FORMAT_VERSION = 1
KINDS = ("deep", "classical", "naive")
# What every model file holds; `state_dict` (deep) and `artefact` (classical) come on top.
REQUIRED_KEYS = (
    "format_version",
    "kind",
    "variant",
    "model",
    "width",
    "options",
    "window",
    "fs",
    "precision",
    "stats",
    "protocol",
    "leaky",
    "fold",
    "train_abp_mean",
    "data_fingerprint",
)
CLASSICAL_ARTEFACT = "model.classical"  # a classical model's fitted file, beside its model.pt
KIND_KEYS = {"deep": ("state_dict",), "classical": ("artefact",), "naive": ()}


def read_torch_file(path: Path | str, what: str) -> Any:
    """`torch.load(weights_only=True)` of a file; any failure is one line naming it."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such {what}")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a {what}")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file, not a {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, text, foreign pickles: torch raises many kinds
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path}: cannot read {what} ({reason[:160]})") from None


def load_model_file(path: Path | str) -> dict:
    """The model file's contents, checked for format version, kind and the keys it must hold."""
    contents = read_torch_file(path, "model file")
    if not isinstance(contents, dict):
        raise InputError(f"{path}: not an ecg2abp model file (holds a {type(contents).__name__})")
    version = contents.get("format_version")
    if "format_version" in contents and version != FORMAT_VERSION:
        raise InputError(
            f"{path}: model file format_version {version!r}; this ecg2abp reads {FORMAT_VERSION}"
        )
    kind = contents.get("kind")
    missing = [key for key in (*REQUIRED_KEYS, *KIND_KEYS.get(kind, ())) if key not in contents]
    if missing:
        raise InputError(f"{path}: not an ecg2abp model file (missing {', '.join(missing)})")
    if kind not in KINDS:
        raise InputError(f"{path}: unknown model kind {kind!r} (known: {', '.join(KINDS)})")
    return contents


def save_model_file(path: Path, contents: dict) -> None:
    """Write a model file atomically, stamped with the current format version."""
    with atomic_path(path) as tmp:
        torch.save({**contents, "format_version": FORMAT_VERSION}, tmp)
