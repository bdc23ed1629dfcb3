"""Ingest: one part in, one shard and one cleaning report out, nothing lost uncounted."""

import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.signal
import wfdb
from real_record import REAL_RECORD

from ecg2abp.config import load_config, validate_config
from ecg2abp.data import cleaning
from ecg2abp.data.ingest import discover_parts, ingest_part, kept_nothing
from ecg2abp.data.readers import iter_records
from ecg2abp.data.shards import open_shard
from ecg2abp.data.synth import write_pulsedb, write_synthetic
from ecg2abp.errors import InputError

REAL_PART = REAL_RECORD
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def synthetic_part(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("raw")
    return write_synthetic(out, parts=1, records_per_part=12, seed=3, max_seconds=20.0)[0]


def ingest(part: Path, tmp_path: Path, **overrides) -> tuple[dict, Path, Path]:
    config = validate_config(overrides)
    shard, report = tmp_path / "part.h5", tmp_path / "part.parquet"
    return ingest_part(part, shard, report, config), shard, report


def test_a_plain_and_a_compressed_part_give_the_same_shard(synthetic_part, tmp_path):
    """The record-by-record reader of plain parts against loadmat's (compressed parts)."""
    packed = tmp_path / "raw" / synthetic_part.name
    packed.parent.mkdir()
    scipy.io.savemat(packed, {"p": scipy.io.loadmat(synthetic_part)["p"]}, do_compression=True)
    (tmp_path / "plain").mkdir()
    (tmp_path / "packed").mkdir()
    plain_summary, plain, plain_report = ingest(synthetic_part, tmp_path / "plain")
    packed_summary, packed_shard, packed_report = ingest(packed, tmp_path / "packed")
    assert plain_summary == packed_summary
    digests = [open_shard(p).attrs["content_sha256"] for p in (plain, packed_shard)]
    assert digests[0] == digests[1]
    pd.testing.assert_frame_equal(pd.read_parquet(plain_report), pd.read_parquet(packed_report))


def traced_peak_of_ingest(part: Path, out: Path) -> int:
    """Peak bytes allocated (numpy included) while ingesting `part`."""
    tracemalloc.start()
    try:
        ingest(part, out)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow  # two parts of 18 and 54 MB
def test_ingest_memory_does_not_grow_with_the_records_of_a_part(tmp_path):
    sizes = {}
    for records in (10, 30):  # of 10 min: both parts above the 16 MB blocks files are hashed in
        folder = tmp_path / f"r{records}"
        (part,) = write_synthetic(
            folder, parts=1, records_per_part=records, seed=5, min_seconds=600.0, max_seconds=600.0
        )
        sizes[records] = (part.stat().st_size, traced_peak_of_ingest(part, folder))
    (small_file, small_peak), (big_file, big_peak) = sizes[10], sizes[30]
    # the whole part in memory would add all the added data, its kept float32 signals half;
    # what grows here is the spool's read block (up to 16 MB: a quarter of the kept float32)
    assert big_peak - small_peak < 0.3 * (big_file - small_file)


def test_every_sample_is_kept_or_counted(synthetic_part, tmp_path):
    summary, shard_path, report_path = ingest(synthetic_part, tmp_path)
    report = pd.read_parquet(report_path)
    records = report[report["level"] == "record"]
    removed = records[[f"removed_{r}" for r in cleaning.REASONS]].sum(axis=1)
    assert (records["kept_samples"] + removed == records["n_samples"]).all()
    lengths = [len(r.ecg) for r in iter_records(synthetic_part)]
    assert records["n_samples"].tolist() == lengths
    part_row = report[report["level"] == "part"].iloc[0]
    numeric = records.drop(columns=["level", "record_id"]).sum()
    assert (part_row[numeric.index] == numeric).all()
    assert removed.sum() > 0  # the synthetic part carries artefacts
    shard = open_shard(shard_path)
    assert len(shard.ecg) == part_row["kept_samples"] == summary["kept_samples"]
    assert len(shard.windows) == part_row["n_windows"] == summary["windows"]


def test_shard_holds_the_kept_samples_of_each_record(synthetic_part, tmp_path):
    _, shard_path, _ = ingest(synthetic_part, tmp_path, cleaning={"bandpass_hz": None})
    shard = open_shard(shard_path)
    settings = cleaning.settings_from_config(validate_config({"cleaning": {"bandpass_hz": None}}))
    by_id = {r.record_id: r for r in iter_records(synthetic_part)}
    assert shard.records == list(by_id)
    for record_index, start, stop, source in shard.segments:
        record = by_id[shard.records[record_index]]
        kept = cleaning.clean_record(record.ecg, record.abp, record.fs, settings).segments
        assert (source, source + stop - start) in kept
        original = slice(source, source + stop - start)
        np.testing.assert_array_equal(
            shard.abp[start:stop], record.abp[original].astype(np.float32)
        )
        np.testing.assert_array_equal(
            shard.ecg[start:stop], record.ecg[original].astype(np.float32)
        )


def test_bandpass_is_causal_per_segment(synthetic_part, tmp_path):
    """Each kept segment is filtered on its own from rest: the stored ECG equals a 2nd-order
    Butterworth 0.5-40 Hz run by lfilter over the raw segment alone, not over the record."""
    _, shard_path, _ = ingest(synthetic_part, tmp_path)
    shard = open_shard(shard_path)
    by_id = {r.record_id: r for r in iter_records(synthetic_part)}
    sos = scipy.signal.butter(2, (0.5, 40.0), btype="bandpass", fs=125.0, output="sos")
    later = shard.segments[shard.segments[:, 3] > 0]  # segments that start inside a record
    assert len(later) >= 2
    for record, start, stop, source in later:
        raw = by_id[shard.records[record]].ecg
        piece = raw[source : source + stop - start]
        steady = scipy.signal.sosfilt_zi(sos) * piece[0]  # at rest on the segment's first sample
        alone, _ = scipy.signal.sosfilt(sos, piece, zi=steady)
        np.testing.assert_allclose(shard.ecg[start:stop], alone, rtol=1e-4, atol=1e-4)
        whole = scipy.signal.sosfilt(sos, np.nan_to_num(raw[: source + stop - start]))[source:]
        assert np.abs(shard.ecg[start:stop] - whole).max() > 1e-3  # the state was not carried


def test_real_record_keeps_its_clean_beats(tmp_path):
    _summary, shard_path, report_path = ingest(REAL_PART, tmp_path)
    report = pd.read_parquet(report_path)
    row = report[report["level"] == "record"].iloc[0]
    assert row["record_id"] == "mimic2_3975656_0013/0000"
    assert 90 * 125 <= row["kept_samples"] <= 115 * 125
    assert row["removed_abp_clipped"] > 0 and row["removed_abp_flat"] > 0
    shard = open_shard(shard_path)
    assert np.isnan(shard.ppg).all()  # no pleth in this record, and that rejects nothing
    assert shard.abp.min() > 40 and shard.abp.max() < 250


def test_short_records_are_counted_not_errors(tmp_path):
    part = write_synthetic(tmp_path, parts=1, records_per_part=24, seed=0, max_seconds=12.0)[0]
    _, _, report_path = ingest(part, tmp_path)
    records = pd.read_parquet(report_path).query("level == 'record'")
    short = records[records["n_samples"] < 88]
    assert len(short) >= 1
    assert (short["removed_short_segment"] + short["removed_nonfinite"] == short["n_samples"]).all()


def test_outputs_are_not_left_behind_on_bad_input(tmp_path):
    bad = tmp_path / "part_9.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 50)
    with pytest.raises(InputError, match=r"part_9\.mat"):
        ingest(bad, tmp_path)
    assert not list(tmp_path.glob("part.*")) and not list(tmp_path.glob(".part*"))


def test_discover_parts(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        discover_parts(tmp_path / "absent", "[Pp]art_*.mat")
    with pytest.raises(InputError, match="no part files"):
        discover_parts(tmp_path, "[Pp]art_*.mat")
    for name in ("part_2.mat", "part_10.mat", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert set(discover_parts(tmp_path, "[Pp]art_*.mat")) == {"part_2", "part_10"}


def test_parts_sharing_a_name_are_refused(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "part_1.mat").write_bytes(b"")
    with pytest.raises(
        InputError, match=r"a/part_1\.mat and .*b/part_1\.mat share the name part_1"
    ):
        discover_parts(tmp_path, "*/part_*.mat")


def write_wfdb(folder: Path, name: str, channels: dict[str, np.ndarray]) -> None:
    folder.mkdir(exist_ok=True)
    wfdb.wrsamp(
        name,
        fs=125.0,
        units=["mV"] * len(channels),
        sig_name=list(channels),
        p_signal=np.column_stack(list(channels.values())),
        fmt=["16"] * len(channels),
        write_dir=str(folder),
    )


def test_records_and_parts_that_keep_nothing_are_warned_of_and_listed(
    synthetic_part, tmp_path, caplog
):
    longest = max(iter_records(synthetic_part), key=lambda r: len(r.ecg))
    ecg, abp = np.nan_to_num(longest.ecg), np.nan_to_num(longest.abp, nan=100.0)
    mixed = tmp_path / "s0001"
    write_wfdb(mixed, "rec_a", {"II": ecg, "ABP": abp})
    write_wfdb(mixed, "rec_b", {"II": ecg})  # no ABP channel
    with caplog.at_level("WARNING", logger="ecg2abp.data.ingest"):
        _, _, report_path = ingest(mixed, tmp_path / "mixed")
    report = pd.read_parquet(report_path).set_index("record_id")
    assert report.loc["s0001/rec_b", "removed_missing_channel"] == len(ecg)
    assert report.loc["s0001/rec_a", "kept_samples"] > 0
    assert "record s0001/rec_b kept nothing (mostly missing_channel)" in caplog.text
    assert "rec_a" not in caplog.text
    assert kept_nothing(report_path) == ["s0001/rec_b (missing_channel)"]

    empty = tmp_path / "s0002"
    write_wfdb(empty, "rec_c", {"II": ecg})
    caplog.clear()
    with caplog.at_level("WARNING", logger="ecg2abp.data.ingest"):
        _, shard, report_path = ingest(empty, tmp_path / "empty")
    assert "s0002: cleaning kept nothing of its 1 records" in caplog.text
    assert kept_nothing(report_path) == ["s0002 (all 1 records)"]
    assert len(open_shard(shard).windows) == 0


def test_a_pulsedb_subset_is_ingested_with_its_subjects(tmp_path):
    (train, *_) = write_pulsedb(tmp_path / "raw", subjects=4, segments_per_subject=3, seed=2)
    records = list(iter_records(train))
    summary, shard_path, report_path = ingest(train, tmp_path)
    shard = open_shard(shard_path)
    assert summary["records"] == len(records) == 4  # 2 train subjects × 2 segments
    assert shard.records == [r.record_id for r in records]
    assert shard.subjects == [r.subject for r in records]
    assert shard.subjects[0].startswith("p000000_") and len(set(shard.subjects)) == 2
    report = pd.read_parquet(report_path)
    assert report.loc[report["level"] == "part", "n_samples"].item() == 4 * 1250


def test_parts_without_subjects_write_no_subjects(synthetic_part, tmp_path):
    _, shard_path, _ = ingest(synthetic_part, tmp_path)
    assert open_shard(shard_path).subjects is None


def test_the_pulsedb_overlay_finds_every_subset_file(tmp_path):
    write_pulsedb(tmp_path, subjects=3, segments_per_subject=2)
    (tmp_path / "notes.mat").write_bytes(b"")
    config = load_config(REPO / "config" / "config.yaml", REPO / "config" / "pulsedb.yaml")
    assert config["cleaning"]["bandpass_hz"] is None
    assert sorted(discover_parts(tmp_path, config["parts_glob"])) == [
        "AAMI_Cal_Subset",
        "AAMI_Test_Subset",
        "CalBased_Test_Subset",
        "CalFree_Test_Subset",
        "Train_Subset",
    ]
