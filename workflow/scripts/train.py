from pathlib import Path

from ecg2abp.gpu_slots import run_pinned
from ecg2abp.logs import run_step
from ecg2abp.stages import experiment_config
from ecg2abp.tracking.live import train_logged

run_step(
    snakemake.log[0],
    run_pinned,
    snakemake.config["gpu_slots"] if snakemake.resources.get("gpu") else 0,
    train_logged,
    snakemake.wildcards.variant,
    experiment_config(snakemake.config, snakemake.wildcards),  # leak_gap: protocol replaced
    Path(snakemake.input.split),
    [Path(p) for p in snakemake.input.shards],
    int(snakemake.wildcards.fold),
    Path(snakemake.output.model).parent,
    int(snakemake.wildcards.seed),
)
