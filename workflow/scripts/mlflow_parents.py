from pathlib import Path

from ecg2abp.logs import run_step
from ecg2abp.tracking.runs import create_parents

run_step(
    snakemake.log[0],
    create_parents,
    snakemake.config,
    list(snakemake.params.variants),
    Path(snakemake.output[0]),
)
