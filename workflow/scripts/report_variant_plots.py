from pathlib import Path

from ecg2abp.logs import run_step
from ecg2abp.report.jobs import write_variant_plots

run_step(
    snakemake.log[0],
    write_variant_plots,
    Path(snakemake.input.stream),
    {name: Path(path) for name, path in snakemake.output.items()},
    float(snakemake.config["fs"]),
)
