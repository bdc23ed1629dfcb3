"""Every shell block in README.md and docs/*.md is run by a test or says why it is not."""

import re

from doc_blocks import DEMO_OUTPUTS, REPO, SHELLS, documents, fenced_blocks, shell_blocks

# Programs of the venv: a block names them as .venv/bin/NAME (README: one convention, stated once).
VENV_PROGRAMS = ("ecg2abp", "snakemake", "mlflow", "mkdocs", "pytest", "ruff", "pip")
BARE = re.compile(rf"(^|[|;&]\s*|\$\()\s*({'|'.join(VENV_PROGRAMS)})\s")
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def test_every_shell_block_is_run_or_says_why_not():
    unmarked = [b.where for b in shell_blocks() if b.not_run is None and b.run != DEMO_OUTPUTS]
    assert unmarked == [], f"neither run nor marked <!-- not run: REASON -->: {unmarked}"
    assert all(b.not_run for b in shell_blocks() if b.not_run is not None), "a reason is empty"


def test_the_tests_run_some_blocks_of_the_readme():
    run = [b for b in shell_blocks() if b.run == DEMO_OUTPUTS]
    assert any(b.path.name == "README.md" for b in run)


def test_unlabelled_fences_hold_no_commands():
    for path in documents():
        for block in fenced_blocks(path):
            if block.language in SHELLS or block.language:
                continue
            commands = [
                ln
                for ln in block.text.splitlines()
                if BARE.search(ln) or ln.lstrip().startswith((".venv/bin/", "bash "))
            ]
            assert commands == [], f"{block.where}: commands in a block without a language"


def test_venv_programs_are_named_by_their_venv_path():
    for block in shell_blocks():
        for line in block.text.splitlines():
            if line.lstrip().startswith("#"):
                continue
            assert not BARE.search(line), f"{block.where}: {line!r} (use .venv/bin/…)"


def test_the_readme_links_only_to_files_that_exist():
    readme = REPO / "README.md"
    targets = [m.group(1) for m in LINK.finditer(readme.read_text())]
    assert targets, "the README links to the docs"
    missing = [t for t in targets if "://" not in t and not (REPO / t).exists()]
    assert missing == []


def test_the_marker_parser_sees_what_a_reader_sees(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- not run: needs SLURM -->\n\n```bash\nsbatch x\n```\n"
        "text\n```sh\nls\n```\n<!-- run: demo outputs -->\n```bash\ncat a\ncat b\n```\n"
        "```python\nprint(1)\n```\n"
    )
    blocks = fenced_blocks(page)
    assert [b.language for b in blocks] == ["bash", "sh", "bash", "python"]
    assert blocks[0].not_run == "needs SLURM" and blocks[0].run is None
    assert blocks[1].not_run is None and blocks[1].run is None  # would fail the first test
    assert blocks[2].run == DEMO_OUTPUTS and blocks[2].text == "cat a\ncat b\n"
    assert [blocks[0].line, blocks[2].line] == [3, 11]
