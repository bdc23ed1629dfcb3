"""Small shards written with `shards.write_shard` from given per-record segments, for tests."""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecg2abp.data.shards import open_shard, write_shard


@dataclass(frozen=True)
class Piece:
    """One kept segment of a record: where it starts in the original record, and its signals."""

    source_start: int
    ecg: np.ndarray
    abp: np.ndarray
    ppg: np.ndarray | None = None  # None: all NaN (a recording without PPG)


def random_piece(rng: np.random.Generator, source_start: int, length: int) -> Piece:
    """A segment of random ECG (mV), ABP (mmHg) and PPG values."""
    return Piece(
        source_start=source_start,
        ecg=rng.normal(0.0, 0.5, length),
        abp=rng.normal(95.0, 20.0, length),
        ppg=rng.uniform(0.0, 1.0, length),
    )


def random_record(
    rng: np.random.Generator, lengths: Sequence[int], *, gap: int = 50
) -> list[Piece]:
    """Random segments of the given lengths, `gap` removed samples apart in the original record."""
    pieces, source = [], int(rng.integers(0, gap + 1))
    for length in lengths:
        pieces.append(random_piece(rng, source, int(length)))
        source += int(length) + gap
    return pieces


def write_test_shard(
    path: Path,
    records: Mapping[str, Sequence[Piece]],
    *,
    window: int,
    stride: int = 1,
    fs: float = 125.0,
    cleaning: Mapping | None = None,
    subjects: Sequence[str | None] | None = None,
) -> int:
    """Write `records` (id → kept segments, in order; empty = nothing kept) as a shard, with
    each record's subject when `subjects` is given (None: unknown).

    Returns the shard's window count.
    """
    pieces, rows, position = [], [], 0
    for index, record_pieces in enumerate(records.values()):
        for piece in record_pieces:
            n = len(piece.ecg)
            ppg = np.full(n, np.nan) if piece.ppg is None else piece.ppg
            pieces.append((np.asarray(piece.ecg), np.asarray(piece.abp), np.asarray(ppg)))
            rows.append((index, position, position + n, piece.source_start))
            position += n
    return write_shard(
        path,
        pieces=pieces,
        segments=np.array(rows, dtype=np.int64).reshape(-1, 4),
        records=list(records),
        window=window,
        stride=stride,
        attrs={
            "fs": fs,
            "source_file": f"{path.stem}.mat",
            "source_sha256": "0" * 64,
            "cleaning": json.dumps(dict(cleaning or {"enabled": True})),
        },
        subjects=subjects,
    )


def expected_starts(records: Mapping[str, Sequence[Piece]], window: int, stride: int) -> list:
    """(record id, source start, array start) of every window, counted piece by piece."""
    found, position = [], 0
    for record_id, record_pieces in records.items():
        for piece in record_pieces:
            n = len(piece.ecg)
            for offset in range(0, n - window + 1, stride):
                found.append((record_id, piece.source_start + offset, position + offset))
            position += n
    return found


def restamp_split(split_path: Path, shard_paths: Sequence[Path]) -> None:
    """After shards were rewritten on purpose: record their new fingerprints in the split."""
    document = json.loads(split_path.read_text())
    by_name = {Path(p).stem: open_shard(p).fingerprint for p in shard_paths}
    document["fingerprints"] = [by_name[name] for name in document["shards"]]
    split_path.write_text(json.dumps(document))
