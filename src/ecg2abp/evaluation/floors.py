"""The beat floors of `naive`: mean SBP, DBP and MAP of training (or calibration) beats only."""

import logging
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ecg2abp.data.shards import Shard
from ecg2abp.evaluation.metrics import BEAT_LEVELS, beat_values, find_beats
from ecg2abp.evaluation.scoring import TestPiece, side_pieces
from ecg2abp.folds.loading import FoldData

log = logging.getLogger("ecg2abp.evaluation.floors")


def beat_sums(
    pieces: Iterable[TestPiece], shards: Sequence[Shard], unit_of: Callable[[TestPiece], str]
) -> dict[str, np.ndarray]:
    """Unit → [n beats, Σ SBP, Σ DBP, Σ MAP, n samples, Σ ABP] over the pieces' beats."""
    sums: dict[str, np.ndarray] = {}
    for piece in pieces:
        shard = shards[piece.shard]
        abp = np.asarray(shard.abp[piece.start : piece.stop], np.float64)
        values = beat_values(abp, find_beats(abp, float(shard.attrs["fs"])))
        row = [len(values["sbp"]), *(float(values[level].sum()) for level in BEAT_LEVELS)]
        unit = unit_of(piece)
        sums[unit] = sums.get(unit, np.zeros(6)) + np.array([*row, len(abp), abp.sum()])
    return sums


def training_beat_sums(fold: FoldData) -> dict[str, np.ndarray]:
    """Record id → beat_sums over the training side's beats."""
    pieces = side_pieces(fold.side("train"), fold.shards)
    return beat_sums(pieces, fold.shards, lambda piece: piece.record_id)


def _means(row: np.ndarray) -> dict[str, float]:
    return {level: float(row[1 + i] / row[0]) for i, level in enumerate(BEAT_LEVELS)}


def subject_means(shard: Shard) -> dict[str, dict[str, float]]:
    """Subject → mean SBP, DBP, MAP of its beats and mean ABP ("abp") over the whole shard."""
    subject_of = dict(zip(shard.records, shard.subjects or [], strict=False))
    everything = [[record_id, 0, None] for record_id in shard.records]
    sums = beat_sums(side_pieces(everything, [shard]), [shard], lambda p: subject_of[p.record_id])
    return {
        s: _means(row) | {"abp": float(row[5] / row[4])} for s, row in sums.items() if row[0] > 0
    }


def beat_floor(fold: FoldData, calibrated: bool) -> dict | None:
    """{"overall": level → mean, "records": record → level → mean, "subjects": calibration
    subset → subject → level → mean (with "abp", the mean ABP)}.

    `calibrated`: each record's own training means under `temporal`, and under `pulsedb` each
    subject's means in the subset its test set calibrates on (docs/protocols.md); else both
    empty. None under `paper` (its training side lists whole records, test windows included,
    and it scores no beats) and where the training side holds no beat.
    """
    if fold.protocol == "paper":
        return None
    sums = training_beat_sums(fold)
    total = sum(sums.values(), np.zeros(6))
    if total[0] == 0:
        log.warning("fold %d: no beat on the training side; no beat floor", fold.fold)
        return None
    records, subjects = {}, {}
    if calibrated and fold.protocol == "temporal":
        records = {rid: _means(row) for rid, row in sums.items() if row[0] > 0}
    if calibrated:
        by_name = {shard.name: shard for shard in fold.shards}
        sources = {t["calibration"] for t in fold.document.get("test_sets", {}).values()}
        subjects = {s: subject_means(by_name[s]) for s in sorted(sources - {None})}
    return {"overall": _means(total), "records": records, "subjects": subjects}
