from pathlib import Path

from ecg2abp.logs import run_step
from ecg2abp.report.jobs import write_across_variants

run_step(
    snakemake.log[0],
    write_across_variants,
    Path(snakemake.input.table),
    [Path(p) for p in snakemake.input.streams],
    {name: Path(path) for name, path in snakemake.output.items()},
    snakemake.config,
)
