"""Display tables: one formatted frame, written as Markdown (README, terminal) and HTML (report)."""

import html
from pathlib import Path

import pandas as pd

from ecg2abp.atomic import atomic_path


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table of the frame's values as they are (format them first)."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def write_html(frame: pd.DataFrame, path: Path, title: str, notes: list[str]) -> None:
    """A standalone HTML page: title, table, notes (for Snakemake's report, which shows HTML)."""
    paragraphs = "".join(f"<p>{html.escape(note)}</p>" for note in notes)
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>table{border-collapse:collapse;font:13px sans-serif}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>"
        f"<h3>{html.escape(title)}</h3>{frame.to_html(index=False, border=0)}{paragraphs}"
        "</body></html>"
    )
    with atomic_path(path) as tmp:
        tmp.write_text(page)


def write_markdown(frame: pd.DataFrame, path: Path, notes: list[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(markdown_table(frame) + "\n" + "\n".join(notes) + "\n")


def write_text_html(text: str, path: Path, title: str) -> None:
    """Preformatted text (a Markdown table, a YAML file) as a standalone HTML page."""
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body><h3>{html.escape(title)}</h3><pre>{html.escape(text)}</pre></body></html>"
    )
    with atomic_path(path) as tmp:
        tmp.write_text(page)
