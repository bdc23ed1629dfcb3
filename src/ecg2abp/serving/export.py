"""`ecg2abp export`: a deep model.pt as ONNX (dynamic batch), checked against PyTorch.

The graph is the inference forward of models/inference.py in fp32 (BatchNorm folded, only the
last sample's head computed), its attention explicit with softmax itself so that no branch
depends on the data.

The file is written under a temporary name, run in ONNX Runtime on random and real ECG windows
next to the PyTorch model, and renamed into place only if the two agree within MAX_REL_DIFF
(max |onnx − torch| over max |torch|, in normalised units).
"""

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from ecg2abp.atomic import atomic_path, refuse_overwriting
from ecg2abp.errors import InputError
from ecg2abp.models.inference import inference_forward
from ecg2abp.serving.ensemble import _model_file
from ecg2abp.serving.inputs import InputRecord
from ecg2abp.serving.onnx_model import INPUT_NAME, METADATA_KEY, OUTPUT_NAME, session

MAX_REL_DIFF = 1e-4
OPSET = 17
CHECK_WINDOWS = 256
CHECK_BATCH = 32


class _Traced(torch.nn.Module):
    """The inference forward as a module, for the ONNX tracer."""

    def __init__(self, forward) -> None:
        super().__init__()
        self.forward_fn = forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_fn(x)


def max_rel_diff(reference: np.ndarray, other: np.ndarray) -> float:
    scale = float(np.max(np.abs(reference))) or 1.0
    return float(np.max(np.abs(other - reference))) / scale


def _torch_forward(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)).double().numpy()


def _real_windows(predictor, records: list[InputRecord], rng: np.random.Generator) -> np.ndarray:
    """Up to CHECK_WINDOWS normalised windows drawn from finite stretches of the records."""
    window = predictor.window
    found = []
    for record in records:
        ecg = record.ecg().astype(np.float32)
        if len(ecg) >= window:
            windows = sliding_window_view(ecg, window)
            found.append(windows[np.isfinite(windows).all(axis=1)])
    if not sum(map(len, found)):
        raise InputError("export: the check input holds no full window of finite ECG")
    windows = np.concatenate([w[rng.choice(len(w), min(len(w), CHECK_WINDOWS))] for w in found])
    return predictor.stats.scale_ecg(windows)[:, None, :]


def _export(graph: torch.nn.Module, example: np.ndarray, path: Path) -> None:
    torch.onnx.export(
        graph,
        (torch.from_numpy(example),),
        str(path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )


def export_onnx(model_path: Path, onnx_path: Path, check: list[InputRecord]) -> dict:
    """Write `onnx_path` from a deep model.pt; compare ONNX Runtime with PyTorch; return figures."""
    predictor = _model_file(Path(model_path), torch.device("cpu"))
    refuse_overwriting([onnx_path], predictor.files)
    if predictor.kind != "deep":
        raise InputError(
            f"{model_path}: only deep models export to ONNX (this is {predictor.kind})"
        )
    model = predictor.model.float().eval().requires_grad_(False)
    traced = _Traced(inference_forward(model, "fp32", traceable=True)).eval()
    window = predictor.window
    meta = {key: value for key, value in predictor.meta.items() if key != "state_dict"}
    rng = np.random.default_rng(0)
    probes = {
        "random": rng.standard_normal((CHECK_WINDOWS, 1, window)).astype(np.float32),
        "real": _real_windows(predictor, check, rng),
    }
    import onnx

    with atomic_path(Path(onnx_path)) as tmp:
        with warnings.catch_warnings():  # shapes other than the batch are fixed by design
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            _export(traced, probes["random"][:2], tmp)
        graph = onnx.load(str(tmp))
        graph.metadata_props.add(key=METADATA_KEY, value=json.dumps(meta, default=str))
        onnx.save(graph, str(tmp))
        runtime = session(tmp, threads=1)
        diffs = {}
        for name, x in probes.items():
            pieces = range(0, len(x), CHECK_BATCH)  # bounded memory at full width
            ours = [
                runtime.run([OUTPUT_NAME], {INPUT_NAME: x[i : i + CHECK_BATCH]})[0] for i in pieces
            ]
            theirs = [_torch_forward(model, x[i : i + CHECK_BATCH]) for i in pieces]
            diffs[name] = max_rel_diff(
                np.concatenate(theirs), np.concatenate(ours).astype(np.float64)
            )
        worst = max(diffs.values())
        if not worst <= MAX_REL_DIFF:
            raise InputError(
                f"{onnx_path}: ONNX Runtime differs from PyTorch by {worst:.2e} relative "
                f"(limit {MAX_REL_DIFF:g}); file not written"
            )
    return {
        "onnx": str(onnx_path),
        "variant": meta.get("variant"),
        "window": window,
        "windows_checked": {name: len(x) for name, x in probes.items()},
        "max_rel_diff": diffs,
        "limit": MAX_REL_DIFF,
    }
