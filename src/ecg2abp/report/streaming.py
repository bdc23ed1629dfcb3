"""One streaming pass over a variant's prediction files: fixed-size histograms and per-record sums.

Predictions are read by Parquet batches and matched, stretch by stretch, with the test pieces
evaluation scored (same split, same shards), so beats are found on the same true ABP and every
number equals metrics.parquet up to the rounding of stored predictions (to the nearest 0.01
mmHg, evaluation.predictions). Memory is one stretch plus fixed-size arrays, whatever the number
of predictions.
"""

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecg2abp.atomic import atomic_path
from ecg2abp.data.shards import Shard
from ecg2abp.errors import InputError
from ecg2abp.evaluation.metrics import LEVELS, ErrorAccumulator, floor_for, segment_pairs
from ecg2abp.evaluation.predictions import BATCH_ROWS, iter_predictions
from ecg2abp.evaluation.scoring import TestPiece, side_pieces
from ecg2abp.folds.loading import open_split_shards

BP_EDGES = np.arange(0.0, 301.0, 1.0)  # mmHg, value axes of the 2-D histograms
DIFF_EDGES = np.arange(-150.0, 151.0, 1.0)  # mmHg, pred − true
ABS_EDGES = np.arange(0.0, 100.05, 0.05)  # mmHg, |pred − true| for the cumulative curve
EXAMPLE_SECONDS = 8.0
HISTOGRAMS = ("mean_diff", "true_pred", "abs_error")


@dataclass
class Example:
    """A stretch of one test record: ECG, true ABP and predicted ABP (NaN where unpredicted)."""

    record_id: str
    fold: int
    source_start: int
    ecg: np.ndarray
    true: np.ndarray
    pred: np.ndarray


@dataclass
class LevelStream:
    """Everything the plots need about one level, in fixed-size arrays."""

    metrics: ErrorAccumulator = field(default_factory=ErrorAccumulator)
    mean_diff: np.ndarray = field(
        default_factory=lambda: np.zeros((len(BP_EDGES) - 1, len(DIFF_EDGES) - 1), np.int64)
    )
    true_pred: np.ndarray = field(
        default_factory=lambda: np.zeros((len(BP_EDGES) - 1, len(BP_EDGES) - 1), np.int64)
    )
    abs_error: np.ndarray = field(default_factory=lambda: np.zeros(len(ABS_EDGES) - 1, np.int64))

    def add(self, record_id: str, true: np.ndarray, pred: np.ndarray, sbp: np.ndarray | None):
        """Pairs of one stretch; `sbp` (the true SBP of each pair's beat) fills the bands."""
        if len(true) == 0:
            return
        self.metrics.update(record_id, true, pred, sbp)
        error = pred - true
        self.mean_diff += _hist2d((true + pred) / 2, error, BP_EDGES, DIFF_EDGES)
        self.true_pred += _hist2d(true, pred, BP_EDGES, BP_EDGES)
        self.abs_error += _hist1d(np.abs(error), ABS_EDGES)


def _bins(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each value on equally spaced edges; values outside go to the outermost bins."""
    index = np.floor((x - edges[0]) / (edges[1] - edges[0]))
    return np.clip(index, 0, len(edges) - 2).astype(np.int64)


def _hist1d(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.bincount(_bins(x, edges), minlength=len(edges) - 1)


def _hist2d(x: np.ndarray, y: np.ndarray, x_edges: np.ndarray, y_edges: np.ndarray) -> np.ndarray:
    columns = len(y_edges) - 1
    flat = _bins(x, x_edges) * columns + _bins(y, y_edges)
    return np.bincount(flat, minlength=(len(x_edges) - 1) * columns).reshape(-1, columns)


@dataclass
class VariantStream:
    """One variant, all folds and seeds pooled: per-level histograms and metrics, error sums per
    seed × record."""

    variant: str
    protocol: str = ""
    levels: dict[str, LevelStream] = field(
        default_factory=lambda: {lv: LevelStream() for lv in LEVELS}
    )
    record_n: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)  # n per level
    record_abs: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)  # Σ|e| per level
    record_units: dict[str, str] = field(default_factory=dict)  # record → its resampling unit
    resampling_unit: str = ""  # what a unit is (folds.protocols.resampling_units)
    example: Example | None = None

    def records(self) -> list[str]:
        """The test records scored (by any seed)."""
        return sorted({record for _, record in self.record_n})

    def add_pairs(
        self, record_id: str, pairs: dict[str, tuple[np.ndarray, np.ndarray]], seed: int = 0
    ) -> None:
        key = (seed, record_id)
        n = self.record_n.setdefault(key, np.zeros(len(LEVELS), np.int64))
        total = self.record_abs.setdefault(key, np.zeros(len(LEVELS)))
        sbp = pairs["sbp"][0] if "sbp" in pairs else None
        for index, level in enumerate(LEVELS):
            if level not in pairs:
                continue
            true, pred = pairs[level]
            self.levels[level].add(record_id, true, pred, None if level == "point" else sbp)
            n[index] += len(true)
            total[index] += float(np.abs(pred - true).sum())

    def save(self, path: Path) -> None:
        """One .npz (no pickled objects): arrays, and the accumulators as JSON text."""
        records = sorted(self.record_n)
        arrays = {
            "variant": np.array(self.variant),
            "protocol": np.array(self.protocol),
            "seeds": np.array([seed for seed, _ in records], np.int64),
            "records": np.array([record for _, record in records], dtype=str),
            "record_n": np.array([self.record_n[r] for r in records]).reshape(-1, len(LEVELS)),
            "record_abs": np.array([self.record_abs[r] for r in records]).reshape(-1, len(LEVELS)),
            "record_units": np.array(
                [self.record_units.get(record, record) for _, record in records], dtype=str
            ),
            "resampling_unit": np.array(self.resampling_unit),
            "metrics": np.array(
                json.dumps({lv: s.metrics.to_dict() for lv, s in self.levels.items()})
            ),
        }
        for level, stream in self.levels.items():
            for name in HISTOGRAMS:
                arrays[f"{level}.{name}"] = getattr(stream, name)
        if self.example is not None:
            ex = self.example
            arrays["example.meta"] = np.array(
                json.dumps({"record_id": ex.record_id, "fold": ex.fold, "start": ex.source_start})
            )
            arrays |= {"example.ecg": ex.ecg, "example.true": ex.true, "example.pred": ex.pred}
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    @classmethod
    def load(cls, path: Path) -> "VariantStream":
        try:
            with np.load(path, allow_pickle=False) as data:
                stream = cls(str(data["variant"]), str(data["protocol"]))
                states = json.loads(str(data["metrics"]))
                for level in LEVELS:
                    level_stream = stream.levels[level]
                    level_stream.metrics = ErrorAccumulator.from_dict(states[level])
                    for name in HISTOGRAMS:
                        setattr(level_stream, name, data[f"{level}.{name}"])
                stream.resampling_unit = str(data["resampling_unit"])
                units = data["record_units"].tolist()
                keys = zip(data["seeds"].tolist(), data["records"].tolist(), strict=True)
                for index, key in enumerate(keys):
                    stream.record_n[key] = data["record_n"][index]
                    stream.record_abs[key] = data["record_abs"][index]
                    stream.record_units[key[1]] = units[index]
                if "example.meta" in data:
                    meta = json.loads(str(data["example.meta"]))
                    stream.example = Example(
                        meta["record_id"],
                        meta["fold"],
                        meta["start"],
                        data["example.ecg"],
                        data["example.true"],
                        data["example.pred"],
                    )
        except (OSError, KeyError, ValueError) as err:
            raise InputError(f"{path}: not a report stream file ({err})") from None
        return stream


class RowCursor:
    """Consecutive rows of a predictions.parquet, read batch by batch."""

    def __init__(self, path: Path, batch_rows: int = BATCH_ROWS) -> None:
        self.path = Path(path)
        self._batches = iter_predictions(self.path, batch_rows)
        self._columns: dict[str, np.ndarray] = {}
        self._position = 0

    def _available(self) -> int:
        return len(self._columns.get("sample", ())) - self._position

    def _load_next(self) -> bool:
        batch = next(self._batches, None)
        if batch is None:
            return False
        rest = {name: values[self._position :] for name, values in self._columns.items()}
        self._columns = {k: np.concatenate([rest[k], v]) if rest else v for k, v in batch.items()}
        self._position = 0
        return True

    def take(self, n: int) -> dict[str, np.ndarray]:
        """The next n rows; fewer only at the end of the file."""
        while self._available() < n and self._load_next():
            pass
        rows = {k: v[self._position : self._position + n] for k, v in self._columns.items()}
        self._position += len(rows.get("sample", ()))
        return rows

    def exhausted(self) -> bool:
        return self._available() == 0 and not self._load_next()


def _mismatch(path: Path, record_id: str) -> InputError:
    return InputError(
        f"{path}: rows do not match the fold's test data at record {record_id} "
        "(predictions from another split, shards or stride?)"
    )


def piece_predictions(
    cursor: RowCursor,
    pieces: Iterable[TestPiece],
    shards: Sequence[Shard],
    window: int,
    stride: int,
) -> Iterator[tuple[TestPiece, np.ndarray, np.ndarray]]:
    """Each test stretch as evaluation scored it: (piece, true ABP, prediction with NaN gaps)."""
    for piece in pieces:
        true = np.asarray(shards[piece.shard].abp[piece.start : piece.stop], np.float64)
        full = np.full(len(true), np.nan)
        if len(true) >= window:
            ends = np.arange(0, len(true) - window + 1, stride) + window - 1
            rows = cursor.take(len(ends))
            if len(rows["sample"]) != len(ends) or not (
                np.all(rows["record_id"] == piece.record_id)
                and np.array_equal(rows["sample"], piece.source_start + ends)
            ):
                raise _mismatch(cursor.path, piece.record_id)
            full[ends] = rows["abp_pred"]
        yield piece, true, full
    if not cursor.exhausted():
        raise _mismatch(cursor.path, "(rows left over)")


def _example(piece: TestPiece, shards: Sequence[Shard], fold: int, true, pred, fs) -> Example:
    """EXAMPLE_SECONDS from the centre of the stretch."""
    length = min(len(true), int(EXAMPLE_SECONDS * fs))
    offset = (len(true) - length) // 2
    first = piece.start + offset
    ecg = np.asarray(shards[piece.shard].ecg[first : first + length], np.float64)
    span = slice(offset, offset + length)
    return Example(piece.record_id, fold, piece.source_start + offset, ecg, true[span], pred[span])


def stream_variant(
    variant: str,
    prediction_files: Sequence[Path],
    metric_files: Sequence[Path],
    split_path: Path | None,
    shard_paths: Sequence[Path],
) -> VariantStream:
    """Read every fold × seed's predictions of one variant once; the example comes from the
    lowest fold (its lowest seed).

    Example rule: the longest test stretch of the lowest fold (the first if tied), its centre.
    """
    stream = VariantStream(variant)
    folds = []
    for predictions, metrics_file in zip(prediction_files, metric_files, strict=True):
        meta = json.loads(Path(metrics_file).read_text())
        folds.append((int(meta["fold"]), int(meta.get("seed") or 0), Path(predictions), meta))
    folds.sort(key=lambda item: item[:2])
    document, shards = None, []
    for fold, seed, predictions, meta in folds:
        stream.protocol = meta["protocol"]
        stream.resampling_unit = meta.get("resampling_unit", "record")
        stream.record_units |= meta.get("units", {})
        cursor = RowCursor(predictions)
        if meta["protocol"] == "paper":
            _stream_sampled(stream, cursor, seed)
            continue
        if document is None:
            document, shards = open_split_shards(split_path, shard_paths, mapped=True)
        side = document["folds"][fold]["test"]
        fs = float(shards[0].attrs["fs"])
        chosen = None
        if stream.example is None:
            chosen = max(side_pieces(side, shards), key=lambda p: p.stop - p.start, default=None)
        pieces = side_pieces(side, shards)
        window = int(document["window"])
        for piece, true, pred in piece_predictions(cursor, pieces, shards, window, meta["stride"]):
            floor = floor_for(meta.get("beat_floor"), piece.record_id)
            stream.add_pairs(piece.record_id, segment_pairs(true, pred, fs, floor).levels, seed)
            if piece == chosen:
                stream.example = _example(piece, shards, fold, true, pred, fs)
    return stream


def _stream_sampled(stream: VariantStream, cursor: RowCursor, seed: int) -> None:
    """The paper protocol's sampled windows: point-wise pairs only, record by record."""
    while not cursor.exhausted():
        rows = cursor.take(BATCH_ROWS)
        records = rows["record_id"]
        for record_id in np.unique(records):
            mine = records == record_id
            true = rows["abp_true"][mine]
            pred = rows["abp_pred"][mine]
            stream.add_pairs(str(record_id), {"point": (true, pred)}, seed)
