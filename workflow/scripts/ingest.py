from pathlib import Path

from ecg2abp.data.ingest import ingest_part
from ecg2abp.logs import run_step

run_step(
    snakemake.log[0],
    ingest_part,
    Path(snakemake.input.part),
    Path(snakemake.output.shard),
    Path(snakemake.output.report),
    snakemake.config,
)
