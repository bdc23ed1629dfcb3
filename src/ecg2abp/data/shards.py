"""The HDF5 shard: one part's cleaned signals end to end, its segments, records and window index."""

import hashlib
import json
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ecg2abp.atomic import atomic_path
from ecg2abp.errors import InputError

FORMAT_VERSION = 1
SIGNALS = ("ecg", "abp", "ppg")
SEGMENT_COLUMNS = ("record", "start", "stop", "source_start")
HASH_BLOCK = 1 << 22  # samples hashed at a time: 16 MB of float32


def windows_per_segment(lengths: np.ndarray, window: int, stride: int) -> np.ndarray:
    """How many windows (every `stride`-th start) fit inside segments of these lengths."""
    return np.maximum((np.asarray(lengths, np.int64) - window) // stride + 1, 0)


def window_starts(segments: np.ndarray, window: int, stride: int) -> np.ndarray:
    """Start positions of every window that fits inside one segment, in array coordinates."""
    starts, stops = segments[:, 1], segments[:, 2]
    counts = windows_per_segment(stops - starts, window, stride)
    total = int(counts.sum())
    out = np.empty(total, dtype=_index_dtype(int(stops.max()) if len(stops) else 0))
    position = 0
    for start, count in zip(starts.tolist(), counts.tolist(), strict=True):
        out[position : position + count] = np.arange(start, start + count * stride, stride)
        position += count
    return out


def lengths_from_segments(segments: np.ndarray, n_records: int) -> np.ndarray:
    """Per record, the end of its last kept sample in the original record (0 if none kept)."""
    lengths = np.zeros(n_records, dtype=np.int64)
    if len(segments):
        ends = segments[:, 3] + segments[:, 2] - segments[:, 1]
        np.maximum.at(lengths, segments[:, 0], ends)
    return lengths


def content_sha256(
    signals: dict[str, Iterable[np.ndarray]],
    segments: np.ndarray,
    records: Sequence[str],
    subjects: Sequence[str] | None = None,
) -> str:
    """SHA-256 of a shard's data: records, subjects (only when the shard has them, so shards
    without keep their fingerprint), segments and each signal as float32, in order."""
    digest = hashlib.sha256(json.dumps(list(records)).encode())
    if subjects is not None:
        digest.update(json.dumps(["subjects", *subjects]).encode())
    digest.update(np.ascontiguousarray(segments, dtype=np.int64).tobytes())
    for name in SIGNALS:
        for chunk in signals[name]:
            digest.update(np.ascontiguousarray(chunk, dtype=np.float32).tobytes())
    return digest.hexdigest()


def stored_subject_ids(subjects: Sequence[str | None] | None, n_records: int) -> list[str] | None:
    """The `subjects` dataset to store: one string per record ("" = unknown), or None when no
    record has a subject."""
    if subjects is None or all(subject is None for subject in subjects):
        return None
    if len(subjects) != n_records:
        raise ValueError(f"subjects: {len(subjects)} given for {n_records} records")
    return ["" if subject is None else str(subject) for subject in subjects]


def _index_dtype(n: int) -> type:
    return np.uint32 if n < 2**32 else np.uint64


class PieceSpool:
    """Kept (ecg, abp, ppg) pieces appended to one unnamed temporary file per signal in
    `folder`, read back in blocks: a part's kept signals are never all in memory."""

    def __init__(self, folder: Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        # unnamed files, closed by close() or when the spool is dropped
        self._files = {name: tempfile.TemporaryFile(dir=folder) for name in SIGNALS}  # noqa: SIM115
        self.lengths: list[int] = []  # of each piece, in order

    def add(self, ecg: np.ndarray, abp: np.ndarray, ppg: np.ndarray) -> None:
        if not len(ecg) == len(abp) == len(ppg):
            raise ValueError(
                f"a piece's signals differ in length: {len(ecg)}, {len(abp)}, {len(ppg)}"
            )
        for name, signal in zip(SIGNALS, (ecg, abp, ppg), strict=True):
            self._files[name].write(memoryview(np.ascontiguousarray(signal, dtype=np.float32)))
        self.lengths.append(len(ecg))

    def blocks(self, name: str, size: int = HASH_BLOCK) -> Iterator[np.ndarray]:
        """One signal, all its pieces end to end, `size` samples at a time."""
        file = self._files[name]
        file.seek(0)
        size = max(1, min(size, sum(self.lengths)))
        while True:
            block = np.empty(size, dtype=np.float32)
            count = file.readinto(memoryview(block).cast("B")) // block.itemsize
            if count == 0:
                return
            yield block[:count]

    def close(self) -> None:
        for file in self._files.values():
            file.close()

    def __enter__(self) -> "PieceSpool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _written(blocks: Iterable[np.ndarray], dataset: h5py.Dataset) -> Iterator[np.ndarray]:
    """The blocks, each written to `dataset` (from its start, end to end) as it passes."""
    position = 0
    for block in blocks:
        dataset[position : position + len(block)] = block
        position += len(block)
        yield block


def write_shard(
    path: Path,
    *,
    pieces: PieceSpool | Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    segments: np.ndarray,
    records: Sequence[str],
    window: int,
    stride: int,
    attrs: dict[str, Any],
    record_samples: Sequence[int] | None = None,
    subjects: Sequence[str | None] | None = None,
) -> int:
    """Write a shard atomically from per-segment (ecg, abp, ppg) pieces, spooled or not; return
    its window count.

    `segments` holds (record, start, stop, source_start) rows whose start/stop are the pieces'
    positions once laid end to end; `record_samples` each record's length before cleaning
    (default: up to its last kept sample); `subjects` each record's subject (None: unknown,
    stored ""), written only when some record has one.
    """
    path = Path(path)
    stored_subjects = stored_subject_ids(subjects, len(records))
    if not isinstance(pieces, PieceSpool):
        with PieceSpool(path.parent) as spool:
            for piece in pieces:
                spool.add(*piece)
            return write_shard(
                path,
                pieces=spool,
                segments=segments,
                records=records,
                window=window,
                stride=stride,
                attrs=attrs,
                record_samples=record_samples,
                subjects=subjects,
            )
    segments = segments.astype(np.int64).reshape(-1, 4)
    ends = np.cumsum(pieces.lengths, dtype=np.int64)
    if not (
        np.array_equal(segments[:, 2], ends)
        and np.array_equal(segments[:, 1], ends - pieces.lengths)
    ):
        raise ValueError(
            f"{len(pieces.lengths)} pieces do not lie end to end as {len(segments)} segments say"
        )
    total = int(ends[-1]) if len(ends) else 0
    windows = window_starts(segments, window, stride)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        datasets = {
            name: h5.create_dataset(name, shape=(total,), dtype=np.float32) for name in SIGNALS
        }
        # one pass over the spool: each block hashed and written
        signals = {name: _written(pieces.blocks(name), datasets[name]) for name in SIGNALS}
        fingerprint = content_sha256(signals, segments, records, stored_subjects)
        h5.create_dataset("segments", data=segments)
        h5["segments"].attrs["columns"] = ",".join(SEGMENT_COLUMNS)
        h5.create_dataset(
            "records", data=np.array(records, dtype=object), dtype=h5py.string_dtype()
        )
        if stored_subjects is not None:
            h5.create_dataset(
                "subjects", data=np.array(stored_subjects, dtype=object), dtype=h5py.string_dtype()
            )
        h5.create_dataset("windows", data=windows)
        if record_samples is None:
            record_samples = lengths_from_segments(segments, len(records))
        h5.create_dataset("record_samples", data=np.asarray(record_samples, dtype=np.int64))
        h5.attrs.update(
            {
                "format_version": FORMAT_VERSION,
                "window": window,
                "stride": stride,
                "content_sha256": fingerprint,
                **attrs,
            }
        )
    return len(windows)


@dataclass
class Shard:
    """A shard opened for reading: signals in memory or memory-mapped, tables in memory."""

    path: Path
    ecg: np.ndarray
    abp: np.ndarray
    ppg: np.ndarray
    segments: np.ndarray
    records: list[str]
    windows: np.ndarray
    attrs: dict[str, Any]
    record_samples: np.ndarray | None = None  # each record's length before cleaning
    subjects: list[str] | None = None  # each record's subject ("" = unknown); None: none known

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def fingerprint(self) -> str:
        """The data's SHA-256: stored when written and checked when opened (computed here for
        shards from before the fingerprint that were opened unchecked)."""
        stored = self.attrs.get("content_sha256")
        if stored:
            return str(stored)
        signals = {name: [getattr(self, name)] for name in SIGNALS}
        return content_sha256(signals, self.segments, self.records, self.subjects)

    @property
    def cleaning(self) -> dict:
        return json.loads(self.attrs.get("cleaning", "{}"))

    def locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Record index and original-record sample of array positions inside kept segments."""
        segment = self.segments[np.searchsorted(self.segments[:, 1], positions, side="right") - 1]
        return segment[:, 0], segment[:, 3] + (positions - segment[:, 1])


def _mapped(path: Path, dataset: h5py.Dataset) -> np.ndarray:
    offset = dataset.id.get_offset()
    if dataset.size == 0 or offset is None:
        return dataset[()]
    return np.memmap(path, dtype=dataset.dtype, mode="r", offset=offset, shape=dataset.shape)


def _blocks(signal: np.ndarray, size: int = HASH_BLOCK) -> Iterable[np.ndarray]:
    return (signal[first : first + size] for first in range(0, len(signal), size))


def verify_shard(shard: Shard) -> None:
    """Recompute the shard's data fingerprint, one streamed pass; refuse data changed since
    ingest. A shard from before the fingerprint gets the recomputed one."""
    signals = {name: _blocks(getattr(shard, name)) for name in SIGNALS}
    actual = content_sha256(signals, shard.segments, shard.records, shard.subjects)
    stored = shard.attrs.get("content_sha256")
    if stored and str(stored) != actual:
        raise InputError(
            f"{shard.path}: its data differ from its fingerprint (content_sha256), changed "
            "since ingest; ingest the part again"
        )
    shard.attrs["content_sha256"] = actual


def open_shard(
    path: Path | str, *, mapped: bool = False, signals: bool = True, verify: bool = True
) -> Shard:
    """Read a shard; `mapped` memory-maps the signals instead of loading them; `verify`
    recomputes the data's fingerprint and refuses a shard changed since it was written."""
    path = Path(path)
    shard = _read_shard(path, mapped=mapped, signals=signals)
    if verify and signals:
        verify_shard(shard)
    return shard


def _texts(values: np.ndarray) -> list[str]:
    return [value.decode() if isinstance(value, bytes) else value for value in values]


def _read_shard(path: Path, *, mapped: bool, signals: bool) -> Shard:
    try:
        with h5py.File(path, "r") as h5:
            missing = [key for key in (*SIGNALS, "segments", "records", "windows") if key not in h5]
            if missing:
                raise InputError(f"{path}: not an ecg2abp shard (missing {', '.join(missing)})")
            if not signals:
                arrays = {name: np.zeros(0, np.float32) for name in SIGNALS}
            elif mapped:
                arrays = {name: _mapped(path, h5[name]) for name in SIGNALS}
            else:
                arrays = {name: h5[name][()] for name in SIGNALS}
            return Shard(
                path=path,
                segments=h5["segments"][()],
                records=_texts(h5["records"][()]),
                subjects=_texts(h5["subjects"][()]) if "subjects" in h5 else None,
                windows=h5["windows"][()].astype(np.int64),
                attrs=dict(h5.attrs),
                record_samples=h5["record_samples"][()] if "record_samples" in h5 else None,
                **arrays,
            )
    except (OSError, KeyError) as err:
        raise InputError(f"{path}: cannot read shard ({err})") from None
