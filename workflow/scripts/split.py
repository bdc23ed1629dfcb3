from pathlib import Path

from ecg2abp.logs import run_step
from ecg2abp.splits import split_to_file

run_step(
    snakemake.log[0],
    split_to_file,
    [Path(p) for p in snakemake.input.shards],
    Path(snakemake.output.split),
    snakemake.config,
)
