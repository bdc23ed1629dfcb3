from pathlib import Path

from ecg2abp.logs import run_step
from ecg2abp.report.comparison import write_comparison

settings = snakemake.config["report"]
run_step(
    snakemake.log[0],
    write_comparison,
    [Path(p) for p in snakemake.input.streams],
    {name: Path(path) for name, path in snakemake.output.items()},
    settings["reference_variant"],
    settings["bootstrap_samples"],
    settings["seed"],
)
