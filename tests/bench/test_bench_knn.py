"""The knn benchmark command prints one JSON line with its sizes and speeds."""

import json

from ecg2abp.cli import main


def test_bench_knn_prints_one_json_line(capsys):
    assert main(["bench", "knn", "--train", "300", "--queries", "40", "--threads", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["train_windows"], result["queries"], result["threads"]) == (300, 40, 1)
    assert result["queries_per_s"] > 0 and result["gflop_per_s"] > 0
