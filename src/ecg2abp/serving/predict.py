"""`ecg2abp predict`: ABP for every sample of new recordings, chunk by chunk in bounded memory."""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from ecg2abp.atomic import refuse_overwriting
from ecg2abp.data.cleaning import ecg_extremes
from ecg2abp.errors import InputError
from ecg2abp.serving.beats import RecordBeats
from ecg2abp.serving.ensemble import ServingModel, load_model
from ecg2abp.serving.inputs import UNUSABLE_ECG, InputRecord, lowest_rate, read_inputs
from ecg2abp.serving.outputs import (
    BEAT_SCHEMA,
    TableWriter,
    beat_table,
    check_suffix,
    prediction_schema,
    prediction_table,
)
from ecg2abp.serving.pipeline import FLAGS, CausalPipeline, Rows

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CHUNK_SAMPLES = 1 << 15
PLOT_SECONDS = 10.0


@dataclass
class InputOptions:
    """How to read INPUT: the rate of a table (--fs), the WFDB lead, the table column."""

    fs: float | None = None
    lead: str | None = None
    column: str | None = None


@dataclass
class Counts:
    records: int = 0
    samples: int = 0
    rows: int = 0
    predicted: int = 0
    flags: Counter = field(default_factory=Counter)

    def add(self, rows: Rows) -> None:
        self.rows += len(rows)
        codes = np.bincount(rows.flag, minlength=len(FLAGS))
        self.predicted += int(codes[0])
        self.flags.update({FLAGS[i]: int(c) for i, c in enumerate(codes) if i and c})

    def unusable(self) -> int:
        """Samples flagged for a reason that blames the ECG lead."""
        return sum(self.flags[reason] for reason in UNUSABLE_ECG)

    def nothing_predicted(self, window: int) -> str:
        """Why no sample was predicted, with the counts."""
        if self.samples < window:
            return f"nothing to predict: {self.samples:,} ECG samples, under one window ({window})"
        flagged = ", ".join(f"{flag} {n:,}" for flag, n in self.flags.most_common())
        return f"nothing predicted: every one of {self.samples:,} ECG samples flagged ({flagged})"


def input_files(path: Path) -> list[Path]:
    """The files an input is read from: itself, a WFDB record's files, or a folder's files."""
    path = Path(path)
    if path.is_dir():
        return [p for p in path.iterdir() if p.is_file()]
    if path.suffix.lower() == ".hea":  # its signal files and any segments share its stem
        return [path, *(p for p in path.parent.glob(f"{path.stem}*") if p.is_file())]
    return [path]


def model_inputs(model: ServingModel, path: Path, options: InputOptions) -> Iterator[InputRecord]:
    """The records of `path` at the model's rate (read lazily by the caller's loop)."""
    band = model.cleaning.bandpass_hz
    return read_inputs(
        path,
        fs=model.fs,
        min_source_fs=lowest_rate(band, model.fs),
        source_fs=options.fs,
        lead=options.lead,
        column=options.column,
    )


def record_extremes(record: InputRecord, chunk: int = CHUNK_SAMPLES) -> tuple[float, float]:
    """`ecg_extremes` of the whole record, from a first streaming pass over its ECG."""
    top, bottom = -np.inf, np.inf
    for piece in record.ecg_chunks(chunk):
        piece_top, piece_bottom = ecg_extremes(piece)
        top, bottom = max(top, piece_top), min(bottom, piece_bottom)
    return top, bottom


def predict_record(
    model: ServingModel,
    record: InputRecord,
    *,
    chunk: int = CHUNK_SAMPLES,
    batch_size: int = 1024,
    progress: bool = False,
) -> Iterator[tuple[int, Rows]]:
    """Yield (ECG samples fed, Rows) chunk by chunk (filter state and window carried over).

    Two passes over the record: the saturation levels of the cleaning rules are the whole
    record's ECG extremes, so they are found first; then the prediction pass."""
    pipeline = CausalPipeline(
        model, record.record_id, extremes=record_extremes(record, chunk), batch_size=batch_size
    )
    with tqdm(
        total=record.length, unit="sample", desc=record.record_id, disable=not progress
    ) as bar:
        for piece in record.ecg_chunks(chunk):
            yield len(piece), pipeline.push(piece)
            bar.update(len(piece))
    yield 0, pipeline.finish()


def predict_file(
    model_path: Path,
    input_path: Path,
    out: Path,
    *,
    options: InputOptions | None = None,
    beats: Path | None = None,
    plot: Path | None = None,
    chunk: int = CHUNK_SAMPLES,
    batch_size: int = 1024,
    progress: bool = False,
    model: ServingModel | None = None,
) -> dict:
    """Predict every record of `input_path` into `out` (and beats, plot); returns a summary."""
    model = model or load_model(Path(model_path), torch.device("cpu"))
    refuse_overwriting([out, beats, plot], [*model.files, *input_files(input_path)])
    out = check_suffix(out, "output")
    if beats is not None:
        check_suffix(beats, "--beats file")
    metadata = {**model.describe(), "input": str(input_path)}
    writer = TableWriter(out, prediction_schema(model.has_spread), metadata)
    beat_writer = TableWriter(beats, BEAT_SCHEMA, metadata) if beats else None
    counts = Counts()
    sketch = None
    ok = False
    try:
        for record in model_inputs(model, Path(input_path), options or InputOptions()):
            counts.records += 1
            rows_before, unusable_before = counts.rows, counts.unusable()
            found = RecordBeats(record.fs) if beat_writer is not None else None
            if plot is not None and sketch is None:
                sketch = Sketch(record)
            for fed, rows in predict_record(
                model, record, chunk=chunk, batch_size=batch_size, progress=progress
            ):
                counts.samples += fed
                counts.add(rows)
                writer.write(prediction_table(record, rows))
                if found is not None:
                    beat_writer.write(beat_table(record, *found.push(rows.sample, rows.abp)))
                if sketch is not None and sketch.record is record:
                    sketch.add(rows)
            if found is not None:
                beat_writer.write(beat_table(record, *found.finish()))
            record.check_lead(counts.unusable() - unusable_before, counts.rows - rows_before)
        if counts.records == 0:
            raise InputError(f"{input_path}: holds no recordings")
        if counts.predicted == 0:
            raise InputError(f"{input_path}: {counts.nothing_predicted(model.window)}")
        ok = True
    finally:
        writer.close(ok)
        if beat_writer is not None:
            beat_writer.close(ok)
    if sketch is not None:
        sketch.draw(plot, metadata["notice"])
    return {
        "out": str(out),
        "records": counts.records,
        "samples": counts.samples,
        "rows": counts.rows,
        "predicted": counts.predicted,
        "flagged": dict(counts.flags),
        "notice": metadata["notice"],
    }


class Sketch:
    """The first PLOT_SECONDS from the first predicted sample of one record, for --plot."""

    def __init__(self, record: InputRecord) -> None:
        self.record = record
        self.length = round(PLOT_SECONDS * record.fs)
        self.start: int | None = None
        self.abp: list[np.ndarray] = []

    def add(self, rows: Rows) -> None:
        if self.start is None:
            predicted = np.flatnonzero(rows.flag == 0)
            if len(predicted) == 0:
                return
            self.start = int(rows.sample[predicted[0]])
        inside = (rows.sample >= self.start) & (rows.sample < self.start + self.length)
        if inside.any():
            self.abp.append(rows.abp[inside])

    def figure(self, notice: str) -> "Figure":
        """Read the stretch's ECG again (only up to its end), and its true ABP if any; plot."""
        from ecg2abp.serving.plot import prediction_figure

        if self.start is None:
            raise InputError(f"{self.record.record_id}: nothing predicted to plot")
        abp = np.concatenate(self.abp)
        stop, pieces, read = self.start + len(abp), [], 0
        for piece in self.record.ecg_chunks():
            pieces.append(piece[max(0, self.start - read) : max(0, stop - read)])
            read += len(piece)
            if read >= stop:
                break
        ecg = np.concatenate(pieces)
        time = (self.start + np.arange(len(abp))) / self.record.fs
        recorded, true = self.record.abp(), None
        if recorded is not None:
            true = np.full(len(abp), np.nan)
            found = recorded[self.start : stop]
            true[: len(found)] = found
        return prediction_figure(self.record.record_id, time, ecg, abp, notice, true)

    def draw(self, path: Path, notice: str) -> None:
        from ecg2abp.serving.plot import plot_prediction

        plot_prediction(path, self.figure(notice))
