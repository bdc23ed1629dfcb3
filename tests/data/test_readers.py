"""Readers: format detection by content, the Kaggle / UCI / WFDB layouts, bad input."""

import tracemalloc
from fractions import Fraction
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import wfdb
from real_record import REAL_RECORD
from scipy.signal import resample_poly

from ecg2abp.data import readers
from ecg2abp.data.readers import Record, detect_format, iter_records
from ecg2abp.errors import InputError

REAL_PART = REAL_RECORD


def known_matrix(n: int, offset: float = 0.0) -> np.ndarray:
    """A 3×N [PPG, ABP, ECG] matrix whose rows are told apart by their values."""
    ramp = np.arange(n, dtype=np.float64) + offset
    return np.stack([ramp / 1000.0, 100.0 + ramp, -ramp])


def write_kaggle(path: Path, matrices: list, variable: str = "p") -> Path:
    cell = np.empty((1, len(matrices)), dtype=object)
    for index, matrix in enumerate(matrices):
        cell[0, index] = matrix
    scipy.io.savemat(path, {variable: cell})
    return path


def write_uci(path: Path, stored: list, variable: str | None = None, shape=None) -> Path:
    """A MATLAB v7.3 file: `stored` arrays go in `#refs#` as given (MATLAB keeps them N×3)."""
    with h5py.File(path, "w", userblock_size=512) as file:
        refs = file.create_group("#refs#")
        references = [refs.create_dataset(f"r{i}", data=a).ref for i, a in enumerate(stored)]
        cell = np.array(references, dtype=h5py.ref_dtype).reshape(shape or (-1, 1))
        file.create_dataset(variable or path.stem, data=cell)
    with path.open("r+b") as raw:
        raw.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116))
    return path


def message_of(path: Path, **options) -> str:
    """The InputError message reading `path` gives (it must be one line)."""
    with pytest.raises(InputError) as caught:
        list(iter_records(path, **options))
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- detection ------------------------------------------------------------------------------------


def test_detect_format_uses_content_not_name(tmp_path):
    kaggle = write_kaggle(tmp_path / "k.mat", [known_matrix(10)])
    uci = write_uci(tmp_path / "u.mat", [known_matrix(10).T])
    assert detect_format(kaggle) == "kaggle"
    assert detect_format(uci) == "uci"
    assert detect_format(kaggle.rename(tmp_path / "k.bin")) == "kaggle"
    assert detect_format(uci.rename(tmp_path / "u.bin")) == "uci"
    assert detect_format(tmp_path) == "wfdb"
    (tmp_path / "rec.hea").write_text("rec 0 125 0\n")
    assert detect_format(tmp_path / "rec.hea") == "wfdb"


@pytest.mark.parametrize(
    "content",
    [b"p = [1 2 3]\nnot a mat file\n", np.random.default_rng(0).bytes(4096), b""],
    ids=["text", "random", "empty"],
)
def test_not_a_matlab_file(tmp_path, content):
    path = tmp_path / "part_1.mat"
    path.write_bytes(content)
    assert message_of(path) == f"{path}: not a MATLAB or WFDB file"


def test_plain_hdf5_without_user_block_is_not_matlab(tmp_path):
    path = tmp_path / "Part_1.mat"
    with h5py.File(path, "w") as file:
        file["Part_1"] = np.zeros(3)
    assert "not a MATLAB or WFDB file" in message_of(path)


def test_missing_path(tmp_path):
    path = tmp_path / "nowhere" / "part_1.mat"
    assert message_of(path) == f"{path}: does not exist"


def test_bad_target_rate(tmp_path):
    path = write_kaggle(tmp_path / "part_1.mat", [known_matrix(10)])
    for rate in (0.0, -125.0, float("nan")):
        assert "target_fs" in message_of(path, target_fs=rate)


# --- Kaggle layout --------------------------------------------------------------------------------


def test_kaggle_rows_ids_and_types(tmp_path):
    matrices = [known_matrix(50), known_matrix(7, offset=1e4), known_matrix(30).astype(np.float32)]
    path = write_kaggle(tmp_path / "part_7.mat", matrices)
    records = list(iter_records(path))
    assert [r.record_id for r in records] == ["part_7/0000", "part_7/0001", "part_7/0002"]
    for record, matrix in zip(records, matrices, strict=True):
        assert isinstance(record, Record)
        assert record.fs == 125.0
        for signal, row in ((record.ppg, 0), (record.abp, 1), (record.ecg, 2)):
            assert signal.dtype == np.float64 and signal.ndim == 1
            assert signal.flags["C_CONTIGUOUS"]
            np.testing.assert_array_equal(signal, matrix[row])


def test_real_mimic_part():
    records = list(iter_records(REAL_PART))
    assert len(records) == 1
    record = records[0]
    assert record.record_id == "mimic2_3975656_0013/0000"
    assert record.ecg.shape == record.abp.shape == record.ppg.shape == (18075,)
    assert np.isnan(record.ppg).all()
    assert 60.0 < np.nanmedian(record.abp[2000:15000]) < 200.0


def test_a_compressed_part_is_loaded_once_a_plain_one_record_by_record(tmp_path, monkeypatch):
    matrices = [known_matrix(20, offset=i) for i in range(5)]
    plain = write_kaggle(tmp_path / "part_1.mat", matrices)
    packed = tmp_path / "part_2.mat"
    scipy.io.savemat(packed, {"p": scipy.io.loadmat(plain)["p"]}, do_compression=True)
    calls = []
    original = scipy.io.loadmat

    def counting_loadmat(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(readers.scipy.io, "loadmat", counting_loadmat)
    assert len(list(iter_records(packed))) == 5
    assert len(calls) == 1
    assert len(list(iter_records(plain))) == 5
    assert len(calls) == 1


def as_loadmat_gives(path: Path) -> list[np.ndarray]:
    return list(scipy.io.loadmat(path)["p"].reshape(-1))


@pytest.mark.parametrize(
    "stored",
    [np.float64, np.float32, np.int16, np.uint8],
    ids=["double", "single", "int16", "uint8"],
)
def test_plain_parts_read_record_by_record_as_loadmat_reads_them(tmp_path, stored):
    matrices = [known_matrix(n, offset=n).astype(stored) for n in (2, 7, 300)]
    path = write_kaggle(tmp_path / "part_3.mat", matrices)
    located = readers._plain_cells(path)
    assert located is not None and len(located) == 3
    read = [matrix for _, matrix in readers._kaggle_matrices(path)]
    for mine, theirs in zip(read, as_loadmat_gives(path), strict=True):
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize(
    "cell",
    [
        [known_matrix(5), np.array(["abc"])],  # text
        [known_matrix(5), known_matrix(4) + 1j],  # complex
        [known_matrix(5), np.zeros((3, 4), dtype=bool)],  # logical
        [known_matrix(5), np.zeros((0, 0))],  # empty
        [known_matrix(5), np.zeros((3, 1), dtype=np.uint8)],  # 3 bytes, packed into its tag
    ],
    ids=["text", "complex", "logical", "empty", "packed"],
)
def test_cells_loadmat_types_otherwise_are_left_to_it(tmp_path, cell):
    path = write_kaggle(tmp_path / "part_1.mat", cell)
    assert readers._plain_cells(path) is None


def test_kaggle_reader_lets_go_of_handed_out_records(tmp_path):
    n_records, n_samples = 16, 40_000
    path = write_kaggle(tmp_path / "part_1.mat", [known_matrix(n_samples)] * n_records)
    part_bytes = n_records * 3 * n_samples * 8
    tracemalloc.start()
    try:
        records = iter_records(path)
        for _ in range(3 * n_records // 4):
            next(records)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 0.5 * part_bytes


def test_kaggle_missing_variable_lists_what_is_there(tmp_path):
    path = write_kaggle(tmp_path / "part_1.mat", [known_matrix(5)], variable="signals")
    assert message_of(path) == f"{path}: no variable 'p' (found: signals)"


@pytest.mark.parametrize(
    ("bad", "shown"),
    [(np.zeros((2, 40)), "2×40"), (np.arange(40.0), "1×40"), (np.array(["abc"]), "<U3")],
    ids=["two-rows", "one-dimensional", "text"],
)
def test_kaggle_record_of_wrong_shape_names_the_record(tmp_path, bad, shown):
    path = write_kaggle(tmp_path / "part_2.mat", [known_matrix(5), known_matrix(5), bad])
    message = message_of(path)
    assert message.startswith(f"{path}: record part_2/0002: expected a numeric 3×N matrix")
    assert shown in message


def test_kaggle_empty_part(tmp_path):
    path = tmp_path / "part_1.mat"
    scipy.io.savemat(path, {"p": np.empty((1, 0), dtype=object)})
    assert message_of(path) == f"{path}: variable 'p' holds no records"


def test_kaggle_variable_not_a_cell(tmp_path):
    path = tmp_path / "part_1.mat"
    scipy.io.savemat(path, {"p": known_matrix(5)})
    assert "is not a cell array" in message_of(path)


def test_truncated_kaggle_file(tmp_path):
    path = write_kaggle(tmp_path / "part_1.mat", [known_matrix(2000) for _ in range(4)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert message_of(path).startswith(f"{path}: cannot read MATLAB file (")


def test_kaggle_at_another_rate(tmp_path):
    t = np.arange(1250) / 125.0
    slow = np.sin(2 * np.pi * 1.0 * t)
    path = write_kaggle(tmp_path / "part_1.mat", [np.stack([slow, 100 + 20 * slow, slow])])
    (record,) = iter_records(path, target_fs=250.0)
    assert record.fs == 250.0
    assert record.abp.size == record.ecg.size == record.ppg.size == 2500
    expected = 100 + 20 * np.sin(2 * np.pi * 1.0 * np.arange(2500) / 250.0)
    np.testing.assert_allclose(record.abp[100:-100], expected[100:-100], atol=0.2)


# --- UCI layout -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(-1, 1), (1, -1)], ids=["Rx1", "1xR"])
def test_uci_records_are_transposed_back(tmp_path, shape):
    matrices = [known_matrix(40), known_matrix(3, offset=500.0)]
    path = write_uci(tmp_path / "Part_2.mat", [m.T for m in matrices], shape=shape)
    records = list(iter_records(path))
    assert [r.record_id for r in records] == ["Part_2/0000", "Part_2/0001"]
    for record, matrix in zip(records, matrices, strict=True):
        assert record.fs == 125.0
        np.testing.assert_array_equal(record.ppg, matrix[0])
        np.testing.assert_array_equal(record.abp, matrix[1])
        np.testing.assert_array_equal(record.ecg, matrix[2])


def test_uci_reads_lazily_and_names_a_bad_record(tmp_path):
    stored = [known_matrix(40).T, known_matrix(40).T, np.zeros((40, 2))]
    path = write_uci(tmp_path / "Part_1.mat", stored)
    records = iter_records(path)
    assert next(records).record_id == "Part_1/0000"
    assert next(records).record_id == "Part_1/0001"
    with pytest.raises(InputError) as caught:
        next(records)
    assert str(caught.value) == (
        f"{path}: record Part_1/0002: expected a numeric 3×N matrix, got 2×40 float64"
    )


def test_uci_renamed_file_uses_its_only_variable(tmp_path):
    path = write_uci(tmp_path / "my_copy.mat", [known_matrix(10).T], variable="Part_3")
    (record,) = iter_records(path)
    assert record.record_id == "my_copy/0000"
    np.testing.assert_array_equal(record.abp, known_matrix(10)[1])


def test_uci_ambiguous_variables(tmp_path):
    path = write_uci(tmp_path / "my_copy.mat", [known_matrix(10).T], variable="Part_3")
    with h5py.File(path, "a") as file:
        file["other"] = np.zeros(3)
    assert message_of(path) == f"{path}: no variable 'my_copy' (found: Part_3, other)"


def test_uci_empty_cell_as_matlab_writes_it(tmp_path):
    path = tmp_path / "Part_1.mat"
    with h5py.File(path, "w", userblock_size=512) as file:
        empty = file.create_dataset("Part_1", data=np.array([0, 0], dtype=np.uint64))
        empty.attrs["MATLAB_class"] = np.bytes_("cell")
        empty.attrs["MATLAB_empty"] = np.uint8(1)
    assert message_of(path) == f"{path}: variable 'Part_1' holds no records"


def test_uci_zero_records(tmp_path):
    path = write_uci(tmp_path / "Part_1.mat", [], shape=(0, 1))
    assert message_of(path) == f"{path}: variable 'Part_1' holds no records"


def test_uci_variable_not_a_cell(tmp_path):
    path = tmp_path / "Part_1.mat"
    with h5py.File(path, "w", userblock_size=512) as file:
        file["Part_1"] = known_matrix(10).T
    assert message_of(path) == f"{path}: variable 'Part_1' is not a cell array of records"


def test_truncated_uci_file(tmp_path):
    path = write_uci(tmp_path / "Part_1.mat", [known_matrix(5000).T for _ in range(4)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert message_of(path).startswith(f"{path}")
    assert "cannot read" in message_of(path)


# --- WFDB -----------------------------------------------------------------------------------------


def slow_wave(n: int, fs: float, hz: float = 1.5) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(n) / fs)


def write_wfdb(folder: Path, name: str, fs: float, channels: dict[str, np.ndarray]) -> None:
    folder.mkdir(exist_ok=True)
    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV"] * len(channels),
        sig_name=list(channels),
        p_signal=np.column_stack(list(channels.values())),
        fmt=["16"] * len(channels),
        write_dir=str(folder),
    )


def test_wfdb_folder_reads_every_record_by_name(tmp_path):
    folder = tmp_path / "s00001"
    wave = slow_wave(1000, 125.0)
    write_wfdb(folder, "rec_b", 125.0, {"II": wave, "ABP": 90 + 30 * wave, "PLETH": 1 + wave})
    write_wfdb(folder, "rec_a", 125.0, {"abp": 80 + 10 * wave, "ii": -wave})
    records = list(iter_records(folder))
    assert [r.record_id for r in records] == ["s00001/rec_a", "s00001/rec_b"]
    rec_a, rec_b = records
    np.testing.assert_allclose(rec_b.ecg, wave, atol=1e-3)
    np.testing.assert_allclose(rec_b.abp, 90 + 30 * wave, atol=1e-2)
    np.testing.assert_allclose(rec_b.ppg, 1 + wave, atol=1e-3)
    np.testing.assert_allclose(rec_a.ecg, -wave, atol=1e-3)
    assert rec_a.ppg.shape == (1000,) and np.isnan(rec_a.ppg).all()
    (single,) = iter_records(folder / "rec_b.hea")
    assert single.record_id == "s00001/rec_b"
    np.testing.assert_array_equal(single.abp, rec_b.abp)


def test_wfdb_lead_preference(tmp_path):
    folder = tmp_path / "leads"
    wave = slow_wave(500, 125.0)
    write_wfdb(folder, "r", 125.0, {"V": 3 * wave, "I": 2 * wave, "ART": 100 + wave})
    (default,) = iter_records(folder)  # no lead II: the record's first ECG lead
    np.testing.assert_allclose(default.ecg, 3 * wave, atol=1e-3)
    np.testing.assert_allclose(default.abp, 100 + wave, atol=1e-3)
    (chosen,) = iter_records(folder, ecg_lead="i")
    np.testing.assert_allclose(chosen.ecg, 2 * wave, atol=1e-3)


def test_wfdb_missing_ecg_and_abp_are_nan(tmp_path):
    folder = tmp_path / "pleth_only"
    write_wfdb(folder, "r", 125.0, {"PLETH": slow_wave(300, 125.0), "RESP": slow_wave(300, 125.0)})
    (record,) = iter_records(folder)
    assert record.ecg.shape == record.abp.shape == (300,)
    assert np.isnan(record.ecg).all() and np.isnan(record.abp).all()
    assert not np.isnan(record.ppg).any()


def test_wfdb_record_at_another_rate(tmp_path):
    folder = tmp_path / "fast"
    n = 2000
    write_wfdb(folder, "r", 250.0, {"II": slow_wave(n, 250.0), "ABP": 90 + slow_wave(n, 250.0)})
    (record,) = iter_records(folder)
    assert record.fs == 125.0
    assert record.ecg.shape == record.abp.shape == record.ppg.shape == (1000,)
    np.testing.assert_allclose(record.ecg[50:-50], slow_wave(1000, 125.0)[50:-50], atol=0.01)


def test_wfdb_multi_frequency_record(tmp_path):
    folder = tmp_path / "multi_freq"
    folder.mkdir()
    frames = 1000
    ecg_fast = slow_wave(2 * frames, 250.0)
    abp = 90 + 20 * slow_wave(frames, 125.0)
    wfdb.wrsamp(
        "mf",
        fs=125,
        units=["mV", "mmHg"],
        sig_name=["II", "ABP"],
        e_p_signal=[ecg_fast, abp],
        samps_per_frame=[2, 1],
        fmt=["16", "16"],
        write_dir=str(folder),
    )
    (record,) = iter_records(folder)
    assert record.ecg.shape == record.abp.shape == (frames,)
    np.testing.assert_allclose(record.ecg[50:-50], slow_wave(frames, 125.0)[50:-50], atol=0.01)
    np.testing.assert_allclose(record.abp, abp, atol=1e-2)


def test_wfdb_segments_of_a_multi_segment_record_are_not_read_twice(tmp_path):
    folder = tmp_path / "s00002"
    wave = slow_wave(600, 125.0)
    write_wfdb(folder, "seg_0001", 125.0, {"II": wave[:400], "ABP": 90 + wave[:400]})
    write_wfdb(folder, "seg_0002", 125.0, {"II": wave[400:], "ABP": 90 + wave[400:]})
    (folder / "whole.hea").write_text("whole/2 2 125 600\nseg_0001 400\nseg_0002 200\n")
    records = list(iter_records(folder))
    assert [r.record_id for r in records] == ["s00002/whole"]
    np.testing.assert_allclose(records[0].ecg, wave, atol=1e-3)


def test_wfdb_bad_input(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert message_of(empty) == f"{empty}: folder holds no WFDB records (*.hea)"
    folder = tmp_path / "broken"
    write_wfdb(folder, "r", 125.0, {"II": slow_wave(100, 125.0)})
    (folder / "r.dat").unlink()
    assert message_of(folder).startswith(f"{folder / 'r.hea'}: record broken/r: cannot read")


@pytest.mark.parametrize("fs", [360.0, 500.0, 257.3, 125.0])
def test_resampling_block_by_block_equals_resampling_the_whole_signal(fs):
    rng = np.random.default_rng(int(fs))
    signal = rng.normal(size=7000)
    signal[3000:3040] = np.nan  # NaN spreads over the filter's reach, the same way
    n_out = readers._output_length(len(signal), fs, 125.0)
    ratio = Fraction(125.0 / fs).limit_denominator(readers.MAX_RATE_TERMS)
    whole = resample_poly(signal, ratio.numerator, ratio.denominator)[:n_out]
    whole = np.concatenate([whole, np.full(n_out - len(whole), np.nan)])  # a ratio falling short
    for sizes in ([1, 2, 3] * 40 + [997] * 8, rng.integers(1, 1500, 30).tolist(), [len(signal)]):
        resampler, pieces, first = readers.Resampler(fs, 125.0), [], 0
        for size in sizes:
            pieces.append(resampler.push(signal[first : first + size]))
            first += size
        pieces.append(resampler.push(signal[first:], final=True))
        chunked = np.concatenate(pieces)
        assert chunked.shape == (n_out,)
        np.testing.assert_array_equal(np.isnan(chunked), np.isnan(whole))
        np.testing.assert_allclose(chunked, whole, rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(readers._at_rate(signal, fs, 125.0, n_out), chunked)


# --- PulseDB subsets ------------------------------------------------------------------------------


def write_subset(path: Path, signals: np.ndarray, subjects: list[str], **fields) -> Path:
    """A PulseDB subset as MATLAB v7.3 saves it: struct `Subset`, `Signals` (N×3×L) stored
    transposed, `Subject` a cell of char stored as (1, N) references; `fields` replace or add
    struct fields as given (HDF5 order)."""
    with h5py.File(path, "w", userblock_size=512) as file:
        refs = file.create_group("#refs#")
        subset = file.create_group("Subset")
        subset.attrs["MATLAB_class"] = np.bytes_("struct")
        texts = [np.array([[ord(c)] for c in name], dtype=np.uint16) for name in subjects]
        references = [refs.create_dataset(f"s{i}", data=t).ref for i, t in enumerate(texts)]
        stored = {
            "Signals": np.asarray(signals).T,
            "Subject": np.array(references, dtype=h5py.ref_dtype).reshape(1, -1),
            "SBP": np.arange(len(subjects), dtype=np.float64).reshape(1, -1),
            **fields,
        }
        for name, data in stored.items():
            if data is not None:
                subset.create_dataset(name, data=data)
    with path.open("r+b") as raw:
        raw.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116))
    return path


def known_signals(n: int, length: int = 1250) -> np.ndarray:
    """N×3×L segments whose rows (ECG_F, PPG_F, ABP_Raw) and segments are told apart."""
    ramp = np.arange(length, dtype=np.float64)
    return np.stack([np.stack([ramp + i, -ramp - i, 100.0 + i + ramp / length]) for i in range(n)])


def test_pulsedb_subset_is_detected_by_content_and_read_segment_by_segment(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "PULSEDB_SLICE", 2)  # 5 segments: slices of 2, 2 and 1
    subjects = ["p000188_0", "p000188_0", "p000190_0", "p000004_1", "p000004_1"]
    signals = known_signals(5)
    path = write_subset(tmp_path / "renamed.bin", signals, subjects)
    assert detect_format(path) == "pulsedb"
    records = list(iter_records(path))
    assert [r.subject for r in records] == subjects
    assert [r.record_id for r in records] == [
        f"{subject}/renamed/{row:06d}" for row, subject in enumerate(subjects)
    ]
    for record, rows in zip(records, signals, strict=True):
        assert record.fs == 125.0
        for name, row in zip(("ecg", "ppg", "abp"), rows, strict=True):
            assert getattr(record, name).dtype == np.float64
            np.testing.assert_array_equal(getattr(record, name), row)


def test_pulsedb_reader_holds_one_slice_not_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "PULSEDB_SLICE", 16)
    n_segments = 480
    path = write_subset(tmp_path / "Train_Subset.mat", known_signals(n_segments), ["a_0"] * 480)
    signal_bytes = n_segments * 3 * 1250 * 8
    tracemalloc.start()
    try:
        for _ in iter_records(path):
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.1 * signal_bytes  # a slice is 16 / 480 of it


def test_pulsedb_values_reads_a_numeric_field(tmp_path):
    path = write_subset(tmp_path / "Train_Subset.mat", known_signals(3), ["a_0"] * 3)
    np.testing.assert_array_equal(readers.pulsedb_values(path, "SBP"), [0.0, 1.0, 2.0])
    with pytest.raises(InputError, match=r"Train_Subset.mat: no field Subset.DBP \(found: "):
        readers.pulsedb_values(path, "DBP")


def test_pulsedb_at_another_rate(tmp_path):
    signals = known_signals(2, length=1000)
    (record, _) = iter_records(
        write_subset(tmp_path / "s.mat", signals, ["a_0"] * 2), target_fs=250.0
    )
    assert record.fs == 250.0 and record.abp.shape == (2000,)
    np.testing.assert_allclose(record.abp, resample_poly(signals[0, 2], 2, 1), rtol=1e-12)


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({"Signals": None}, "no field Subset.Signals (found: SBP, Subject)"),
        ({"Signals": np.zeros((1250, 2, 3))}, "Subset.Signals: expected a numeric N×3×L array"),
        ({"Signals": np.zeros((1250, 3))}, "Subset.Signals: expected a numeric N×3×L array"),
        ({"Subject": None}, "no field Subset.Subject"),
        ({"Subject": np.zeros((1, 2))}, "Subset.Subject: expected 3×1 (one per segment"),
        ({"Subject": np.zeros((1, 3))}, "Subset.Subject: not a cell array of char"),
    ],
)
def test_pulsedb_malformed_field_names_file_and_key(tmp_path, fields, shown):
    path = write_subset(tmp_path / "Train_Subset.mat", known_signals(3, 20), ["a_0"] * 3, **fields)
    message = message_of(path)
    assert message.startswith(f"{path}: ") and shown in message


def test_pulsedb_empty_subset_as_matlab_writes_it(tmp_path):
    path = write_subset(tmp_path / "AAMI_Test_Subset.mat", known_signals(1, 20), ["a_0"])
    with h5py.File(path, "a") as file:
        del file["Subset/Signals"]
        empty = file["Subset"].create_dataset("Signals", data=np.array([0, 3, 1250], np.uint64))
        empty.attrs["MATLAB_empty"] = np.uint8(1)
    assert message_of(path) == f"{path}: Subset.Signals holds no segments"


def test_pulsedb_subject_that_is_not_text_names_its_segment(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "PULSEDB_SLICE", 2)
    path = write_subset(tmp_path / "Train_Subset.mat", known_signals(3, 20), ["a_0"] * 3)
    with h5py.File(path, "a") as file:
        bad = file["#refs#"].create_dataset("bad", data=np.zeros((2, 2)))
        file["Subset/Subject"][0, 2] = bad.ref
    records = iter_records(path)
    assert [next(records).subject for _ in range(2)] == ["a_0", "a_0"]  # the first slice
    with pytest.raises(InputError, match=r"Subset.Subject segment 2: expected a non-empty char"):
        list(records)


def test_pulsedb_truncated_file(tmp_path):
    path = write_subset(tmp_path / "Train_Subset.mat", known_signals(40), ["a_0"] * 40)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    message = message_of(path)
    assert message.startswith(f"{path}: ")


@pytest.mark.parametrize(
    ("folder", "name", "subject"),
    [
        ("p000188", "p000188-2134-04-21-17-50", "p000188"),  # MIMIC-III matched subset
        ("waveforms", "p000188-2134-04-21-17-50", "p000188"),
        ("p000188", "3544749_0001", "p000188"),  # a segment file in its patient's folder
        ("s00001", "rec_a", None),
        ("p00", "p1234", None),
    ],
)
def test_wfdb_subject_from_record_or_folder_name(tmp_path, folder, name, subject):
    write_wfdb(tmp_path / folder, name, 125.0, {"II": slow_wave(200, 125.0)})
    (record,) = iter_records(tmp_path / folder)
    assert record.subject == subject
    assert readers.wfdb_subject(Path(folder), name) == subject


def test_matlab_parts_know_no_subject(tmp_path):
    (record,) = iter_records(write_kaggle(tmp_path / "part_1.mat", [known_matrix(50)]))
    assert record.subject is None
