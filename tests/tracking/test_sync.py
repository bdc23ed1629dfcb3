"""Sync: metrics.json levels and pooled rows turned into MLflow metrics and tags."""

import math

import pandas as pd

from ecg2abp.tracking.sync import NOTE_LIMIT, level_values, pooled_values, variant_note


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


SUMMARY = """Some text before.

| variant | level | n | MAE |
|---|---|---|---|
| naive | point | 10 | 16.00 |
| ridge | point | 10 | 14.00 |
| unetpp | point | 10 | 9.00 |
| unetpp | sbp | 4 | 11.00 |

Protocol `record`.

| variant | against | verdict |
|---|---|---|
| `ridge` | naive | better |
"""


def test_a_parent_s_description_holds_its_rows_and_the_floor_s():
    note = variant_note(SUMMARY, "unetpp")
    lines = note.splitlines()
    assert "| unetpp | point | 10 | 9.00 |" in lines and "| unetpp | sbp | 4 | 11.00 |" in lines
    assert "| naive | point | 10 | 16.00 |" in lines
    assert lines.index("| unetpp | sbp | 4 | 11.00 |") < lines.index(
        "| naive | point | 10 | 16.00 |"
    )
    assert not any("ridge" in line for line in lines)
    assert "| variant | against | verdict |" not in lines  # a table without its rows is left out
    ridge = variant_note(SUMMARY, "ridge").splitlines()
    assert "| `ridge` | naive | better |" in ridge and "| variant | against | verdict |" in ridge


def test_a_long_description_is_cut_to_mlflow_s_limit():
    rows = "".join(f"| unetpp | point | {n} | 9.00 |\n" for n in range(2000))
    note = variant_note("| variant | level | n | MAE |\n|---|---|---|---|\n" + rows, "unetpp")
    assert len(note) <= NOTE_LIMIT and note.endswith("summary.md artifact)\n")
