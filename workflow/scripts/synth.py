from pathlib import Path

from ecg2abp.data.synth import write_synthetic
from ecg2abp.logs import run_step

settings = snakemake.params.synthetic
run_step(
    snakemake.log[0],
    write_synthetic,
    Path(snakemake.output[0]).parent,
    parts=settings["parts"],
    records_per_part=settings["records_per_part"],
    seed=settings["seed"],
    layout=settings["layout"],
    artefacts=settings["artefacts"],
    min_seconds=settings["min_seconds"],
    max_seconds=settings["max_seconds"],
)
