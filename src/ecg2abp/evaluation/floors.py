"""The beat floors of `naive`: mean SBP, DBP and MAP of the training side's beats, nothing else."""

import logging

import numpy as np

from ecg2abp.evaluation.metrics import BEAT_LEVELS, beat_values, find_beats
from ecg2abp.evaluation.scoring import side_pieces
from ecg2abp.folds.loading import FoldData

log = logging.getLogger("ecg2abp.evaluation.floors")


def training_beat_sums(fold: FoldData) -> dict[str, np.ndarray]:
    """Record id → [n beats, Σ SBP, Σ DBP, Σ MAP] over the training side's beats."""
    fs = float(fold.shards[0].attrs["fs"])
    sums: dict[str, np.ndarray] = {}
    for piece in side_pieces(fold.side("train"), fold.shards):
        abp = np.asarray(fold.shards[piece.shard].abp[piece.start : piece.stop], np.float64)
        values = beat_values(abp, find_beats(abp, fs))
        row = [len(values["sbp"]), *(float(values[level].sum()) for level in BEAT_LEVELS)]
        sums[piece.record_id] = sums.get(piece.record_id, np.zeros(4)) + np.array(row)
    return sums


def beat_floor(fold: FoldData, per_record: bool) -> dict | None:
    """{"overall": level → mean, "records": record → level → mean (per_record only)}.

    None under `paper` (its training side lists whole records, test windows included, and it
    scores no beats) and where the training side holds no beat.
    """
    if fold.protocol == "paper":
        return None
    sums = training_beat_sums(fold)
    total = sum(sums.values(), np.zeros(4))
    if total[0] == 0:
        log.warning("fold %d: no beat on the training side; no beat floor", fold.fold)
        return None

    def means(row: np.ndarray) -> dict[str, float]:
        return {level: float(row[1 + i] / row[0]) for i, level in enumerate(BEAT_LEVELS)}

    records = {rid: means(row) for rid, row in sums.items() if row[0] > 0} if per_record else {}
    return {"overall": means(total), "records": records}
