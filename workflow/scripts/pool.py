from pathlib import Path

from ecg2abp.evaluation.pooling import pool_metrics
from ecg2abp.logs import run_step

run_step(
    snakemake.log[0],
    pool_metrics,
    [Path(p) for p in snakemake.input.metrics],
    Path(snakemake.output.table),
    Path(snakemake.output.summary),
    [Path(p) for p in snakemake.input.clean],
    snakemake.config["report"]["bootstrap_samples"],
    snakemake.config["report"]["seed"],
)
