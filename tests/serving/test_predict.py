"""predict: an input with nothing to predict is a one-line error, never 0 rows in silence."""

import re

import numpy as np
import pytest
from real_record import REAL_RECORD
from test_inputs import write_wfdb

from ecg2abp.cli import main
from ecg2abp.data.readers import iter_records
from ecg2abp.serving.predict import predict_file

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


def test_a_mostly_flat_lead_is_named_with_the_records_other_leads(model_file, tmp_path, caplog):
    ecg = next(iter_records(REAL_RECORD)).ecg[:2500]
    mostly_zero = np.where(np.arange(2500) < 2000, 0.0, ecg)
    header = write_wfdb(tmp_path / "w", "rec", {"V": mostly_zero, "MCL1": ecg}, 125.0)
    with caplog.at_level("WARNING", logger="ecg2abp.serving"):
        predict_file(model_file, header, tmp_path / "out.csv")
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert re.fullmatch(
        r"w/rec: lead V is missing, saturated or flat on 8\d % of the record; "
        r"its other ECG leads: MCL1 \(pick one with --lead\)",
        warning,
    )
