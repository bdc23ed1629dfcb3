"""Synthetic parts: determinism, both layouts through the readers, plausibility, artefacts."""

import h5py
import numpy as np
import pytest
import scipy.io
from scipy.signal import butter, filtfilt, find_peaks

from ecg2abp.data.readers import detect_format, iter_records, pulsedb_values
from ecg2abp.data.synth import (
    ARTEFACTS,
    FULL_SIZE_RECORDS,
    FULL_SIZE_SECONDS,
    _part_plan,
    segment_pressures,
    synth_record,
    write_pulsedb,
    write_synthetic,
)
from ecg2abp.errors import InputError

FS = 125.0
SMALL = {"records_per_part": 6, "min_seconds": 8.0, "max_seconds": 10.0}


def r_peaks(ecg: np.ndarray) -> np.ndarray:
    """R-peak sample indices, whatever the lead's polarity."""
    b, a = butter(2, 5.0, btype="high", fs=FS)
    sharp = np.abs(filtfilt(b, a, ecg))
    peaks, _ = find_peaks(sharp, height=0.5 * sharp.max(), distance=int(0.3 * FS))
    return peaks


def upstrokes(abp: np.ndarray) -> np.ndarray:
    """Sample indices of the steepest rise of each ABP beat."""
    slope = np.diff(abp)
    peaks, _ = find_peaks(slope, height=0.5 * slope.max(), distance=int(0.3 * FS))
    return peaks


def longest_run(mask: np.ndarray) -> int:
    """Length of the longest stretch of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((stops - starts).max()) if starts.size else 0


def artefacts_seen(ecg: np.ndarray, abp: np.ndarray, ppg: np.ndarray) -> set[str]:
    """Which artefacts a record shows, judged from its signals alone."""
    if ecg.size < 88:
        return {"short"}
    seen = set()
    if np.isnan(ecg).any() and np.isnan(abp).any():
        seen.add("nan_gap")
    if np.isnan(ppg).all():
        seen.add("no_ppg")
    if longest_run(abp == 0.0) >= FS:
        seen.add("zero_abp")
    if longest_run((np.diff(abp) == 0.0) & (abp[1:] != 0.0)) >= FS:
        seen.add("flat_abp")
    if np.nanmax(abp) >= 260.0:
        seen.add("clipped_abp")
    if longest_run(np.diff(ecg) == 0.0) >= FS and np.sum(np.abs(ecg) == np.nanmax(np.abs(ecg))) < 2:
        seen.add("flat_ecg")
    if np.sum(np.abs(ecg) == np.nanmax(np.abs(ecg))) >= 10:
        seen.add("saturated_ecg")
    return seen


def read_all(path) -> list:
    return list(iter_records(path))


def test_synth_record_is_deterministic_and_seed_dependent():
    first = synth_record(np.random.default_rng(11), 1500)
    again = synth_record(np.random.default_rng(11), 1500)
    other = synth_record(np.random.default_rng(12), 1500)
    for a, b, c in zip(first, again, other, strict=True):
        assert a.dtype == np.float64 and a.shape == (1500,)
        assert a.tobytes() == b.tobytes()
        assert not np.array_equal(a, c)


@pytest.mark.parametrize("layout", ["kaggle", "uci"])
def test_write_synthetic_is_deterministic(tmp_path, layout):
    first = write_synthetic(tmp_path / "a", parts=2, seed=4, layout=layout, **SMALL)
    again = write_synthetic(tmp_path / "b", parts=2, seed=4, layout=layout, **SMALL)
    other = write_synthetic(tmp_path / "c", parts=1, seed=5, layout=layout, **SMALL)
    for path_a, path_b in zip(first, again, strict=True):
        for rec_a, rec_b in zip(read_all(path_a), read_all(path_b), strict=True):
            for name in ("ecg", "abp", "ppg"):
                assert getattr(rec_a, name).tobytes() == getattr(rec_b, name).tobytes()
    assert not np.array_equal(read_all(first[0])[0].ecg, read_all(other[0])[0].ecg)


def test_both_layouts_hold_the_same_records(tmp_path):
    kaggle = write_synthetic(tmp_path / "k", parts=2, seed=1, layout="kaggle", **SMALL)
    uci = write_synthetic(tmp_path / "u", parts=2, seed=1, layout="uci", **SMALL)
    assert [p.name for p in kaggle] == ["part_1.mat", "part_2.mat"]
    assert [p.name for p in uci] == ["Part_1.mat", "Part_2.mat"]
    assert {detect_format(p) for p in kaggle} == {"kaggle"}
    assert {detect_format(p) for p in uci} == {"uci"}
    for k_path, u_path in zip(kaggle, uci, strict=True):
        k_records, u_records = read_all(k_path), read_all(u_path)
        assert len(k_records) == len(u_records) == 6
        for k, u in zip(k_records, u_records, strict=True):
            assert k.record_id.split("/")[1] == u.record_id.split("/")[1]
            for name in ("ecg", "abp", "ppg"):
                np.testing.assert_array_equal(getattr(k, name), getattr(u, name))
    assert [r.record_id for r in read_all(kaggle[1])][:2] == ["part_2/0000", "part_2/0001"]


def test_files_look_like_matlab_wrote_them(tmp_path):
    (kaggle,) = write_synthetic(tmp_path, parts=1, layout="kaggle", **SMALL)
    cell = scipy.io.loadmat(kaggle)["p"]
    assert cell.shape == (1, 6) and cell.dtype == object
    assert all(item.shape[0] == 3 and item.dtype == np.float64 for item in cell[0])
    (uci,) = write_synthetic(tmp_path, parts=1, layout="uci", **SMALL)
    assert uci.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    with h5py.File(uci, "r") as file:
        assert file.userblock_size == 512
        assert set(file) == {"#refs#", "Part_1"}
        assert file["Part_1"].shape == (6, 1)
        assert file["Part_1"].attrs["MATLAB_class"] == b"cell"
        first = file[file["Part_1"][0, 0]]
        assert first.shape[1] == 3 and first.attrs["MATLAB_class"] == b"double"
    assert not list(tmp_path.glob(".*tmp*"))


def test_signals_are_plausible():
    for seed in range(8):
        ecg, abp, ppg = synth_record(np.random.default_rng(seed), int(20 * FS))
        peaks = r_peaks(ecg)
        heart_rate = 60.0 * FS / np.diff(peaks)
        assert heart_rate.min() >= 40.0 and heart_rate.max() <= 150.0

        rises = upstrokes(abp)
        assert abs(rises.size - peaks.size) <= 1
        preceding = peaks[np.searchsorted(peaks, rises) - 1]
        delay = (rises - preceding)[rises > peaks[0]] / FS
        assert delay.min() > 0.1 and delay.max() < 0.45

        beats = np.split(abp, rises)[1:-1]
        systolic = np.array([beat.max() for beat in beats])
        diastolic = np.array([beat.min() for beat in beats])
        assert 90.0 <= np.median(systolic) <= 180.0 and 50.0 <= np.median(diastolic) <= 100.0
        assert systolic.min() >= 80.0 and systolic.max() <= 200.0
        assert diastolic.min() >= 40.0 and diastolic.max() <= 110.0
        assert np.all(ppg > 0.0) and np.all(ppg < 5.0)


def test_ppg_follows_abp():
    _, abp, ppg = synth_record(np.random.default_rng(3), int(20 * FS))
    abp_rises, ppg_rises = upstrokes(abp), upstrokes(ppg)
    after = ppg_rises[ppg_rises > abp_rises[0]]
    lag = after - abp_rises[np.searchsorted(abp_rises, after) - 1]
    assert np.all(lag / FS > 0.05) and np.all(lag / FS < 0.3)


def test_bp_level_follows_an_ecg_visible_feature():
    heart_rates, mean_pressures = [], []
    for seed in range(60):
        ecg, abp, _ = synth_record(np.random.default_rng(1000 + seed), int(12 * FS))
        heart_rates.append(60.0 * FS / np.median(np.diff(r_peaks(ecg))))
        mean_pressures.append(abp.mean())
    correlation = np.corrcoef(heart_rates, mean_pressures)[0, 1]
    assert 0.3 < correlation < 0.95


def test_artefacts_present_when_asked(tmp_path):
    (path,) = write_synthetic(
        tmp_path, parts=1, records_per_part=24, seed=2, min_seconds=8.0, max_seconds=12.0
    )
    records = read_all(path)
    seen = [artefacts_seen(r.ecg, r.abp, r.ppg) for r in records]
    assert set().union(*seen) == set(ARTEFACTS)
    clean = sum(not kinds for kinds in seen)
    assert clean > len(records) / 2


def test_no_artefacts_when_not_asked(tmp_path):
    paths = write_synthetic(
        tmp_path,
        parts=2,
        records_per_part=12,
        seed=2,
        artefacts=False,
        min_seconds=8.0,
        max_seconds=12.0,
    )
    for path in paths:
        for record in read_all(path):
            assert artefacts_seen(record.ecg, record.abp, record.ppg) == set()
            assert 8.0 * FS <= record.ecg.size <= 12.0 * FS
            assert not np.isnan(np.stack([record.ecg, record.abp, record.ppg])).any()


def test_full_size_plan_matches_the_real_set():
    rng = np.random.default_rng(0)
    plan = _part_plan(rng, FULL_SIZE_RECORDS, *FULL_SIZE_SECONDS, artefacts=True)
    lengths = np.array([n for n, kind in plan if kind != "short"])
    assert len(plan) == 1000
    assert lengths.min() >= 8 * FS and lengths.max() <= 600 * FS
    assert 28e6 < sum(n for n, _ in plan) < 36e6


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"layout": "csv"}, "layout"),
        ({"parts": 0}, "parts"),
        ({"records_per_part": 0}, "records_per_part"),
        ({"min_seconds": 20.0, "max_seconds": 10.0}, "min_seconds"),
    ],
)
def test_bad_arguments(tmp_path, options, key):
    with pytest.raises(InputError, match=key):
        write_synthetic(tmp_path, **options)
    assert not list(tmp_path.iterdir())


# --- PulseDB subsets ------------------------------------------------------------------------------

PULSEDB_FIELDS = ("Subject", "Signals", "SBP", "DBP", "Age", "Gender", "Height", "Weight", "BMI")
PULSEDB_STEMS = [
    "Train_Subset",
    "CalBased_Test_Subset",
    "CalFree_Test_Subset",
    "AAMI_Test_Subset",
    "AAMI_Cal_Subset",
]


@pytest.fixture(scope="module")
def pulsedb(tmp_path_factory) -> dict[str, list]:
    """Subset stem → its records, from 15 subjects of 4 segments."""
    paths = write_pulsedb(tmp_path_factory.mktemp("pulsedb"), subjects=15, segments_per_subject=4)
    assert [p.stem for p in paths] == PULSEDB_STEMS
    return {path.stem: (path, read_all(path)) for path in paths}


def subjects_of(pulsedb: dict, stem: str) -> set[str]:
    return {record.subject for record in pulsedb[stem][1]}


def test_pulsedb_files_look_like_matlab_wrote_them(pulsedb):
    path, records = pulsedb["CalFree_Test_Subset"]
    assert path.read_bytes()[:19] == b"MATLAB 7.3 MAT-file" and detect_format(path) == "pulsedb"
    with h5py.File(path, "r") as file:
        assert file.userblock_size == 512
        assert set(file) == {"#refs#", "Subset"}
        subset = file["Subset"]
        assert subset.attrs["MATLAB_class"] == b"struct"
        fields = [b"".join(name).decode() for name in subset.attrs["MATLAB_fields"]]
        assert fields == list(PULSEDB_FIELDS)
        assert set(subset) == set(fields)
        n = len(records)
        assert subset["Signals"].shape == (1250, 3, n)  # N×3×1250 in MATLAB, transposed
        assert subset["Signals"].dtype == np.float64
        for name in ("SBP", "DBP", "Age", "Height", "Weight", "BMI"):
            assert subset[name].shape == (1, n) and subset[name].attrs["MATLAB_class"] == b"double"
        for name in ("Subject", "Gender"):
            cell = subset[name]
            assert cell.shape == (1, n) and cell.attrs["MATLAB_class"] == b"cell"
            text = file[cell[0, 0]]
            assert text.dtype == np.uint16 and text.attrs["MATLAB_class"] == b"char"
        gender = "".join(map(chr, file[subset["Gender"][0, 0]][()].ravel()))
        assert gender in {"M", "F"}
    assert all(r.ecg.shape == r.abp.shape == r.ppg.shape == (1250,) for r in records)


def test_pulsedb_subsets_share_subjects_as_pulsedb_does(pulsedb):
    train = subjects_of(pulsedb, "Train_Subset")
    assert subjects_of(pulsedb, "CalBased_Test_Subset") == train
    free = subjects_of(pulsedb, "CalFree_Test_Subset")
    aami = subjects_of(pulsedb, "AAMI_Test_Subset")
    assert subjects_of(pulsedb, "AAMI_Cal_Subset") == aami
    assert len(train) == 13 and len(free) == len(aami) == 1
    assert not (train & free) and not (train & aami) and not (free & aami)
    train_ecg = {r.ecg.tobytes() for r in pulsedb["Train_Subset"][1]}
    assert not train_ecg & {r.ecg.tobytes() for r in pulsedb["CalBased_Test_Subset"][1]}
    for stem, (_, records) in pulsedb.items():  # subject by subject, as Generate_Subsets.m
        assert [r.subject for r in records] == sorted(r.subject for r in records), stem
        assert len({r.record_id for r in records}) == len(records)
        assert all(r.record_id.split("/")[1] == stem for r in records)


def test_pulsedb_fields_follow_the_signals(pulsedb):
    path, records = pulsedb["Train_Subset"]
    sbp, dbp = pulsedb_values(path, "SBP"), pulsedb_values(path, "DBP")
    for record, file_sbp, file_dbp in zip(records, sbp, dbp, strict=True):
        assert (file_sbp, file_dbp) == segment_pressures(record.abp)
        assert record.abp.min() < file_dbp < file_dbp + 20 < file_sbp < record.abp.max()
    source = np.array([int(r.subject[-1]) for r in records])
    bmi = pulsedb_values(path, "BMI")
    assert set(source) == {0, 1}
    assert np.isnan(bmi[source == 0]).all() and np.isfinite(bmi[source == 1]).all()


def test_pulsedb_ecg_and_ppg_are_band_passed(pulsedb):
    for record in pulsedb["Train_Subset"][1]:
        assert abs(record.ppg.mean()) < 0.05 * record.ppg.std()  # raw PPG sits at 1–2 a.u.
        assert abs(record.ecg.mean()) < 0.05 * record.ecg.std()
        spectrum = np.abs(np.fft.rfft(record.ecg * np.hanning(len(record.ecg)))) ** 2
        high = np.fft.rfftfreq(len(record.ecg), 1 / FS) > 50.0
        assert spectrum[high].sum() < 1e-6 * spectrum.sum()  # raw: ≥ 1e-4 (white noise)


def test_pulsedb_subjects_differ_in_pressure_more_than_their_segments(pulsedb):
    records = [r for stem in ("Train_Subset", "CalBased_Test_Subset") for r in pulsedb[stem][1]]
    by_subject: dict[str, list[float]] = {}
    for record in records:
        by_subject.setdefault(record.subject, []).append(segment_pressures(record.abp)[0])
    between = np.std([np.mean(values) for values in by_subject.values()])
    within = np.sqrt(np.mean([np.var(values) for values in by_subject.values()]))
    assert between > 2 * within


def test_write_pulsedb_is_deterministic(tmp_path):
    first = write_pulsedb(tmp_path / "a", subjects=3, segments_per_subject=2, seed=4)
    again = write_pulsedb(tmp_path / "b", subjects=3, segments_per_subject=2, seed=4)
    other = write_pulsedb(tmp_path / "c", subjects=3, segments_per_subject=2, seed=5)
    for path_a, path_b in zip(first, again, strict=True):
        for rec_a, rec_b in zip(read_all(path_a), read_all(path_b), strict=True):
            assert rec_a.record_id == rec_b.record_id
            for name in ("ecg", "abp", "ppg"):
                assert getattr(rec_a, name).tobytes() == getattr(rec_b, name).tobytes()
    assert not np.array_equal(read_all(first[0])[0].abp, read_all(other[0])[0].abp)


@pytest.mark.parametrize(
    ("options", "key"), [({"subjects": 2}, "subjects"), ({"segments_per_subject": 1}, "segments")]
)
def test_write_pulsedb_bad_arguments(tmp_path, options, key):
    with pytest.raises(InputError, match=f"^{key}: "):
        write_pulsedb(tmp_path, **{"subjects": 3, "segments_per_subject": 2, **options})
    assert not list(tmp_path.iterdir())
