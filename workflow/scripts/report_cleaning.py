from pathlib import Path

from ecg2abp.logs import run_step
from ecg2abp.report.jobs import write_cleaning

run_step(
    snakemake.log[0],
    write_cleaning,
    [Path(p) for p in snakemake.input.reports],
    {name: Path(path) for name, path in snakemake.output.items()},
)
