from pathlib import Path

from ecg2abp.evaluation.scoring import evaluate_variant
from ecg2abp.gpu_slots import run_pinned
from ecg2abp.logs import run_step
from ecg2abp.stages import experiment_config

run_step(
    snakemake.log[0],
    run_pinned,
    snakemake.config["gpu_slots"] if snakemake.resources.get("gpu") else 0,
    evaluate_variant,
    Path(snakemake.input.model),
    Path(snakemake.input.split),
    [Path(p) for p in snakemake.input.shards],
    int(snakemake.wildcards.fold),
    Path(snakemake.output.metrics).parent,
    experiment_config(snakemake.config, snakemake.wildcards),  # leak_gap: protocol replaced
    snakemake.wildcards.variant,  # a model of another variant is refused
    getattr(snakemake.wildcards, "test_set", None),  # pulsedb: a named test set
)
