"""Beats of a predicted ABP waveform as it streams: `find_beats` without holding the waveform.

`evaluation.metrics.find_beats` needs a whole stretch at once: its prominence threshold comes
from the median pulse amplitude of the stretch, and a peak's prominence can reach back to the
stretch's start. Here a stretch is fed in pieces and only numbers per candidate peak are held
(O(beats), not O(samples)):

- the peak-to-peak range of each 2 s block (for the threshold, known at the stretch's end);
- the local maxima that survive scipy's `distance` rule, which is decided as soon as every
  higher neighbour within the distance is known;
- each candidate's prominence, from a summary of the past that answers every scan scipy's
  `peak_prominences` makes: the samples no later sample exceeds (a non-increasing staircase,
  with the minimum of the samples between its steps);
- between consecutive candidates, the last minimum (a foot, should both become beats' peaks)
  and the maximum, minimum and sum either side of it, which merge when a candidate drops out.

At the stretch's end the threshold is known; the surviving candidates at or above it are the
peaks, and the beats and their SBP, DBP and MAP follow from the merged spans. The result is
find_beats' except for peaks of exactly equal height within the distance, which scipy orders by
an unstable sort; here the later one wins. MAP sums in another order (rounding differs ~1e-15).
"""

import bisect
import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks, peak_prominences

from ecg2abp.evaluation.metrics import (
    MAX_HEART_RATE_BPM,
    MIN_HEART_RATE_BPM,
    MIN_PROMINENCE_MMHG,
    PROMINENCE_FRACTION,
    PULSE_BLOCK_S,
    last_minima,
)

BEAT_LEVELS = ("sbp", "dbp", "map")
Stats = tuple[float, float, float]  # max, min, sum
EMPTY: Stats = (-math.inf, math.inf, 0.0)


def _stats(values: np.ndarray) -> Stats:
    if len(values) == 0:
        return EMPTY
    return float(values.max()), float(values.min()), float(values.sum())


def _piece_stats(padded: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> list[Stats]:
    """Stats of padded[start:stop] for each pair (EMPTY where start == stop)."""
    pairs = np.column_stack([starts, stops]).ravel()
    empty = starts == stops
    top = np.where(empty, -math.inf, np.maximum.reduceat(padded, pairs)[::2])
    bottom = np.where(empty, math.inf, np.minimum.reduceat(padded, pairs)[::2])
    total = np.where(empty, 0.0, np.add.reduceat(padded, pairs)[::2])
    return list(zip(top.tolist(), bottom.tolist(), total.tolist(), strict=True))


def _join(a: Stats, b: Stats) -> Stats:
    return max(a[0], b[0]), min(a[1], b[1]), a[2] + b[2]


@dataclass(frozen=True, slots=True)
class Span:
    """Consecutive samples: their minimum, its last position, and stats before / from it."""

    low: float
    foot: int
    before: Stats
    after: Stats

    def then(self, later: "Span") -> "Span":
        """This span followed by `later` (ties for the minimum go to the later one)."""
        if later.low <= self.low:
            return Span(later.low, later.foot, _join(self.whole, later.before), later.after)
        return Span(self.low, self.foot, self.before, _join(self.after, later.whole))

    @property
    def whole(self) -> Stats:
        return _join(self.before, self.after)


class Candidate:
    """A local maximum: position, height, prominence once known, and the span to the next."""

    __slots__ = ("height", "pos", "prominence", "span", "survives")

    def __init__(self, pos: int, height: float) -> None:
        self.pos, self.height = pos, height
        self.prominence = math.nan
        self.survives = False  # decided by the distance rule
        self.span: Span  # from pos up to the next kept candidate (open while it is the last)

    @property
    def priority(self) -> tuple[float, int]:
        return self.height, self.pos


class StretchBeats:
    """find_beats over one contiguous stretch of predicted ABP fed in pieces; then `finish()`."""

    def __init__(self, fs: float) -> None:
        self.fs = fs
        self.distance = max(1, int(fs * 60.0 / MAX_HEART_RATE_BPM))
        self.block = max(1, int(PULSE_BLOCK_S * fs))
        self.n = 0
        self._ranges: list[float] = []
        self._block_stats = EMPTY  # the current incomplete 2 s block
        self._block_fill = 0
        self._z = np.zeros(0)  # staircase summary of the samples so far
        self._z_cand: list[Candidate | None] = []  # the candidate at each summary entry
        self._run = 0  # summary index where the trailing run of equal samples starts
        self._positions: list[int] = []  # kept candidates (undecided or surviving), in order
        self._kept: list[Candidate] = []
        self._undecided: list[Candidate] = []

    def push(self, abp: np.ndarray) -> None:
        """The next samples of the stretch (all finite)."""
        abp = np.asarray(abp, dtype=np.float64)
        if len(abp):
            self._blocks(abp)
            self._advance(abp, final=False)

    def finish(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Beats as [n, 2] [start, stop) positions in the stretch, and their SBP, DBP, MAP."""
        none = np.zeros((0, 2), np.int64), {k: np.zeros(0) for k in BEAT_LEVELS}
        if self.n < 3:
            return none
        self._advance(np.zeros(0), final=True)
        top, bottom, _ = self._block_stats
        amplitude = np.median(self._ranges) if self._ranges else top - bottom
        threshold = max(MIN_PROMINENCE_MMHG, PROMINENCE_FRACTION * float(amplitude))
        for candidate in [c for c in self._kept if not c.prominence >= threshold]:
            self._drop(candidate)
        peaks = self._kept
        if len(peaks) < 3:
            return none
        spans = [c.span for c in peaks[:-1]]
        feet = np.array([s.foot for s in spans], np.int64)
        beats = np.column_stack([feet[:-1], feet[1:]])
        values = np.array([_join(a.after, b.before) for a, b in itertools.pairwise(spans)])
        top, bottom, total = values.reshape(-1, 3).T
        durations = beats[:, 1] - beats[:, 0]
        shortest = self.fs * 60.0 / MAX_HEART_RATE_BPM
        longest = self.fs * 60.0 / MIN_HEART_RATE_BPM
        ok = (durations >= shortest) & (durations <= longest)
        return beats[ok], {"sbp": top[ok], "dbp": bottom[ok], "map": (total / durations)[ok]}

    # --- pieces of the stretch -------------------------------------------------------------------

    def _blocks(self, abp: np.ndarray) -> None:
        """Peak-to-peak ranges of the 2 s blocks completed (aligned to the stretch's start)."""
        first = min(len(abp), self.block - self._block_fill)
        self._block_stats = _join(self._block_stats, _stats(abp[:first]))
        self._block_fill += first
        rest = abp[first:]
        if self._block_fill == self.block:
            self._ranges.append(self._block_stats[0] - self._block_stats[1])
            whole = len(rest) // self.block * self.block
            self._ranges.extend(np.ptp(rest[:whole].reshape(-1, self.block), axis=1).tolist())
            self._block_stats, self._block_fill = _stats(rest[whole:]), len(rest) - whole

    def _advance(self, abp: np.ndarray, final: bool) -> None:
        """Find the new candidates, their prominences, spans and fates; update the summary."""
        y = np.concatenate([self._z, abp])
        z_len, run = len(self._z), self._run
        owners = [*self._z_cand, *([None] * len(abp))]
        start = self.n - (z_len - run)  # position of y[run]; y[run:] are consecutive samples
        found = []
        if not final:
            mids, edges = find_peaks(y, plateau_size=1)
            for mid in mids[edges["left_edges"] >= run]:
                candidate = Candidate(start + int(mid) - run, float(y[mid]))
                owners[mid] = candidate
                found.append(candidate)
        self.n += len(abp)
        self._summarise(y, owners)
        # the samples from the old trailing run up to the new one, whose candidates are all known
        stop = self.n if final else self.n - (len(self._z) - self._run)
        self._spans(y[run : run + stop - start], start, found)
        self._prominences(y, owners, final)
        self._decide(math.inf if final else stop)

    def _summarise(self, y: np.ndarray, owners: list) -> None:
        """The staircase of y: entries no later sample exceeds, with the minima between them."""
        later = np.maximum.accumulate(y[::-1])[::-1]
        steps = np.flatnonzero(y >= np.append(later[1:], -np.inf))
        gap_starts = np.r_[0, steps[:-1] + 1]
        gaps = steps > gap_starts
        bounds = np.column_stack([gap_starts[gaps], steps[gaps]]).ravel()
        lows = np.minimum.reduceat(y, bounds)[::2] if len(bounds) else np.zeros(0)
        size = len(steps) + int(gaps.sum())
        at = np.arange(len(steps)) + np.cumsum(gaps)
        z = np.empty(size)
        z[at] = y[steps]
        z[at[gaps] - 1] = lows
        cand: list[Candidate | None] = [None] * size
        for i, step in zip(at.tolist(), steps.tolist(), strict=True):
            cand[i] = owners[step]
        self._z, self._z_cand = z, cand
        differs = np.flatnonzero(z != z[-1]) if size else np.zeros(0, np.int64)
        self._run = int(differs[-1]) + 1 if len(differs) else 0

    def _spans(self, values: np.ndarray, start: int, found: list[Candidate]) -> None:
        """Extend the open span and open one per new candidate over samples from `start`."""
        cuts = [c.pos - start for c in found]
        bounds = np.unique(np.array([0, *cuts, len(values)], np.int64))
        if len(bounds) < 2:
            return
        feet = last_minima(values, bounds)
        padded = np.append(values, 0.0)  # keeps the last stop a valid index for reduceat
        before = _piece_stats(padded, bounds[:-1], feet)
        after = _piece_stats(padded, feet, bounds[1:])
        pieces = {
            int(a): Span(float(values[f]), start + int(f), b, c)
            for a, f, b, c in zip(bounds[:-1], feet, before, after, strict=True)
        }
        if 0 in pieces and self._kept and 0 not in cuts:
            self._kept[-1].span = self._kept[-1].span.then(pieces[0])
        for candidate, cut in zip(found, cuts, strict=True):
            candidate.span = pieces[cut]
            self._positions.append(candidate.pos)
            self._kept.append(candidate)
            self._undecided.append(candidate)

    def _prominences(self, y: np.ndarray, owners: list, final: bool) -> None:
        """Prominences of the candidates whose scans to the right have ended (at the end: all)."""
        if final:  # the scans still waiting end at the stretch's end
            y, owners = self._z, self._z_cand
        waiting = set() if final else {id(c) for c in self._z_cand if c is not None}
        index = [
            i
            for i, c in enumerate(owners)
            if c is not None and math.isnan(c.prominence) and id(c) not in waiting
        ]
        if index:
            values = peak_prominences(y, np.array(index))[0]
            for i, value in zip(index, values.tolist(), strict=True):
                owners[i].prominence = value

    def _decide(self, frontier: float) -> None:
        """scipy's distance rule: a candidate survives unless a surviving higher one is near."""
        still = []
        for candidate in sorted(self._undecided, key=lambda c: c.priority, reverse=True):
            here = bisect.bisect_left(self._positions, candidate.pos)
            lo = bisect.bisect_left(self._positions, candidate.pos - self.distance + 1)
            hi = bisect.bisect_left(self._positions, candidate.pos + self.distance)
            higher = [
                c
                for c in self._kept[lo:hi]
                if c is not candidate and c.priority > candidate.priority
            ]
            if any(c.survives for c in higher):
                self._drop(candidate, here)
            elif not higher and candidate.pos + self.distance <= frontier:
                candidate.survives = True
            else:
                still.append(candidate)
        self._undecided = still

    def _drop(self, candidate: Candidate, here: int | None = None) -> None:
        """Remove a kept candidate; its span joins the previous kept candidate's."""
        if here is None:
            here = bisect.bisect_left(self._positions, candidate.pos)
        if here > 0:
            before = self._kept[here - 1]
            before.span = before.span.then(candidate.span)
        del self._positions[here], self._kept[here]


Found = tuple[np.ndarray, dict[str, np.ndarray]]  # beat start samples; SBP, DBP, MAP


class RecordBeats:
    """Beats of one record's predicted ABP, found on each predicted (finite) stretch as its
    rows arrive in order: what find_beats gives on each stretch of the whole prediction."""

    def __init__(self, fs: float) -> None:
        self.fs = fs
        self._stretch: StretchBeats | None = None
        self._first = 0  # sample number where the current stretch began

    def push(self, sample: np.ndarray, abp: np.ndarray) -> Found:
        """Rows (consecutive sample numbers, predicted ABP or NaN); beats of stretches ended."""
        finite = np.isfinite(abp)
        edges = np.flatnonzero(np.diff(finite)) + 1
        found = []
        for start, stop in zip(np.r_[0, edges], np.r_[edges, len(abp)], strict=True):
            if stop == start:
                continue
            if finite[start]:
                if self._stretch is None:
                    self._stretch, self._first = StretchBeats(self.fs), int(sample[start])
                self._stretch.push(abp[start:stop])
            elif self._stretch is not None:
                found.append(self._close())
        return _joined(found)

    def finish(self) -> Found:
        """The end of the record: beats of the stretch still open."""
        return _joined([self._close()] if self._stretch is not None else [])

    def _close(self) -> Found:
        beats, values = self._stretch.finish()
        self._stretch = None
        return self._first + beats[:, 0], values


def _joined(found: list[Found]) -> Found:
    starts = np.concatenate([f[0] for f in found] or [np.zeros(0, np.int64)])
    values = {k: np.concatenate([f[1][k] for f in found] or [np.zeros(0)]) for k in BEAT_LEVELS}
    return starts, values
