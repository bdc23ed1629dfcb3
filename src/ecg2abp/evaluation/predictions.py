"""predictions.parquet: one row per predicted sample, written by evaluate and external, read by
the report (and anything else) only through `iter_predictions` / `read_predictions`.

Columns: `record_id` (string, dictionary-encoded), `sample` (int64, the sample's index in the
original record), `abp_true` and `abp_pred` (int32 steps of 1/STEPS_PER_MMHG mmHg), every integer
column delta-encoded, pages zstd-compressed: about 1.2 bytes per predicted sample for a constant
prediction, 2.4 for a ridge model's (docs/performance.md). Values are rounded to the nearest
step, so a stored value is within HALF_STEP_MMHG of the one evaluated. The step is in the schema
metadata; files from before it (float32 mmHg columns) read the same way, unrounded.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ecg2abp.atomic import atomic_path
from ecg2abp.errors import InputError

STEPS_PER_MMHG = 100
HALF_STEP_MMHG = 0.5 / STEPS_PER_MMHG
LARGEST_MMHG = np.iinfo(np.int32).max / STEPS_PER_MMHG  # what an int32 step count holds
METADATA_KEY = b"ecg2abp.predictions"
FORMAT_VERSION = 2
SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("sample", pa.int64()),
        ("abp_true", pa.int32()),
        ("abp_pred", pa.int32()),
    ],
    metadata={
        METADATA_KEY: json.dumps(
            {"format_version": FORMAT_VERSION, "abp_steps_per_mmhg": STEPS_PER_MMHG}
        ).encode()
    },
)
ABP_COLUMNS = ("abp_true", "abp_pred")
DELTA_COLUMNS = ("sample", *ABP_COLUMNS)
ROWS_PER_GROUP = 1 << 20
BATCH_ROWS = 1 << 16


def to_steps(mmhg: np.ndarray, record_id: str, column: str) -> np.ndarray:
    """mmHg rounded to the nearest stored step; a value no step count holds is refused."""
    mmhg = np.asarray(mmhg, dtype=np.float64)
    outside = ~(np.abs(mmhg) <= LARGEST_MMHG)  # NaN too
    if outside.any():
        raise InputError(
            f"record {record_id}: {int(np.count_nonzero(outside))} {column} values are not "
            f"finite mmHg within ±{LARGEST_MMHG:,.0f} (first: {mmhg[outside][0]})"
        )
    return np.rint(mmhg * STEPS_PER_MMHG).astype(np.int32)


class PredictionWriter:
    """Rows to a predictions.parquet in row groups, renamed into place when complete."""

    def __init__(self, path: Path) -> None:
        self._atomic = atomic_path(path)
        self._tmp = self._atomic.__enter__()
        self._writer = pq.ParquetWriter(
            self._tmp,
            SCHEMA,
            compression="zstd",
            use_dictionary=["record_id"],
            column_encoding=dict.fromkeys(DELTA_COLUMNS, "DELTA_BINARY_PACKED"),
        )
        self._buffer: list[pa.Table] = []
        self._buffered = 0

    def add(self, record_id: str, sample: np.ndarray, true: np.ndarray, pred: np.ndarray) -> None:
        table = pa.table(
            {
                "record_id": pa.array(np.full(len(sample), record_id, dtype=object), pa.string()),
                "sample": pa.array(sample, pa.int64()),
                "abp_true": pa.array(to_steps(true, record_id, "abp_true")),
                "abp_pred": pa.array(to_steps(pred, record_id, "abp_pred")),
            },
            schema=SCHEMA,
        )
        self._buffer.append(table)
        self._buffered += len(sample)
        if self._buffered >= ROWS_PER_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._writer.write_table(pa.concat_tables(self._buffer))
        self._buffer, self._buffered = [], 0

    def close(self, ok: bool) -> None:
        if ok:
            self._flush()
        self._writer.close()
        if ok:
            self._atomic.__exit__(None, None, None)
        else:
            self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)


def _steps_per_mmhg(path: Path, schema: pa.Schema) -> int | None:
    """The file's step (None: float mmHg columns, a file from before the integer steps)."""
    if all(pa.types.is_floating(schema.field(name).type) for name in ABP_COLUMNS):
        return None
    try:
        meta = json.loads((schema.metadata or {})[METADATA_KEY])
        return int(meta["abp_steps_per_mmhg"])
    except (KeyError, TypeError, ValueError):
        raise InputError(
            f"{path}: integer ABP columns without their step in the schema metadata; "
            "not a predictions file ecg2abp wrote (run evaluate again)"
        ) from None


def iter_predictions(path: Path, batch_rows: int = BATCH_ROWS) -> Iterator[dict[str, np.ndarray]]:
    """The file's rows batch by batch: record_id (object), sample (int64), abp_true and abp_pred
    (float64 mmHg)."""
    path = Path(path)
    try:
        file = pq.ParquetFile(path, read_dictionary=["record_id"])
        missing = [name for name in SCHEMA.names if name not in file.schema_arrow.names]
        if missing:
            raise InputError(f"{path}: not a predictions file (missing {', '.join(missing)})")
        steps = _steps_per_mmhg(path, file.schema_arrow)
        for batch in file.iter_batches(batch_size=batch_rows, columns=SCHEMA.names):
            ids = batch.column("record_id")
            rows = {
                "record_id": ids.dictionary.to_numpy(zero_copy_only=False)[
                    ids.indices.to_numpy(zero_copy_only=False)
                ],
                "sample": batch.column("sample").to_numpy().astype(np.int64, copy=False),
            }
            for name in ABP_COLUMNS:
                values = batch.column(name).to_numpy().astype(np.float64)
                rows[name] = values if steps is None else values / steps
            yield rows
    except (OSError, pa.ArrowException) as err:
        raise InputError(f"{path}: cannot read predictions ({err})") from None


def read_predictions(path: Path) -> pd.DataFrame:
    """The whole file as one table, ABP in mmHg (for small files: tests, benches)."""
    batches = list(iter_predictions(path))
    if not batches:
        return pd.DataFrame(columns=SCHEMA.names)
    return pd.DataFrame({name: np.concatenate([b[name] for b in batches]) for name in SCHEMA.names})
