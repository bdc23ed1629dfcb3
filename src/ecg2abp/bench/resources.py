"""What a finished run's jobs used, per rule, from Snakemake's benchmark files; and the memory
and time limits a SLURM profile should ask for at that data size."""

import math
from pathlib import Path

import pandas as pd

from ecg2abp.errors import InputError

COLUMNS = {"s": "wall_s", "max_rss": "peak_rss_mb", "cpu_time": "cpu_s", "io_out": "written_mb"}
MEMORY_MARGIN = 1.5  # mem_mb asked = the rule's highest peak RSS × this, rounded up
TIME_MARGIN = 3.0  # runtime asked = the rule's longest job × this, rounded up
MEMORY_STEP_MB = 250
MIN_MEMORY_MB = 1000
MIN_MINUTES = 10
SHARED_BENCHMARKS = {"train": ("train", "train_classical")}  # benchmark folder → its rules


def read_benchmarks(folder: Path) -> pd.DataFrame:
    """One row per job: rule (the benchmark file's first folder, or its name), job, wall and
    CPU seconds, peak RSS and MB written."""
    folder = Path(folder)
    files = sorted(folder.rglob("*.tsv"))
    if not files:
        raise InputError(f"{folder}: no Snakemake benchmark files (*.tsv) under it")
    rows = []
    for path in files:
        relative = path.relative_to(folder).with_suffix("")
        try:
            last = pd.read_csv(path, sep="\t").iloc[-1]
        except (pd.errors.ParserError, pd.errors.EmptyDataError, IndexError) as err:
            raise InputError(f"{path}: not a Snakemake benchmark file ({err})") from None
        missing = sorted(set(COLUMNS) - set(last.index))
        if missing:
            raise InputError(f"{path}: not a Snakemake benchmark file (no {', '.join(missing)})")
        row = {"rule": relative.parts[0], "job": "/".join(relative.parts[1:]) or "-"}
        row |= {name: _number(last[column]) for column, name in COLUMNS.items()}
        rows.append(row)
    return pd.DataFrame(rows)


def _number(value: object) -> float:
    """A benchmark value; Snakemake writes NA where it could not measure."""
    number = pd.to_numeric(value, errors="coerce")
    return float(number) if pd.notna(number) else math.nan


def per_rule(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule: jobs, total and longest wall time, total CPU time, highest peak RSS, MB written."""
    grouped = jobs.groupby("rule", sort=True)
    return pd.DataFrame(
        {
            "jobs": grouped.size(),
            "wall_s": grouped["wall_s"].sum(),
            "longest_s": grouped["wall_s"].max(),
            "cpu_s": grouped["cpu_s"].sum(),
            "peak_rss_mb": grouped["peak_rss_mb"].max(),
            "written_mb": grouped["written_mb"].sum(),
        }
    ).reset_index()


def asked_memory_mb(peak_rss_mb: float) -> int:
    """mem_mb for a rule whose jobs peaked at `peak_rss_mb`: the margin, in 250 MB steps."""
    wanted = max(peak_rss_mb * MEMORY_MARGIN, MIN_MEMORY_MB)
    return int(math.ceil(wanted / MEMORY_STEP_MB) * MEMORY_STEP_MB)


def asked_minutes(longest_s: float, scale: float = 1.0) -> int:
    """runtime (minutes) for a rule whose longest job took `longest_s` at the measured size,
    for data `scale` times as large (job time grows with the samples a job reads)."""
    return int(max(math.ceil(longest_s * scale * TIME_MARGIN / 60), MIN_MINUTES))


def profile_resources(table: pd.DataFrame, scale: float = 1.0) -> dict[str, dict[str, int]]:
    """set-resources for profiles/slurm from a per-rule table: every rule's mem_mb and runtime
    (train's benchmark files also hold train_classical's jobs)."""
    resources = {}
    for row in table.itertuples():
        asked = {
            "mem_mb": asked_memory_mb(row.peak_rss_mb),
            "runtime": asked_minutes(row.longest_s, scale),
        }
        for rule in SHARED_BENCHMARKS.get(row.rule, (row.rule,)):
            resources[rule] = asked
    return resources


def markdown(table: pd.DataFrame) -> str:
    """The per-rule table as Markdown (times in seconds, memory and writes in MB)."""
    lines = [
        "| rule | jobs | wall (s, sum) | longest job (s) | CPU (s, sum) | peak RSS (MB) "
        "| written (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in table.itertuples():
        lines.append(
            f"| {row.rule} | {row.jobs} | {row.wall_s:,.0f} | {row.longest_s:,.0f} "
            f"| {row.cpu_s:,.0f} | {row.peak_rss_mb:,.0f} | {row.written_mb:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def bench_resources(folder: Path, scale: float = 1.0) -> dict:
    """The per-rule table of a run's benchmark files and the profile resources it implies."""
    table = per_rule(read_benchmarks(folder))
    return {
        "folder": str(folder),
        "rules": table.to_dict(orient="records"),
        "set_resources": profile_resources(table, scale),
        "scale": scale,
        "markdown": markdown(table),
    }
