from pathlib import Path

from ecg2abp.gpu_slots import run_pinned
from ecg2abp.logs import run_step
from ecg2abp.training.jobs import train_variant

run_step(
    snakemake.log[0],
    run_pinned,
    snakemake.config["gpu_slots"] if snakemake.resources.get("gpu") else 0,
    train_variant,
    snakemake.wildcards.variant,
    snakemake.config,
    Path(snakemake.input.split),
    [Path(p) for p in snakemake.input.shards],
    int(snakemake.wildcards.fold),
    Path(snakemake.output.model).parent,
)
