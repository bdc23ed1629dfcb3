from pathlib import Path

from ecg2abp.logs import run_step
from ecg2abp.tracking.sync import sync_view

run_step(
    snakemake.log[0],
    sync_view,
    snakemake.config,
    Path(snakemake.input.table).parent,
    list(snakemake.params.variants),
    [int(fold) for fold in snakemake.params.folds],
    [int(seed) for seed in snakemake.params.seeds],
    Path(snakemake.output[0]),
)
