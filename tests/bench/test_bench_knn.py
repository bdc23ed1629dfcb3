"""The knn benchmark command prints one JSON line with its sizes, speeds and recall."""

import json

from ecg2abp.cli import main


def test_bench_knn_prints_one_json_line(capsys):
    command = ["bench", "knn", "--train", "3000", "--queries", "40", "--threads", "1"]
    assert main([*command, "--fraction", "0.05", "--index", "ivf"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["train_windows"] >= 3000 and (result["queries"], result["threads"]) == (40, 1)
    assert (result["index"], result["nprobe"]) == ("ivf", 16) and result["cells"] > 1
    assert result["queries_per_s"] > 0 and result["exact_gflop_per_s"] > 0
    assert result["test_windows"] == 1000 and result["projected_test_s"] >= 0
    assert 0 <= result["recall_at_1"] <= 1 and 0 <= result["own_record_share"] <= 1
