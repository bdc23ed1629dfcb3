"""predict: an input with nothing to predict is a one-line error, never 0 rows in silence."""

import re

import pytest

from ecg2abp.cli import main

CASES = {
    "text.csv": ("ecg\n" + "n/a\n" * 2413, r"every one of 2,413 ECG samples flagged \(nonfinite"),
    "header.csv": ("ecg\n", r"nothing to predict: 0 ECG samples, under one window \(88\)"),
    "short.csv": ("ecg\n" + "0.1\n" * 50, r"nothing to predict: 50 ECG samples, under one window"),
}


@pytest.mark.parametrize("name", CASES)
def test_nothing_to_predict_is_a_one_line_error(model_file, tmp_path, capsys, name):
    content, message = CASES[name]
    source = tmp_path / name
    source.write_text(content)
    out = tmp_path / "out.csv"
    code = main(
        ["predict", str(model_file), str(source), "--fs", "125", "--out", str(out), "--quiet"]
    )
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"ecg2abp: error: {source}: ")
    assert re.search(message, line), line
    assert not out.exists()
