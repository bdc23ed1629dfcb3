"""The report's workflow steps: each reads pipeline files, writes figures or tables atomically."""

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
import yaml

from ecg2abp.atomic import atomic_path
from ecg2abp.errors import InputError
from ecg2abp.evaluation.pooling import main_rows
from ecg2abp.report import cleaning, plots, saliency
from ecg2abp.report.streaming import VariantStream, stream_variant
from ecg2abp.report.tables import (
    write_html,
    write_markdown,
    write_markdown_html,
    write_text_html,
)

VARIANT_PLOTS = {
    "bland_altman": plots.bland_altman,
    "predicted_vs_true": plots.predicted_vs_true,
    "error_cdf": plots.error_cdf,
    "error_by_band": plots.error_by_band,
}


def write_stream(
    variant: str,
    prediction_files: Sequence[Path],
    metric_files: Sequence[Path],
    split_path: Path,
    shard_paths: Sequence[Path],
    config: dict,
    out: Path,
) -> None:
    """One streaming pass over a variant's predictions, saved for the plots and the comparison."""
    stream = stream_variant(variant, prediction_files, metric_files, split_path, shard_paths)
    stream.save(Path(out))


def write_variant_plots(stream_file: Path, outputs: dict[str, Path], fs: float) -> dict:
    """The per-variant figures; returns the numbers drawn on them."""
    stream = VariantStream.load(Path(stream_file))
    numbers = {}
    for name, draw in VARIANT_PLOTS.items():
        figure, numbers[name] = draw(stream)
        plots.save(figure, Path(outputs[name]))
    figure, numbers["example"] = plots.example_stretch(stream, fs)
    plots.save(figure, Path(outputs["example"]))
    return numbers


def read_metrics_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read the metrics table ({err})") from None


def write_across_variants(
    metrics_table: Path, stream_files: Sequence[Path], outputs: dict[str, Path], config: dict
) -> None:
    """MAE with fold spread and intervals, and BHS shares, for every variant side by side (the
    folds' own test side: the one the streams hold)."""
    table = main_rows(read_metrics_table(Path(metrics_table)))
    streams = [VariantStream.load(Path(p)) for p in stream_files]
    settings = config["report"]
    figure, _ = plots.mae_across_variants(
        table, streams, settings["bootstrap_samples"], settings["seed"]
    )
    plots.save(figure, Path(outputs["mae"]))
    figure, _ = plots.bhs_shares(table)
    plots.save(figure, Path(outputs["bhs"]))


def write_cleaning(report_files: Sequence[Path], outputs: dict[str, Path]) -> None:
    """Removed samples per rule and part: Parquet, Markdown, HTML and a bar chart."""
    table = cleaning.cleaning_table([Path(p) for p in report_files])
    with atomic_path(Path(outputs["table"])) as tmp:
        table.to_parquet(tmp, index=False)
    display = cleaning.cleaning_display(table)
    write_markdown(display, Path(outputs["markdown"]), cleaning.CLEANING_NOTES)
    write_html(display, Path(outputs["html"]), "Cleaning", cleaning.CLEANING_NOTES)
    plots.save(cleaning.cleaning_chart(table), Path(outputs["chart"]))


def write_saliency(
    variant: str,
    model_files: Sequence[Path],
    split_path: Path,
    shard_paths: Sequence[Path],
    config: dict,
    out: Path,
) -> None:
    """|gradient × input| against time in the window, over test windows of every fold."""
    torch.set_num_threads(config["threads"])
    profile, n_windows = saliency.variant_saliency(
        model_files, split_path, shard_paths, config["report"]["saliency_windows"]
    )
    plots.save(saliency.saliency_figure(variant, profile, n_windows, config["fs"]), Path(out))


def write_pages(summary: Path, config: dict, outputs: dict[str, Path]) -> None:
    """summary.md (all folds merged) and the configuration (defaults filled in) as report pages."""
    text = Path(summary).read_text()
    write_markdown_html(text, Path(outputs["summary"]), "Metrics, all folds merged")
    configuration = yaml.safe_dump(config, sort_keys=False)
    write_text_html(configuration, Path(outputs["config"]), "Configuration (defaults filled in)")
