"""The shard-check benchmark prints one JSON line: the signals it hashed and how fast."""

import json

import h5py
import numpy as np
from shard_factory import random_record, write_test_shard

from ecg2abp.cli import main


def test_bench_verify_hashes_every_signal_of_a_shard_and_refuses_an_edited_one(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "part_1.h5"
    write_test_shard(path, {"part_1/0000": random_record(rng, [400, 300])}, window=8)
    assert main(["bench", "verify", "--shard", str(path), "--repeats", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["shard"], result["samples"]) == (str(path), 700)
    assert result["megabytes"] == round(3 * 4 * 700 / 1e6, 1) and result["mb_per_s"] > 0
    assert main(["bench", "verify", "--samples", "100000", "--repeats", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] <= 100_000
    with h5py.File(path, "a") as h5:
        h5["ecg"][5] += 1.0
    assert main(["bench", "verify", "--shard", str(path), "--repeats", "1"]) == 2
    assert "its data differ from its fingerprint" in capsys.readouterr().err
