import json

import numpy as np
import pytest

from ecg2abp.errors import InputError
from ecg2abp.evaluation.metrics import LEVELS
from ecg2abp.evaluation.pooling import ALL_FOLDS
from ecg2abp.evaluation.predictions import HALF_STEP_MMHG, PredictionWriter, read_predictions
from ecg2abp.report.streaming import ABS_EDGES, RowCursor, VariantStream, stream_variant


def bins_around(bound: float) -> slice:
    """The two |error| histogram bins either side of `bound` mmHg (wider than a step)."""
    edge = int(np.argmin(np.abs(ABS_EDGES - bound)))
    return slice(edge - 1, edge + 1)


ABS_BINS_NEAR = {"bhs_within_5": bins_around(5.0), "bhs_within_15": bins_around(15.0)}


@pytest.mark.slow  # the shared chain trains and evaluates two variants × two folds
def test_one_pass_reproduces_the_pooled_metrics_table(evaluated):
    stream = evaluated.stream("linear")
    table = evaluated.table()
    pooled = table[(table["variant"] == "linear") & (table["fold"] == ALL_FOLDS)]
    for level in LEVELS:
        row = pooled[pooled["level"] == level].iloc[0]
        result = stream.levels[level].metrics.result()
        assert result["n"] == row["n"] > 0
        # Stored predictions are within half a step of those scored (true ABP: the shards').
        for key in ("mae", "me", "sd"):
            assert result[key] == pytest.approx(row[key], abs=HALF_STEP_MMHG), (level, key)
        assert result["pearson_r"] == pytest.approx(row["pearson_r"], abs=1e-4), level
        for key in ("bhs_within_5", "bhs_within_15"):  # a share moves with the pairs it flips
            flipped = 100.0 * stream.levels[level].abs_error[ABS_BINS_NEAR[key]].sum() / row["n"]
            assert abs(result[key] - row[key]) <= flipped, (level, key)
        assert result["bhs_grade"] == row["bhs_grade"]


@pytest.mark.slow  # the shared chain trains and evaluates two variants × two folds
def test_histograms_and_record_sums_count_every_pair(evaluated):
    stream = evaluated.stream("linear")
    for index, level in enumerate(LEVELS):
        n = stream.levels[level].metrics.error.n
        assert stream.levels[level].mean_diff.sum() == n
        assert stream.levels[level].true_pred.sum() == n
        assert stream.levels[level].abs_error.sum() == n
        assert sum(counts[index] for counts in stream.record_n.values()) == n
        if level != "point":
            assert sum(stream.levels[level].metrics.band_n) == n
        total_abs = sum(sums[index] for sums in stream.record_abs.values())
        assert total_abs / n == pytest.approx(stream.levels[level].metrics.result()["mae"])


@pytest.mark.slow  # the shared chain trains and evaluates two variants × two folds
def test_the_example_is_the_longest_test_stretch_of_the_first_fold(evaluated):
    stream = evaluated.stream("linear")
    example = stream.example
    assert example.fold == 0 and len(example.true) == 8 * evaluated.config["fs"]
    predictions = read_predictions(evaluated.files("linear", "predictions.parquet")[0])
    mine = predictions[predictions["record_id"] == example.record_id].set_index("sample")
    samples = example.source_start + np.arange(len(example.true))
    predicted = ~np.isnan(example.pred)
    np.testing.assert_array_equal(mine.loc[samples[predicted], "abp_pred"], example.pred[predicted])
    stored_true = mine.loc[samples[predicted], "abp_true"]  # the shard's, rounded when stored
    np.testing.assert_allclose(stored_true, example.true[predicted], rtol=0, atol=HALF_STEP_MMHG)
    assert len(example.ecg) == len(example.true)


@pytest.mark.slow  # the shared chain trains and evaluates two variants × two folds
def test_saved_streams_load_back_equal(evaluated, tmp_path):
    stream = evaluated.stream("naive")
    stream.save(tmp_path / "s.npz")
    loaded = VariantStream.load(tmp_path / "s.npz")
    for level in LEVELS:
        assert loaded.levels[level].metrics.result() == stream.levels[level].metrics.result()
        np.testing.assert_array_equal(
            loaded.levels[level].mean_diff, stream.levels[level].mean_diff
        )
    assert loaded.record_n.keys() == stream.record_n.keys()
    np.testing.assert_array_equal(loaded.example.pred, stream.example.pred)


@pytest.mark.slow  # the shared chain trains and evaluates two variants × two folds
def test_predictions_of_another_fold_are_refused_naming_the_file(evaluated):
    swapped = evaluated.files("linear", "predictions.parquet")[::-1]
    with pytest.raises(InputError, match=r"fold_1/seed_0/predictions\.parquet: rows do not match"):
        stream_variant(
            "linear",
            swapped,
            evaluated.files("linear", "metrics.json"),
            evaluated.split,
            evaluated.shards,
        )


@pytest.mark.slow  # the shared chain trains and evaluates two variants × two folds
def test_the_cursor_reads_across_batch_boundaries(evaluated):
    path = evaluated.files("linear", "predictions.parquet")[0]
    whole = read_predictions(path)["sample"].to_numpy()
    cursor = RowCursor(path, batch_rows=97)
    parts = [cursor.take(n)["sample"] for n in (5, 300, 1, 1000)]
    taken = np.concatenate(parts)
    np.testing.assert_array_equal(taken, whole[: len(taken)])
    assert not cursor.exhausted()
    assert json.loads((path.parent / "metrics.json").read_text())["fold"] == 0


def test_sampled_windows_of_the_paper_protocol_stream_point_wise(tmp_path):
    fold_dir = tmp_path / "fold_0"
    writer = PredictionWriter(fold_dir / "predictions.parquet")
    true = np.array([100.0, 120.0, 80.0, 90.0, 110.0])
    pred = true + np.array([1.0, -3.0, 2.0, 0.0, -1.0])
    writer.add("a", np.array([5, 9, 40]), true[:3], pred[:3])
    writer.add("b", np.array([7, 8]), true[3:], pred[3:])
    writer.close(ok=True)
    (fold_dir / "metrics.json").write_text(json.dumps({"fold": 0, "protocol": "paper"}))
    stream = stream_variant(
        "v", [fold_dir / "predictions.parquet"], [fold_dir / "metrics.json"], None, []
    )
    assert stream.levels["point"].metrics.result()["mae"] == pytest.approx(7.0 / 5)
    assert [stream.levels[lv].metrics.error.n for lv in LEVELS] == [5, 0, 0, 0]
    assert stream.record_n[(0, "a")].tolist() == [3, 0, 0, 0]
    assert stream.record_abs[(0, "b")][0] == pytest.approx(1.0)
    assert stream.example is None


@pytest.mark.slow
def test_the_bench_streams_a_results_folder_and_names_a_missing_variant(evaluated):
    from ecg2abp.bench.report import bench_report_stream

    result = bench_report_stream(evaluated.folder, "linear")
    assert result["samples"] == evaluated.stream("linear").levels["point"].metrics.error.n
    assert result["folds"] == 2 and result["cpu_s"] > 0
    with pytest.raises(InputError, match="no eval/nope/fold_"):
        bench_report_stream(evaluated.folder, "nope")
