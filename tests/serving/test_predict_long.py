"""predict on a long-ish recording: small chunks give what one pass over the whole record gives."""

import numpy as np
import pandas as pd
import pytest

from ecg2abp.data.synth import synth_record, write_wfdb_lead
from ecg2abp.evaluation.metrics import find_beats
from ecg2abp.serving.predict import predict_file

pytestmark = pytest.mark.slow
SOURCE_FS = 360.0
SECONDS = 150


@pytest.fixture(scope="module")
def long_record(tmp_path_factory):
    """150 s of synthetic lead II at 360 Hz with a gap, a flat stretch and a saturated spike."""
    ecg = synth_record(np.random.default_rng(3), int(SECONDS * SOURCE_FS), SOURCE_FS)[0]
    ecg[9000:9400] = np.nan
    ecg[30000:31500] = ecg[30000]
    ecg[40000:40030] = ecg.max() + 0.5
    return write_wfdb_lead(tmp_path_factory.mktemp("long"), "long", ecg, SOURCE_FS)


@pytest.mark.parametrize("variant", ["tiny_resnet", "linear"])  # linear's ABP has beats
def test_small_chunks_equal_one_pass_over_the_whole_record(trained, variant, long_record, tmp_path):
    model_file = trained / variant / "fold_0" / "model.pt"
    runs = {}
    for name, chunk in (("small", 700), ("whole", 1 << 30)):
        out, beats = tmp_path / f"{name}.parquet", tmp_path / f"{name}_beats.parquet"
        summary = predict_file(model_file, long_record, out, beats=beats, chunk=chunk)
        runs[name] = summary, pd.read_parquet(out), pd.read_parquet(beats)
    (summary, rows, beats), (whole_summary, whole_rows, whole_beats) = runs["small"], runs["whole"]
    assert {**summary, "out": None} == {**whole_summary, "out": None}
    assert summary["samples"] == SECONDS * 125 and summary["flagged"]["nonfinite"] > 0
    np.testing.assert_array_equal(rows["sample"], whole_rows["sample"])
    np.testing.assert_array_equal(rows["flag"], whole_rows["flag"])
    np.testing.assert_allclose(rows["abp_pred"], whole_rows["abp_pred"], rtol=1e-5)
    np.testing.assert_array_equal(beats["sample"], whole_beats["sample"])
    for level in ("sbp", "dbp", "map"):
        np.testing.assert_allclose(beats[level], whole_beats[level], rtol=1e-5)
    # the beats are find_beats' on each predicted stretch of the whole prediction
    abp = whole_rows["abp_pred"].to_numpy(np.float64)
    index = np.rint(whole_rows["time"].to_numpy() * 125.0).astype(np.int64)  # at the model's rate
    predicted = np.isfinite(abp)
    edges = np.flatnonzero(np.diff(predicted)) + 1
    expected = [
        index[start] + find_beats(abp[start:stop], 125.0)[:, 0]
        for start, stop in zip(np.r_[0, edges], np.r_[edges, len(abp)], strict=True)
        if predicted[start]
    ]
    starts = np.floor(np.concatenate(expected) * SOURCE_FS / 125.0 + 1e-9).astype(np.int64)
    np.testing.assert_array_equal(beats["sample"], starts)
    assert len(beats) > 100 or variant != "linear"
