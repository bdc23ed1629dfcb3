from pathlib import Path

from ecg2abp.logs import run_step
from ecg2abp.report.jobs import write_stream

run_step(
    snakemake.log[0],
    write_stream,
    snakemake.wildcards.variant,
    [Path(p) for p in snakemake.input.predictions],
    [Path(p) for p in snakemake.input.metrics],
    Path(snakemake.input.split),
    [Path(p) for p in snakemake.input.shards],
    snakemake.config,
    Path(snakemake.output.stream),
)
