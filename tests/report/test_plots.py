import re

import numpy as np
import pandas as pd
import pytest

from ecg2abp.evaluation.metrics import LEVELS, SBP_BANDS
from ecg2abp.evaluation.pooling import ALL_FOLDS
from ecg2abp.report import plots
from ecg2abp.report.streaming import VariantStream


def random_stream(name: str, seed: int = 0, records: int = 6, per_record: int = 400):
    """Made-up point and SBP pairs: true 60–180 mmHg, errors ~ N(2, 8), a few far outliers."""
    rng = np.random.default_rng(seed)
    stream = VariantStream(name)
    for index in range(records):
        true = rng.uniform(60, 180, per_record)
        pred = true + rng.normal(2, 8, per_record)
        pred[:2] = [400.0, -50.0]  # beyond every histogram edge: counted, not dropped
        beats = slice(0, per_record // 10)
        stream.add_pairs(f"r{index}", {"point": (true, pred), "sbp": (true[beats], pred[beats])})
    return stream


def texts(figure) -> list[str]:
    return [t.get_text() for ax in figure.axes for t in ax.texts]


def labelled(figure, label: str) -> list[float]:
    """Values of every text 'label: value' drawn on the figure."""
    pattern = re.compile(rf"^{re.escape(label)}: (-?\d+\.\d+)$")
    return [float(m.group(1)) for t in texts(figure) if (m := pattern.match(t))]


def test_bland_altman_lines_are_labelled_with_the_streams_me_and_sd():
    stream = random_stream("v")
    figure, numbers = plots.bland_altman(stream)
    for level in ("point", "sbp"):
        result = stream.levels[level].metrics.result()
        assert numbers[level]["me"] == result["me"] and numbers[level]["sd"] == result["sd"]
    expected_me = [round(stream.levels[lv].metrics.result()["me"], 2) for lv in ("point", "sbp")]
    assert labelled(figure, "ME") == expected_me
    upper = [round(numbers[lv]["me"] + 1.96 * numbers[lv]["sd"], 2) for lv in ("point", "sbp")]
    assert labelled(figure, "+1.96 SD") == upper
    assert len(figure.axes) == 2 + 2  # two levels scored, each with its colour bar


def test_predicted_vs_true_shows_the_streams_r_and_the_least_squares_line():
    rng = np.random.default_rng(1)
    true = rng.uniform(60, 180, 2000)
    pred = 0.5 * true + 40 + rng.normal(0, 5, 2000)
    stream = VariantStream("v")
    stream.add_pairs("r", {"point": (true[:900], pred[:900])})
    stream.add_pairs("s", {"point": (true[900:], pred[900:])})
    figure, numbers = plots.predicted_vs_true(stream)
    r = np.corrcoef(true, pred)[0, 1]
    assert f"r = {r:.2f}" in texts(figure)
    slope, intercept = np.polyfit(true, pred, 1)
    assert numbers["point"]["slope"] == pytest.approx(slope)
    assert numbers["point"]["intercept"] == pytest.approx(intercept)


def test_error_cdf_marks_the_bhs_shares_and_grade():
    stream = random_stream("v")
    _, numbers = plots.error_cdf(stream)
    result = stream.levels["point"].metrics.result()
    assert numbers["point"]["within"] == [result[f"bhs_within_{k}"] for k in (5, 10, 15)]
    assert numbers["point"]["grade"] == result["bhs_grade"]


def test_error_by_band_counts_beats_by_their_true_sbp():
    true = np.array([70.0, 85.0, 100.0, 139.9, 140.0, 200.0])
    pred = true + np.array([1.0, 3.0, -2.0, 2.0, 10.0, -20.0])
    stream = VariantStream("v")
    stream.add_pairs("r", {"point": (true, pred), "sbp": (true, pred), "dbp": (true - 40, pred)})
    figure, numbers = plots.error_by_band(stream)
    names = [name for name, _, _, _ in SBP_BANDS]
    assert [numbers["sbp"][b]["n"] for b in names] == [2, 2, 2]
    assert [numbers["sbp"][b]["mae"] for b in names] == [2.0, 2.0, 15.0]
    assert [numbers["sbp"][b]["me"] for b in names] == [2.0, 0.0, -5.0]  # signed, beside MAE
    assert "15.0\nn=2" in texts(figure)
    assert "-5.0\nn=2" in texts(figure)
    assert "point" not in numbers


def test_across_variants_bars_are_the_tables_mae_with_an_interval_around_it():
    streams = [random_stream("naive", seed=2), random_stream("v", seed=3)]
    rows = []
    for stream in streams:
        result = stream.levels["point"].metrics.result()
        for fold, mae in (
            (0, result["mae"] - 1),
            (1, result["mae"] + 1),
            (ALL_FOLDS, result["mae"]),
        ):
            rows.append({"variant": stream.variant, "level": "point", "fold": fold, "mae": mae})
    table = pd.DataFrame(rows)
    _, numbers = plots.mae_across_variants(table, streams, samples=500, seed=0)
    for stream in streams:
        shown = numbers[(stream.variant, "point")]
        assert shown["mae"] == pytest.approx(stream.levels["point"].metrics.result()["mae"])
        assert shown["ci"][0] < shown["mae"] < shown["ci"][1]
        assert shown["folds"] == [shown["mae"] - 1, shown["mae"] + 1]


def test_across_variants_draws_a_single_unit_whose_interval_is_its_mae():
    """One test subject (a PulseDB test set may hold one): the interval collapses onto the
    MAE, up to rounding either way, and the bar still draws."""
    stream = random_stream("naive", seed=4, records=1)
    stream.record_units = {"r0": "p000001_0"}
    mae = stream.levels["point"].metrics.result()["mae"]
    for shift in (-1e-12, 1e-12):
        table = pd.DataFrame(
            [{"variant": "naive", "level": "point", "fold": ALL_FOLDS, "mae": mae + shift}]
        )
        figure, numbers = plots.mae_across_variants(table, [stream], samples=200, seed=0)
        low, high = numbers[("naive", "point")]["ci"]
        assert low == pytest.approx(mae) and high == pytest.approx(mae)
        figure.canvas.draw()


def test_a_stream_with_nothing_scored_still_draws():
    stream = VariantStream("empty")
    for draw in (plots.bland_altman, plots.predicted_vs_true, plots.error_cdf, plots.error_by_band):
        figure, numbers = draw(stream)
        assert numbers == {}
        figure.canvas.draw()


@pytest.mark.slow
def test_labels_on_the_plots_equal_the_metrics_table(evaluated, tmp_path):
    table = evaluated.table()
    stream = evaluated.stream("linear")
    pooled = table[(table["variant"] == "linear") & (table["fold"] == ALL_FOLDS)]
    pooled = pooled.set_index("level")
    figure, numbers = plots.bland_altman(stream)
    assert labelled(figure, "ME") == [round(pooled.loc[lv, "me"], 2) for lv in LEVELS]
    assert [round(numbers[lv]["sd"], 2) for lv in LEVELS] == [
        round(pooled.loc[lv, "sd"], 2) for lv in LEVELS
    ]
    figure, _ = plots.predicted_vs_true(stream)
    assert [t for t in texts(figure) if t.startswith("r = ")] == [
        f"r = {pooled.loc[lv, 'pearson_r']:.2f}" for lv in LEVELS
    ]
    figure, _ = plots.example_stretch(stream, evaluated.config["fs"])
    plots.save(figure, tmp_path / "example.png")
    assert (tmp_path / "example.png").read_bytes()[:4] == b"\x89PNG"


def test_bland_altman_labels_cover_no_data_and_no_other_label():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    stream = random_stream("v")
    figure, _ = plots.bland_altman(stream)
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    for ax, level in zip(figure.axes[:2], ("point", "sbp"), strict=True):  # then colour bars
        boxes = [t.get_window_extent(renderer) for t in ax.texts]
        assert len(boxes) == 3
        assert all(b.x0 >= ax.bbox.x0 and b.x1 <= ax.bbox.x1 for b in boxes)  # inside the axes
        for i, box in enumerate(boxes):
            assert not any(box.overlaps(other) for other in boxes[i + 1 :])
        _, occupied = np.nonzero(stream.levels[level].mean_diff)
        highest_bin = plots.DIFF_EDGES[occupied.max() + 1]
        values = [highest_bin, *(line.get_ydata()[0] for line in ax.lines)]
        pixels = [ax.transData.transform((0, value))[1] for value in values]
        assert max(pixels) < min(b.y0 for b in boxes)  # every bin and line below every label
