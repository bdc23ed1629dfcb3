"""The causal prediction pipeline of one recording, fed in chunks of any size.

ECG samples go in; per sample out come the predicted ABP (or NaN) and a flag. A sample's flag
is final once the ECG rules of data/cleaning.py can no longer change it (`lookahead` samples
later: the rules widen artefacts by a margin). Usable samples form stretches; each stretch is
band-passed causally from its start (as each kept segment of a shard was) and every sample whose
window lies wholly in its stretch is predicted. Feeding a record whole or in pieces gives the
same result: flags are computed with enough context either side, and the filter state and the
last window's samples carry over.
"""

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ecg2abp.data import cleaning
from ecg2abp.serving.ensemble import ServingModel

FLAGS: tuple[str, ...] = ("ok", *cleaning.REASONS, "filling_window")
PREDICTED = 0  # flag code of a predicted sample
FILLING = len(FLAGS) - 1  # usable, but the window since the stretch began is not yet full


@dataclass(frozen=True)
class Rows:
    """Consecutive output samples (indices at the model's rate) with prediction and flag code."""

    sample: np.ndarray  # int64
    abp: np.ndarray  # float64, NaN where not predicted
    spread: np.ndarray | None  # SD across fold models, NaN where not predicted
    flag: np.ndarray  # uint8 index into FLAGS

    def __len__(self) -> int:
        return len(self.sample)

    @staticmethod
    def concat(parts: list["Rows"]) -> "Rows":
        spread = None if not parts or parts[0].spread is None else [p.spread for p in parts]
        return Rows(
            np.concatenate([p.sample for p in parts] or [np.zeros(0, np.int64)]),
            np.concatenate([p.abp for p in parts] or [np.zeros(0)]),
            None if spread is None else np.concatenate(spread),
            np.concatenate([p.flag for p in parts] or [np.zeros(0, np.uint8)]),
        )


class EcgFlags:
    """cleaning.label_ecg over a stream, each sample's label final `lookahead` samples later."""

    def __init__(
        self, fs: float, settings: cleaning.CleaningSettings, extremes: tuple[float, float] | None
    ) -> None:
        self.fs, self.settings = fs, settings
        margin = round(settings.margin_seconds * fs) if settings.enabled else 0
        flat = max(1, round(settings.flat_seconds * fs))
        self.lookahead = margin + max(flat, settings.clip_min_samples) if settings.enabled else 0
        self._fixed = extremes
        self._top, self._bottom = -np.inf, np.inf
        self._raw = np.zeros(0)  # samples from _first on
        self._first = 0
        self._done = 0  # labels final for samples before this

    def push(self, chunk: np.ndarray, final: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Raw values and labels of the samples whose labels became final."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if len(chunk) and self._fixed is None:
            top, bottom = cleaning.ecg_extremes(chunk)
            self._top, self._bottom = max(self._top, top), min(self._bottom, bottom)
        self._raw = np.concatenate([self._raw, chunk])
        received = self._first + len(self._raw)
        upto = received if final else max(self._done, received - self.lookahead)
        if upto == self._done:
            return np.zeros(0), np.zeros(0, np.int8)
        context = max(self._first, self._done - self.lookahead)
        extremes = self._fixed or (self._top, self._bottom)
        labels = cleaning.label_ecg(
            self._raw[context - self._first :], self.fs, self.settings, extremes
        )
        offset = self._done - context
        raw = self._raw[self._done - self._first : upto - self._first]
        labels = labels[offset : offset + upto - self._done]
        self._done = upto
        keep_from = max(self._first, upto - self.lookahead)
        self._raw = self._raw[keep_from - self._first :].copy()
        self._first = keep_from
        return raw, labels


class CausalPipeline:
    """One recording through flags, band-pass and model; push chunks, then finish()."""

    def __init__(
        self,
        model: ServingModel,
        record_id: str,
        *,
        extremes: tuple[float, float] | None = None,
        batch_size: int = 1024,
    ) -> None:
        self.model, self.record_id, self.batch_size = model, record_id, batch_size
        self.settings = model.cleaning
        self.window = model.window
        self.flags = EcgFlags(model.fs, self.settings, extremes)
        self._next = 0  # index of the next sample to emit
        self._filter: cleaning.CausalBandpass | None = None
        self._history = np.zeros(0, np.float32)  # filtered tail of the current stretch

    @property
    def lookahead(self) -> int:
        return self.flags.lookahead

    def push(self, ecg: np.ndarray) -> Rows:
        """Feed the next ECG samples; rows of every sample that became final."""
        return self._emit(*self.flags.push(ecg))

    def finish(self) -> Rows:
        """End of the recording: rows of the samples still held back."""
        return self._emit(*self.flags.push(np.zeros(0), final=True))

    def _emit(self, raw: np.ndarray, labels: np.ndarray) -> Rows:
        first = self._next
        self._next += len(raw)
        n = len(raw)
        abp = np.full(n, np.nan)
        spread = np.full(n, np.nan) if self.model.has_spread else None
        flag = np.where(labels == cleaning.KEPT, PREDICTED, labels.astype(np.int16) + 1)
        flag = flag.astype(np.uint8)
        edges = np.flatnonzero(np.diff(labels == cleaning.KEPT)) + 1
        for start, stop in zip(np.r_[0, edges], np.r_[edges, n], strict=True):
            if stop > start and labels[start] == cleaning.KEPT:
                self._predict_run(raw[start:stop], start, abp, spread, flag)
            elif stop > start:
                self._filter, self._history = None, np.zeros(0, np.float32)
        # A record's rows start at its first full window.
        skip = max(0, self.window - 1 - first)
        index = np.arange(first, first + n, dtype=np.int64)
        return Rows(
            index[skip:], abp[skip:], None if spread is None else spread[skip:], flag[skip:]
        )

    def _predict_run(
        self,
        raw: np.ndarray,
        at: int,
        abp: np.ndarray,
        spread: np.ndarray | None,
        flag: np.ndarray,
    ) -> None:
        """Filter a usable run (continuing the current stretch) and predict its full windows."""
        if self._filter is None:
            band = self.settings.bandpass_hz
            self._filter = (
                cleaning.CausalBandpass(self.model.fs, band, self.settings.bandpass_order)
                if band
                else _identity
            )
        filtered = np.concatenate([self._history, self._filter(raw)])
        held = len(self._history)
        self._history = filtered[-(self.window - 1) :] if self.window > 1 else filtered[:0]
        filling = max(0, self.window - 1 - held)
        flag[at : at + min(filling, len(raw))] = FILLING
        if len(filtered) < self.window:
            return
        windows = sliding_window_view(filtered, self.window)
        mean, sd = self.model.predict(self.record_id, windows, self.batch_size)
        ends = at + np.arange(len(windows)) + self.window - 1 - held
        abp[ends] = mean
        if spread is not None and sd is not None:
            spread[ends] = sd


def _identity(chunk: np.ndarray) -> np.ndarray:
    return np.asarray(chunk, dtype=np.float32)
