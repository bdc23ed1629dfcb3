from pathlib import Path

from ecg2abp.logs import run_step
from ecg2abp.tracking.store import create_store

run_step(snakemake.log[0], create_store, snakemake.config, Path(snakemake.output[0]))
