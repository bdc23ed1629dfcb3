"""Inputs: part files, WFDB (lead choice, no ABP needed), CSV/Parquet with --fs, resampling."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from real_record import REAL_RECORD

from ecg2abp.data import readers
from ecg2abp.data.readers import iter_records
from ecg2abp.data.synth import write_synthetic
from ecg2abp.errors import InputError
from ecg2abp.serving.inputs import read_inputs

FS = 125.0


def read(path: Path, **options) -> list:
    return list(read_inputs(path, fs=FS, min_source_fs=80.0, **options))


@pytest.fixture(scope="module")
def real():
    return next(iter_records(REAL_RECORD))


def write_wfdb(folder: Path, name: str, signals: dict[str, np.ndarray], fs: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV" if n != "ABP" else "mmHg" for n in signals],
        sig_name=list(signals),
        p_signal=np.column_stack(list(signals.values())),
        fmt=["16"] * len(signals),
        adc_gain=[1000.0 if n != "ABP" else 10.0 for n in signals],
        baseline=[0] * len(signals),
        write_dir=str(folder),
    )
    return folder / f"{name}.hea"


def test_part_files_of_either_layout_give_every_record(tmp_path):
    for layout in ("kaggle", "uci"):
        parts = write_synthetic(
            tmp_path / layout,
            parts=1,
            records_per_part=3,
            layout=layout,
            min_seconds=8.0,
            max_seconds=9.0,
        )
        records = read(parts[0])
        assert [r.record_id for r in records] == [f"{parts[0].stem}/{i:04d}" for i in range(3)]
        assert all(r.abp() is not None and r.source_fs == FS for r in records)


def test_wfdb_record_lead_by_name_else_first_ecg_lead_abp_not_needed(tmp_path, real):
    ecg = real.ecg[:2500]
    header = write_wfdb(tmp_path, "rec", {"V": -ecg, "II": ecg}, 125.0)
    (only,) = read(header)
    np.testing.assert_allclose(only.ecg(), ecg, atol=1e-3)  # lead II chosen by default
    assert only.abp() is None
    (v,) = read(header, lead="V")
    np.testing.assert_allclose(v.ecg(), -ecg, atol=1e-3)
    fallback = write_wfdb(tmp_path / "v_only", "rec", {"PLETH": ecg, "V": ecg}, 125.0)
    np.testing.assert_allclose(read(fallback)[0].ecg(), ecg, atol=1e-3)
    with pytest.raises(InputError, match=r"rec\.hea: no lead 'AVF' \(channels: V, II\)"):
        read(header, lead="AVF")
    no_ecg = write_wfdb(tmp_path / "abp_only", "rec", {"ABP": real.abp[:2500]}, 125.0)
    with pytest.raises(InputError, match=r"rec\.hea: no ECG lead \(channels: ABP\)"):
        read(no_ecg)


def test_other_rates_are_resampled_and_samples_named_in_the_original(tmp_path, real):
    ecg = real.ecg[:2500]
    doubled = np.interp(np.arange(5000) / 2.0, np.arange(2500), ecg)
    table = tmp_path / "ecg.parquet"
    pd.DataFrame({"time": np.arange(5000) / 250.0, "ECG": doubled}).to_parquet(table)
    (record,) = read(table, source_fs=250.0)
    assert len(record.ecg()) == 2500 and record.source_fs == 250.0
    inner = slice(50, -50)  # away from the polyphase filter's edges
    assert np.corrcoef(record.ecg()[inner], ecg[inner])[0, 1] > 0.99
    np.testing.assert_array_equal(record.source_samples(np.array([0, 1, 10])), [0, 2, 20])
    wfdb_header = write_wfdb(tmp_path / "w", "fast", {"II": doubled}, 250.0)
    (from_wfdb,) = read(wfdb_header)
    assert from_wfdb.source_fs == 250.0 and len(from_wfdb.ecg()) == 2500


def test_csv_column_and_fs(tmp_path, real):
    csv = tmp_path / "one.csv"
    pd.DataFrame({"lead": real.ecg[:500]}).to_csv(csv, index=False)
    (record,) = read(csv, source_fs=125.0)  # the only column
    np.testing.assert_allclose(record.ecg(), real.ecg[:500])
    assert record.record_id == "one" and record.abp() is None
    with pytest.raises(InputError, match=r"one\.csv: a table of ECG samples needs --fs"):
        read(csv)
    with pytest.raises(InputError, match=r"one\.csv: no ECG column 'x' \(columns: lead\)"):
        read(csv, source_fs=125.0, column="x")


def test_bad_inputs_are_one_line_errors_naming_the_file(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a recording at all")
    with pytest.raises(InputError, match=r"junk\.bin: not a MATLAB or WFDB file"):
        read(junk)
    with pytest.raises(InputError, match=r"missing\.mat: no such file"):
        read(tmp_path / "missing.mat")
    slow = tmp_path / "slow.csv"
    pd.DataFrame({"ecg": np.zeros(100)}).to_csv(slow, index=False)
    with pytest.raises(InputError, match=r"slow\.csv: sampled at 50 Hz, too low .* 80 Hz"):
        read(slow, source_fs=50.0)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 truncated")
    with pytest.raises(InputError, match=r"broken\.parquet: cannot read table"):
        read(broken, source_fs=125.0)


def whole_at_rate(signal: np.ndarray, source_fs: float, fs: float = FS) -> np.ndarray:
    """The whole signal brought to `fs` in one go, as the readers do."""
    n_out = readers._output_length(len(signal), source_fs, fs)
    return readers._at_rate(signal, source_fs, fs, n_out)


def assert_read_in_blocks_as_whole(record, expected: np.ndarray) -> None:
    for size in (333, 1000, 1 << 20):
        chunked = np.concatenate(list(record.ecg_chunks(size)))
        np.testing.assert_allclose(chunked, expected, rtol=1e-12, equal_nan=True)
    assert record.length in (None, len(expected))


@pytest.mark.parametrize("source_fs", [360.0, 500.0, 257.3, 125.0])
def test_wfdb_read_in_blocks_equals_the_whole_record_resampled(tmp_path, real, source_fs):
    n = int(20 * source_fs)
    ecg = np.interp(np.arange(n) * 125.0 / source_fs, np.arange(len(real.ecg)), real.ecg)
    ecg[1000:1050] = np.nan
    header = write_wfdb(tmp_path, "rec", {"II": ecg, "ABP": np.full(n, 90.0)}, source_fs)
    (record,) = read(header)
    stored = wfdb.rdrecord(str(header.with_suffix(""))).p_signal[:, 0]  # as quantised on disk
    assert_read_in_blocks_as_whole(record, whole_at_rate(stored, source_fs))
    assert record.abp().shape == record.ecg().shape


def test_multi_frequency_and_multi_segment_wfdb_read_in_blocks(tmp_path, real):
    fast = np.interp(np.arange(5000) / 2.0, np.arange(2500), real.ecg[:2500])
    folder = tmp_path / "mf"
    folder.mkdir()
    wfdb.wrsamp(
        "mf",
        fs=125,
        units=["mV", "mmHg"],
        sig_name=["II", "ABP"],
        e_p_signal=[fast, real.abp[:2500]],
        samps_per_frame=[2, 1],
        fmt=["16", "16"],
        write_dir=str(folder),
    )
    (record,) = read(folder / "mf.hea")
    stored = wfdb.rdrecord(str(folder / "mf"), smooth_frames=False).e_p_signal[0]
    assert record.source_fs == 250.0
    assert_read_in_blocks_as_whole(record, whole_at_rate(stored, 250.0))
    np.testing.assert_allclose(record.abp(), real.abp[:2500], atol=0.01)
    segments = tmp_path / "segments"
    write_wfdb(segments, "seg_0001", {"II": real.ecg[:4000]}, 125.0)
    write_wfdb(segments, "seg_0002", {"II": real.ecg[4000:6000]}, 125.0)
    (segments / "whole.hea").write_text("whole/2 1 125 6000\nseg_0001 4000\nseg_0002 2000\n")
    (joined,) = read(segments)
    assert joined.record_id == "segments/whole"
    assert_read_in_blocks_as_whole(joined, wfdb.rdrecord(str(segments / "whole")).p_signal[:, 0])


def test_tables_read_in_blocks_equal_the_whole_column_resampled(tmp_path, real):
    ecg = real.ecg[:7200].copy()
    ecg[100] = np.nan
    csv, parquet = tmp_path / "ecg.csv", tmp_path / "ecg.parquet"
    frame = pd.DataFrame({"time": np.arange(len(ecg)) / 360.0, "ECG": ecg})
    frame.to_csv(csv, index=False)
    frame.set_index("time").to_parquet(parquet)  # a stored index is not a column
    for path, source_fs in ((csv, 360.0), (parquet, 500.0), (csv, 125.0)):
        (record,) = read(path, source_fs=source_fs)
        expected = whole_at_rate(pd.read_csv(csv)["ECG"].to_numpy(), source_fs)
        assert_read_in_blocks_as_whole(record, expected)
    (only,) = read(parquet, source_fs=500.0, column="ecg")
    assert only.length == readers._output_length(len(ecg), 500.0, FS)


def test_part_records_read_in_blocks_at_another_model_rate(tmp_path):
    (part,) = write_synthetic(
        tmp_path, parts=1, records_per_part=2, layout="kaggle", min_seconds=30.0, max_seconds=40.0
    )
    wholes = list(iter_records(part, target_fs=125.0))
    records = list(read_inputs(part, fs=100.0, min_source_fs=80.0))
    for whole, record in zip(wholes, records, strict=True):
        assert_read_in_blocks_as_whole(record, whole_at_rate(whole.ecg, 125.0, 100.0))
        np.testing.assert_array_equal(record.abp(), whole_at_rate(whole.abp, 125.0, 100.0))


def test_a_table_broken_midway_is_a_one_line_error_when_read(tmp_path):
    csv = tmp_path / "torn.csv"
    csv.write_text("ecg\n" + "0.1\n" * 5000 + '"unterminated\n' + "0.2\n" * 10)
    (record,) = read(csv, source_fs=125.0)
    with pytest.raises(InputError, match=r"torn\.csv: cannot read table"):
        record.ecg()


def test_decimal_commas_and_semicolons_are_read_as_numbers(tmp_path, real):
    ecg = np.round(real.ecg[:500], 4)
    text = [f"{value:.4f}".replace(".", ",") for value in ecg]
    quoted = tmp_path / "quoted.csv"
    quoted.write_text("ecg\n" + "".join(f'"{value}"\n' for value in text))
    european = tmp_path / "european.csv"
    european.write_text("time;ECG\n" + "".join(f"{i};{v}\n" for i, v in enumerate(text)))
    for path in (quoted, european):
        (record,) = read(path, source_fs=125.0)
        np.testing.assert_allclose(record.ecg(), ecg, atol=1e-12)
    unquoted = tmp_path / "unquoted.csv"
    unquoted.write_text("ecg\n" + "".join(f"{value}\n" for value in text))
    with pytest.raises(InputError, match=r"unquoted\.csv: rows hold more fields than the header"):
        read(unquoted, source_fs=125.0)


def test_without_lead_ii_the_first_ecg_lead_is_read_everywhere(tmp_path, real):
    ecg = real.ecg[:2500]
    mostly_zero = np.where(np.arange(2500) < 2300, 0.0, ecg)
    header = write_wfdb(tmp_path, "rec", {"PLETH": ecg, "MCL1": ecg, "V": mostly_zero}, 125.0)
    (record,) = read(header)
    assert (record.lead, record.other_leads) == ("MCL1", ("V",))
    np.testing.assert_allclose(record.ecg(), ecg, atol=1e-3)
    (ingested,) = iter_records(header, ecg_lead="II")  # what ingest reads: the same lead
    np.testing.assert_allclose(ingested.ecg, ecg, atol=1e-3)
    assert readers.ecg_leads(["ABP", "aVF", "V5", "ECG", "mcl1", "RESP", "PLETH"]) == [
        "aVF",
        "V5",
        "ECG",
        "mcl1",
    ]
