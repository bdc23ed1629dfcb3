"""How dense the `paper` draw is, checked against a brute-force count."""

import numpy as np
import pytest
from pipeline_factory import ingest_parts, synthetic_parts, tiny_config, write_split

from ecg2abp.evaluation.leak_gap import beat_lengths, paper_density
from ecg2abp.folds.loading import open_split_shards
from ecg2abp.folds.protocols import windows_path


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paper")
    config = tiny_config({"split": {"protocol": "paper", "paper_fraction": 0.004}})
    shards = ingest_parts(folder, synthetic_parts(folder, records=4), config)
    return write_split(folder, shards, config), shards


def brute_force(split_path, shards) -> tuple[int, int]:
    """(test windows with a same-record training window within one beat, test windows)."""
    _, opened = open_split_shards(split_path, shards)
    drawn = np.load(windows_path(split_path))
    near = 0
    for s, shard in enumerate(opened):
        lengths = beat_lengths(shard)
        lengths = np.where(np.isnan(lengths), np.nanmedian(lengths), lengths)
        train = drawn["fold0_train"][drawn["fold0_train"][:, 0] == s, 1]
        train_record, train_source = shard.locate(train)
        test = drawn["fold0_test"][drawn["fold0_test"][:, 0] == s, 1]
        for record, source in zip(*shard.locate(test), strict=True):
            same = train_record == record
            gaps = np.abs(train_source[same] - source)
            near += bool(len(gaps)) and gaps.min() <= lengths[record]
    return near, len(drawn["fold0_test"])


def test_density_counts_windows_per_record_and_near_copies(paper):
    split_path, shards = paper
    density = paper_density(split_path, shards)
    near, n_test = brute_force(split_path, shards)
    assert density["test_windows"] == n_test > 0
    assert density["test_share_within_one_beat"] == pytest.approx(near / n_test)
    assert 0 < near < n_test  # a 0.4 % draw: some test windows have a near copy, not all
    assert density["train_windows_per_record"] == pytest.approx(
        density["train_windows"] / density["records"]
    )
