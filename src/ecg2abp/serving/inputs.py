"""Recordings to predict on: part files (either layout), WFDB records, CSV/Parquet ECG columns.

A record is read on demand, block by block, so that hours of ECG never sit in memory: WFDB
records through wfdb's sample ranges, CSV in pandas chunks, Parquet in pyarrow batches. Each
block is brought to the model's rate by the readers' streaming polyphase resampling, which
equals resampling the whole record. Part files (MATLAB v5 / v7.3) hold ~1,000 short records
each and are read whole by design; PulseDB subsets are read a slice of 10-s segments at a time.
Each record keeps its original rate so that outputs can name the sample of the original
recording.
"""

import csv
import logging
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ecg2abp.data import readers
from ecg2abp.errors import InputError

log = logging.getLogger("ecg2abp.serving")
TABLE_SUFFIXES = (".csv", ".parquet")
ECG_COLUMN = "ecg"
UNUSABLE_ECG = ("nonfinite", "ecg_saturated", "ecg_flat")  # reasons that blame the lead
UNUSABLE_SHARE = 0.5  # a WFDB lead unusable on more than this share of its record is named
BLOCK_SAMPLES = 1 << 15  # source samples read at a time
SNIFF_BYTES = 1 << 16  # of a CSV, read to tell its separator and decimal mark
SEPARATORS = ",;\t"
DECIMAL_COMMA = re.compile(r"\s*[-+]?\d*,\d+(?:[eE][-+]?\d+)?\s*")

Blocks = Callable[[int], Iterator[np.ndarray]]


def _no_abp() -> None:
    return None


@dataclass(frozen=True)
class InputRecord:
    """One recording, read on demand and brought to the model's rate `fs`.

    `source(n)` reads the ECG afresh at its own rate `source_fs`, about `n` samples at a time;
    `abp()` reads the whole ABP at `fs` (None when the input carries none)."""

    record_id: str
    fs: float
    source_fs: float
    source: Blocks
    abp: Callable[[], np.ndarray | None] = _no_abp
    source_length: int | None = None  # ECG samples at source_fs, when known before reading
    lead: str | None = None  # the WFDB lead read, with the record's other ECG leads
    other_leads: tuple[str, ...] = ()

    def source_samples(self, index: np.ndarray) -> np.ndarray:
        """Sample numbers in the original recording of samples `index` at the model's rate."""
        return np.floor(np.asarray(index) * (self.source_fs / self.fs) + 1e-9).astype(np.int64)

    @property
    def length(self) -> int | None:
        """ECG samples at the model's rate, when known before reading."""
        if self.source_length is None:
            return None
        return readers._output_length(self.source_length, self.source_fs, self.fs)

    def ecg_chunks(self, size: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
        """The ECG at `fs` in consecutive non-empty pieces, resampled piece by piece."""
        resampler = readers.Resampler(self.source_fs, self.fs)
        for block in self.source(size):
            piece = resampler.push(block)
            if len(piece):
                yield piece
        rest = resampler.push(np.zeros(0), final=True)
        if len(rest):
            yield rest

    def check_lead(self, unusable: int, samples: int) -> None:
        """Warn when its WFDB lead is unusable (`unusable` of `samples`) on most of the record,
        naming the record's other ECG leads."""
        if self.lead is None or unusable <= UNUSABLE_SHARE * samples:
            return
        log.warning(
            "%s: lead %s is missing, saturated or flat on %.0f %% of the record; "
            "its other ECG leads: %s (pick one with --lead)",
            self.record_id,
            self.lead,
            100.0 * unusable / samples,
            ", ".join(self.other_leads) or "none",
        )

    def ecg(self) -> np.ndarray:
        """The whole ECG at `fs` (for whole-record uses: external evaluation, export checks)."""
        return np.concatenate([np.zeros(0), *self.ecg_chunks()])


def in_memory(record_id: str, fs: float, ecg: np.ndarray) -> InputRecord:
    """A record of ECG already at the model's rate `fs`."""
    return InputRecord(record_id, fs, fs, partial(_slices, ecg), source_length=len(ecg))


def _slices(signal: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for first in range(0, len(signal), size):
        yield signal[first : first + size]


def lowest_rate(band: tuple[float, float] | None, fs: float) -> float:
    """The lowest source rate that still holds the ECG content the model was trained on."""
    return 2.0 * band[1] if band else fs / 2.0


def read_inputs(
    path: Path,
    *,
    fs: float,
    min_source_fs: float,
    source_fs: float | None = None,
    lead: str | None = None,
    column: str | None = None,
) -> Iterator[InputRecord]:
    """Every record of `path` at `fs` Hz; refuse rates below `min_source_fs` (one-line errors)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
        if source_fs is None:
            raise InputError(f"{path}: a table of ECG samples needs --fs (its sampling rate)")
        _check_rate(path, source_fs, min_source_fs)
        blocks, length = _table_column(path, column)
        yield InputRecord(path.stem, fs, source_fs, blocks, source_length=length)
        return
    if column is not None:
        raise InputError(f"{path}: --column applies to CSV/Parquet input only")
    layout = readers.detect_format(path)
    if layout == "wfdb":
        yield from _wfdb_inputs(path, fs, min_source_fs, lead)
        return
    _check_rate(path, readers.MATLAB_FS, min_source_fs)
    for record in readers.iter_records(path, target_fs=readers.MATLAB_FS):
        n_out = readers._output_length(len(record.ecg), readers.MATLAB_FS, fs)
        yield InputRecord(
            record.record_id,
            fs,
            readers.MATLAB_FS,
            partial(_slices, record.ecg),
            partial(readers._at_rate, record.abp, readers.MATLAB_FS, fs, n_out),
            len(record.ecg),
        )


def _check_rate(where: Path | str, source_fs: float, min_source_fs: float) -> None:
    if not (math.isfinite(source_fs) and source_fs > 0):
        raise InputError(f"{where}: sampling rate must be a positive number of Hz, got {source_fs}")
    if source_fs < min_source_fs:
        raise InputError(
            f"{where}: sampled at {source_fs:g} Hz, too low for the model "
            f"(its ECG band needs at least {min_source_fs:g} Hz)"
        )


def _table_column(path: Path, column: str | None) -> tuple[Blocks, int | None]:
    """The ECG column of a CSV/Parquet table (`column`, else `ecg`, else the only column) as
    blocks, and its length when the file tells it."""
    parquet = path.suffix.lower() == ".parquet"
    with readers._translated(str(path), "cannot read table"):
        if parquet:
            table = pq.ParquetFile(path)
            index = (table.schema_arrow.pandas_metadata or {}).get("index_columns", [])
            columns = [name for name in table.schema_arrow.names if name not in index]
            length = table.metadata.num_rows
        else:
            dialect = {"sep": _csv_separator(path)}
            columns, length = list(pd.read_csv(path, nrows=0, **dialect).columns), None
    name = _ecg_column(path, columns, column)
    if parquet:
        return partial(_table_blocks, path, name, None), length
    with readers._translated(str(path), "cannot read table"):
        dialect["decimal"] = _csv_decimal(path, dialect["sep"], name)
    return partial(_table_blocks, path, name, dialect), length


def _csv_separator(path: Path) -> str:
    """The CSV's field separator (`,`, `;` or tab); refuses rows longer than the header, which
    a comma-separated file of unquoted decimal commas ("0,0713") would have."""
    with path.open(newline="", errors="replace") as file:
        head = file.read(SNIFF_BYTES)
    lines = head.splitlines()[:-1] if len(head) == SNIFF_BYTES else head.splitlines()
    try:
        separator = csv.Sniffer().sniff("\n".join(lines), delimiters=SEPARATORS).delimiter
    except csv.Error:  # one column, or nothing to tell from: comma
        separator = ","
    rows = [row for row in csv.reader(lines, delimiter=separator) if row]
    if rows and any(len(row) > len(rows[0]) for row in rows[1:]):
        raise InputError(
            f"{path}: rows hold more fields than the header's {len(rows[0])} "
            f"(numbers with decimal commas must be quoted or separated by ';')"
        )
    return separator


def _csv_decimal(path: Path, separator: str, name: str) -> str:
    """`,` when the ECG column's first values are decimal-comma numbers ("0,0713"), else `.`."""
    head = pd.read_csv(path, sep=separator, usecols=[name], dtype=str, nrows=1000)[name].dropna()
    return "," if len(head) and head.str.fullmatch(DECIMAL_COMMA).all() else "."


def _table_blocks(path: Path, name: str, dialect: dict | None, size: int) -> Iterator[np.ndarray]:
    """Column `name` of a table (CSV when `dialect` gives read_csv's sep and decimal) as float64
    blocks of `size` rows (non-numbers read as NaN)."""
    with readers._translated(str(path), "cannot read table"):
        if dialect is None:
            batches = pq.ParquetFile(path).iter_batches(batch_size=size, columns=[name])
            values = (batch.column(0).to_numpy(zero_copy_only=False) for batch in batches)
        else:
            chunks = pd.read_csv(path, usecols=[name], chunksize=size, **dialect)
            values = (chunk[name].to_numpy() for chunk in chunks)
        for block in values:
            yield pd.to_numeric(block, errors="coerce").astype(np.float64)


def _ecg_column(path: Path, columns: list, column: str | None) -> str:
    """The name of the ECG column among `columns` (matched ignoring case)."""
    names = {str(name).lower(): name for name in columns}
    wanted = column or (ECG_COLUMN if ECG_COLUMN in names else None)
    if wanted is None and len(columns) == 1:
        wanted = str(columns[0])
    if wanted is None or wanted.lower() not in names:
        found = ", ".join(map(str, columns)) or "none"
        raise InputError(f"{path}: no ECG column {wanted or ECG_COLUMN!r} (columns: {found})")
    return names[wanted.lower()]


def _wfdb_inputs(
    path: Path, fs: float, min_source_fs: float, lead: str | None
) -> Iterator[InputRecord]:
    folder = path.resolve() if path.is_dir() else path.resolve().parent
    for header in readers._wfdb_headers(path):
        layout = readers.wfdb_layout(header)
        ecg = readers._channel(layout.names, [lead]) if lead else readers.ecg_channel(layout.names)
        if ecg is None:
            asked = f"lead {lead!r}" if lead else "ECG lead"
            channels = ", ".join(layout.names) or "none"
            raise InputError(f"{header}: no {asked} (channels: {channels})")
        source_fs = layout.rate(ecg)
        _check_rate(header, source_fs, min_source_fs)
        record_id = f"{folder.name}/{header.stem}"
        where = f"{header}: record {record_id}"
        length = layout.frames * layout.per_frame[ecg]
        n_out = readers._output_length(length, source_fs, fs)
        yield InputRecord(
            record_id,
            fs,
            source_fs,
            partial(readers.wfdb_blocks, header, layout, ecg, where=where),
            partial(_wfdb_abp, header, layout, where, fs, n_out),
            length,
            layout.names[ecg],
            tuple(name for name in readers.ecg_leads(layout.names) if name != layout.names[ecg]),
        )


def _wfdb_abp(
    header: Path, layout: readers.WfdbLayout, where: str, fs: float, n_out: int
) -> np.ndarray | None:
    """The whole ABP channel at `fs`, `n_out` long; None when there is none or it is all NaN."""
    channel = readers._channel(layout.names, readers.ABP_NAMES)
    if channel is None:
        return None
    blocks = readers.wfdb_blocks(header, layout, channel, BLOCK_SAMPLES, where)
    abp = readers._at_rate(np.concatenate([np.zeros(0), *blocks]), layout.rate(channel), fs, n_out)
    return None if np.isnan(abp).all() else abp
