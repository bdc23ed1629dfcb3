"""A stretch of ECG and the ABP predicted from it, one figure (for `predict --plot`)."""

from pathlib import Path

import numpy as np

from ecg2abp.atomic import atomic_path


def plot_prediction(
    path: Path, record_id: str, time: np.ndarray, ecg: np.ndarray, abp: np.ndarray, notice: str
) -> None:
    """ECG above, predicted ABP below, sharing the time axis; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 5))
    top.plot(time, ecg, linewidth=0.8, color="tab:blue")
    top.set_ylabel("ECG (input)")
    top.set_title(f"{record_id}: predicted ABP ({notice})", fontsize=8)
    bottom.plot(time, abp, linewidth=0.8, color="tab:red")
    bottom.set_ylabel("predicted ABP (mmHg)")
    bottom.set_xlabel("time (s)")
    figure.tight_layout()
    with atomic_path(Path(path)) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
