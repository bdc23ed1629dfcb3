"""external: a record that cleaning empties is an error naming the counts, not an empty score."""

from pathlib import Path

import numpy as np
import wfdb
from real_record import REAL_RECORD

from ecg2abp.cli import main
from ecg2abp.data.readers import iter_records

FS = 125.0


def damped_record(folder: Path) -> Path:
    """A WFDB record of real ECG (lead II) whose ABP is a damped line from −20 to 63 mmHg."""
    ecg = next(iter_records(REAL_RECORD)).ecg[: 30 * int(FS)]
    abp = np.linspace(-20.0, 63.0, len(ecg))
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        "damped",
        fs=FS,
        units=["mV", "mmHg"],
        sig_name=["II", "ABP"],
        p_signal=np.column_stack([ecg, abp]),
        fmt=["16", "16"],
        adc_gain=[1000.0, 10.0],
        baseline=[0, 0],
        write_dir=str(folder),
    )
    return folder / "damped.hea"


def test_external_on_a_record_cleaning_empties_exits_nonzero_with_the_counts(
    model_file, tmp_path, capsys
):
    header = damped_record(tmp_path / "wfdb")
    out = tmp_path / "ext"
    assert main(["external", str(model_file), "--input", str(header), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"ecg2abp: error: {header}: cleaning left nothing to score")
    assert "3,750 samples read from 1 record(s)" in line
    assert "abp_range" in line
    assert not (out / "metrics.json").exists()
