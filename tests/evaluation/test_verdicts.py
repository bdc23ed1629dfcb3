"""Verdicts: intervals resample whole units, and a verdict says what its interval says."""

import numpy as np
import pandas as pd
import pytest

from ecg2abp.errors import InputError
from ecg2abp.evaluation.verdicts import beats, paired_difference, record_table, unit_mean_ci
from ecg2abp.folds.protocols import RecordInfo, record_blocks, resampling_units


def test_block_resampling_keeps_a_blocks_records_together():
    # unit A: nine records at +1; unit B: one record at -9. Drawing two whole units gives only
    # (A, A) = 1, (A, B) = (9 - 9) / 10 = 0 or (B, B) = -9; single records would give others.
    values = np.array([1.0] * 9 + [-9.0])
    units = np.array(["A"] * 9 + ["B"])
    low, high = unit_mean_ci(values, units, samples=4000, seed=0)
    assert (low, high) == (-9.0, 1.0)
    by_record = unit_mean_ci(values, np.arange(10), samples=4000, seed=0)
    assert by_record[0] > -9.0  # records one by one: a far narrower (too narrow) interval


def test_a_verdict_follows_its_interval():
    assert beats(-3.0, -0.1) == "yes"
    assert beats(0.2, 4.0) == "no (worse)"
    assert beats(-1.0, 1.0).startswith("not shown")
    assert beats(-1.0, 0.0).startswith("not shown")  # touching 0 is not excluding it


def table(maes: dict[str, float], units: dict[str, str]) -> pd.DataFrame:
    return record_table(dict.fromkeys(maes, 4), {r: 4 * m for r, m in maes.items()}, units)


def test_paired_difference_counts_records_and_units_and_refuses_other_records():
    units = {"r1": "r1", "r2": "r1", "r3": "r3"}
    mine = table({"r1": 1.0, "r2": 2.0, "r3": 3.0}, units)
    theirs = table({"r1": 2.0, "r2": 4.0, "r3": 3.5}, units)
    row = paired_difference(mine, theirs, "a vs b", samples=500, seed=0)
    assert (row["n_records"], row["n_units"]) == (3, 2)
    assert row["diff_mean"] == pytest.approx((-1 - 2 - 0.5) / 3)
    assert (
        row["win_share"] == 1.0
        and row["ci_high"] < 0
        and beats(row["ci_low"], row["ci_high"]) == "yes"
    )
    with pytest.raises(InputError, match="a vs b: record r3"):
        paired_difference(mine, table({"r1": 1.0, "r2": 1.0}, units), "a vs b", 10, 0)


def infos(per_shard: list[int]) -> list[RecordInfo]:
    return [
        RecordInfo(shard, i, f"part_{shard}/{i:04d}", 10, f"{shard}-{i}")
        for shard, n in enumerate(per_shard)
        for i in range(n)
    ]


def test_resampling_units_are_the_record_protocols_blocks_or_parts():
    records = infos([5, 3])
    blocks = record_blocks(records, 2)
    assert [[records[m].record_id for m in b] for b in blocks][:3] == [
        ["part_0/0000", "part_0/0001"],
        ["part_0/0002", "part_0/0003"],
        ["part_0/0004"],  # a block never spans two parts
    ]
    units = resampling_units(records, {"protocol": "temporal", "block_size": 2})["of"]
    assert units["part_0/0001"] == units["part_0/0000"] != units["part_0/0002"]
    assert units["part_1/0002"] == "part_1/0002"
    parts = resampling_units(records, {"protocol": "part", "block_size": 2})
    assert parts["unit"] == "part file" and len(set(parts["of"].values())) == 2
