"""Figures drawn only from the pipeline's files; each returns the Figure and the numbers it shows.

Figures are built with matplotlib's object API (no pyplot state, Agg canvas), so they are safe in
workers and tests; every number written on a figure is also returned, for checking.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from ecg2abp.atomic import atomic_path
from ecg2abp.evaluation.metrics import BHS_THRESHOLDS_MMHG, LEVELS, SBP_BANDS
from ecg2abp.evaluation.pooling import ALL_FOLDS
from ecg2abp.evaluation.verdicts import bootstrap_ratio_ci
from ecg2abp.report.comparison import record_mae
from ecg2abp.report.streaming import (
    ABS_EDGES,
    BP_EDGES,
    DIFF_EDGES,
    LevelStream,
    VariantStream,
)

LIMITS_SD = 1.96
DPI = 110


def save(figure: Figure, path: Path) -> None:
    """PNG, written atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        figure.savefig(handle, format="png", dpi=DPI, bbox_inches="tight")


def _scored(stream: VariantStream) -> list[str]:
    return [level for level in LEVELS if stream.levels[level].metrics.error.n > 0]


def _grid(n: int, width: float = 4.2, height: float = 3.6) -> tuple[Figure, list]:
    columns = min(2, max(1, n))
    rows = max(1, -(-n // columns))
    figure = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = [figure.add_subplot(rows, columns, i + 1) for i in range(max(1, n))]
    return figure, axes


def _occupied(hist: np.ndarray, x_edges: np.ndarray, y_edges: np.ndarray, pad: float = 5.0):
    """Axis limits around the non-empty bins of a 2-D histogram."""
    rows, cols = np.nonzero(hist)
    x = (x_edges[rows.min()] - pad, x_edges[rows.max() + 1] + pad)
    y = (y_edges[cols.min()] - pad, y_edges[cols.max() + 1] + pad)
    return x, y


def _density(ax, hist: np.ndarray, x_edges: np.ndarray, y_edges: np.ndarray, figure: Figure):
    masked = np.ma.masked_equal(hist.T, 0)
    mesh = ax.pcolormesh(
        x_edges, y_edges, masked, norm=LogNorm(vmin=1, vmax=max(1, hist.max())), cmap="viridis"
    )
    figure.colorbar(mesh, ax=ax, label="count")


def _no_data(ax, why: str) -> None:
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


LABEL_BAND = 0.25  # share of the y range added above the data for the Bland–Altman labels
LABEL_PLACES = ((0.02, 0.98, "left"), (0.98, 0.98, "right"), (0.98, 0.9, "right"))  # axes x, y


def bland_altman(stream: VariantStream) -> tuple[Figure, dict]:
    """Difference against mean per level, 2-D histogram, ME and ME ± 1.96 SD lines labelled."""
    levels = _scored(stream)
    figure, axes = _grid(len(levels))
    numbers = {}
    for ax, level in zip(axes, levels, strict=False):
        result = stream.levels[level].metrics.result()
        me, sd = result["me"], result["sd"] or 0.0
        hist = stream.levels[level].mean_diff
        _density(ax, hist, BP_EDGES, DIFF_EDGES, figure)
        xlim, ylim = _occupied(hist, BP_EDGES, DIFF_EDGES)
        lines = {"ME": me, "+1.96 SD": me + LIMITS_SD * sd, "−1.96 SD": me - LIMITS_SD * sd}
        low, high = min(ylim[0], lines["−1.96 SD"] - 5), max(ylim[1], lines["+1.96 SD"] + 5)
        # The labels sit in a band above every bin and line, so they never cover data.
        ax.set(xlim=xlim, ylim=(low, high + LABEL_BAND * (high - low)))
        for (label, value), (x, y, align) in zip(lines.items(), LABEL_PLACES, strict=True):
            colour = "k" if label == "ME" else "tab:red"
            ax.axhline(value, color=colour, lw=1, ls="-")
            ax.text(
                x,
                y,
                f"{label}: {value:.2f}",
                transform=ax.transAxes,
                ha=align,
                va="top",
                fontsize=7,
                color=colour,
            )
        ax.set_title(f"{level}: n = {result['n']}, SD = {sd:.2f} mmHg", fontsize=9)
        ax.set_xlabel("(true + predicted) / 2 (mmHg)")
        ax.set_ylabel("predicted − true (mmHg)")
        numbers[level] = {
            "me": me,
            "sd": sd,
            "upper": lines["+1.96 SD"],
            "lower": lines["−1.96 SD"],
        }
    if not levels:
        _no_data(axes[0], "nothing scored")
    figure.suptitle(f"{stream.variant}: Bland–Altman, all folds")
    return figure, numbers


def _fit(level: LevelStream) -> tuple[float, float]:
    """Least-squares line pred = slope · true + intercept (flat at the mean if true is constant)."""
    result = level.metrics.result()
    if result["slope"] is None:
        return 0.0, level.metrics.pred.mean
    return result["slope"], result["intercept"]


def predicted_vs_true(stream: VariantStream) -> tuple[Figure, dict]:
    """Predicted against true per level with the identity line, a fitted line and Pearson r."""
    levels = _scored(stream)
    figure, axes = _grid(len(levels))
    numbers = {}
    for ax, level in zip(axes, levels, strict=False):
        hist = stream.levels[level].true_pred
        _density(ax, hist, BP_EDGES, BP_EDGES, figure)
        xlim, ylim = _occupied(hist, BP_EDGES, BP_EDGES)
        low, high = min(xlim[0], ylim[0]), max(xlim[1], ylim[1])
        ax.plot([low, high], [low, high], color="k", lw=1, label="identity")
        slope, intercept = _fit(stream.levels[level])
        ax.plot(
            [low, high],
            [slope * low + intercept, slope * high + intercept],
            color="tab:red",
            lw=1,
            label=f"fit: {slope:.2f}·true + {intercept:.1f}",
        )
        r = stream.levels[level].metrics.result()["pearson_r"]
        r_text = "r undefined (constant)" if r is None else f"r = {r:.2f}"
        ax.text(0.03, 0.95, r_text, transform=ax.transAxes, va="top", fontsize=9)
        ax.set(xlim=(low, high), ylim=(low, high), xlabel="true (mmHg)", ylabel="predicted (mmHg)")
        ax.set_title(level, fontsize=9)
        ax.legend(loc="lower right", fontsize=7)
        numbers[level] = {"pearson_r": r, "slope": slope, "intercept": intercept}
    if not levels:
        _no_data(axes[0], "nothing scored")
    figure.suptitle(f"{stream.variant}: predicted vs true, all folds")
    return figure, numbers


def error_cdf(stream: VariantStream) -> tuple[Figure, dict]:
    """Cumulative share of |error| per level, BHS 5/10/15 mmHg marks and the grade."""
    figure = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = figure.add_subplot()
    numbers = {}
    for level in _scored(stream):
        counts = stream.levels[level].abs_error
        share = 100.0 * np.cumsum(counts) / counts.sum()
        result = stream.levels[level].metrics.result()
        within = [result[f"bhs_within_{int(t)}"] for t in BHS_THRESHOLDS_MMHG]
        label = f"{level}: " + "/".join(f"{w:.0f}" for w in within) + f" % → {result['bhs_grade']}"
        (line,) = ax.plot(ABS_EDGES[1:], share, label=label)
        ax.plot(BHS_THRESHOLDS_MMHG, within, "o", color=line.get_color(), ms=4)
        numbers[level] = {"within": within, "grade": result["bhs_grade"]}
    for threshold in BHS_THRESHOLDS_MMHG:
        ax.axvline(threshold, color="grey", lw=0.8, ls="--")
    ax.set(xlim=(0, 40), ylim=(0, 100), xlabel="|predicted − true| (mmHg)", ylabel="% within")
    if numbers:
        ax.legend(title="≤ 5/10/15 mmHg → BHS grade", fontsize=8, loc="lower right")
    ax.set_title(f"{stream.variant}: cumulative absolute error, all folds")
    return figure, numbers


def error_by_band(stream: VariantStream) -> tuple[Figure, dict]:
    """MAE and signed ME per beat level in true-SBP bands (hypotension, normal, hypertension)."""
    figure = Figure(figsize=(10.0, 4.0), layout="constrained")
    mae_ax, me_ax = figure.subplots(1, 2)
    levels = [level for level in _scored(stream) if level != "point"]
    numbers = {}
    width = 0.8 / max(1, len(levels))
    for offset, level in enumerate(levels):
        bands = stream.levels[level].metrics.band_results()
        x = np.arange(len(SBP_BANDS)) + offset * width
        n = [bands[f"n_{key}"] for _, key, _, _ in SBP_BANDS]
        for ax, measure in ((mae_ax, "mae"), (me_ax, "me")):
            values = np.array(
                [
                    np.nan if bands[f"{measure}_{key}"] is None else bands[f"{measure}_{key}"]
                    for _, key, _, _ in SBP_BANDS
                ]
            )
            ax.bar(x, np.nan_to_num(values), width, label=level)
            for xi, value, count in zip(x, values, n, strict=True):
                text = "–" if count == 0 else f"{value:+.1f}" if measure == "me" else f"{value:.1f}"
                va = "top" if measure == "me" and value < 0 else "bottom"
                ax.text(
                    xi, np.nan_to_num(value), f"{text}\nn={count}", ha="center", va=va, fontsize=7
                )
        numbers[level] = {
            name: {"n": bands[f"n_{key}"], "mae": bands[f"mae_{key}"], "me": bands[f"me_{key}"]}
            for name, key, _, _ in SBP_BANDS
        }
    for ax, label in ((mae_ax, "MAE (mmHg)"), (me_ax, "ME, predicted − true (mmHg)")):
        if not levels:
            _no_data(ax, "no beats scored (bands are defined on each beat's true SBP)")
            continue
        ax.set_xticks(np.arange(len(SBP_BANDS)) + width * (len(levels) - 1) / 2)
        ax.set_xticklabels([name for name, _, _, _ in SBP_BANDS])
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        ax.margins(y=0.25)
    me_ax.axhline(0.0, color="k", lw=0.8)
    figure.suptitle(f"{stream.variant}: error by true-SBP band of the beat, all folds")
    return figure, numbers


def example_stretch(stream: VariantStream, fs: float) -> tuple[Figure, dict]:
    """ECG above, true and predicted ABP below, for the stream's example stretch."""
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    top, bottom = figure.add_subplot(2, 1, 1), figure.add_subplot(2, 1, 2)
    example = stream.example
    if example is None:
        _no_data(top, "no contiguous test stretch (the paper protocol samples windows)")
        bottom.set_axis_off()
        return figure, {}
    t = (example.source_start + np.arange(len(example.true))) / fs
    top.plot(t, example.ecg, lw=0.7, color="k")
    top.set(ylabel="ECG (cleaned)")
    top.set_title(f"{stream.variant}: record {example.record_id}, fold {example.fold}", fontsize=9)
    bottom.plot(t, example.true, lw=0.9, label="true")
    bottom.plot(t, example.pred, lw=0.9, label="predicted")
    bottom.set(xlabel="time in record (s)", ylabel="ABP (mmHg)")
    bottom.legend(fontsize=8, loc="upper right")
    predicted = ~np.isnan(example.pred)
    mae = float(np.mean(np.abs(example.pred[predicted] - example.true[predicted])))
    return figure, {"record_id": example.record_id, "start_s": float(t[0]), "mae": mae}


def mae_across_variants(
    table: pd.DataFrame, streams: Sequence[VariantStream], samples: int, seed: int
) -> tuple[Figure, dict]:
    """Pooled MAE per variant and level with a bootstrap 95 % interval and each fold's MAE."""
    by_name = {s.variant: s for s in streams}
    variants = ["naive", *sorted(v for v in by_name if v != "naive")]
    levels = [lv for lv in LEVELS if any(by_name[v].levels[lv].metrics.error.n for v in variants)]
    figure, axes = _grid(len(levels), width=4.6)
    numbers: dict = {}
    for ax, level in zip(axes, levels, strict=False):
        for x, variant in enumerate(variants):
            rows = table[(table["variant"] == variant) & (table["level"] == level)]
            pooled = rows[rows["fold"] == ALL_FOLDS]["mae"].dropna()
            per_fold = rows[rows["fold"] != ALL_FOLDS]["mae"].dropna().to_numpy(float)
            if pooled.empty:
                continue
            mae = float(pooled.iloc[0])
            units = record_mae(by_name[variant], level).groupby("unit")[["sum_abs", "n"]].sum()
            low, high = bootstrap_ratio_ci(units["sum_abs"], units["n"], samples, seed)
            ax.bar(x, mae, color="lightsteelblue")
            # one unit: the interval is the pooled MAE itself, up to rounding
            spread = [[max(mae - low, 0.0)], [max(high - mae, 0.0)]]
            ax.errorbar(x, mae, yerr=spread, color="k", capsize=4)
            ax.plot(np.full(len(per_fold), x + 0.25), per_fold, "o", color="tab:orange", ms=3)
            numbers[(variant, level)] = {
                "mae": mae,
                "ci": (low, high),
                "folds": per_fold.tolist(),
            }
        ax.set_xticks(range(len(variants)))
        ax.set_xticklabels(variants, rotation=30, ha="right", fontsize=8)
        ax.set(ylabel="MAE (mmHg)", title=level)
    figure.suptitle(
        "MAE, all folds: bar = pooled, bar line = 95 % CI over resampling units, dots = folds"
    )
    return figure, numbers


def bhs_shares(table: pd.DataFrame) -> tuple[Figure, dict]:
    """Share of |error| within 5, 10 and 15 mmHg per variant and level, with the BHS grade."""
    pooled = table[(table["fold"] == ALL_FOLDS) & (table["n"] > 0)]
    variants = ["naive", *sorted(v for v in pooled["variant"].unique() if v != "naive")]
    levels = [lv for lv in LEVELS if lv in set(pooled["level"])]
    figure, axes = _grid(len(levels), width=4.6)
    numbers = {}
    colours = ("tab:green", "tab:olive", "tab:orange")
    for ax, level in zip(axes, levels, strict=False):
        for x, variant in enumerate(variants):
            row = pooled[(pooled["variant"] == variant) & (pooled["level"] == level)]
            if row.empty:
                continue
            row = row.iloc[0]
            shares = [float(row[f"bhs_within_{int(t)}"]) for t in BHS_THRESHOLDS_MMHG]
            previous = 0.0
            for share, colour, threshold in zip(shares, colours, BHS_THRESHOLDS_MMHG, strict=True):
                ax.bar(
                    x,
                    share - previous,
                    bottom=previous,
                    color=colour,
                    label=f"≤ {threshold:.0f} mmHg" if x == 0 else None,
                )
                previous = share
            ax.text(x, previous + 1, row["bhs_grade"], ha="center", va="bottom", fontsize=9)
            numbers[(variant, level)] = {"within": shares, "grade": row["bhs_grade"]}
        ax.set_xticks(range(len(variants)))
        ax.set_xticklabels(variants, rotation=30, ha="right", fontsize=8)
        ax.set(ylim=(0, 110), ylabel="% of errors within", title=level)
        ax.legend(fontsize=7, loc="upper left")
    figure.suptitle("BHS cumulative shares and grade (letter), all folds")
    return figure, numbers
