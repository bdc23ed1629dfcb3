"""Synthetic MIMIC-like part files (and PulseDB-layout subset files): plausible ECG, ABP and PPG
with a learnable ECG→BP link."""

import string
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import wfdb
from scipy.signal import butter, find_peaks, lfilter, sosfiltfilt

from ecg2abp.atomic import atomic_path
from ecg2abp.errors import InputError

FS = 125.0
LAYOUTS = ("kaggle", "uci")
FULL_SIZE_RECORDS = 1000
FULL_SIZE_SECONDS = (8.0, 600.0)
LENGTH_SKEW = 1.3  # length = min + (max - min) * u**1.3: a full-size part holds ≈ 32 M samples
ARTEFACTS = (
    "nan_gap",
    "flat_ecg",
    "flat_abp",
    "zero_abp",
    "clipped_abp",
    "saturated_ecg",
    "short",
    "no_ppg",
)
ARTEFACT_SHARE = 1 / 3  # of each part's records; the rest stay clean
SHORT_RECORD = 88  # "short" records have fewer samples than one model window
ABP_CEILING = 270.0
MARGIN_SECONDS = 3.0  # beats are generated this far beyond both ends of a record
MAP_REFERENCE = 93.0
HR_PER_MMHG = 0.5  # heart-rate response to the ECG-visible BP drift, bpm per mmHg
R_GAIN_PER_MMHG = 0.015  # R-amplitude response to the same drift, fraction per mmHg
MAT73_USER_BLOCK = 512
# ECG waves P, Q, R, S, T: centre relative to the R peak (s; T's follows QT) and width (s)
ECG_WAVE_CENTRES = (-0.16, -0.035, 0.0, 0.035, 0.0)
ECG_WAVE_WIDTHS = (0.022, 0.009, 0.011, 0.011, 0.04)


@dataclass(frozen=True)
class _Body:
    """Per-record constants: what the ECG shows, the BP level it partly explains, wave shapes."""

    heart_rate: float  # bpm
    rsa: float  # respiratory sinus arrhythmia, bpm
    breath_hz: float
    breath_phase: float
    r_amplitude: float  # mV
    polarity: float  # +1, or -1 for an inverted lead
    p_ratio: float
    q_ratio: float
    s_ratio: float
    t_ratio: float
    qt: float  # QT at RR = 1 s (Bazett)
    ecg_noise: float  # mV
    ecg_wander: float  # mV
    map_level: float  # mmHg
    pulse_pressure: float  # mmHg
    ptt: float  # s, R peak to ABP foot
    abp_peak: float  # s, foot to systolic peak
    abp_notch_level: float
    abp_bump: float
    abp_decay: float  # s
    ppg_lag: float  # s, ABP foot to PPG foot
    ppg_level: float
    ppg_amplitude: float
    ppg_peak: float
    ppg_notch_level: float


def _draw_body(rng: np.random.Generator) -> _Body:
    """Draw one record's constants; the BP level depends on HR, QRS/T amplitude and QT."""
    heart_rate = rng.uniform(55.0, 110.0)
    r_amplitude = rng.uniform(0.5, 2.0)
    t_ratio = rng.uniform(0.15, 0.45)
    qt = rng.uniform(0.36, 0.44)
    hidden_offset = rng.normal(0.0, 6.0)
    map_level = (
        MAP_REFERENCE
        + 0.35 * (heart_rate - 80.0)
        + 9.0 * (r_amplitude - 1.25)
        + 25.0 * (t_ratio - 0.3)
        - 120.0 * (qt - 0.40)
        + hidden_offset
    )
    pulse_pressure = 48.0 - 0.15 * (heart_rate - 80.0) + 40.0 * (t_ratio - 0.3)
    return _Body(
        heart_rate=heart_rate,
        rsa=rng.uniform(1.0, 5.0),
        breath_hz=rng.uniform(0.15, 0.4),
        breath_phase=rng.uniform(0.0, 2 * np.pi),
        r_amplitude=r_amplitude,
        polarity=-1.0 if rng.random() < 0.15 else 1.0,
        p_ratio=rng.uniform(0.08, 0.2),
        q_ratio=rng.uniform(0.05, 0.2),
        s_ratio=rng.uniform(0.1, 0.4),
        t_ratio=t_ratio,
        qt=qt,
        ecg_noise=rng.uniform(0.005, 0.03),
        ecg_wander=rng.uniform(0.02, 0.2),
        map_level=float(np.clip(map_level, 68.0, 122.0)),
        pulse_pressure=float(np.clip(pulse_pressure + rng.normal(0.0, 6.0), 30.0, 72.0)),
        ptt=rng.uniform(0.17, 0.23),
        abp_peak=rng.uniform(0.08, 0.12),
        abp_notch_level=rng.uniform(0.55, 0.75),
        abp_bump=rng.uniform(0.05, 0.15),
        abp_decay=rng.uniform(0.3, 0.6),
        ppg_lag=rng.uniform(0.08, 0.15),
        ppg_level=rng.uniform(1.0, 2.0),
        ppg_amplitude=rng.uniform(0.4, 1.2),
        ppg_peak=rng.uniform(0.14, 0.2),
        ppg_notch_level=rng.uniform(0.5, 0.7),
    )


def _slow_wander(
    rng: np.random.Generator, grid: np.ndarray, sd: float, timescale: float
) -> np.ndarray:
    """A stationary smooth random process (AR(1) knots, linearly joined) sampled on `grid`."""
    step = timescale / 8.0
    knots = np.arange(grid[0], grid[-1] + 2 * step, step)
    keep = np.exp(-step / timescale)
    shocks = rng.normal(0.0, sd * np.sqrt(1.0 - keep**2), size=knots.size)
    shocks[0] = rng.normal(0.0, sd)
    return np.interp(grid, knots, lfilter([1.0], [1.0, -keep], shocks))


def _beat_times(rng: np.random.Generator, grid: np.ndarray, heart_rate: np.ndarray) -> np.ndarray:
    """R-peak times where the integrated heart rate crosses whole beats, with a little jitter."""
    phase = np.cumsum(heart_rate / 60.0) * (grid[1] - grid[0])
    beats = np.arange(np.ceil(phase[0]), np.floor(phase[-1]) + 1)
    return np.interp(beats, phase, grid) + rng.normal(0.0, 0.003, size=beats.size)


def _ecg_waves(
    t: np.ndarray, r_times: np.ndarray, amplitudes: np.ndarray, centres: np.ndarray
) -> np.ndarray:
    """Sum of Gaussian P/Q/R/S/T waves (per-beat amplitudes and centres) of neighbouring beats."""
    nearest = np.searchsorted(r_times, t, side="right") - 1
    total = np.zeros_like(t)
    for shift in (-1, 0, 1):
        beat = np.clip(nearest + shift, 0, r_times.size - 1)
        since = t - r_times[beat]
        for wave, width in enumerate(ECG_WAVE_WIDTHS):
            total += amplitudes[beat, wave] * np.exp(
                -0.5 * ((since - centres[beat, wave]) / width) ** 2
            )
    return total


@dataclass(frozen=True)
class _PulseShape:
    peak: np.ndarray  # s after the foot, per beat
    notch: np.ndarray  # s after the foot, per beat
    notch_level: float  # fraction of the pulse height at the notch
    bump: float  # dicrotic wave height, fraction of the pulse height
    bump_width: float  # s
    decay: float  # s, diastolic time constant


def _pulse_wave(
    t: np.ndarray, feet: np.ndarray, floors: np.ndarray, heights: np.ndarray, shape: _PulseShape
) -> np.ndarray:
    """Beats from each foot: upstroke, peak, fall to a dicrotic notch, decay to the next floor."""
    beat = np.clip(np.searchsorted(feet, t, side="right") - 1, 0, feet.size - 2)
    since = t - feet[beat]
    span = feet[beat + 1] - feet[beat]
    peak, notch = shape.peak[beat], shape.notch[beat]
    rise = np.sin(0.5 * np.pi * np.clip(since / peak, 0.0, 1.0)) ** 2
    fall = 1.0 - (1.0 - shape.notch_level) * np.clip((since - peak) / (notch - peak), 0, 1) ** 1.5
    left = np.exp(-np.clip(since - notch, 0.0, None) / shape.decay)
    end = np.exp(-(span - notch) / shape.decay)
    diastole = shape.notch_level * (left - end) / (1.0 - end)
    level = np.where(since < peak, rise, np.where(since < notch, fall, diastole))
    level += shape.bump * np.exp(
        -0.5 * ((since - notch - 1.6 * shape.bump_width) / shape.bump_width) ** 2
    )
    floor = floors[beat] + (floors[beat + 1] - floors[beat]) * since / span
    return floor + heights[beat] * level


@dataclass(frozen=True)
class _Beats:
    """Per-beat timing and pressures (arrays of one value per heartbeat)."""

    r_times: np.ndarray  # s
    rr: np.ndarray  # s, to the next beat
    qt: np.ndarray  # s
    visible: np.ndarray  # mmHg, the ECG-visible drift at each beat
    breath: np.ndarray  # respiratory phase, -1..1
    systolic: np.ndarray  # mmHg
    diastolic: np.ndarray  # mmHg
    abp_feet: np.ndarray  # s
    ppg_feet: np.ndarray  # s


def _draw_beats(rng: np.random.Generator, body: _Body, grid: np.ndarray) -> _Beats:
    """Heartbeats from a varying heart rate, with the pressures and pulse arrival of each."""
    visible = _slow_wander(rng, grid, 5.0, 60.0)  # mmHg, shows in HR and R amplitude
    hidden = _slow_wander(rng, grid, 4.0, 90.0)  # mmHg, invisible in the ECG
    breath = np.sin(2 * np.pi * body.breath_hz * grid + body.breath_phase)
    heart_rate = np.clip(
        body.heart_rate
        + HR_PER_MMHG * visible
        + body.rsa * breath
        + _slow_wander(rng, grid, 1.5, 4.0),
        45.0,
        140.0,
    )
    r_times = _beat_times(rng, grid, heart_rate)
    n_beats = r_times.size
    rr = np.diff(r_times, append=2 * r_times[-1] - r_times[-2])
    visible_at, hidden_at, breath_at = (
        np.interp(r_times, grid, series) for series in (visible, hidden, breath)
    )
    mean_pressure = body.map_level + visible_at + hidden_at + 1.5 * breath_at
    pulse = body.pulse_pressure + 0.3 * visible_at + rng.normal(0.0, 1.5, n_beats)
    diastolic = np.clip(mean_pressure - pulse / 3.0, 45.0, 105.0)
    ptt = np.clip(
        body.ptt - 0.0015 * (mean_pressure - MAP_REFERENCE) + rng.normal(0.0, 0.003, n_beats),
        0.12,
        0.28,
    )
    abp_feet = r_times + ptt
    return _Beats(
        r_times=r_times,
        rr=rr,
        qt=body.qt * np.sqrt(rr),
        visible=visible_at,
        breath=breath_at,
        systolic=np.clip(diastolic + pulse, 85.0, 190.0),
        diastolic=diastolic,
        abp_feet=abp_feet,
        ppg_feet=abp_feet + body.ppg_lag + rng.normal(0.0, 0.004, n_beats),
    )


def _ecg(rng: np.random.Generator, body: _Body, beats: _Beats, t: np.ndarray) -> np.ndarray:
    """P-QRS-T complexes at the R times, plus baseline wander and noise (mV)."""
    r_scale = body.polarity * body.r_amplitude * (1.0 + R_GAIN_PER_MMHG * beats.visible)
    ratios = np.array([body.p_ratio, -body.q_ratio, 1.0, -body.s_ratio, body.t_ratio])
    centres = np.tile(ECG_WAVE_CENTRES, (beats.r_times.size, 1))
    centres[:, 4] = beats.qt - 0.09
    return (
        _ecg_waves(t, beats.r_times, r_scale[:, None] * ratios, centres)
        + _slow_wander(rng, t, body.ecg_wander, 8.0)
        + rng.normal(0.0, body.ecg_noise, t.size)
    )


def _abp(rng: np.random.Generator, body: _Body, beats: _Beats, t: np.ndarray) -> np.ndarray:
    """Arterial pulses from each ABP foot, ejection lasting with QT (mmHg)."""
    span = np.diff(beats.abp_feet, append=beats.abp_feet[-1] + beats.rr[-1])
    notch = np.minimum(0.8 * beats.qt, 0.6 * span)
    shape = _PulseShape(
        peak=np.minimum(body.abp_peak, 0.45 * notch),
        notch=notch,
        notch_level=body.abp_notch_level,
        bump=body.abp_bump,
        bump_width=0.025,
        decay=body.abp_decay,
    )
    heights = beats.systolic - beats.diastolic
    abp = _pulse_wave(t, beats.abp_feet, beats.diastolic, heights, shape)
    return abp + rng.normal(0.0, 0.2, t.size)


def _ppg(body: _Body, beats: _Beats, t: np.ndarray) -> np.ndarray:
    """Smooth finger pulses arriving after the arterial ones (arbitrary units)."""
    span = np.diff(beats.ppg_feet, append=beats.ppg_feet[-1] + beats.rr[-1])
    peak = np.minimum(body.ppg_peak, 0.35 * span)
    shape = _PulseShape(
        peak=peak,
        notch=np.minimum(peak + 0.15, 0.7 * span),
        notch_level=body.ppg_notch_level,
        bump=0.04,
        bump_width=0.04,
        decay=0.5,
    )
    floors = body.ppg_level + 0.05 * beats.breath
    heights = body.ppg_amplitude * (1.0 + 0.01 * beats.visible)
    return _pulse_wave(t, beats.ppg_feet, floors, heights, shape)


def synth_record(
    rng: np.random.Generator, n_samples: int, fs: float = FS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One clean record: ECG (mV), ABP (mmHg) and PPG (a.u.), each float64 of `n_samples`."""
    return _record_of(rng, _draw_body(rng), n_samples, fs)


def _record_of(
    rng: np.random.Generator, body: _Body, n_samples: int, fs: float = FS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A clean record of the body `body`: its beats, ECG, ABP and PPG drawn from `rng`."""
    margin = int(MARGIN_SECONDS * fs)
    grid = (np.arange(n_samples + 2 * margin) - margin) / fs
    beats = _draw_beats(rng, body, grid)
    t = grid[margin : margin + n_samples]
    ecg = _ecg(rng, body, beats, t)
    abp = _abp(rng, body, beats, t)
    return ecg, abp, _ppg(body, beats, t)


def _stretch(rng: np.random.Generator, n_samples: int, fs: float) -> slice:
    """A random stretch of 1–4 s (at most the whole record)."""
    length = min(n_samples, int(rng.uniform(1.0, 4.0) * fs))
    start = int(rng.integers(0, n_samples - length + 1))
    return slice(start, start + length)


def _add_artefact(
    rng: np.random.Generator, kind: str, ecg: np.ndarray, abp: np.ndarray, ppg: np.ndarray
) -> None:
    """Spoil the record in place the way real recordings are spoilt ("short" is a length)."""
    stretch = _stretch(rng, ecg.size, FS)
    match kind:
        case "nan_gap":
            for signal in (ecg, abp, ppg):
                signal[stretch] = np.nan
        case "flat_ecg":
            ecg[stretch] = ecg[stretch.start]
        case "flat_abp":
            abp[stretch] = abp[stretch.start]
        case "zero_abp":
            abp[stretch] = 0.0
        case "clipped_abp":
            overshoot = rng.uniform(1.2, 1.6) * ABP_CEILING / np.max(abp[stretch])
            abp[stretch] = np.minimum(abp[stretch] * overshoot, ABP_CEILING)
        case "saturated_ecg":
            rail = rng.uniform(1.5, 3.0) * np.max(np.abs(ecg))
            swing = 2.0 * rail * np.sin(np.linspace(0.0, np.pi, stretch.stop - stretch.start))
            ecg[stretch] = np.clip(ecg[stretch] + rng.choice([-1.0, 1.0]) * swing, -rail, rail)
        case "no_ppg":
            ppg[:] = np.nan


def _record_stream(seed: int, part: int, stream: int) -> np.random.Generator:
    """Independent generators: stream 0 plans the part, stream i + 1 draws record i."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(part, stream)))


def _part_plan(
    rng: np.random.Generator,
    n_records: int,
    shortest: float,
    longest: float,
    artefacts: bool,
) -> list[tuple[int, str | None]]:
    """(samples, artefact kind or None) per record; a third of the records get one artefact."""
    spread = rng.random(n_records) ** LENGTH_SKEW
    lengths = np.round(FS * (shortest + (longest - shortest) * spread)).astype(int)
    kinds: list[str | None] = [None] * n_records
    if artefacts:
        spoilt = rng.choice(n_records, n_records // 3, replace=False)
        order = rng.permutation(len(ARTEFACTS))
        for turn, index in enumerate(spoilt):
            kinds[index] = ARTEFACTS[order[turn % len(ARTEFACTS)]]
            if kinds[index] == "short":
                lengths[index] = rng.integers(8, SHORT_RECORD)
    return [(int(n), kind) for n, kind in zip(lengths, kinds, strict=True)]


def _part_records(
    seed: int, part: int, n_records: int, shortest: float, longest: float, artefacts: bool
) -> Iterator[np.ndarray]:
    """The part's records as MATLAB-layout 3×N float64 matrices [PPG, ABP, ECG]."""
    plan = _part_plan(_record_stream(seed, part, 0), n_records, shortest, longest, artefacts)
    for index, (n_samples, kind) in enumerate(plan):
        rng = _record_stream(seed, part, index + 1)
        ecg, abp, ppg = synth_record(rng, n_samples)
        if kind is not None:
            _add_artefact(rng, kind, ecg, abp, ppg)
        yield np.stack([ppg, abp, ecg])


def _write_kaggle(path: Path, records: Iterable[np.ndarray]) -> None:
    """MATLAB v5 file with variable `p`: a 1×R cell of 3×N matrices."""
    matrices = list(records)
    cell = np.empty((1, len(matrices)), dtype=object)
    for index, matrix in enumerate(matrices):
        cell[0, index] = matrix
    with atomic_path(path) as tmp, tmp.open("wb") as file:
        scipy.io.savemat(file, {"p": cell})


def _matlab_ref_name(index: int) -> str:
    """MATLAB's `#refs#` member names: a, b, …, z, ba, bb, …"""
    letters = string.ascii_lowercase
    name = letters[index % 26]
    while index >= 26:
        index //= 26
        name = letters[index % 26] + name
    return name


def _mat73_header() -> bytes:
    """The 128-byte MATLAB 7.3 header that opens the HDF5 user block."""
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by: ecg2abp synth HDF5 schema 1.00 ."
    return text.ljust(116) + b" " * 8 + b"\x00\x02" + b"IM"


def _write_uci(path: Path, records: Iterable[np.ndarray]) -> None:
    """MATLAB v7.3 file: an R×1 cell named after the stem, each record stored (N, 3)."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=MAT73_USER_BLOCK) as file:
            store = file.create_group("#refs#")
            references = []
            for index, matrix in enumerate(records):
                stored = store.create_dataset(_matlab_ref_name(index), data=matrix.T)
                stored.attrs["MATLAB_class"] = np.bytes_("double")
                references.append(stored.ref)
            cell = file.create_dataset(
                path.stem, data=np.array(references, dtype=h5py.ref_dtype).reshape(-1, 1)
            )
            cell.attrs["MATLAB_class"] = np.bytes_("cell")
        with tmp.open("r+b") as raw:
            raw.write(_mat73_header())


def _check_arguments(
    parts: int, records_per_part: int, layout: str, min_seconds: float, max_seconds: float
) -> None:
    if parts < 1:
        raise InputError(f"parts: must be at least 1, got {parts}")
    if records_per_part < 1:
        raise InputError(f"records_per_part: must be at least 1, got {records_per_part}")
    if layout not in LAYOUTS:
        raise InputError(f"layout: must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if not 0 < min_seconds <= max_seconds:
        raise InputError(
            f"min_seconds/max_seconds: need 0 < min ≤ max, got {min_seconds}/{max_seconds}"
        )


def write_synthetic(
    out_dir: Path,
    *,
    parts: int = 3,
    records_per_part: int = 24,
    seed: int = 0,
    layout: str = "kaggle",
    full_size: bool = False,
    artefacts: bool = True,
    min_seconds: float = 8.0,
    max_seconds: float = 40.0,
) -> list[Path]:
    """Write `parts` synthetic part files in the Kaggle or UCI layout; return their paths.

    `full_size` overrides the record count and lengths with the real set's: 1,000 records of
    8 s to 10 min per part (about 32 M samples per channel).
    """
    _check_arguments(parts, records_per_part, layout, min_seconds, max_seconds)
    if full_size:
        records_per_part = FULL_SIZE_RECORDS
        min_seconds, max_seconds = FULL_SIZE_SECONDS
    out_dir = Path(out_dir)
    paths = []
    for part, stem in enumerate(part_stems(parts, layout), start=1):
        records = _part_records(seed, part, records_per_part, min_seconds, max_seconds, artefacts)
        path = out_dir / f"{stem}.mat"
        (_write_kaggle if layout == "kaggle" else _write_uci)(path, records)
        paths.append(path)
    return paths


def part_stems(parts: int, layout: str) -> list[str]:
    """File stems as the real distributions name them: part_1… (Kaggle), Part_1… (UCI)."""
    prefix = "part" if layout == "kaggle" else "Part"
    return [f"{prefix}_{part}" for part in range(1, parts + 1)]


def write_wfdb_lead(folder: Path, name: str, ecg: np.ndarray, fs: float) -> Path:
    """ECG (mV) as a one-lead (II) WFDB record `name` in `folder`, 16-bit at 1 µV; its header."""
    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV"],
        sig_name=["II"],
        p_signal=np.asarray(ecg, dtype=np.float64)[:, None],
        fmt=["16"],
        adc_gain=[1000.0],
        baseline=[0],
        write_dir=str(folder),
    )
    return folder / f"{name}.hea"


# --- PulseDB subsets ----------------------------------------------------------------------------
# Files laid out as PulseDB's Generate_Subsets.m saves them (MATLAB v7.3, struct `Subset`), with
# subjects whose pressure level differs by more than their ECG shows, so that unseen subjects
# score visibly worse than unseen segments of known ones.

PULSEDB_SEGMENT = 1250  # samples of one segment: 10 s at 125 Hz
PULSEDB_PAD_SECONDS = 2.0  # drawn either side of a segment and filtered away, as a cut-out
PULSEDB_SUBJECT_SD = 15.0  # mmHg, SD of each subject's pressure offset (invisible in the ECG)
ECG_F_BAND = (0.5, 40.0)  # Hz, zero-phase 4th-order Butterworth band-pass giving ECG_F
PPG_F_BAND = (0.5, 8.0)  # Hz, the same giving PPG_F
PULSEDB_FILTER_ORDER = 4
PULSEDB_VITALDB_EVERY = 3  # every third subject is from VitalDB (source 1), the rest MIMIC-III
PULSEDB_CELL_FIELDS = ("Subject", "Gender")
PULSEDB_FIELDS = ("Subject", "Signals", "SBP", "DBP", "Age", "Gender", "Height", "Weight", "BMI")
PULSEDB_NUMERIC = ("SBP", "DBP", "Age", "Height", "Weight", "BMI")
PEAK_DISTANCE_S = 0.33  # PulseDB-style segment SBP/DBP: peaks and troughs at least this apart
PEAK_PROMINENCE = 0.4  # … and at least this share of the segment's 5–95 % range prominent


@dataclass(frozen=True)
class _Subject:
    """One synthetic PulseDB subject: id, its body, and the demographics the files carry."""

    index: int
    name: str  # e.g. p000007_1: the last digit is the source (0 MIMIC-III, 1 VitalDB)
    body: _Body
    age: float
    gender: str
    height: float  # cm, NaN for MIMIC-III
    weight: float  # kg, NaN for MIMIC-III


def _draw_subject(seed: int, index: int) -> _Subject:
    """A subject's body, shifted by its own pressure offset, and its demographics."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, 0)))
    body = _draw_body(rng)
    body = replace(body, map_level=body.map_level + rng.normal(0.0, PULSEDB_SUBJECT_SD))
    source = int(index % PULSEDB_VITALDB_EVERY == PULSEDB_VITALDB_EVERY - 1)
    height, weight = (rng.normal(168.0, 9.0), rng.normal(70.0, 12.0)) if source else (np.nan,) * 2
    return _Subject(
        index=index,
        name=f"p{index:06d}_{source}",
        body=body,
        age=float(rng.integers(20, 90)),
        gender=str(rng.choice(["M", "F"])),
        height=float(height),
        weight=float(weight),
    )


@cache
def _band(band: tuple[float, float]) -> np.ndarray:
    """The zero-phase band-pass's second-order sections."""
    return butter(PULSEDB_FILTER_ORDER, band, btype="bandpass", fs=FS, output="sos")


def pulsedb_segments(seed: int, rows: Sequence[tuple[_Subject, int]]) -> np.ndarray:
    """Segments as PulseDB stores them, (n, 3, 1250): rows ECG_F and PPG_F (band-passed,
    zero-phase, over the segment and PULSEDB_PAD_SECONDS either side) and ABP_Raw."""
    pad = int(PULSEDB_PAD_SECONDS * FS)
    drawn = []
    for subject, segment in rows:
        stream = np.random.SeedSequence(seed, spawn_key=(subject.index, segment + 1))
        drawn.append(
            _record_of(np.random.default_rng(stream), subject.body, PULSEDB_SEGMENT + 2 * pad)
        )
    ecg, abp, ppg = (np.stack(signal) for signal in zip(*drawn, strict=True))
    filtered = (sosfiltfilt(_band(ECG_F_BAND), ecg), sosfiltfilt(_band(PPG_F_BAND), ppg), abp)
    return np.stack(filtered, axis=1)[:, :, pad : pad + PULSEDB_SEGMENT]


def segment_pressures(abp: np.ndarray, fs: float = FS) -> tuple[float, float]:
    """A segment's SBP and DBP as PulseDB gives them: the means of its ABP peaks and troughs."""
    low, high = np.percentile(abp, [5.0, 95.0])
    options = {"distance": int(PEAK_DISTANCE_S * fs), "prominence": PEAK_PROMINENCE * (high - low)}
    peaks, _ = find_peaks(abp, **options)
    troughs, _ = find_peaks(-abp, **options)
    return float(np.mean(abp[peaks])), float(np.mean(abp[troughs]))


def _matlab_char(store: h5py.Group, name: str, text: str) -> h5py.Reference:
    """`text` as a MATLAB char array (1×n, stored (n, 1) uint16) in `#refs#`; its reference."""
    stored = store.create_dataset(name, data=np.array([[ord(c)] for c in text], dtype=np.uint16))
    stored.attrs["MATLAB_class"] = np.bytes_("char")
    stored.attrs["MATLAB_int_decode"] = np.int32(2)
    return stored.ref


def _numeric_fields(subject: _Subject, segment: np.ndarray) -> dict[str, float]:
    """A row's N×1 numeric fields: SBP/DBP from its ABP_Raw, the subject's demographics."""
    sbp, dbp = segment_pressures(segment[2])
    bmi = subject.weight / (subject.height / 100.0) ** 2
    return {
        **{"SBP": sbp, "DBP": dbp, "Age": subject.age},
        **{"Height": subject.height, "Weight": subject.weight, "BMI": bmi},
    }


def _matlab_struct(file: h5py.File, name: str, fields: Sequence[str]) -> h5py.Group:
    """An empty MATLAB struct (an HDF5 group naming its fields)."""
    struct = file.create_group(name)
    struct.attrs["MATLAB_class"] = np.bytes_("struct")
    names = np.array([np.frombuffer(field.encode(), "S1") for field in fields], dtype=object)
    struct.attrs.create("MATLAB_fields", names, dtype=h5py.vlen_dtype(np.dtype("S1")))
    return struct


def _write_pulsedb_subset(
    path: Path, seed: int, rows: list[tuple[_Subject, int]], chunk: int = 64
) -> None:
    """A subset file: struct `Subset` of PULSEDB_FIELDS, one row per (subject, segment), MATLAB
    v7.3 layout (N×1 fields stored (1, N), Signals N×3×1250 stored (1250, 3, N)), the signals
    drawn and written `chunk` rows at a time."""
    n_rows = len(rows)
    columns = {name: np.full(n_rows, np.nan) for name in PULSEDB_NUMERIC}
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=MAT73_USER_BLOCK) as file:
            store = file.create_group("#refs#")
            subset = _matlab_struct(file, "Subset", PULSEDB_FIELDS)
            signals = subset.create_dataset(
                "Signals",
                shape=(PULSEDB_SEGMENT, 3, n_rows),
                dtype=np.float64,
                chunks=(PULSEDB_SEGMENT, 3, max(1, min(chunk, n_rows))),
            )
            signals.attrs["MATLAB_class"] = np.bytes_("double")
            cells: dict[str, list] = {name: [] for name in PULSEDB_CELL_FIELDS}
            for first in range(0, n_rows, chunk):
                block = pulsedb_segments(seed, rows[first : first + chunk])
                signals[:, :, first : first + len(block)] = block.T
                for row, segment in enumerate(block, start=first):
                    subject = rows[row][0]
                    for name, value in _numeric_fields(subject, segment).items():
                        columns[name][row] = value
                    for name, text in (("Subject", subject.name), ("Gender", subject.gender)):
                        ref = _matlab_char(store, _matlab_ref_name(len(store)), text)
                        cells[name].append(ref)
            for name, values in columns.items():
                stored = subset.create_dataset(name, data=values.reshape(1, -1))
                stored.attrs["MATLAB_class"] = np.bytes_("double")
            for name, references in cells.items():
                refs = np.array(references, dtype=h5py.ref_dtype).reshape(1, -1)
                subset.create_dataset(name, data=refs).attrs["MATLAB_class"] = np.bytes_("cell")
        with tmp.open("r+b") as raw:
            raw.write(_mat73_header())


def pulsedb_plan(subjects: int, segments_per_subject: int) -> dict[str, list[tuple[int, int]]]:
    """(subject index, segment index) rows of each subset file, subject by subject, in about
    PulseDB's proportions.

    Subjects are cut in three groups: a tenth (at least one) for CalFree, a tenth (at least
    one) for AAMI, the rest train. A train subject's last ninth of segments (at least one) is
    CalBased, the rest Train; an AAMI subject's first segment is AAMI_Test, its next two
    AAMI_Cal; a CalFree subject's segments are all CalFree."""
    if subjects < 3:
        raise InputError(f"subjects: need at least 3 (train, CalFree, AAMI), got {subjects}")
    if segments_per_subject < 2:
        raise InputError(f"segments: need at least 2 per subject, got {segments_per_subject}")
    n_free = n_aami = max(1, subjects // 10)
    train = range(subjects - n_free - n_aami)
    free = range(train.stop, train.stop + n_free)
    aami = range(free.stop, subjects)
    kept = segments_per_subject - max(1, segments_per_subject // 9)
    every = range(segments_per_subject)
    return {
        "Train_Subset": [(s, k) for s in train for k in every[:kept]],
        "CalBased_Test_Subset": [(s, k) for s in train for k in every[kept:]],
        "CalFree_Test_Subset": [(s, k) for s in free for k in every],
        "AAMI_Test_Subset": [(s, k) for s in aami for k in every[:1]],
        "AAMI_Cal_Subset": [(s, k) for s in aami for k in every[1:3]],
    }


def write_pulsedb(
    out_dir: Path, *, subjects: int = 10, segments_per_subject: int = 4, seed: int = 0
) -> list[Path]:
    """Write the five PulseDB subset files (`pulsedb_plan`) into `out_dir`; return their paths."""
    plan = pulsedb_plan(subjects, segments_per_subject)
    drawn = {index: _draw_subject(seed, index) for index in range(subjects)}
    paths = []
    for stem, rows in plan.items():
        path = Path(out_dir) / f"{stem}.mat"
        _write_pulsedb_subset(path, seed, [(drawn[s], k) for s, k in rows])
        paths.append(path)
    return paths
