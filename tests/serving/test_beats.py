"""Beats found on predicted ABP as it streams equal find_beats on each whole stretch."""

import numpy as np
import pytest

from ecg2abp.evaluation.metrics import beat_values, find_beats
from ecg2abp.serving.beats import BEAT_LEVELS, RecordBeats, StretchBeats

FS = 125.0


def waveform(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    t = np.arange(n) / FS
    rate = rng.uniform(0.8, 2.5)  # beats per second
    abp = 90 + 25 * np.maximum(np.sin(2 * np.pi * rate * t + np.sin(0.2 * t)), -0.4)
    abp += 8 * np.sin(2 * np.pi * 0.05 * t)
    if kind == "noisy":  # many local maxima, most of them too close or not prominent
        abp += rng.normal(0, 2, n)
    elif kind == "steps":  # plateaus: peaks at the middle of runs of equal samples
        abp = np.round(abp + rng.normal(0, 1, n))
    elif kind == "drift":  # each beat's peak higher than all later ones
        abp += np.linspace(40, 0, n)
    elif kind == "dicrotic":
        abp += 6 * np.maximum(np.sin(2 * np.pi * 2 * rate * t + 1), 0)
    elif kind == "walk":
        abp = 90 + np.cumsum(rng.normal(0, 1, n))
    return abp


def streamed(abp: np.ndarray, sizes: list[int]):
    finder, first = StretchBeats(FS), 0
    for size in sizes:
        finder.push(abp[first : first + size])
        first += size
    finder.push(abp[first:])
    return finder.finish()


@pytest.mark.parametrize("kind", ["clean", "noisy", "steps", "drift", "dicrotic", "walk"])
def test_streamed_beats_equal_find_beats_on_the_whole_stretch(kind):
    rng = np.random.default_rng(len(kind))
    for n in (2, 3, 200, 251, 4000, 12000):
        abp = waveform(rng, n, kind)
        expected = find_beats(abp, FS)
        values = beat_values(abp, expected)
        for sizes in ([n], rng.integers(1, 900, 40).tolist(), [1, 2, 3, 1, 5] * 60):
            beats, found = streamed(abp, sizes)
            np.testing.assert_array_equal(beats, expected)
            for level in BEAT_LEVELS:
                np.testing.assert_allclose(found[level], values[level], rtol=1e-12)
    assert len(expected) > 10 or kind == "walk"


def test_record_beats_split_at_unpredicted_samples_like_the_whole_prediction():
    rng = np.random.default_rng(0)
    abp = waveform(rng, 9000, "dicrotic")
    abp[[3000, 3001, 6500]] = np.nan
    abp[7000:7300] = np.inf
    sample = 87 + np.arange(len(abp))
    finder, found, first = RecordBeats(FS), [], 0
    for size in [*rng.integers(1, 700, 30).tolist(), len(abp)]:
        found.append(finder.push(sample[first : first + size], abp[first : first + size]))
        first += size
    found.append(finder.finish())
    starts = np.concatenate([f[0] for f in found])
    expected = []
    for start, stop in ((0, 3000), (3002, 6500), (6501, 7000), (7300, 9000)):
        expected.append(sample[start] + find_beats(abp[start:stop], FS)[:, 0])
    np.testing.assert_array_equal(starts, np.concatenate(expected))
