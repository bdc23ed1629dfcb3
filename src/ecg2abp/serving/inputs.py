"""Recordings to predict on: part files (either layout), WFDB records, CSV/Parquet ECG columns.

Every input is brought to the model's rate with the readers' polyphase resampling; each record
keeps its original rate so that outputs can name the sample of the original recording.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb

from ecg2abp.data import readers
from ecg2abp.errors import InputError

TABLE_SUFFIXES = (".csv", ".parquet")
ECG_COLUMN = "ecg"
DEFAULT_LEAD = "II"


@dataclass(frozen=True)
class InputRecord:
    """One recording at the model's rate `fs`; `source_fs` is the rate it was recorded at."""

    record_id: str
    fs: float
    source_fs: float
    ecg: np.ndarray  # float64 at fs
    abp: np.ndarray | None  # float64 at fs, None when the input carries no ABP

    def source_samples(self, index: np.ndarray) -> np.ndarray:
        """Sample numbers in the original recording of samples `index` at the model's rate."""
        return np.floor(np.asarray(index) * (self.source_fs / self.fs) + 1e-9).astype(np.int64)


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
        ecg = _table_column(path, column)
        yield InputRecord(path.stem, fs, source_fs, _resampled(ecg, source_fs, fs), None)
        return
    if column is not None:
        raise InputError(f"{path}: --column applies to CSV/Parquet input only")
    layout = readers.detect_format(path)
    if layout == "wfdb":
        yield from _wfdb_inputs(path, fs, min_source_fs, lead)
        return
    _check_rate(path, readers.MATLAB_FS, min_source_fs)
    for record in readers.iter_records(path, target_fs=fs):
        yield InputRecord(record.record_id, fs, readers.MATLAB_FS, record.ecg, record.abp)


def _check_rate(where: Path | str, source_fs: float, min_source_fs: float) -> None:
    if not (math.isfinite(source_fs) and source_fs > 0):
        raise InputError(f"{where}: sampling rate must be a positive number of Hz, got {source_fs}")
    if source_fs < min_source_fs:
        raise InputError(
            f"{where}: sampled at {source_fs:g} Hz, too low for the model "
            f"(its ECG band needs at least {min_source_fs:g} Hz)"
        )


def _resampled(ecg: np.ndarray, source_fs: float, fs: float) -> np.ndarray:
    n_out = math.ceil(len(ecg) * fs / source_fs - 1e-9)
    return readers._at_rate(ecg, source_fs, fs, n_out)


def _table_column(path: Path, column: str | None) -> np.ndarray:
    """The ECG column of a CSV/Parquet table: `column`, else `ecg`, else the only column."""
    try:
        table = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # pandas/pyarrow raise many types for a malformed file
        raise InputError(f"{path}: cannot read table ({readers._reason(exc)})") from None
    names = {str(name).lower(): name for name in table.columns}
    wanted = column or (ECG_COLUMN if ECG_COLUMN in names else None)
    if wanted is None and len(table.columns) == 1:
        wanted = str(table.columns[0])
    if wanted is None or wanted.lower() not in names:
        found = ", ".join(map(str, table.columns)) or "none"
        raise InputError(f"{path}: no ECG column {wanted or ECG_COLUMN!r} (columns: {found})")
    values = pd.to_numeric(table[names[wanted.lower()]], errors="coerce")
    return values.to_numpy(dtype=np.float64)


def _wfdb_lead(header: Path, lead: str | None) -> tuple[str, float]:
    """The ECG channel to read (named `lead`, default II, else the first ECG lead) and its rate."""
    try:
        head = wfdb.rdheader(str(header.with_suffix("")))
    except Exception as exc:
        raise InputError(f"{header}: cannot read WFDB header ({readers._reason(exc)})") from None
    names = list(head.sig_name or [])
    wanted = [lead] if lead else [DEFAULT_LEAD, *readers.ECG_LEADS]
    index = readers._channel(names, wanted)
    if index is None:
        asked = f"lead {lead!r}" if lead else "ECG lead"
        raise InputError(f"{header}: no {asked} (channels: {', '.join(names) or 'none'})")
    return names[index], float(head.fs) * (head.samps_per_frame or [1] * len(names))[index]


def _wfdb_inputs(
    path: Path, fs: float, min_source_fs: float, lead: str | None
) -> Iterator[InputRecord]:
    for header in readers._wfdb_headers(path):
        name, channel_fs = _wfdb_lead(header, lead)
        _check_rate(header, channel_fs, min_source_fs)
        for record in readers.iter_records(header, ecg_lead=name, target_fs=fs):
            abp = None if np.isnan(record.abp).all() else record.abp
            yield InputRecord(record.record_id, fs, channel_fs, record.ecg, abp)
