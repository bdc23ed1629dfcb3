"""Display tables: the pipeline's Markdown shown in the report as real HTML tables."""

from html.parser import HTMLParser

from ecg2abp.report.tables import markdown_html, write_markdown_html

SUMMARY = """**leaky**: protocol `paper` — test windows overlap training windows.

| variant | level | n | MAE |
|---|---|---|---|
| naive | point | 10 | 16.00 |
| `ridge` | point | 10 | 14.00 |

Protocol `record`, folds [0, 1] merged; errors in mmHg (pred − true).

## External data set `uci`

| variant | level | n | MAE |
|---|---|---|---|
| naive | point | 5 | 20.<b> |

Kept nothing after cleaning:

- part_1: part_1/0003
"""


class Cells(HTMLParser):
    """Every table's rows as lists of cell texts, and which tags were seen."""

    def __init__(self):
        super().__init__()
        self.tables, self.tags, self.cell = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self.cell)
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def parsed(text: str) -> Cells:
    cells = Cells()
    cells.feed(text)
    return cells


def test_pipe_tables_become_tables_with_every_row():
    cells = parsed(markdown_html(SUMMARY))
    first, second = cells.tables
    assert first == [
        ["variant", "level", "n", "MAE"],
        ["naive", "point", "10", "16.00"],
        ["ridge", "point", "10", "14.00"],
    ]
    assert second[1] == ["naive", "point", "5", "20.<b>"]  # text stays text, escaped
    assert "|---" not in markdown_html(SUMMARY)


def test_headings_lists_and_inline_code_are_kept():
    html = markdown_html(SUMMARY)
    assert "<h4>External data set <code>uci</code></h4>" in html
    assert "<li>part_1: part_1/0003</li>" in html
    assert "<strong>leaky</strong>" in html and "b" not in parsed(html).tags


def test_the_report_page_is_a_whole_document(tmp_path):
    write_markdown_html(SUMMARY, tmp_path / "summary.html", "Metrics")
    page = (tmp_path / "summary.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and len(parsed(page).tables) == 2
