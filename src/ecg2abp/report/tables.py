"""Display tables: one formatted frame, written as Markdown (README, terminal) and HTML (report)."""

import html
import re
from pathlib import Path

import pandas as pd

from ecg2abp.atomic import atomic_path

STYLE = (
    "<style>table{border-collapse:collapse;font:13px sans-serif}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style>"
)


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table of the frame's values as they are (format them first)."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def write_page(body: str, path: Path, title: str) -> None:
    """A standalone HTML page (styled tables) with `title` above `body` (HTML)."""
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"{STYLE}</head><body><h3>{html.escape(title)}</h3>{body}</body></html>"
    )
    with atomic_path(path) as tmp:
        tmp.write_text(page)


def write_html(frame: pd.DataFrame, path: Path, title: str, notes: list[str]) -> None:
    """A standalone HTML page: title, table, notes (for Snakemake's report, which shows HTML)."""
    paragraphs = "".join(f"<p>{html.escape(note)}</p>" for note in notes)
    write_page(frame.to_html(index=False, border=0) + paragraphs, path, title)


def write_markdown(frame: pd.DataFrame, path: Path, notes: list[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(markdown_table(frame) + "\n" + "\n".join(notes) + "\n")


def write_text_html(text: str, path: Path, title: str) -> None:
    """Preformatted text (a YAML file) as a standalone HTML page."""
    write_page(f"<pre>{html.escape(text)}</pre>", path, title)


def _inline(text: str) -> str:
    """Escaped text with Markdown's `code` and **bold** as HTML."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table_html(lines: list[str]) -> str:
    header, _, *rows = lines
    head = "".join(f"<th>{_inline(c)}</th>" for c in _cells(header))
    body = "".join(
        "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def markdown_html(text: str) -> str:
    """The Markdown the pipeline writes (pipe tables, headings, lists, paragraphs) as HTML."""
    parts, block, kind = [], [], None

    def flush() -> None:
        if kind == "table" and len(block) >= 2:
            parts.append(_table_html(block))
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{_inline(i[2:])}</li>" for i in block) + "</ul>")
        elif block:
            parts.append(f"<p>{_inline(' '.join(block))}</p>")

    for line in [*text.splitlines(), ""]:
        stripped = line.strip()
        now = (
            "table"
            if stripped.startswith("|")
            else "list"
            if stripped.startswith("- ")
            else "heading"
            if stripped.startswith("#")
            else "text"
            if stripped
            else None
        )
        if now != kind or now == "heading":
            flush()
            block, kind = [], now
        if now == "heading":
            level = min(6, len(stripped) - len(stripped.lstrip("#")) + 2)
            parts.append(f"<h{level}>{_inline(stripped.lstrip('#').strip())}</h{level}>")
            kind = None
        elif now is not None:
            block.append(stripped)
    return "\n".join(parts)


def write_markdown_html(text: str, path: Path, title: str) -> None:
    """A Markdown file the pipeline wrote as a standalone HTML page with real tables."""
    write_page(markdown_html(text), path, title)
