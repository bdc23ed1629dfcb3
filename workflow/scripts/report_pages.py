from pathlib import Path

from ecg2abp.logs import run_step
from ecg2abp.report.jobs import write_pages
from ecg2abp.stages import results_settings

run_step(
    snakemake.log[0],
    write_pages,
    Path(snakemake.input.summary),
    results_settings(dict(snakemake.config)),
    {name: Path(path) for name, path in snakemake.output.items()},
)
