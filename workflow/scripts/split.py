from pathlib import Path

from ecg2abp.folds.protocols import split_to_file
from ecg2abp.logs import run_step
from ecg2abp.stages import experiment_config

run_step(
    snakemake.log[0],
    split_to_file,
    [Path(p) for p in snakemake.input.shards],
    Path(snakemake.output.split),
    experiment_config(snakemake.config, snakemake.wildcards),  # leak_gap: protocol replaced
)
