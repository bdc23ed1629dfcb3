"""leak_gap end to end: knn scores by near-copies under `paper`, and the copies are gone under
`record` (same shards, same training settings; only the split differs)."""

import pandas as pd
import pytest
from workflow_runner import snakemake

LEAK = """
experiment: leak
synthetic: {parts: 2, records_per_part: 6, min_seconds: 20.0, max_seconds: 30.0, seed: 1}
split: {folds: 2, block_size: 2, paper_fraction: 0.3}
variants: {knn: {model: knn}}
run_variants: [knn]
threads: 1
train: {folds: [0], classical_max_windows: 5000, max_val_windows: 1000}
"""


@pytest.mark.slow
@pytest.mark.extended
def test_knn_beats_naive_by_far_under_paper_and_not_under_record(tmp_path):
    result = snakemake(tmp_path, "leak_gap", config=LEAK)
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_parquet(tmp_path / "results" / "leak" / "leak_gap.parquet")
    point = table[table["level"] == "point"].set_index("variant")
    assert set(point.index) == {"naive", "template", "knn"}
    knn, naive = point.loc["knn"], point.loc["naive"]
    assert knn["mae_paper"] < 0.5 * naive["mae_paper"]  # near-copies: far better than the floor
    assert knn["ratio"] > 2.0  # unseen records: most of that score was the leak
    assert naive["ratio"] < 1.5  # the floor barely moves: the gap is not a harder test set
    summary = (tmp_path / "results" / "leak" / "leak_gap.md").read_text()
    assert "| knn | point |" in summary and "| naive | sbp | – |" in summary
    assert "Density of the `paper` draw" in summary and "training windows per record" in summary
