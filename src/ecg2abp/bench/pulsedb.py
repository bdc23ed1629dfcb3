"""The PulseDB reader check: a subset file's own SBP/DBP per segment against the beats the
pipeline finds, and what the pipeline's causal ECG band-pass does to an already filtered ECG_F.

Each segment is cleaned as ingest cleans it (`clean_record`); in each kept stretch the beats
are found and measured as scoring measures them (`find_beats`, `beat_values`); the segment's
SBP (DBP) is the mean of its beats' maxima (minima), compared with the file's `SBP` (`DBP`).
The band-pass's start-up error is the filter started 3 s into a segment minus the same filter
run from the segment's start, over those 3 s.
"""

from pathlib import Path

import numpy as np

from ecg2abp.data.cleaning import (
    CleaningSettings,
    clean_record,
    filter_ecg_segment,
    settings_from_config,
)
from ecg2abp.data.readers import iter_records, pulsedb_values
from ecg2abp.errors import InputError
from ecg2abp.evaluation.metrics import beat_values, find_beats

PERCENTILE = 95.0
STARTUP_SECONDS = 3.0  # the start-up error is followed this long
SETTLE_BLOCK_S = 0.1
SETTLED = 0.01  # of the ECG's RMS


def segment_beat_means(abp: np.ndarray, kept: list[tuple[int, int]], fs: float) -> dict | None:
    """Mean SBP and DBP of the beats found in the kept stretches of one segment (None: none)."""
    values: dict[str, list[np.ndarray]] = {"sbp": [], "dbp": []}
    for start, stop in kept:
        found = beat_values(abp[start:stop], find_beats(abp[start:stop], fs))
        for level in values:
            values[level].append(found[level])
    joined = {level: np.concatenate([np.zeros(0), *parts]) for level, parts in values.items()}
    if len(joined["sbp"]) == 0:
        return None
    return {level: float(np.mean(found)) for level, found in joined.items()}


def _summary(differences: np.ndarray) -> dict:
    magnitude = np.abs(differences)
    return {
        "median_abs": round(float(np.median(magnitude)), 3),
        f"p{PERCENTILE:g}_abs": round(float(np.percentile(magnitude, PERCENTILE)), 3),
        "max_abs": round(float(magnitude.max()), 3),
        "mean": round(float(differences.mean()), 3),
    }


def startup_transient(ecg: np.ndarray, fs: float, settings: CleaningSettings) -> np.ndarray:
    """The causal band-pass's start-up error over the first STARTUP_SECONDS of a stretch: the
    filter started STARTUP_SECONDS into `ecg` minus the same filter run from `ecg`'s start
    (which has that much history there)."""
    lead = int(STARTUP_SECONDS * fs)
    late = filter_ecg_segment(ecg[lead:], fs, settings)[:lead]
    return late.astype(np.float64) - filter_ecg_segment(ecg, fs, settings)[lead : 2 * lead]


def settling_seconds(transient: np.ndarray, scale: float, fs: float) -> float:
    """Seconds until the transient's RMS over SETTLE_BLOCK_S blocks stays under SETTLED of
    `scale` (the ECG's RMS)."""
    block = max(1, int(SETTLE_BLOCK_S * fs))
    n_blocks = len(transient) // block
    rms = np.sqrt(np.mean(transient[: n_blocks * block].reshape(n_blocks, block) ** 2, axis=1))
    above = np.flatnonzero(rms >= SETTLED * scale)
    return float((above[-1] + 1) * block / fs) if len(above) else 0.0


def _bandpass_effect(ecg: np.ndarray, fs: float, settings: CleaningSettings) -> dict[str, float]:
    """What the causal band-pass does to an already filtered ECG: its start-up error over the
    first second and when it settles, and its steady change after that, relative to the RMS."""
    scale = float(np.sqrt(np.mean(ecg**2)))
    transient = startup_transient(ecg, fs, settings)
    steady = filter_ecg_segment(ecg, fs, settings)[int(fs) :] - ecg[int(fs) :]
    return {
        "startup_first_second": float(np.sqrt(np.mean(transient[: int(fs)] ** 2)) / scale),
        "settled_s": settling_seconds(transient, scale, fs),
        "steady_change": float(np.sqrt(np.mean(steady**2)) / scale),
    }


def pulsedb_check(path: Path, config: dict) -> dict:
    """Per-segment Δ = pipeline − file of SBP and DBP (median, 95th percentile and max of |Δ|,
    mean Δ), and the configured band-pass's effect on ECG_F (medians over the segments of
    `_bandpass_effect`; None when the band-pass is off)."""
    path = Path(path)
    settings = settings_from_config(config)
    fs = float(config["fs"])
    stored = {level: pulsedb_values(path, level.upper()) for level in ("sbp", "dbp")}
    found: dict[str, list[float]] = {"sbp": [], "dbp": []}
    compared: list[int] = []
    effects: list[dict[str, float]] = []
    segments = removed = no_beats = 0
    for row, record in enumerate(iter_records(path, target_fs=fs)):
        segments += 1
        cleaned = clean_record(record.ecg, record.abp, fs, settings)
        removed += sum(cleaned.removed.values())
        means = segment_beat_means(record.abp, cleaned.segments, fs)
        if means is None:
            no_beats += 1
        else:
            compared.append(row)
            for level in found:
                found[level].append(means[level])
        if settings.bandpass_hz is not None and np.isfinite(record.ecg).all():
            effects.append(_bandpass_effect(record.ecg, fs, settings))
    if not compared:
        raise InputError(f"{path}: no segment holds a beat to compare ({segments} segments)")
    return {
        "file": str(path),
        "segments": segments,
        "compared": len(compared),
        "no_beats": no_beats,
        "removed_samples": removed,
        **{
            level: _summary(np.array(found[level]) - stored[level][compared])
            for level in ("sbp", "dbp")
        },
        "bandpass": {
            "band_hz": settings.bandpass_hz,
            **{
                name: round(float(np.median([e[name] for e in effects])), 4) if effects else None
                for name in ("startup_first_second", "settled_s", "steady_change")
            },
        },
    }
