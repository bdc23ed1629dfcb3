"""Cleaning rules on hand-built signals, the counting invariant, the real fixture, the band-pass."""

import itertools
import math

import numpy as np
import pytest
import scipy.io
from real_record import REAL_RECORD
from scipy.signal import sosfilt

from ecg2abp.config import validate_config
from ecg2abp.data import cleaning
from ecg2abp.data.cleaning import (
    KEPT,
    REASONS,
    CausalBandpass,
    CleaningSettings,
    clean_record,
    filter_ecg_segment,
    label_samples,
    settings_from_config,
)
from ecg2abp.errors import InputError

FIXTURE = REAL_RECORD

FS = 100.0  # test rate: 1 s = 100 samples, beat blocks of 30 samples, 5 blocks = 150
N = 3000
# Margin 0 so each artefact's count is its own length; min segment 1 s = 100 samples.
EXACT = CleaningSettings(window=10, min_segment_seconds=1.0, margin_seconds=0.0)


def synthetic(n: int = N, fs: float = FS) -> tuple[np.ndarray, np.ndarray]:
    """Clean ECG-like and ABP-like signals: ABP beats at 72/min between 80 and 120 mmHg."""
    t = np.arange(n) / fs
    ecg = np.sin(2 * np.pi * 1.7 * t) + 0.3 * np.sin(2 * np.pi * 9.1 * t)
    abp = 100.0 + 20.0 * np.sin(2 * np.pi * 1.2 * t)
    return ecg, abp


def removed_only(result: cleaning.CleanedRecord, **expected: int) -> None:
    """Assert the removed counts are exactly `expected`, every other reason 0."""
    assert result.removed == {reason: expected.get(reason, 0) for reason in REASONS}


def test_clean_signal_is_kept_whole():
    ecg, abp = synthetic()
    result = clean_record(ecg, abp, FS, EXACT)
    assert result.segments == [(0, N)]
    assert result.n_samples == N
    removed_only(result)


def test_nonfinite_in_either_signal_splits_segments():
    ecg, abp = synthetic()
    abp[1000:1010] = np.nan
    ecg[2000] = np.inf
    result = clean_record(ecg, abp, FS, EXACT)
    removed_only(result, nonfinite=11)
    assert result.segments == [(0, 1000), (1010, 2000), (2001, N)]


def test_out_of_range_spikes_and_dips():
    ecg, abp = synthetic()
    abp[500:505] = 300.0  # the record's max, but 5 samples: not a plateau, so range
    abp[800:830] = -10.0
    result = clean_record(ecg, abp, FS, EXACT)
    removed_only(result, abp_range=35)


def test_plateau_at_the_record_maximum_is_clipped():
    ecg, abp = synthetic()
    abp[500:540] = 270.0
    abp[1500:1515] = 270.0
    abp[2500] = 270.0  # one sample at the ceiling is no plateau: out of range instead
    result = clean_record(ecg, abp, FS, EXACT)
    removed_only(result, abp_clipped=55, abp_range=1)


def test_plateau_at_a_plausible_maximum_is_not_clipping():
    ecg, abp = synthetic()
    abp[500:520] = 150.0  # the record's max for 20 samples, but a believable systole
    result = clean_record(ecg, abp, FS, EXACT)
    removed_only(result)


def test_ecg_pinned_at_either_extreme_is_saturated():
    ecg, abp = synthetic()
    top, bottom = ecg.max() + 0.5, ecg.min() - 0.5
    ecg[700:720] = top
    ecg[1200:1212] = bottom
    ecg[2000:2005] = top  # shorter than clip_min_samples
    result = clean_record(ecg, abp, FS, EXACT)
    removed_only(result, ecg_saturated=32)


def test_flat_abp_is_flat_and_short_zero_stretch_is_out_of_range():
    ecg, abp = synthetic()
    abp[1000:1150] = 0.0  # 1.5 s of 0 mmHg: transducer off
    abp[2000:2080] = 0.0  # 0.8 s: shorter than flat_seconds
    result = clean_record(ecg, abp, FS, EXACT)
    removed_only(result, abp_flat=150, abp_range=80)


def test_flat_ecg_inside_its_range():
    ecg, abp = synthetic()
    ecg[1500:1620] = 0.0
    ecg[2500:2590] = 0.0  # 0.9 s: not flat yet
    result = clean_record(ecg, abp, FS, EXACT)
    removed_only(result, ecg_flat=120)


def test_constant_ecg_record_is_flat_not_saturated():
    _, abp = synthetic()
    result = clean_record(np.zeros(N), abp, FS, EXACT)
    removed_only(result, ecg_flat=N)
    assert result.segments == []


def test_damped_beats_fail_the_pulse_pressure_check():
    ecg, abp = synthetic()
    t = np.arange(1200, 1800) / FS
    abp[1200:1800] = 100.0 + 2.0 * np.sin(2 * np.pi * 1.2 * t)  # PP 4 mmHg: damped line
    result = clean_record(ecg, abp, FS, EXACT)
    # Blocks of 30 samples; the damped stretch is blocks 40..59. A block fails when all five
    # blocks around it (b-2..b+2) are damped: blocks 42..57, i.e. samples 1260..1740.
    removed_only(result, beat_implausible=480)
    assert result.segments == [(0, 1260), (1740, N)]


def test_hypertensive_beats_over_the_ceiling_are_implausible():
    ecg, abp = synthetic()
    abp[1000:2000] = 140.0 + 95.0 * np.sin(2 * np.pi * 1.2 * np.arange(1000) / FS)  # to 235
    result = clean_record(ecg, abp, FS, EXACT)
    assert result.removed["abp_range"] == 0
    assert result.removed["beat_implausible"] >= 1000 - 2 * 60
    assert result.removed["abp_clipped"] == 0


def test_margin_widens_each_artefact_and_first_reason_wins():
    ecg, abp = synthetic()
    abp[1000:1010] = np.nan
    abp[1070:1075] = 300.0
    abp[0:5] = -5.0
    settings = CleaningSettings(window=10, min_segment_seconds=1.0, margin_seconds=0.5)
    result = clean_record(ecg, abp, FS, settings)
    # nonfinite claims [950, 1060); range claims [0, 55) and [1020, 1125) minus the overlap.
    removed_only(result, nonfinite=110, abp_range=55 + 65)
    assert result.segments == [(55, 950), (1125, N)]


def test_overlapping_artefacts_count_under_the_first_reason():
    ecg, abp = synthetic()
    abp[1000:1200] = 0.0  # flat
    top = ecg.max() + 1.0
    ecg[1150:1250] = top  # saturated, precedes abp_flat in REASONS
    result = clean_record(ecg, abp, FS, EXACT)
    removed_only(result, ecg_saturated=100, abp_flat=150)
    assert REASONS.index("ecg_saturated") < REASONS.index("abp_flat")


def test_short_pieces_go_and_a_piece_of_exactly_the_minimum_stays():
    ecg, abp = synthetic()
    abp[1000] = abp[1051] = np.nan  # island [1001, 1051): 50 samples < 100
    abp[2000] = abp[2101] = np.nan  # island [2001, 2101): exactly 100
    result = clean_record(ecg, abp, FS, EXACT)
    removed_only(result, nonfinite=4, short_segment=50)
    assert result.segments == [(0, 1000), (1052, 2000), (2001, 2101), (2102, N)]


def test_window_longer_than_min_segment_sets_the_minimum():
    ecg, abp = synthetic()
    abp[2000] = abp[2121] = np.nan  # island of 120 samples
    settings = CleaningSettings(window=150, min_segment_seconds=1.0, margin_seconds=0.0)
    result = clean_record(ecg, abp, FS, settings)
    removed_only(result, nonfinite=2, short_segment=120)


def test_disabled_keeps_every_artefact_but_nonfinite():
    ecg, abp = synthetic()
    abp[100:150] = 270.0
    abp[500:800] = 0.0
    ecg[1000:1200] = 0.0
    abp[1500:1600] = np.nan
    abp[1650] = np.nan  # island [1600, 1650) of 50 < 100
    settings = CleaningSettings(enabled=False, window=10, min_segment_seconds=1.0)
    result = clean_record(ecg, abp, FS, settings)
    removed_only(result, nonfinite=101, short_segment=50)  # no margin either
    assert result.segments == [(0, 1500), (1651, N)]


def test_empty_record():
    result = clean_record(np.zeros(0), np.zeros(0), FS, EXACT)
    assert result.segments == []
    removed_only(result)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="equal length"):
        clean_record(np.zeros(10), np.zeros(11), FS, EXACT)


def _random_record(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    fs = float(rng.choice([50.0, 100.0, 125.0]))
    n = int(rng.integers(200, 6000))
    ecg, abp = synthetic(n, fs)
    for _ in range(rng.integers(0, 12)):
        start = int(rng.integers(0, n))
        stop = min(n, start + int(rng.integers(1, 400)))
        kind = rng.integers(0, 7)
        if kind == 0:
            (abp if rng.random() < 0.5 else ecg)[start:stop] = np.nan
        elif kind == 1:
            abp[start:stop] = 270.0
        elif kind == 2:
            abp[start:stop] = rng.choice([0.0, 55.0, -30.0])
        elif kind == 3:
            ecg[start:stop] = rng.choice([0.0, 5.0, -5.0])
        elif kind == 4:
            abp[start:stop] = rng.uniform(-50, 350, stop - start)
        elif kind == 5:
            abp[start:stop] = 100 + rng.normal(0, 1, stop - start)  # damped
        else:
            ecg[start:stop] = np.inf
    return ecg, abp, fs


@pytest.mark.parametrize("seed", range(40))
def test_every_sample_is_kept_or_counted_once(seed):
    rng = np.random.default_rng(seed)
    ecg, abp, fs = _random_record(rng)
    settings = CleaningSettings(
        enabled=bool(rng.random() < 0.8),
        window=int(rng.integers(1, 120)),
        min_segment_seconds=float(rng.uniform(0.1, 6.0)),
        margin_seconds=float(rng.uniform(0.0, 1.0)),
    )
    result = clean_record(ecg, abp, fs, settings)
    n = len(ecg)
    kept = sum(stop - start for start, stop in result.segments)
    assert set(result.removed) == set(REASONS)
    assert all(count >= 0 for count in result.removed.values())
    assert kept + sum(result.removed.values()) == n == result.n_samples
    shortest = max(math.ceil(settings.min_segment_seconds * fs), settings.window)
    edges = [edge for segment in result.segments for edge in segment]
    assert edges == sorted(edges)
    assert all(
        start >= 0 and stop - start >= shortest and stop <= n for start, stop in result.segments
    )
    mask = np.zeros(n, dtype=bool)
    for start, stop in result.segments:
        mask[start:stop] = True
    labels = label_samples(ecg, abp, fs, settings)
    np.testing.assert_array_equal(labels == KEPT, mask)
    assert np.isfinite(ecg[mask]).all() and np.isfinite(abp[mask]).all()
    if settings.enabled:
        assert (abp[mask] >= settings.abp_min).all() and (abp[mask] <= settings.abp_max).all()


def test_labels_match_the_counts():
    ecg, abp = synthetic()
    abp[300:700] = 0.0
    ecg[1000:1010] = np.nan
    settings = CleaningSettings(window=10, min_segment_seconds=1.0)
    labels = label_samples(ecg, abp, FS, settings)
    result = clean_record(ecg, abp, FS, settings)
    for index, reason in enumerate(REASONS):
        assert np.count_nonzero(labels == index) == result.removed[reason]


# --- the real MIMIC-II fixture --------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_record() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not FIXTURE.exists():
        pytest.skip(f"fixture not found: {FIXTURE}")
    ppg, abp, ecg = scipy.io.loadmat(FIXTURE)["p"][0, 0]
    return ppg, abp, ecg


def test_fixture_keeps_the_clean_beats(fixture_record):
    ppg, abp, ecg = fixture_record
    assert np.isnan(ppg).all()  # no pleth channel, which must not matter
    result = clean_record(ecg, abp, 125.0, CleaningSettings())
    kept = sum(stop - start for start, stop in result.segments)
    assert kept >= 90 * 125
    # The clean beats follow a flush (ABP down to 8 mmHg at samples 2941-2942) and end where
    # ABP drops to -30 mmHg at sample 16752 before the flat 0 mmHg tail.
    assert result.segments[0][0] > 2942
    assert result.segments[-1][1] <= 16752
    assert kept + sum(result.removed.values()) == len(abp)


def test_fixture_artefacts_are_removed_for_the_right_reasons(fixture_record):
    _, abp, ecg = fixture_record
    labels = label_samples(ecg, abp, 125.0, CleaningSettings())
    reason = {name: index for index, name in enumerate(REASONS)}
    ceiling = abp.max()
    assert ceiling > 265  # the transducer ceiling, about 270 mmHg
    # Plateaus at the ceiling in the opening and after the 0 mmHg stretch.
    for start, stop in [(34, 53), (401, 429), (2553, 2715)]:
        assert (abp[start:stop] == ceiling).all()
        assert (labels[start:stop] == reason["abp_clipped"]).all()
    # Exactly 0 mmHg for seconds: transducer off, and the flat tail to the end.
    for start, stop in [(1311, 1624), (1664, 2326), (16765, len(abp))]:
        assert (abp[start:stop] == 0).all()
        assert (labels[start:stop] == reason["abp_flat"]).all()
    # The ~7 mmHg wobble before the 0 mmHg stretch is out of range, not flat.
    assert (labels[1000:1240] == reason["abp_range"]).all()
    # Nothing of the opening, the 0 mmHg stretch or the tail is kept.
    assert (labels[:2942] != KEPT).all()
    assert (labels[16752:] != KEPT).all()
    assert np.count_nonzero(labels == reason["ecg_saturated"]) == 0
    assert np.count_nonzero(labels == reason["nonfinite"]) == 0


def test_fixture_disabled_keeps_everything(fixture_record):
    _, abp, ecg = fixture_record
    result = clean_record(ecg, abp, 125.0, CleaningSettings(enabled=False))
    assert result.segments == [(0, len(abp))]


# --- settings from the config ---------------------------------------------------------------


def test_settings_from_config_reads_the_validated_section_and_window():
    settings = settings_from_config(
        validate_config(
            {"window": 64, "cleaning": {"abp_min": 25, "bandpass_hz": [1, 30], "enabled": False}}
        )
    )
    assert settings.abp_min == 25
    assert settings.bandpass_hz == (1.0, 30.0)
    assert settings.window == 64
    assert settings.enabled is False
    assert settings_from_config(validate_config({})) == CleaningSettings()
    none = validate_config({"cleaning": {"bandpass_hz": None}})
    assert settings_from_config(none).bandpass_hz is None


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"cleaning": {"abp_minimum": 20}}, "abp_minimum"),
        ({"window": 8.5}, "window"),
        ({"cleaning": {"enabled": "yes"}}, "cleaning.enabled"),
        ({"cleaning": {"flat_seconds": "1s"}}, "cleaning.flat_seconds"),
        ({"cleaning": {"bandpass_hz": [0.5]}}, "cleaning.bandpass_hz"),
        ({"cleaning": {"margin_seconds": -1}}, "cleaning.margin_seconds"),
        ({"window": 0}, "window"),
    ],
)
def test_bad_config_values_name_the_key(config, named):
    with pytest.raises(InputError, match=named.replace(".", r"\.")):
        validate_config(config)


@pytest.mark.parametrize(
    ("cleaning", "named"),
    [
        ({"bandpass_hz": [40, 0.5]}, "cleaning.bandpass_hz"),
        ({"abp_min": 300}, "cleaning.abp_min"),
        ({"pp_min": 130}, "cleaning.pp_min"),
    ],
)
def test_bounds_the_schema_cannot_check_name_the_key(cleaning, named):
    with pytest.raises(InputError, match=named.replace(".", r"\.")):
        settings_from_config(validate_config({"cleaning": cleaning}))


# --- causal band-pass -----------------------------------------------------------------------


def _noisy_ecg(n: int = 5000, fs: float = 125.0) -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(n) / fs
    return (
        0.8 + 0.5 * np.sin(2 * np.pi * 0.1 * t) + np.sin(2 * np.pi * 8 * t) + rng.normal(0, 0.1, n)
    )


def test_chunked_stream_equals_whole_segment():
    ecg = _noisy_ecg()
    whole = filter_ecg_segment(ecg, 125.0, CleaningSettings())
    stream = CausalBandpass(125.0, (0.5, 40.0), order=2)
    bounds = [0, 1, 2, 90, 777, 778, 2500, 4999, 5000]
    chunks = [stream(ecg[a:b]) for a, b in itertools.pairwise(bounds)]
    streamed = np.concatenate(chunks)
    assert streamed.dtype == whole.dtype == np.float32
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-6)


def test_bandpass_is_causal():
    ecg = _noisy_ecg()
    settings = CleaningSettings()
    before = filter_ecg_segment(ecg, 125.0, settings)
    changed = ecg.copy()
    changed[3000:] = np.random.default_rng(1).normal(0, 5, len(ecg) - 3000)
    after = filter_ecg_segment(changed, 125.0, settings)
    np.testing.assert_array_equal(after[:3000], before[:3000])
    assert not np.allclose(after[3000:], before[3000:])


def test_bandpass_removes_baseline_and_keeps_the_passband():
    fs = 125.0
    t = np.arange(20000) / fs
    tone = np.sin(2 * np.pi * 8 * t)
    out = filter_ecg_segment(2.0 + tone, fs, CleaningSettings())
    tail = slice(10000, None)  # after the start-up transient
    assert abs(out[tail].mean()) < 0.01
    assert np.std(out[tail]) == pytest.approx(np.std(tone[tail]), rel=0.05)


def test_bandpass_off_is_identity_in_float32():
    ecg = _noisy_ecg(100)
    out = filter_ecg_segment(ecg, 125.0, CleaningSettings(bandpass_hz=None))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, ecg.astype(np.float32))


def test_band_above_nyquist_is_refused():
    with pytest.raises(InputError, match="bandpass_hz"):
        filter_ecg_segment(np.zeros(10), 60.0, CleaningSettings(bandpass_hz=(0.5, 40.0)))


@pytest.mark.parametrize("n_samples", [30, 60, 100, 180])
def test_records_shorter_than_the_beat_check_span_are_counted_not_crashed(n_samples):
    """A record of fewer blocks than the ~1.5 s beat span once broke the beat check."""
    t = np.arange(n_samples) / 125.0
    abp = 90 + 30 * np.sin(2 * np.pi * 1.2 * t)
    ecg = np.sin(2 * np.pi * 1.2 * t)
    result = clean_record(ecg, abp, 125.0, CleaningSettings())
    assert result.segments == []
    assert sum(result.removed.values()) == n_samples


# --- start-up transient -------------------------------------------------------------------


def test_a_step_starts_the_filter_in_its_steady_state_without_a_transient():
    fs, settings = 125.0, CleaningSettings()
    step = np.ones(1250)  # a segment that starts 1 mV off zero
    zero_state = sosfilt(cleaning._bandpass_sos(fs, 0.5, 40.0, 2), step)
    assert abs(zero_state[round(0.5 * fs)]) > 0.1  # the transient a zero state leaves
    assert np.abs(filter_ecg_segment(step, fs, settings)).max() < 1e-6


def test_the_start_up_error_on_real_ecg_no_longer_depends_on_its_offset():
    fs, settings = 125.0, CleaningSettings()
    sos = cleaning._bandpass_sos(fs, 0.5, 40.0, 2)
    ecg = scipy.io.loadmat(FIXTURE)["p"][0, 0][2, 3005:16690]  # the record's clean beats
    error = {}
    for offset in (0.0, 1.0):
        settled = sosfilt(sos, ecg + offset)  # long started: its transient has died out
        for name, start in itertools.product(("zero", "steady"), range(1250, 12500, 250)):
            piece = ecg[start : start + 125] + offset  # segments starting mid-recording
            out = sosfilt(sos, piece) if name == "zero" else filter_ecg_segment(piece, fs, settings)
            rms = np.sqrt(np.mean((out - settled[start : start + 125]) ** 2))
            error.setdefault((name, offset), []).append(rms)
    mean = {key: float(np.mean(values)) for key, values in error.items()}
    assert mean["zero", 1.0] > 0.2  # mV, in the first second
    assert mean["steady", 1.0] == pytest.approx(mean["steady", 0.0], abs=1e-6)
    assert mean["steady", 1.0] < 0.05


def test_a_missing_channel_has_its_own_reason():
    for missing in ("ecg", "abp"):
        ecg, abp = synthetic()
        {"ecg": ecg, "abp": abp}[missing][:] = np.nan
        result = clean_record(ecg, abp, FS, CleaningSettings())
        assert result.segments == []
        removed_only(result, missing_channel=N)
    ecg, abp = synthetic()
    abp[: N // 2] = np.nan  # half a channel is a gap, not a missing channel
    result = clean_record(ecg, abp, FS, CleaningSettings())
    assert result.removed["missing_channel"] == 0 and result.removed["nonfinite"] >= N // 2
