"""Sync: metrics.json levels and pooled rows turned into MLflow metrics and tags."""

import math

import pandas as pd

from ecg2abp.tracking.sync import level_values, pooled_values


def test_numbers_become_metrics_and_grades_tags():
    levels = {
        "point": {"n": 10, "mae": 4.5, "sd": None, "bhs_grade": "B", "aami_met": False},
        "sbp": {"applies": False, "why": "sampled windows only"},
    }
    metrics, tags = level_values(levels)
    assert metrics == {"point_n": 10.0, "point_mae": 4.5}
    assert tags == {"point_bhs_grade": "B", "point_aami_met": "false"}


def test_a_parent_gets_the_merged_rows_and_the_fold_spread_of_point_mae():
    rows = [
        {"variant": "v", "fold": 0, "level": "point", "mae": 4.0, "n": 5},
        {"variant": "v", "fold": 1, "level": "point", "mae": 6.0, "n": 5},
        {"variant": "v", "fold": -1, "level": "point", "mae": 5.2, "n": 10},
        {"variant": "v", "fold": -1, "level": "sbp", "mae": float("nan"), "n": 0},
        {"variant": "w", "fold": -1, "level": "point", "mae": 9.0, "n": 10},
    ]
    table = pd.DataFrame(rows).assign(bhs_grade="D", aami_met=[None, None, True, None, None])
    metrics, tags = pooled_values(table, "v")
    assert metrics["point_mae"] == 5.2 and metrics["point_n"] == 10.0
    assert metrics["sbp_n"] == 0.0 and "sbp_mae" not in metrics
    assert metrics["point_mae_fold_mean"] == 5.0
    assert math.isclose(metrics["point_mae_fold_sd"], math.sqrt(2.0))
    assert tags == {"point_bhs_grade": "D", "sbp_bhs_grade": "D", "point_aami_met": "true"}
