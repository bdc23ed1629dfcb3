"""Prediction and beat tables, Parquet or CSV by the file's extension, written atomically.

Parquet files carry the model description and the research-use notice in their schema
metadata (key `ecg2abp`); CSV files get them in a `FILE.json` beside the table.
"""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ecg2abp.atomic import atomic_path, write_json
from ecg2abp.errors import InputError
from ecg2abp.serving.beats import BEAT_LEVELS
from ecg2abp.serving.inputs import InputRecord
from ecg2abp.serving.pipeline import FLAGS, Rows

SUFFIXES = (".parquet", ".csv")


def check_suffix(path: Path, what: str) -> Path:
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise InputError(f"{path}: {what} must end in .parquet or .csv")
    return path


class TableWriter:
    """Append tables of one schema to a Parquet or CSV file; rename into place on close(True)."""

    def __init__(self, path: Path, schema: pa.Schema, metadata: dict) -> None:
        self.path = check_suffix(path, "output")
        self.metadata = metadata
        self.csv = self.path.suffix.lower() == ".csv"
        self.schema = schema.with_metadata({"ecg2abp": json.dumps(metadata)})
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        if self.csv:
            self._writer = pacsv.CSVWriter(str(tmp), schema)
        else:
            self._writer = pq.ParquetWriter(tmp, self.schema)

    def write(self, table: pa.Table) -> None:
        if len(table):
            self._writer.write_table(table if self.csv else table.replace_schema_metadata(None))

    def close(self, ok: bool) -> None:
        self._writer.close()
        if ok:
            self._atomic.__exit__(None, None, None)
            if self.csv:
                write_json(self.path.with_name(self.path.name + ".json"), self.metadata)
        else:
            self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)


def prediction_schema(spread: bool) -> pa.Schema:
    fields = [
        ("record", pa.string()),
        ("sample", pa.int64()),
        ("time", pa.float64()),
        ("abp_pred", pa.float32()),
    ]
    fields += [("abp_spread", pa.float32())] if spread else []
    return pa.schema([*fields, ("flag", pa.string())])


def prediction_table(record: InputRecord, rows: Rows) -> pa.Table:
    """Rows of one record: sample number in the original recording, time in s, flag by name."""
    columns = {
        "record": pa.array(np.full(len(rows), record.record_id, dtype=object), pa.string()),
        "sample": pa.array(record.source_samples(rows.sample)),
        "time": pa.array(rows.sample / record.fs),
        "abp_pred": pa.array(rows.abp.astype(np.float32)),
    }
    if rows.spread is not None:
        columns["abp_spread"] = pa.array(rows.spread.astype(np.float32))
    columns["flag"] = pa.DictionaryArray.from_arrays(
        pa.array(rows.flag.astype(np.int32)), pa.array(FLAGS)
    ).cast(pa.string())
    return pa.table(columns, schema=prediction_schema(rows.spread is not None))


BEAT_SCHEMA = pa.schema(
    [
        ("record", pa.string()),
        ("sample", pa.int64()),
        ("time", pa.float64()),
        ("sbp", pa.float32()),
        ("dbp", pa.float32()),
        ("map", pa.float32()),
    ]
)


def beat_table(record: InputRecord, starts: np.ndarray, values: dict[str, np.ndarray]) -> pa.Table:
    """Beats of one record: start sample in the original recording, time in s, SBP, DBP, MAP."""
    return pa.table(
        {
            "record": pa.array(np.full(len(starts), record.record_id, dtype=object), pa.string()),
            "sample": pa.array(record.source_samples(starts)),
            "time": pa.array(starts / record.fs),
            **{k: pa.array(values[k].astype(np.float32)) for k in BEAT_LEVELS},
        },
        schema=BEAT_SCHEMA,
    )
