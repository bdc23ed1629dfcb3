"""An exported ONNX model served like a model.pt: same scaling, same checks, ONNX Runtime forward.

The model's metadata (stats, window, rate, preprocessing) travels in the ONNX file's
metadata_props under METADATA_KEY, as JSON; nothing in the file is executed but the graph.
"""

import json
from pathlib import Path

import numpy as np
import torch

from ecg2abp.data.readers import _reason
from ecg2abp.errors import InputError
from ecg2abp.evaluation.scoring import Predictor
from ecg2abp.folds.normalisation import NormStats
from ecg2abp.training.jobs import FORMAT_VERSION

METADATA_KEY = "ecg2abp"
INPUT_NAME = "ecg"
OUTPUT_NAME = "abp"
# Windows per session call (Predictor.max_batch). The graph's attention holds its scores whole
# (at full width 8 MB per window at the deepest node): 1024 windows ran out of 24 GB, and at
# width 1/16 calls of 64 run faster than calls of 1024 (2,213 against 1,952 windows per
# CPU-second, one thread).
SESSION_BATCH = 64


def session(path: Path | str | bytes, threads: int | None = None):
    """An ONNX Runtime CPU session with `threads` intra-op threads (default: torch's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    source = str(path) if isinstance(path, Path) else path
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


class OnnxPredictor(Predictor):
    """Predictor whose forward runs an exported graph in ONNX Runtime (deep models only)."""

    max_batch = SESSION_BATCH

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.path = Path(path)
        try:
            self.session = session(self.path, threads)
        except Exception as exc:
            raise InputError(f"{path}: not a readable ONNX file ({_reason(exc)})") from None
        stored = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if stored is None:
            raise InputError(f"{path}: ONNX file without ecg2abp metadata (not exported by us)")
        try:
            self.meta = json.loads(stored)
            self.stats = NormStats.from_dict(self.meta["stats"])
            self.window = int(self.meta["window"])
            self.record_means = self.meta.get("record_means") or {}
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: damaged ecg2abp metadata ({_reason(exc)})") from None
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise InputError(
                f"{path}: model format version {self.meta.get('format_version')!r}, "
                f"this ecg2abp reads {FORMAT_VERSION}"
            )
        self.kind = "onnx"
        self.device = torch.device("cpu")
        _check_graph(self.path, self.session, self.window)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(x, dtype=np.float32)[:, None, :]
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0].astype(np.float64)


def _check_graph(path: Path, sess, window: int) -> None:
    """The graph must take [batch, 1, window] ECG and give [batch] ABP, as the metadata says."""
    inputs, outputs = sess.get_inputs(), sess.get_outputs()
    if [i.name for i in inputs] != [INPUT_NAME] or [o.name for o in outputs] != [OUTPUT_NAME]:
        raise InputError(
            f"{path}: graph has inputs {[i.name for i in inputs]} and outputs "
            f"{[o.name for o in outputs]}, expected ['{INPUT_NAME}'] → ['{OUTPUT_NAME}']"
        )
    shape = inputs[0].shape
    if len(shape) != 3 or shape[1:] != [1, window]:
        raise InputError(f"{path}: graph input shape {shape} does not match window {window}")
