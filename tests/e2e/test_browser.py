"""What a person sees: the offline report and MLflow's runs page in a real browser (headless
Chromium, network off). Opt-in tier (`pytest -m browser`); CI installs Debian's chromium."""

import json
import os
from pathlib import Path

import pytest
from browser import Browser, file_url, install_chromium, leaving
from tracking_factory import free_port, mlflow_server
from workflow_runner import snakemake

from ecg2abp.report.next_steps import experiment_address

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Classical variants only (fast), MLflow on: the report and the runs page of a whole run.
TINY = """
experiment: browser
synthetic: {parts: 2, records_per_part: 6, min_seconds: 20.0, max_seconds: 30.0, seed: 1}
split: {folds: 2, block_size: 2}
run_variants: [ridge]
threads: 1
train: {classical_max_windows: 3000, max_val_windows: 256, device: cpu}
report: {bootstrap_samples: 200}
"""
VARIANTS = ("naive", "ridge")
# Where to keep screenshots of what was checked (docs/img for the docs; unset: none kept).
SCREENSHOTS = os.environ.get("ECG2ABP_SCREENSHOTS")

# Show one report entry as its button would (Snakemake's report app: global `app`, `results`)
# and wait for the image to load; its natural width, or -1 after 10 s.
SHOW_IMAGE = """async (path) => {
  const entry = results[path];
  app.setView({content: "img", contentPath: entry.data_uri, resultPath: path});
  for (let i = 0; i < 200; i++) {
    const img = [...document.images].find((x) => x.src === entry.data_uri);
    if (img && img.complete) return img.naturalWidth;
    await new Promise((r) => setTimeout(r, 50));
  }
  return -1;
}"""
SHOW_PAGE = """(path) => app.setView({content: "html", contentPath: results[path].data_uri,
  resultPath: path})"""
WAIT_FOR_TEXT = """async (words) => {
  for (let i = 0; i < 900; i++) {
    if (words.every((w) => document.body.innerText.includes(w))) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return document.body.innerText;
}"""
SCROLL_TO = """(words) => [...document.querySelectorAll("p, div")].reverse()
  .find((e) => e.textContent.includes(words))?.scrollIntoView({block: "start"})"""
TABLE_ROWS = """(async () => {
  for (let i = 0; i < 200 && !document.querySelector("table"); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return [...document.querySelectorAll("table")].map((t) =>
    [...t.rows].map((r) => [...r.cells].map((c) => c.textContent.trim())));
})()"""


def call(function: str, *args) -> str:
    """A JavaScript expression calling `function` with `args` (as JSON)."""
    return f"({function})({', '.join(json.dumps(a) for a in args)})"


@pytest.fixture(scope="module")
def chromium() -> str:
    found = install_chromium()
    if found is None and os.environ.get("CI") == "true":
        pytest.fail("no chromium, and CI could not install it (apt-get as root)")
    if found is None:
        pytest.skip("no chromium (CI=true as root installs Debian's package)")
    return found


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny pipeline's folder with its report built (--report), as the README says."""
    workdir = tmp_path_factory.mktemp("browser_run")
    result = snakemake(workdir, config=TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Next steps:" in result.stdout + result.stderr
    report = workdir / "results" / "browser" / "report.html"
    result = snakemake(workdir, "--report", str(report), config=TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_the_offline_report_shows_every_figure_and_the_summary_table(chromium, tiny_run):
    report = tiny_run / "results" / "browser" / "report.html"
    with Browser(chromium, limit_s=120) as browser:
        browser.open(file_url(report))
        entries = browser.evaluate("Object.entries(results).map(([k, v]) => [k, v.mime_type])")
        images = [path for path, kind in entries if kind == "image/png"]
        assert len(images) >= 10
        widths = {path: browser.evaluate(call(SHOW_IMAGE, path)) for path in images}
        assert [p for p, width in widths.items() if width <= 0] == [], widths
        summary = next(path for path, _ in entries if path.endswith("/summary.html"))
        browser.evaluate(call(SHOW_PAGE, summary))
        frame = browser.wait_event("Page.frameNavigated", lambda p: "parentId" in p["frame"])
        tables = browser.evaluate(TABLE_ROWS, browser.frame_context(frame["frame"]["id"]))
        requests = browser.requests()
        if SCREENSHOTS:
            browser.screenshot(Path(SCREENSHOTS) / "report_summary.png")
    (header, *rows), *_ = tables
    assert header[:3] == ["variant", "level", "n"]
    expected = (tiny_run / "results" / "browser" / "summary.md").read_text()
    blocks = expected.split("\n\n")
    first_table = next(b for b in blocks if b.startswith("| variant")).splitlines()  # metrics
    table_lines = [ln for ln in first_table if ln.startswith("| ") and "---" not in ln]
    assert len(rows) == len(table_lines) - 1 >= 2 * 4  # every variant × level of summary.md
    assert len(tables) >= 3  # then Tracking and Against the floors, as tables too
    assert {row[0] for row in rows} == set(VARIANTS)
    assert leaving(requests) == [], "the report asked the network for something"


def test_mlflow_s_runs_page_lists_the_parent_runs_and_a_parent_shows_its_rows(chromium, tiny_run):
    note = json.loads((tiny_run / "results" / "browser" / "mlflow" / "track.json").read_text())
    port = free_port()
    address = experiment_address(note["experiment_id"], port)
    parent = note["parents"]["ridge"]
    with mlflow_server(tiny_run / "results", port), Browser(chromium, limit_s=120) as browser:
        browser.open(address)
        runs = browser.evaluate(call(WAIT_FOR_TEXT, ["Run Name", *VARIANTS]))
        if SCREENSHOTS:
            browser.screenshot(Path(SCREENSHOTS) / "mlflow_runs.png")
        browser.open(address.replace("?", f"/runs/{parent}?"))
        described = browser.evaluate(call(WAIT_FOR_TEXT, ["beside the floor", "sbp"]))
        if SCREENSHOTS:
            browser.evaluate(call(SCROLL_TO, "beside the floor"))
            browser.screenshot(Path(SCREENSHOTS) / "mlflow_parent.png")
    assert "Run Name" in runs and all(variant in runs for variant in VARIANTS), runs[:2000]
    assert "beside the floor" in described, described[:2000]  # the description: pooled rows
