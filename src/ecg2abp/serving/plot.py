"""A stretch of ECG and the ABP predicted from it, one figure (for `predict --plot`)."""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ecg2abp.atomic import atomic_path


def prediction_figure(
    record_id: str,
    time: np.ndarray,
    ecg: np.ndarray,
    abp: np.ndarray,
    notice: str,
    true_abp: np.ndarray | None = None,
) -> Figure:
    """ECG above; predicted ABP below, beside the true ABP when the input carries one."""
    figure = Figure(figsize=(10, 5), layout="tight")
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.plot(time, ecg, linewidth=0.8, color="tab:blue")
    top.set_ylabel("ECG (input)")
    top.set_title(f"{record_id}: predicted ABP ({notice})", fontsize=8)
    if true_abp is not None:
        bottom.plot(time, true_abp, linewidth=0.8, color="k", label="true ABP")
    bottom.plot(time, abp, linewidth=0.8, color="tab:red", label="predicted ABP")
    if true_abp is not None:
        bottom.legend(loc="upper right", fontsize=8)
    bottom.set_ylabel("ABP (mmHg)")
    bottom.set_xlabel("time (s)")
    return figure


def plot_prediction(path: Path, figure: Figure) -> None:
    """The figure written atomically as PNG."""
    with atomic_path(Path(path)) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
