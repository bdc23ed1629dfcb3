"""One part file in, one shard and one cleaning report out: read → clean → write."""

import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ecg2abp.atomic import atomic_path, refuse_overwriting
from ecg2abp.data import cleaning, readers
from ecg2abp.data.shards import PieceSpool, windows_per_segment, write_shard
from ecg2abp.digests import file_sha256
from ecg2abp.errors import InputError

log = logging.getLogger("ecg2abp.data.ingest")

REPORT_COLUMNS = (
    "level",
    "record_id",
    "n_samples",
    "kept_samples",
    "n_segments",
    "n_windows",
    *(f"removed_{reason}" for reason in cleaning.REASONS),
)


def part_name(part: Path) -> str:
    """The name a part's outputs carry: the file stem, or the folder name for WFDB folders."""
    return part.name if part.is_dir() else part.stem


def discover_parts(data_dir: Path, pattern: str) -> dict[str, Path]:
    """Part name → path: files matching `pattern`, else WFDB folders (data_dir or its children)."""
    if not data_dir.is_dir():
        raise InputError(f"data_dir {data_dir}: no such folder")
    found = [(path.stem, path) for path in sorted(data_dir.glob(pattern)) if path.is_file()]
    if not found:
        folders = [data_dir, *sorted(p for p in data_dir.iterdir() if p.is_dir())]
        found = [(f.name, f) for f in folders if any(f.glob("*.hea"))]
    parts: dict[str, Path] = {}
    for name, path in found:
        if name in parts:  # outputs are named by part: one would replace the other
            raise InputError(
                f"data_dir {data_dir}: parts {parts[name]} and {path} share the name {name}"
            )
        parts[name] = path
    if not parts:
        raise InputError(
            f"data_dir {data_dir}: no part files matching {pattern!r} and no WFDB records (*.hea)"
        )
    return parts


def cleaning_settings(config: dict) -> cleaning.CleaningSettings:
    """Cleaning settings from the config's `cleaning` section and window."""
    return cleaning.settings_from_config(config)


def main_reason(row: dict | pd.Series) -> str:
    """The removal reason that claimed most of a report row's samples."""
    return max(cleaning.REASONS, key=lambda reason: row[f"removed_{reason}"])


def kept_nothing(report_path: Path) -> list[str]:
    """From a cleaning report: the part, or else its records, that kept nothing, and why."""
    report = pd.read_parquet(report_path)
    part = report[report["level"] == "part"].iloc[0]
    if part["kept_samples"] == 0:
        return [f"{part['record_id'].removesuffix('/*')} (all {len(report) - 1} records)"]
    records = report[(report["level"] == "record") & (report["kept_samples"] == 0)]
    return [f"{row['record_id']} ({main_reason(row)})" for _, row in records.iterrows()]


def ingest_part(part: Path, shard_out: Path, report_out: Path, config: dict) -> dict:
    """Clean every record of `part` into the shard `shard_out` and the report `report_out`."""
    part = Path(part)
    refuse_overwriting([shard_out, report_out], [part])
    settings = cleaning_settings(config)
    window, stride, fs = config["window"], config["stride"], float(config["fs"])
    # kept signals go to unnamed temporary files (gone when closed, whatever happens) until
    # written: memory stays one record, whatever the part's size
    pieces = PieceSpool(Path(shard_out).parent)
    segment_rows: list[tuple[int, int, int, int]] = []
    record_ids: list[str] = []
    record_samples: list[int] = []
    subjects: list[str | None] = []
    rows: list[dict] = []
    position = 0
    records = readers.iter_records(part, ecg_lead=config["ecg_lead"], target_fs=fs)
    for index, record in enumerate(records):
        result = cleaning.clean_record(record.ecg, record.abp, record.fs, settings)
        record_ids.append(record.record_id)
        subjects.append(record.subject)
        record_samples.append(result.n_samples)
        for start, stop in result.segments:
            ecg = cleaning.filter_ecg_segment(record.ecg[start:stop], record.fs, settings)
            abp = record.abp[start:stop].astype(np.float32)
            ppg = record.ppg[start:stop].astype(np.float32)
            pieces.add(ecg, abp, ppg)
            segment_rows.append((index, position, position + stop - start, start))
            position += stop - start
        lengths = [stop - start for start, stop in result.segments]
        rows.append(
            {
                "level": "record",
                "record_id": record.record_id,
                "n_samples": result.n_samples,
                "kept_samples": sum(lengths),
                "n_segments": len(result.segments),
                "n_windows": int(
                    windows_per_segment([b - a for a, b in result.segments], window, stride).sum()
                ),
                **{f"removed_{reason}": result.removed[reason] for reason in cleaning.REASONS},
            }
        )
        if not result.segments:
            log.warning(
                "%s: record %s kept nothing (mostly %s)",
                part,
                record.record_id,
                main_reason(rows[-1]),
            )
        del record
    segments = np.array(segment_rows, dtype=np.int64).reshape(-1, 4)
    attrs = {
        "fs": fs,
        "source_file": part.name,
        "source_sha256": file_sha256(part) if part.is_file() else "",
        "cleaning": json.dumps(asdict(settings)),
    }
    with pieces:
        n_windows = write_shard(
            shard_out,
            pieces=pieces,
            segments=segments,
            records=record_ids,
            window=window,
            stride=stride,
            attrs=attrs,
            record_samples=record_samples,
            subjects=subjects,
        )
    report = pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
    totals = report.drop(columns=["level", "record_id"]).sum()
    totals_row = {"level": "part", "record_id": f"{part_name(part)}/*", **totals.to_dict()}
    report = pd.concat([report, pd.DataFrame([totals_row])], ignore_index=True)
    with atomic_path(report_out) as tmp:
        report.to_parquet(tmp, index=False)
    if not segment_rows:
        log.warning("%s: cleaning kept nothing of its %d records", part, len(record_ids))
    return {
        "part": part_name(part),
        "records": len(record_ids),
        "samples": int(totals["n_samples"]),
        "kept_samples": int(totals["kept_samples"]),
        "windows": n_windows,
    }
