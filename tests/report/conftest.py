"""A small evaluated chain (shards, record split, two folds of ridge and naive) for the report."""

from dataclasses import dataclass
from pathlib import Path

import pytest
from pipeline_factory import ingest_parts, synthetic_parts, tiny_config, write_split

from ecg2abp.evaluation.pooling import pool_tables
from ecg2abp.evaluation.scoring import evaluate_variant
from ecg2abp.report.streaming import VariantStream, stream_variant
from ecg2abp.stages import JOB_DIR
from ecg2abp.training.jobs import train_variant

FOLDS = (0, 1)


def job(variant: str, fold: int) -> str:
    """The pipeline's folder of one job (seed 0, the default's only seed)."""
    return JOB_DIR.format(variant=variant, fold=fold, seed=0)


@dataclass(frozen=True)
class Evaluated:
    folder: Path
    config: dict
    shards: list[Path]
    split: Path

    def files(self, variant: str, name: str) -> list[Path]:
        return [self.folder / "eval" / job(variant, k) / name for k in FOLDS]

    def stream(self, variant: str) -> VariantStream:
        return stream_variant(
            variant,
            self.files(variant, "predictions.parquet"),
            self.files(variant, "metrics.json"),
            self.split,
            self.shards,
        )

    def table(self):
        return pool_tables(
            self.files("linear", "metrics.json") + self.files("naive", "metrics.json")
        )


@pytest.fixture(scope="session")
def evaluated(tmp_path_factory) -> Evaluated:
    folder = tmp_path_factory.mktemp("report_chain")
    config = tiny_config(
        {"split": {"protocol": "record", "folds": 3, "block_size": 2}, "train": {"epochs": 1}}
    )
    shards = ingest_parts(folder, synthetic_parts(folder, records=8), config)
    split = write_split(folder, shards, config)
    for variant in ("linear", "naive"):
        for fold in FOLDS:
            models = folder / "models" / job(variant, fold)
            train_variant(variant, config, split, shards, fold, models)
            out = folder / "eval" / job(variant, fold)
            evaluate_variant(models / "model.pt", split, shards, fold, out, config)
    return Evaluated(folder, config, shards, split)
