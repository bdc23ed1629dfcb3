"""predictions.parquet: integer steps of ABP, read back within half a step; old files still read."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ecg2abp.errors import InputError
from ecg2abp.evaluation.predictions import (
    HALF_STEP_MMHG,
    LARGEST_MMHG,
    PredictionWriter,
    iter_predictions,
    read_predictions,
)

FS = 125.0


def abp_like(n: int, rng: np.random.Generator) -> np.ndarray:
    """A pulse around 95 mmHg at 75 beats per minute, with noise finer than a step."""
    t = np.arange(n) / FS
    return 95.0 + 20.0 * np.sin(2 * np.pi * 1.25 * t) + rng.normal(0.0, 0.7, n)


def write(path, rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> None:
    writer = PredictionWriter(path)
    for row in rows:
        writer.add(*row)
    writer.close(ok=True)


def test_values_read_back_within_half_a_step_ids_and_samples_exactly(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for index, n in enumerate([500, 1, 2000]):
        samples = np.arange(n) + 87 + 10 * index
        true = abp_like(n, rng)
        rows.append((f"part_1/{index:04d}", samples, true, true + rng.normal(0.0, 8.0, n)))
    rows.append(
        ("part_2/0000", np.array([3, 9]), np.array([-0.004, 0.005]), np.array([-250.0, 0.0]))
    )
    write(tmp_path / "p.parquet", rows)
    table = read_predictions(tmp_path / "p.parquet")
    assert table["record_id"].tolist() == [r[0] for r in rows for _ in range(len(r[1]))]
    np.testing.assert_array_equal(table["sample"], np.concatenate([r[1] for r in rows]))
    for column, index in (("abp_true", 2), ("abp_pred", 3)):
        written = np.concatenate([r[index] for r in rows])
        error = np.abs(table[column].to_numpy() - written)
        assert error.max() <= HALF_STEP_MMHG + 1e-9, column
        assert error.max() > HALF_STEP_MMHG / 2, column  # rounded, not stored exactly
    schema = pq.read_schema(tmp_path / "p.parquet")
    assert [str(schema.field(c).type) for c in ("abp_true", "abp_pred")] == ["int32", "int32"]


def test_batches_cover_the_file_in_order(tmp_path):
    rng = np.random.default_rng(1)
    n = 1000
    write(tmp_path / "p.parquet", [("a", np.arange(n), abp_like(n, rng), abp_like(n, rng))])
    batches = list(iter_predictions(tmp_path / "p.parquet", batch_rows=300))
    assert [len(b["sample"]) for b in batches] == [300, 300, 300, 100]
    np.testing.assert_array_equal(np.concatenate([b["sample"] for b in batches]), np.arange(n))
    assert all(b["abp_pred"].dtype == np.float64 for b in batches)


def test_a_pulse_takes_under_six_bytes_per_predicted_sample(tmp_path):
    rng = np.random.default_rng(2)
    n = 200_000
    true = abp_like(n, rng)
    pred = true + np.convolve(rng.normal(0.0, 8.0, n), np.ones(9) / 9, mode="same")
    write(tmp_path / "p.parquet", [("part_1/0000", np.arange(n) + 87, true, pred)])
    assert (tmp_path / "p.parquet").stat().st_size / n < 6.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, LARGEST_MMHG * 1.01])
def test_a_value_no_step_count_holds_is_refused_naming_the_record(tmp_path, bad):
    writer = PredictionWriter(tmp_path / "p.parquet")
    with pytest.raises(InputError, match=r"^record part_1/0007: 1 abp_pred values are not finite"):
        writer.add("part_1/0007", np.arange(3), np.full(3, 90.0), np.array([90.0, bad, 91.0]))
    writer.close(ok=False)
    assert list(tmp_path.iterdir()) == []


def test_files_of_float32_mmhg_from_before_read_unrounded(tmp_path):
    old = pa.table(
        {
            "record_id": pa.array(["a", "a", "b"]),
            "sample": pa.array([87, 88, 90], pa.int64()),
            "abp_true": pa.array([90.123, 91.5, 80.0], pa.float32()),
            "abp_pred": pa.array([88.0071, 92.25, 79.5], pa.float32()),
        }
    )
    pq.write_table(old, tmp_path / "p.parquet")
    table = read_predictions(tmp_path / "p.parquet")
    assert table["record_id"].tolist() == ["a", "a", "b"]
    np.testing.assert_array_equal(table["abp_pred"], np.float32([88.0071, 92.25, 79.5]))


def test_integer_abp_without_its_step_is_refused_in_one_line(tmp_path):
    table = pa.table(
        {
            "record_id": pa.array(["a"]),
            "sample": pa.array([87], pa.int64()),
            "abp_true": pa.array([9000], pa.int32()),
            "abp_pred": pa.array([9100], pa.int32()),
        }
    )
    pq.write_table(table, tmp_path / "p.parquet")
    with pytest.raises(InputError, match=r"p\.parquet: integer ABP columns without their step"):
        read_predictions(tmp_path / "p.parquet")
    pq.write_table(table.drop(["abp_pred"]), tmp_path / "q.parquet")
    with pytest.raises(InputError, match=r"q\.parquet: not a predictions file \(missing abp_pred"):
        read_predictions(tmp_path / "q.parquet")
