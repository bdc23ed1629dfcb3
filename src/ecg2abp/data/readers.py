"""Read recordings (Kaggle / UCI MATLAB parts, PulseDB subsets, WFDB records) as `Record`s at one
sampling rate."""

import math
import re
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
import scipy.io
import wfdb
from scipy.signal import resample_poly

from ecg2abp.errors import InputError

MATLAB_FS = 125.0
KAGGLE_VARIABLE = "p"
MAT5_MAGIC = b"MATLAB 5.0 MAT-file"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MAT73_USER_BLOCK = 512
MAT5_HEADER = 128
# MATLAB v5 element types whose numbers numpy reads as they are stored (little-endian)
MI_DTYPES = {1: "<i1", 2: "<u1", 3: "<i2", 4: "<u2", 5: "<i4", 6: "<u4", 7: "<f4", 9: "<f8"}
MI_DTYPES |= {12: "<i8", 13: "<u8"}
MI_MATRIX = 14
MX_CELL = 1
MX_NUMERIC = range(6, 16)  # double, single, int8 … uint64
MX_COMPLEX, MX_LOGICAL = 0x0800, 0x0200  # flag bits loadmat turns into other types
DEFAULT_LEAD = "II"
# Channel names that are ECG leads (compared upper-case, spaces dropped): limb and augmented
# leads, precordial V and V1–V6, modified chest leads MCL and MCL1–MCL6, and plain ECG/EKG.
ECG_LEAD = re.compile(r"I|II|III|AVR|AVL|AVF|V[1-6]?|MCL[1-6]?|(?:ECG|EKG)\d*")
ABP_NAMES = ("ABP", "ART", "BP")
PPG_NAMES = ("PLETH", "PPG")
MAX_RATE_TERMS = 1000
PULSEDB_STRUCT = "Subset"
PULSEDB_FIELDS = ("Subject", "Signals")
PULSEDB_ROWS = ("ecg", "ppg", "abp")  # Signals' middle axis: ECG_F, PPG_F, ABP_Raw
PULSEDB_SLICE = 256  # segments read at a time (256 × 3 × 1250 float64 = 7.7 MB)
# A WFDB record that names its patient: MIMIC-III's "p000188-2134-…" or a folder "p000188".
WFDB_SUBJECT = re.compile(r"(p\d{6})(?:-.*)?")

Format = Literal["kaggle", "uci", "pulsedb", "wfdb"]


@dataclass(frozen=True)
class Record:
    """One recording: simultaneous ECG, ABP and PPG at `fs` Hz (PPG all NaN when absent)."""

    record_id: str
    fs: float
    ecg: np.ndarray
    abp: np.ndarray
    ppg: np.ndarray
    subject: str | None = None  # the patient/subject the recording is from; None = unknown


def detect_format(path: Path) -> Format:
    """Tell the input layout from the file's content (a folder or `.hea` file is WFDB; a MATLAB
    v7.3 file holding a struct `Subset` is a PulseDB subset)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: does not exist")
    if path.is_dir() or path.suffix.lower() == ".hea":
        return "wfdb"
    with path.open("rb") as file:
        head = file.read(MAT73_USER_BLOCK + len(HDF5_MAGIC))
    if head.startswith(MAT5_MAGIC):
        return "kaggle"
    if head[MAT73_USER_BLOCK:] == HDF5_MAGIC and h5py.is_hdf5(path):
        return "pulsedb" if _holds_subset(path) else "uci"
    raise InputError(f"{path}: not a MATLAB or WFDB file")


def iter_records(
    path: Path, *, ecg_lead: str = DEFAULT_LEAD, target_fs: float = 125.0
) -> Iterator[Record]:
    """Yield every record of a part file or WFDB folder/record, resampled to `target_fs`
    (a WFDB record's ECG: `ecg_lead` when it has it, else its first ECG lead)."""
    path = Path(path)
    if not (math.isfinite(target_fs) and target_fs > 0):
        raise InputError(f"target_fs: must be a positive number of Hz, got {target_fs}")
    layout = detect_format(path)
    if layout == "kaggle":
        return _matlab_records(_kaggle_matrices(path), target_fs)
    if layout == "uci":
        return _matlab_records(_uci_matrices(path), target_fs)
    if layout == "pulsedb":
        return _pulsedb_records(path, target_fs)
    return _wfdb_records(path, ecg_lead, target_fs)


# --- shared helpers -----------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    """The exception as one short line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@contextmanager
def _translated(where: str, problem: str) -> Iterator[None]:
    """Turn a library exception raised inside the block into a one-line InputError."""
    try:
        yield
    except (InputError, MemoryError):
        raise
    except Exception as exc:
        raise InputError(f"{where}: {problem} ({_reason(exc)})") from exc


def _describe(value: object) -> str:
    """A short description of what was found, in MATLAB's row-by-column terms."""
    if isinstance(value, np.ndarray):
        return f"{'×'.join(str(n) for n in value.shape) or 'scalar'} {value.dtype}"
    return type(value).__name__


def _three_rows(value: object, where: str) -> np.ndarray:
    """Check that a record is a numeric 3×N matrix [PPG, ABP, ECG]."""
    if (
        not isinstance(value, np.ndarray)
        or value.dtype.kind not in "fiu"
        or value.ndim != 2
        or value.shape[0] != 3
    ):
        raise InputError(f"{where}: expected a numeric 3×N matrix, got {_describe(value)}")
    return value


def _output_length(n_samples: int, fs: float, target_fs: float) -> int:
    """Samples a stretch of `n_samples` at `fs` holds once brought to `target_fs`."""
    return math.ceil(n_samples * target_fs / fs - 1e-9)


def _at_rate(signal: np.ndarray | None, fs: float, target_fs: float, n_out: int) -> np.ndarray:
    """One channel as contiguous float64 at `target_fs`, exactly `n_out` long (None: all NaN)."""
    if signal is None:
        return np.full(n_out, np.nan)
    resampler = Resampler(fs, target_fs)
    signal = resampler.push(signal, final=True)
    if signal.size >= n_out:
        return signal[:n_out]
    return np.concatenate([signal, np.full(n_out - signal.size, np.nan)])


class Resampler:
    """scipy's `resample_poly` from `fs` to `target_fs` over a stream fed in blocks of any size.

    The output equals resampling the whole signal at once: every output sample is computed from
    a block that holds all the input its filter reaches, and the blocks start at multiples of
    `down` so that they keep the whole signal's polyphase alignment. Once final, the output is
    `_output_length(n)` long for `n` inputs (NaN-padded where the rational ratio falls short).
    """

    def __init__(self, fs: float, target_fs: float) -> None:
        ratio = Fraction(target_fs / fs).limit_denominator(MAX_RATE_TERMS) if fs != target_fs else 1
        self.fs, self.target_fs = fs, target_fs
        self.up, self.down = ratio.numerator, ratio.denominator
        # resample_poly's default filter has 10 * max(up, down) taps either side of its centre
        # and pads it by up to `down` taps; its reach in upsampled samples either side:
        self.reach = 10 * max(self.up, self.down) + self.down
        self._held = np.zeros(0)  # inputs from _start on
        self._start = 0  # a multiple of down
        self._received = 0
        self._next = 0  # index of the next output

    def push(self, block: np.ndarray, final: bool = False) -> np.ndarray:
        """The output samples that `block` (the next inputs) made final; all the rest if `final`."""
        block = np.asarray(block, dtype=np.float64)
        self._received += len(block)
        total = _output_length(self._received, self.fs, self.target_fs)
        if self.up == self.down:
            out = block[: total - self._next]
            self._next += len(out)
            return np.ascontiguousarray(out)
        self._held = np.concatenate([self._held, block])
        if final:
            upto = total
        else:  # outputs whose reach ends inside what was received
            upto = ((self._received - 1) * self.up - self.reach) // self.down + 1
            upto = max(self._next, min(upto, total))
        if upto == self._next:
            return np.zeros(0)
        first = self._start * self.up // self.down  # output index of the block's first output
        computed = resample_poly(self._held, self.up, self.down)[self._next - first : upto - first]
        out = np.concatenate([computed, np.full(upto - self._next - len(computed), np.nan)])
        self._next = upto
        # keep the inputs that the next output reaches, from a multiple of down
        needed = max(0, (upto * self.down - self.reach) // self.up)
        start = max(self._start, needed // self.down * self.down)
        self._held = self._held[start - self._start :]
        self._start = start
        return out


# --- MATLAB layouts -----------------------------------------------------------------------------


def _matlab_records(
    matrices: Iterator[tuple[str, np.ndarray]], target_fs: float
) -> Iterator[Record]:
    """Records from (record id, 3×N [PPG, ABP, ECG] at 125 Hz) pairs."""
    for record_id, matrix in matrices:
        n_out = _output_length(matrix.shape[1], MATLAB_FS, target_fs)
        ppg, abp, ecg = (_at_rate(row, MATLAB_FS, target_fs, n_out) for row in matrix)
        yield Record(record_id, float(target_fs), ecg=ecg, abp=abp, ppg=ppg)


def _kaggle_matrices(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """The records of a MATLAB v5/v7 part: read one at a time where the file stores them plainly
    (`_plain_cells`), else from the whole variable, each dropped from the cell once handed out."""
    try:
        located = _plain_cells(path)
    except (OSError, ValueError, struct.error):
        located = None  # loadmat reads it, or says what is wrong with it
    if located is not None:
        yield from _plain_matrices(path, located)
        return
    cells = _kaggle_cells(path)
    for index in range(cells.size):
        record_id = f"{path.stem}/{index:04d}"
        matrix = _three_rows(cells[index], f"{path}: record {record_id}")
        cells[index] = None
        yield record_id, matrix


@dataclass(frozen=True)
class PlainMatrix:
    """Where a real numeric matrix's numbers lie in a MATLAB v5 file, stored column-major."""

    offset: int
    dtype: str
    shape: tuple[int, ...]


def _element(file) -> tuple[int, int, bytes | None]:
    """A v5 data element's type and size; its bytes when packed into the tag (small element),
    else None with the file at its data."""
    kind, size = struct.unpack("<II", file.read(8))
    if kind >> 16:
        return kind & 0xFFFF, kind >> 16, struct.pack("<I", size)[: kind >> 16]
    return kind, size, None


def _element_bytes(file) -> tuple[int, bytes]:
    """A (small) data element's type and bytes, the file moved past its padding."""
    kind, size, packed = _element(file)
    if packed is not None:
        return kind, packed
    data = file.read(size)
    file.seek(-size % 8, 1)
    return kind, data


def _matrix_header(file) -> tuple[int, int, tuple[int, ...], str]:
    """A miMATRIX's flags: class and flag bits, dimensions and name."""
    _, flags = _element_bytes(file)
    _, dims = _element_bytes(file)
    _, name = _element_bytes(file)
    bits = struct.unpack("<I", flags[:4])[0]
    shape = tuple(struct.unpack(f"<{len(dims) // 4}i", dims))
    return bits & 0xFF, bits, shape, name.decode("latin-1")


def _plain_cells(path: Path) -> list[PlainMatrix] | None:
    """Each record of variable `p` of an uncompressed little-endian MATLAB v5 file whose cells
    are all non-empty real numeric matrices; None for any other file (loadmat reads those)."""
    end_of_file = path.stat().st_size
    with path.open("rb") as file:
        if file.read(MAT5_HEADER)[126:128] != b"IM":
            return None
        while file.tell() + 8 <= end_of_file:
            kind, size, packed = _element(file)
            end = file.tell() + size
            if kind != MI_MATRIX or packed is not None or end > end_of_file:
                return None  # compressed (v7) or damaged
            kind, _, shape, name = _matrix_header(file)
            if name == KAGGLE_VARIABLE:
                if kind != MX_CELL or sum(n > 1 for n in shape) > 1 or math.prod(shape) == 0:
                    return None
                return _plain_cell_matrices(file, math.prod(shape), end)
            file.seek(end)
    return None


def _plain_cell_matrices(file, count: int, end: int) -> list[PlainMatrix] | None:
    """The `count` matrices of a cell array whose elements end at `end`."""
    located = []
    for _ in range(count):
        kind, size, packed = _element(file)
        after = file.tell() + size
        if kind != MI_MATRIX or packed is not None or after > end:
            return None
        kind, bits, shape, _ = _matrix_header(file)
        if kind not in MX_NUMERIC or bits & (MX_COMPLEX | MX_LOGICAL) or len(shape) != 2:
            return None
        stored, length, packed = _element(file)
        dtype = MI_DTYPES.get(stored)
        if dtype is None or packed is not None or 0 in shape:
            return None
        if length != math.prod(shape) * np.dtype(dtype).itemsize:
            return None
        located.append(PlainMatrix(file.tell(), dtype, shape))
        file.seek(after)
    return located


def _plain_matrices(path: Path, located: list[PlainMatrix]) -> Iterator[tuple[str, np.ndarray]]:
    """The located matrices read one at a time, as loadmat gives them (column-major, the type
    stored)."""
    with path.open("rb") as file:
        for index, matrix in enumerate(located):
            record_id = f"{path.stem}/{index:04d}"
            where = f"{path}: record {record_id}"
            with _translated(where, "cannot read record"):
                file.seek(matrix.offset)
                values = np.fromfile(file, matrix.dtype, math.prod(matrix.shape))
            yield record_id, _three_rows(values.reshape(matrix.shape, order="F"), where)


def _kaggle_cells(path: Path) -> np.ndarray:
    """Load variable `p` once, as a flat object array of records."""
    with _translated(str(path), "cannot read MATLAB file"):
        contents = scipy.io.loadmat(path, variable_names=[KAGGLE_VARIABLE])
    if KAGGLE_VARIABLE not in contents:
        with _translated(str(path), "cannot list MATLAB variables"):
            found = [name for name, _, _ in scipy.io.whosmat(path)]
        raise InputError(
            f"{path}: no variable '{KAGGLE_VARIABLE}' (found: {', '.join(found) or 'none'})"
        )
    cells = contents.pop(KAGGLE_VARIABLE)
    del contents
    if cells.dtype != object:
        raise InputError(
            f"{path}: variable '{KAGGLE_VARIABLE}' is not a cell array ({_describe(cells)})"
        )
    cells = cells.reshape(-1)
    if cells.size == 0:
        raise InputError(f"{path}: variable '{KAGGLE_VARIABLE}' holds no records")
    return cells


def _uci_matrices(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """The records of a MATLAB v7.3 part, read one at a time."""
    with _translated(str(path), "cannot read MATLAB v7.3 file"):
        file = h5py.File(path, "r")
    with file:
        references = _uci_references(file, path)
        for index, reference in enumerate(references):
            record_id = f"{path.stem}/{index:04d}"
            where = f"{path}: record {record_id}"
            with _translated(where, "cannot read record"):
                stored = file[reference]
                data = stored[()] if isinstance(stored, h5py.Dataset) else stored
            yield record_id, _three_rows(_matlab_view(data), where)


def _matlab_view(data: object) -> object:
    """HDF5 stores MATLAB's column-major matrices transposed; undo that."""
    return data.T if isinstance(data, np.ndarray) else data


def _uci_references(file: h5py.File, path: Path) -> np.ndarray:
    """The flat array of record references held by the part's cell variable."""
    name = _uci_variable_name(file, path)
    cell = file[name]
    if isinstance(cell, h5py.Dataset) and cell.attrs.get("MATLAB_empty", 0):
        raise InputError(f"{path}: variable '{name}' holds no records")
    if not isinstance(cell, h5py.Dataset) or h5py.check_dtype(ref=cell.dtype) is not h5py.Reference:
        raise InputError(f"{path}: variable '{name}' is not a cell array of records")
    with _translated(f"{path}: variable '{name}'", "cannot read"):
        references = cell[()].reshape(-1)
    if references.size == 0:
        raise InputError(f"{path}: variable '{name}' holds no records")
    return references


def _uci_variable_name(file: h5py.File, path: Path) -> str:
    """The variable named after the file stem, or the only variable there is."""
    if path.stem in file:
        return path.stem
    variables = [name for name in file if not name.startswith("#")]
    if len(variables) == 1:
        return variables[0]
    raise InputError(f"{path}: no variable '{path.stem}' (found: {', '.join(variables) or 'none'})")


# --- PulseDB subsets ----------------------------------------------------------------------------
# A subset file (Train_Subset.mat, CalFree_Test_Subset.mat, …) is MATLAB v7.3: a struct `Subset`
# is an HDF5 group whose fields are datasets. `Signals` (N×3×L double in MATLAB) is stored
# transposed, HDF5 shape (L, 3, N); `Subject` (an N×1 cell of char) is (1, N) object references
# into `#refs#`, each a (length, 1) uint16 char array. Both are read PULSEDB_SLICE rows at a time.


def _holds_subset(path: Path) -> bool:
    """Whether a MATLAB v7.3 file holds PulseDB's struct `Subset` (an HDF5 group)."""
    with _translated(str(path), "cannot read MATLAB v7.3 file"), h5py.File(path, "r") as file:
        return isinstance(file.get(PULSEDB_STRUCT), h5py.Group)


def pulsedb_record_id(subject: str, stem: str, row: int) -> str:
    """A segment's id: subject (its last digit the source), subset file and row, e.g.
    "p000188_0/Train_Subset/000123"."""
    return f"{subject}/{stem}/{row:06d}"


def _pulsedb_field(file: h5py.File, path: Path, name: str) -> h5py.Dataset:
    """The struct field `Subset.<name>` as a dataset."""
    field = file[PULSEDB_STRUCT].get(name)
    if not isinstance(field, h5py.Dataset):
        found = ", ".join(file[PULSEDB_STRUCT]) or "none"
        raise InputError(f"{path}: no field {PULSEDB_STRUCT}.{name} (found: {found})")
    return field


def _pulsedb_signals(file: h5py.File, path: Path) -> h5py.Dataset:
    """`Subset.Signals`, checked to be numeric of HDF5 shape (L, 3, N)."""
    signals = _pulsedb_field(file, path, "Signals")
    if signals.attrs.get("MATLAB_empty", 0):
        raise InputError(f"{path}: {PULSEDB_STRUCT}.Signals holds no segments")
    if signals.dtype.kind not in "fiu" or signals.ndim != 3 or signals.shape[1] != 3:
        raise InputError(
            f"{path}: {PULSEDB_STRUCT}.Signals: expected a numeric N×3×L array, got "
            f"{'×'.join(str(n) for n in reversed(signals.shape))} {signals.dtype} "
            "(in MATLAB's order)"
        )
    return signals


def _pulsedb_column(file: h5py.File, path: Path, name: str, n_rows: int) -> h5py.Dataset:
    """An N×1 field (HDF5 (1, N) or (N, 1)), checked to hold one value per segment."""
    field = _pulsedb_field(file, path, name)
    if field.ndim != 2 or 1 not in field.shape or field.size != n_rows:
        raise InputError(
            f"{path}: {PULSEDB_STRUCT}.{name}: expected {n_rows}×1 (one per segment of "
            f"Signals), got {'×'.join(str(n) for n in reversed(field.shape))}"
        )
    return field


def _column_rows(field: h5py.Dataset, first: int, stop: int) -> np.ndarray:
    """Rows first..stop of an N×1 field, whichever way HDF5 holds it."""
    return field[0, first:stop] if field.shape[0] == 1 else field[first:stop, 0]


def _matlab_text(file: h5py.File, reference: h5py.Reference, where: str) -> str:
    """The MATLAB char array a cell element refers to, as text."""
    with _translated(where, "cannot read cell element"):
        stored = file[reference]
        text = stored[()] if isinstance(stored, h5py.Dataset) else None
    if (
        not isinstance(text, np.ndarray)
        or text.dtype.kind not in "ui"
        or stored.attrs.get("MATLAB_empty", 0)
    ):
        raise InputError(f"{where}: expected a non-empty char array, got {_describe(text)}")
    return "".join(map(chr, text.reshape(-1)))


def pulsedb_values(path: Path, name: str) -> np.ndarray:
    """A numeric N×1 field of a PulseDB subset (SBP, DBP, Age, …) as a float64 vector."""
    path = Path(path)
    with _open_subset(path) as file:
        if not isinstance(file.get(PULSEDB_STRUCT), h5py.Group):
            raise InputError(f"{path}: no struct {PULSEDB_STRUCT} (not a PulseDB subset)")
        n_rows = _pulsedb_signals(file, path).shape[2]
        field = _pulsedb_column(file, path, name, n_rows)
        if field.dtype.kind not in "fiu":
            raise InputError(f"{path}: {PULSEDB_STRUCT}.{name}: not numeric ({field.dtype})")
        with _translated(f"{path}: {PULSEDB_STRUCT}.{name}", "cannot read"):
            return np.asarray(field[()], dtype=np.float64).reshape(-1)


def _open_subset(path: Path) -> h5py.File:
    with _translated(str(path), "cannot read MATLAB v7.3 file"):
        return h5py.File(path, "r")


def _pulsedb_slice(path: Path, first: int, stop: int) -> tuple[np.ndarray, list[str]]:
    """Segments first..stop-1 as (n, 3, L) [ECG_F, PPG_F, ABP_Raw] and their subjects.

    The file is opened for each slice: while a file is open, HDF5 keeps what it read of every
    cell element dereferenced (about 3.5 kB a segment), which would grow with the file."""
    with _open_subset(path) as file:
        signals = _pulsedb_signals(file, path)
        subjects = _pulsedb_column(file, path, "Subject", signals.shape[2])
        with _translated(
            f"{path}: {PULSEDB_STRUCT}.Signals segments {first}–{stop - 1}", "cannot read"
        ):
            block = np.transpose(signals[:, :, first:stop], (2, 1, 0))
            references = _column_rows(subjects, first, stop)
        names = [
            _matlab_text(file, reference, f"{path}: {PULSEDB_STRUCT}.Subject segment {row}")
            for row, reference in enumerate(references, start=first)
        ]
    return block, names


def _pulsedb_records(path: Path, target_fs: float) -> Iterator[Record]:
    """One Record per 10-s segment of a PulseDB subset, read PULSEDB_SLICE segments at a time."""
    with _open_subset(path) as file:
        length, _, n_rows = _pulsedb_signals(file, path).shape
        subjects = _pulsedb_column(file, path, "Subject", n_rows)
        if h5py.check_dtype(ref=subjects.dtype) is not h5py.Reference:
            raise InputError(f"{path}: {PULSEDB_STRUCT}.Subject: not a cell array of char")
    n_out = _output_length(length, MATLAB_FS, target_fs)
    for first in range(0, n_rows, PULSEDB_SLICE):
        block, names = _pulsedb_slice(path, first, min(n_rows, first + PULSEDB_SLICE))
        for row, (subject, rows) in enumerate(zip(names, block, strict=True), start=first):
            channels = {
                name: _at_rate(values, MATLAB_FS, target_fs, n_out)
                for name, values in zip(PULSEDB_ROWS, rows, strict=True)
            }
            yield Record(
                pulsedb_record_id(subject, path.stem, row),
                float(target_fs),
                subject=subject,
                **channels,
            )


# --- WFDB ---------------------------------------------------------------------------------------


def _normalised(name: str) -> str:
    return "".join(name.split()).upper()


def _channel(names: Sequence[str], wanted: Sequence[str]) -> int | None:
    """Index of the first wanted channel name present (case and spaces ignored)."""
    present = [_normalised(name) for name in names]
    for name in wanted:
        if _normalised(name) in present:
            return present.index(_normalised(name))
    return None


def ecg_leads(names: Sequence[str]) -> list[str]:
    """The channels of `names` that are ECG leads, in the record's order."""
    return [name for name in names if ECG_LEAD.fullmatch(_normalised(name))]


def ecg_channel(names: Sequence[str], lead: str = DEFAULT_LEAD) -> int | None:
    """The ECG channel to read: `lead` when the record has it, else its first ECG lead."""
    chosen = _channel(names, [lead])
    if chosen is None:
        leads = ecg_leads(names)
        chosen = _channel(names, leads[:1]) if leads else None
    return chosen


def _wfdb_headers(path: Path) -> list[Path]:
    """The header files to read: one `.hea`, or every record of a folder but multi-segment parts."""
    if not path.is_dir():
        return [path]
    headers = sorted(path.glob("*.hea"))
    if not headers:
        raise InputError(f"{path}: folder holds no WFDB records (*.hea)")
    segments: set[str] = set()
    for header in headers:
        with _translated(str(header), "cannot read WFDB header"):
            head = wfdb.rdheader(str(header.with_suffix("")))
        if isinstance(head, wfdb.MultiRecord):
            segments.update(head.seg_name)
    return [header for header in headers if header.stem not in segments]


def wfdb_subject(folder: Path, name: str) -> str | None:
    """The patient a WFDB record names, MIMIC-III style: its name "p000188-2134-…" or its folder
    "p000188" gives "p000188"; None when neither does."""
    for text in (name, folder.name):
        match = WFDB_SUBJECT.fullmatch(text)
        if match:
            return match.group(1)
    return None


def _wfdb_records(path: Path, ecg_lead: str, target_fs: float) -> Iterator[Record]:
    """One Record per WFDB record, channels picked by name and brought to `target_fs`."""
    folder = path.resolve() if path.is_dir() else path.resolve().parent
    for header in _wfdb_headers(path):
        record_id = f"{folder.name}/{header.stem}"
        with _translated(f"{header}: record {record_id}", "cannot read WFDB record"):
            stored = wfdb.rdrecord(str(header.with_suffix("")), smooth_frames=False)
        n_out = _output_length(stored.sig_len, stored.fs, target_fs)
        yield Record(
            record_id,
            float(target_fs),
            ecg=_wfdb_channel(
                stored, ecg_channel(stored.sig_name or [], ecg_lead), target_fs, n_out
            ),
            abp=_wfdb_channel(stored, _channel(stored.sig_name or [], ABP_NAMES), target_fs, n_out),
            ppg=_wfdb_channel(stored, _channel(stored.sig_name or [], PPG_NAMES), target_fs, n_out),
            subject=wfdb_subject(folder, header.stem),
        )


def _wfdb_channel(
    stored: wfdb.Record, index: int | None, target_fs: float, n_out: int
) -> np.ndarray:
    """Channel `index` at `target_fs` (its own rate may be several samples per frame; None:
    absent, all NaN)."""
    if index is None:
        return _at_rate(None, stored.fs, target_fs, n_out)
    channel_fs = stored.fs * stored.samps_per_frame[index]
    return _at_rate(stored.e_p_signal[index], channel_fs, target_fs, n_out)


@dataclass(frozen=True)
class WfdbLayout:
    """A WFDB record's channel names, frame rate, samples per frame and length in frames."""

    names: list[str]
    fs: float
    per_frame: list[int]
    frames: int

    def rate(self, channel: int) -> float:
        return self.fs * self.per_frame[channel]


def wfdb_layout(header: Path) -> WfdbLayout:
    """The layout of a single- or multi-segment record (the latter's names from its first frame)."""
    base = str(header.with_suffix(""))
    with _translated(str(header), "cannot read WFDB header"):
        head = wfdb.rdheader(base)
        if isinstance(head, wfdb.MultiRecord) and head.sig_len:
            first = wfdb.rdrecord(base, sampto=1, smooth_frames=False)
            names, per_frame = first.sig_name, first.samps_per_frame
        else:
            names, per_frame = head.sig_name or [], head.samps_per_frame or []
    return WfdbLayout(list(names), float(head.fs), list(per_frame), int(head.sig_len or 0))


def wfdb_blocks(
    header: Path, layout: WfdbLayout, channel: int, samples: int, where: str
) -> Iterator[np.ndarray]:
    """One channel of a WFDB record at its own rate, about `samples` samples at a time."""
    base = str(header.with_suffix(""))
    frames = max(1, samples // layout.per_frame[channel])
    for first in range(0, layout.frames, frames):
        with _translated(where, "cannot read WFDB record"):
            stored = wfdb.rdrecord(
                base,
                sampfrom=first,
                sampto=min(layout.frames, first + frames),
                channel_names=[layout.names[channel]],
                smooth_frames=False,
            )
        yield np.asarray(stored.e_p_signal[0], dtype=np.float64)
