"""The predict benchmark runs the serving pipeline on an untrained model file it writes itself."""

import json

from ecg2abp.cli import main


def test_bench_predict_counts_every_full_window(capsys):
    seconds = 4.0  # 500 samples at 125 Hz: 500 − 87 full windows
    hours = str(seconds / 3600)
    code = main(["bench", "predict", "--hours", hours, "--full-seconds", "0", "--paths", "fp32"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["path"], result["width"], result["threads"]) == ("fp32", 0.0625, 1)
    assert result["predictions"] == 500 - 87
    assert result["predictions_per_s"] > 0 and result["peak_rss_mb"] > 0
    assert result["predictions_per_cpu_s"] > 0


def test_bench_predict_through_a_wfdb_record_at_another_rate(capsys):
    seconds = 4.0  # written at 360 Hz, predicted at 125 Hz: 500 − 87 full windows
    hours = str(seconds / 3600)
    wfdb = ["--input", "wfdb", "--source-fs", "360", "--paths", "fp32"]
    code = main(["bench", "predict", "--hours", hours, "--full-seconds", "0", *wfdb])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["input"], result["source_fs"], result["predictions"]) == ("wfdb", 360.0, 413)
    assert result["predictions_per_s"] > 0 and result["peak_rss_mb"] > 0
