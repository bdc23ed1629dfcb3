"""Shards: the window index, the HDF5 round trip, memory mapping, atomic writes, bad files."""

import hashlib
import json
from dataclasses import replace

import h5py
import numpy as np
import pytest
from shard_factory import Piece, expected_starts, random_record, write_test_shard

from ecg2abp.data.shards import (
    content_sha256,
    open_shard,
    window_starts,
    windows_per_segment,
    write_shard,
)
from ecg2abp.errors import InputError

WINDOW = 8


def random_segment_table(rng: np.random.Generator) -> np.ndarray:
    """Segments (record, start, stop, source_start) with random lengths and gaps, some empty."""
    n = int(rng.integers(0, 12))
    lengths = rng.integers(0, 60, n)
    gaps = rng.integers(0, 5, n)
    stops = np.cumsum(lengths + gaps)
    return np.stack([np.arange(n), stops - lengths, stops, np.zeros(n, np.int64)], 1)


def test_window_starts_never_cross_a_segment_end_and_count_every_window():
    rng = np.random.default_rng(7)
    for _ in range(300):
        segments = random_segment_table(rng)
        window, stride = int(rng.integers(1, 20)), int(rng.integers(1, 8))
        starts = window_starts(segments, window, stride)
        expected = [np.arange(start, stop - window + 1, stride) for _, start, stop, _ in segments]
        np.testing.assert_array_equal(starts, np.concatenate([np.zeros(0), *expected]))
        lengths = segments[:, 2] - segments[:, 1]
        fits = lengths >= window
        assert len(starts) == sum((lengths[fits] - window) // stride + 1)
        inside = (segments[:, 1][None, :] <= starts[:, None]) & (
            starts[:, None] + window <= segments[:, 2][None, :]
        )
        assert inside.any(axis=1).all()


def test_window_starts_of_an_empty_table_is_empty():
    assert len(window_starts(np.zeros((0, 4), np.int64), 8, 1)) == 0


def three_records() -> dict[str, list[Piece]]:
    rng = np.random.default_rng(0)
    records = {
        "part_1/0000": random_record(rng, [30, 12]),
        "part_1/0001": [],  # nothing kept: still listed
        "part_1/0002": random_record(rng, [5, 21]),  # a segment shorter than one window
    }
    no_ppg = records["part_1/0002"][1]
    records["part_1/0002"][1] = Piece(no_ppg.source_start, no_ppg.ecg, no_ppg.abp, None)
    return records


def test_write_then_open_round_trips_datasets_dtypes_and_attrs(tmp_path):
    records = three_records()
    path = tmp_path / "part_1.h5"
    n_windows = write_test_shard(path, records, window=WINDOW, stride=2, cleaning={"x": 1})
    expected = expected_starts(records, WINDOW, 2)
    assert n_windows == len(expected)

    with h5py.File(path, "r") as h5:
        for name in ("ecg", "abp", "ppg"):
            assert h5[name].dtype == np.float32
            assert h5[name].chunks is None and h5[name].compression is None  # mappable
        assert h5["segments"].dtype == np.int64
        assert h5["windows"].dtype == np.uint32

    shard = open_shard(path)
    pieces = [piece for record in records.values() for piece in record]
    for name in ("ecg", "abp"):
        joined = np.concatenate([getattr(piece, name) for piece in pieces]).astype(np.float32)
        np.testing.assert_array_equal(getattr(shard, name), joined)
    assert np.isnan(shard.ppg[-21:]).all() and not np.isnan(shard.ppg[:-21]).any()
    assert shard.records == list(records)
    assert all(type(record_id) is str for record_id in shard.records)
    np.testing.assert_array_equal(
        shard.segments,
        [[0, 0, 30, pieces[0].source_start], [0, 30, 42, pieces[1].source_start],
         [2, 42, 47, pieces[2].source_start], [2, 47, 68, pieces[3].source_start]],
    )  # fmt: skip
    np.testing.assert_array_equal(shard.windows, [array for _, _, array in expected])
    assert shard.attrs["window"] == WINDOW and shard.attrs["stride"] == 2
    assert shard.attrs["fs"] == 125.0
    assert shard.attrs["source_file"] == "part_1.mat"
    assert len(shard.attrs["source_sha256"]) == 64
    assert isinstance(shard.attrs["format_version"], int | np.integer)
    assert shard.cleaning == {"x": 1}
    assert json.loads(shard.attrs["cleaning"]) == {"x": 1}
    assert shard.name == "part_1"


def test_mapped_signals_are_memmaps_equal_to_the_loaded_ones(tmp_path):
    path = tmp_path / "part_1.h5"
    write_test_shard(path, three_records(), window=WINDOW)
    loaded, mapped = open_shard(path), open_shard(path, mapped=True)
    for name in ("ecg", "abp", "ppg"):
        assert isinstance(getattr(mapped, name), np.memmap)
        np.testing.assert_array_equal(getattr(mapped, name), getattr(loaded, name))
    np.testing.assert_array_equal(mapped.windows, loaded.windows)
    np.testing.assert_array_equal(mapped.segments, loaded.segments)


def test_a_shard_with_nothing_kept_opens_mapped_and_loaded(tmp_path):
    path = tmp_path / "part_9.h5"
    assert write_test_shard(path, {"part_9/0000": [], "part_9/0001": []}, window=WINDOW) == 0
    for mapped in (False, True):
        shard = open_shard(path, mapped=mapped)
        assert len(shard.ecg) == 0 and len(shard.windows) == 0 and shard.segments.shape == (0, 4)
        assert shard.records == ["part_9/0000", "part_9/0001"]


def failing_write(path, pieces, segments) -> None:
    write_shard(
        path,
        pieces=pieces,
        segments=segments,
        records=["p/0000"],
        window=WINDOW,
        stride=1,
        attrs={"fs": 125.0},
    )


def two_segments() -> np.ndarray:
    return np.array([[0, 0, 20, 0], [0, 20, 50, 40]], dtype=np.int64)


def piece(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(n), np.zeros(n), np.zeros(n)


@pytest.mark.parametrize(
    "pieces",
    [[piece(20)], [piece(20), piece(30), piece(5)], [piece(20), piece(29)]],
    ids=["too-few-pieces", "too-many-pieces", "piece-length-mismatch"],
)
def test_a_failed_write_leaves_no_file_and_no_temp_file(tmp_path, pieces):
    with pytest.raises((ValueError, TypeError)):
        failing_write(tmp_path / "part_1.h5", pieces, two_segments())
    assert list(tmp_path.iterdir()) == []


def test_a_failed_overwrite_keeps_the_previous_shard(tmp_path):
    path = tmp_path / "part_1.h5"
    records = three_records()
    write_test_shard(path, records, window=WINDOW)
    before = path.read_bytes()
    with pytest.raises((ValueError, TypeError)):
        failing_write(path, [piece(20)], two_segments())
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_an_hdf5_file_that_is_not_a_shard_is_an_input_error(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as h5:
        h5["ecg"] = np.zeros(3)
    with pytest.raises(InputError, match=r"other\.h5.*not an ecg2abp shard.*abp"):
        open_shard(path)


@pytest.mark.parametrize("content", [None, b"not hdf5 at all"], ids=["missing", "not-hdf5"])
def test_a_missing_or_non_hdf5_file_is_an_input_error(tmp_path, content):
    path = tmp_path / "part_1.h5"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=r"part_1\.h5"):
        open_shard(path)


def test_locate_maps_every_window_start_to_its_record_and_original_sample(tmp_path):
    path = tmp_path / "part_1.h5"
    records = three_records()
    write_test_shard(path, records, window=WINDOW)
    shard = open_shard(path)
    record, source = shard.locate(shard.windows)
    expected = expected_starts(records, WINDOW, 1)
    ids = list(records)
    assert [(ids[r], int(s)) for r, s in zip(record, source, strict=True)] == [
        (record_id, source_start) for record_id, source_start, _ in expected
    ]


def test_windows_per_segment_counts_strided_starts_and_never_goes_negative():
    counts = windows_per_segment(np.array([10, 9, 3, 0]), 4, 3)
    assert counts.tolist() == [3, 2, 0, 0]  # 10: starts 0, 3, 6; 9: 0, 3; too short: none


def test_the_stored_fingerprint_is_the_data_s_and_changes_with_any_of_it(tmp_path):
    rng = np.random.default_rng(4)
    first, second = random_record(rng, [40, 30]), random_record(rng, [50])
    records = {"part_x/0000": first, "part_x/0001": second}
    write_test_shard(tmp_path / "a.h5", records, window=WINDOW)
    shard = open_shard(tmp_path / "a.h5")
    assert len(shard.attrs["content_sha256"]) == 64
    with h5py.File(tmp_path / "a.h5", "a") as h5:  # a shard from before the fingerprint
        del h5.attrs["content_sha256"]
    assert open_shard(tmp_path / "a.h5").fingerprint == shard.fingerprint
    nudged = second[0].abp.copy()
    nudged[3] += 1.0
    changed = {
        "one ABP sample": {**records, "part_x/0001": [replace(second[0], abp=nudged)]},
        "one PPG sample": {**records, "part_x/0001": [replace(second[0], ppg=second[0].abp)]},
        "a record id": {"part_x/0000": first, "part_x/0002": second},
        "a source position": {
            **records,
            "part_x/0000": [first[0], replace(first[1], source_start=999)],
        },
    }
    for what, other in changed.items():
        write_test_shard(tmp_path / "b.h5", other, window=WINDOW)
        assert open_shard(tmp_path / "b.h5").fingerprint != shard.fingerprint, what


def test_subjects_round_trip_and_enter_the_fingerprint_only_when_present(tmp_path):
    rng = np.random.default_rng(5)
    records = {"a/0": random_record(rng, [40]), "a/1": [], "a/2": random_record(rng, [30])}
    write_test_shard(tmp_path / "plain.h5", records, window=WINDOW)
    plain = open_shard(tmp_path / "plain.h5")
    assert plain.subjects is None
    with h5py.File(tmp_path / "plain.h5") as h5:
        assert "subjects" not in h5
    signals = {name: [getattr(plain, name)] for name in ("ecg", "abp", "ppg")}
    # a shard without subjects keeps the fingerprint it had before subjects existed
    old_digest = hashlib.sha256(json.dumps(plain.records).encode())
    old_digest.update(plain.segments.astype(np.int64).tobytes())
    for name in ("ecg", "abp", "ppg"):
        old_digest.update(getattr(plain, name).astype(np.float32).tobytes())
    assert plain.fingerprint == old_digest.hexdigest()
    assert content_sha256(signals, plain.segments, plain.records) == plain.fingerprint
    write_test_shard(tmp_path / "none.h5", records, window=WINDOW, subjects=[None] * 3)
    assert open_shard(tmp_path / "none.h5").subjects is None
    assert open_shard(tmp_path / "none.h5").fingerprint == plain.fingerprint

    subjects = ["p1_0", None, "p2_1"]
    write_test_shard(tmp_path / "subj.h5", records, window=WINDOW, subjects=subjects)
    shard = open_shard(tmp_path / "subj.h5")
    assert shard.subjects == ["p1_0", "", "p2_1"]
    assert shard.fingerprint != plain.fingerprint
    write_test_shard(tmp_path / "other.h5", records, window=WINDOW, subjects=["p1_0", "", "p3_1"])
    assert open_shard(tmp_path / "other.h5").fingerprint != shard.fingerprint
    with h5py.File(tmp_path / "subj.h5", "a") as h5:  # a subject changed after ingest
        h5["subjects"][2] = "p9_1"
    with pytest.raises(InputError, match="differ from its fingerprint"):
        open_shard(tmp_path / "subj.h5")
    with h5py.File(tmp_path / "subj.h5", "a") as h5:  # … or dropped
        h5["subjects"][2] = "p2_1"
        del h5["subjects"]
    with pytest.raises(InputError, match="differ from its fingerprint"):
        open_shard(tmp_path / "subj.h5")
