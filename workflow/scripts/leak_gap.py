from pathlib import Path

from ecg2abp.evaluation.leak_gap import write_leak_gap
from ecg2abp.logs import run_step

run_step(
    snakemake.log[0],
    write_leak_gap,
    [Path(p) for p in snakemake.input.paper],
    [Path(p) for p in snakemake.input.record],
    Path(snakemake.output.table),
    Path(snakemake.output.summary),
    Path(snakemake.input.paper_split),
    [Path(p) for p in snakemake.input.shards],
)
