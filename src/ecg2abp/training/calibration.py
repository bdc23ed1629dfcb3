"""Pulse calibration: a gain on a network's pulsation, fitted on the validation side's beats.

A network trained on point-wise MSE predicts the conditional mean of ABP given the ECG window.
Where the beat's timing is uncertain that mean is a flattened beat: its maximum over a beat
(the predicted SBP) falls short of the true SBP and its minimum lies above the true DBP. The
calibration `abp → mean + gain · (abp − mean)`, about the training mean ABP, restores the
validation beats' mean pulse pressure (gain = true / predicted mean SBP − DBP). Only the gain
is fitted there: the level stays anchored on every training record, since a validation side of
a few records says little about it (docs/sbp.md). Stored in the model file as gain and offset,
it is applied wherever the model predicts (scoring.Predictor).
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ecg2abp.data.shards import Shard
from ecg2abp.evaluation.metrics import beat_values, find_beats

if TYPE_CHECKING:  # scoring applies the calibration, so it cannot be imported from here
    from ecg2abp.evaluation.scoring import TestPiece

log = logging.getLogger("ecg2abp.training")

METHODS = ("pulse", "none")
MIN_PULSE_MMHG = 1.0  # a predicted mean pulse pressure below this cannot be stretched
MAX_GAIN = 4.0  # and no gain beyond this (or below its inverse) is believed


@dataclass(frozen=True)
class Calibration:
    """ABP (mmHg) → gain · ABP + offset; the identity when a model file holds none."""

    gain: float = 1.0
    offset: float = 0.0
    beats: int = 0  # validation beats it was fitted on (0: not fitted)

    def apply(self, abp: np.ndarray) -> np.ndarray:
        return abp * self.gain + self.offset

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, meta: dict) -> "Calibration":
        """The model file's calibration; files written before it existed hold none."""
        return cls(**meta["calibration"]) if meta.get("calibration") else cls()


def fit_pulse(
    true: dict[str, np.ndarray], predicted: dict[str, np.ndarray], center: float
) -> Calibration:
    """The gain about `center` giving the predicted beats the true beats' mean pulse pressure.

    `true` and `predicted` hold per-beat "sbp" and "dbp" over the same beats. Without beats, or
    with a predicted pulse pressure too small to stretch, the identity (logged)."""
    n = len(true["sbp"])
    if n == 0:
        log.warning("pulse calibration: no validation beat; predictions left as they are")
        return Calibration()
    true_pulse = float(np.mean(true["sbp"]) - np.mean(true["dbp"]))
    predicted_pulse = float(np.mean(predicted["sbp"]) - np.mean(predicted["dbp"]))
    if predicted_pulse < MIN_PULSE_MMHG:
        log.warning(
            "pulse calibration: predicted pulse pressure %.2f mmHg over %d validation beats; "
            "predictions left as they are",
            predicted_pulse,
            n,
        )
        return Calibration()
    gain = float(np.clip(true_pulse / predicted_pulse, 1.0 / MAX_GAIN, MAX_GAIN))
    return Calibration(gain=gain, offset=center * (1.0 - gain), beats=n)


def side_beats(
    shards: Sequence[Shard],
    stretches: Sequence["TestPiece"],
    window: int,
    fs: float,
    predict: Callable[[str, np.ndarray], np.ndarray],
    max_windows: int | None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """True and predicted per-beat values over a split side's stretches, every sample predicted.

    `predict(record_id, raw ECG windows)` gives mmHg. At most `max_windows` windows in all, an
    equal share from the start of each stretch, so every record of the side contributes."""
    pieces = [p for p in stretches if p.stop - p.start >= window]
    share = None if max_windows is None else max(window, -(-max_windows // max(len(pieces), 1)))
    true_parts, predicted_parts = [], []
    for piece in pieces:
        stop = piece.stop if share is None else min(piece.stop, piece.start + share + window - 1)
        ecg = np.asarray(shards[piece.shard].ecg[piece.start : stop])
        abp = np.asarray(shards[piece.shard].abp[piece.start + window - 1 : stop], np.float64)
        beats = find_beats(abp, fs)
        if len(beats) == 0:
            continue
        predicted = predict(piece.record_id, sliding_window_view(ecg, window))
        true_parts.append(beat_values(abp, beats))
        predicted_parts.append(beat_values(predicted, beats))
    return _stack(true_parts), _stack(predicted_parts)


def _stack(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([p[key] for p in parts] or [np.empty(0)]) for key in ("sbp", "dbp")}
