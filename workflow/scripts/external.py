from pathlib import Path

from ecg2abp.logs import run_step
from ecg2abp.serving.external import evaluate_external

run_step(
    snakemake.log[0],
    evaluate_external,
    Path(snakemake.input.model),
    Path(snakemake.input.data),
    Path(snakemake.output.metrics).parent,
    dataset=snakemake.wildcards.dataset,
    threads=snakemake.threads,
)
