from pathlib import Path

from ecg2abp.logs import run_step
from ecg2abp.report.jobs import write_saliency

run_step(
    snakemake.log[0],
    write_saliency,
    snakemake.wildcards.variant,
    [Path(p) for p in snakemake.input.models],
    Path(snakemake.input.split),
    [Path(p) for p in snakemake.input.shards],
    snakemake.config,
    Path(snakemake.output.plot),
)
