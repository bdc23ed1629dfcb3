"""A trained model ready to serve: one model file, an ONNX export, or a variant's fold models.

Fold models predict together: their mean is the prediction and their spread (SD across folds)
a rough uncertainty. Every member must share window, rate and preprocessing.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ecg2abp.data.cleaning import CleaningSettings
from ecg2abp.digests import file_sha256
from ecg2abp.errors import InputError
from ecg2abp.evaluation.scoring import Predictor

SHARED_KEYS = ("window", "fs", "preprocessing")
NOTICE = "research use only; not a medical device: never use it to diagnose or treat anyone"


@dataclass
class ServingModel:
    """Members predicting together; `meta` is the first member's metadata."""

    path: Path
    members: list[Predictor]

    @property
    def meta(self) -> dict:
        return self.members[0].meta

    @property
    def window(self) -> int:
        return int(self.meta["window"])

    @property
    def fs(self) -> float:
        return float(self.meta["fs"])

    @property
    def cleaning(self) -> CleaningSettings:
        """The ECG rules and band-pass the model's training data went through."""
        stored = dict(self.meta["preprocessing"].get("cleaning") or {})
        stored["window"] = self.window
        return CleaningSettings(**stored)

    @property
    def train_abp_mean(self) -> float:
        """The naive floor: the training ABP mean (averaged over fold members)."""
        return float(np.mean([m.meta["train_abp_mean"] for m in self.members]))

    @property
    def train_beat_means(self) -> dict[str, float] | None:
        """The beat floor: the training beats' mean SBP, DBP and MAP (averaged over fold
        members); None where a member's file holds none (written before it was stored)."""
        floors = [m.meta.get("beat_floor") for m in self.members]
        if not all(floors):
            return None
        levels = floors[0]["overall"]
        return {level: float(np.mean([f["overall"][level] for f in floors])) for level in levels}

    @property
    def files(self) -> list[Path]:
        """Every file the model is read from."""
        return [file for member in self.members for file in member.files]

    @property
    def has_spread(self) -> bool:
        return len(self.members) > 1

    def describe(self) -> dict:
        """What the outputs' metadata says about the model."""
        keys = ("variant", "model", "width", "window", "fs", "protocol", "leaky", "git_commit")
        return {
            "notice": NOTICE,
            "model_path": str(self.path),
            "folds": [m.meta.get("fold") for m in self.members],
            **{key: self.meta.get(key) for key in keys},
        }

    def predict(
        self, record_id: str, windows: np.ndarray, batch_size: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Mean ABP (mmHg) over the members at each window's last sample, and their SD."""
        if not self.has_spread:
            return self.members[0].predict(record_id, windows, batch_size), None
        each = np.stack([m.predict(record_id, windows, batch_size) for m in self.members])
        return each.mean(axis=0), each.std(axis=0)


def _model_file(path: Path, device: torch.device) -> Predictor:
    """One model file through the evaluation Predictor (which refuses bad files in one line)."""
    return Predictor(path, device)


def _member_files(folder: Path) -> list[Path]:
    if (folder / "model.pt").is_file():
        return [folder / "model.pt"]
    found = sorted(folder.glob("fold_*/seed_*/model.pt")) or sorted(folder.glob("fold_*/model.pt"))
    if not found:
        raise InputError(f"{folder}: no model.pt and no fold_*/seed_*/model.pt inside")
    return found


def load_model(path: Path, device: torch.device | None = None) -> ServingModel:
    """A model.pt, an exported .onnx, or a variant folder of fold models."""
    path = Path(path)
    device = device or torch.device("cpu")
    if not path.exists():
        raise InputError(f"{path}: no such model file or folder")
    if path.suffix.lower() == ".onnx":
        from ecg2abp.serving.onnx_model import OnnxPredictor

        return ServingModel(path, [OnnxPredictor(path)])
    files = _member_files(path) if path.is_dir() else [path]
    members = [_model_file(file, device) for file in files]
    refuse_mixed(members)
    return ServingModel(path, members)


def refuse_mixed(members: list[Predictor]) -> None:
    """An ensemble is one variant's models of distinct folds: refuse mixed kinds and copies."""
    first = members[0]
    seen: dict[object, Path] = {}
    for member in members:
        for key in ("variant", "model", *SHARED_KEYS):
            if member.meta.get(key) != first.meta.get(key):
                raise InputError(
                    f"{member.path}: {key} {member.meta.get(key)!r} differs from {first.path}'s "
                    f"{first.meta.get(key)!r}; cannot ensemble"
                )
        # One training job per fold, settings and seed; a copy repeats all three, or its bytes.
        job = tuple(member.meta.get(k) for k in ("fold", "config_fingerprint", "seed"))
        for key in (job, file_sha256(member.path)) if len(members) > 1 else ():
            if key in seen:
                raise InputError(
                    f"{member.path}: the same model as {seen[key]} (fold "
                    f"{member.meta.get('fold')}); an ensemble needs each fold once"
                )
            seen[key] = member.path
