"""How far MSE flattens a beat: SBP and pulse pressure of the conditional mean under timing jitter.

    PYTHONPATH=src python bench/sbp_jitter.py SPLIT FOLD SHARD...

A predictor that knows a beat's shape and level but not its timing to within a Gaussian of SD
s minimises the point-wise MSE with the true ABP convolved with that Gaussian (the conditional
mean). For s in 0–60 ms, on the fold's test stretches: its mean SBP error and its predicted /
true mean pulse pressure over the true beats. Prints one JSON line per s.
"""

import json
import sys

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ecg2abp.evaluation.metrics import beat_values, find_beats
from ecg2abp.evaluation.scoring import side_pieces
from ecg2abp.folds.loading import load_fold

FS = 125.0

if __name__ == "__main__":
    split, fold_index, *shards = sys.argv[1:]
    fold = load_fold(split, shards, int(fold_index), normalisation="zscore")
    stretches = [
        np.asarray(fold.shards[p.shard].abp[p.start : p.stop], np.float64)
        for p in side_pieces(fold.side("test"), fold.shards)
    ]
    for ms in (0, 10, 20, 30, 40, 60):
        sbp_error, true_pp, mean_pp = [], [], []
        for abp in stretches:
            beats = find_beats(abp, FS)
            if len(beats) == 0:
                continue
            mean = gaussian_filter1d(abp, ms / 1000 * FS, mode="nearest") if ms else abp
            true, flat = beat_values(abp, beats), beat_values(mean, beats)
            sbp_error.append(flat["sbp"] - true["sbp"])
            true_pp.append(true["sbp"] - true["dbp"])
            mean_pp.append(flat["sbp"] - flat["dbp"])
        ratio = np.concatenate(mean_pp).mean() / np.concatenate(true_pp).mean()
        row = {
            "jitter_ms": ms,
            "sbp_me": float(np.concatenate(sbp_error).mean()),
            "pp_ratio": ratio,
        }
        print(json.dumps({k: round(float(v), 3) for k, v in row.items()}))
