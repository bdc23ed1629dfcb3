"""The chunked causal pipeline: chunks = whole record, flagged stretches never predicted."""

import numpy as np
import pytest
from real_record import REAL_RECORD

from ecg2abp.data.cleaning import REASONS, CleaningSettings, ecg_extremes, label_samples
from ecg2abp.data.synth import synth_record
from ecg2abp.serving.ensemble import load_model
from ecg2abp.serving.inputs import read_inputs
from ecg2abp.serving.pipeline import FILLING, FLAGS, PREDICTED, CausalPipeline, EcgFlags, Rows

pytestmark = pytest.mark.slow
FS = 125.0


def run(model, ecg: np.ndarray, sizes: list[int] | None, extremes=None) -> Rows:
    pipeline = CausalPipeline(model, "r", extremes=extremes, batch_size=512)
    parts, first = [], 0
    for size in sizes or [len(ecg)]:
        parts.append(pipeline.push(ecg[first : first + size]))
        first += size
    parts.append(pipeline.push(ecg[first:]))
    parts.append(pipeline.finish())
    return Rows.concat(parts)


@pytest.fixture(scope="module")
def real_ecg() -> np.ndarray:
    return next(iter(read_inputs(REAL_RECORD, fs=FS, min_source_fs=80.0))).ecg()[: 40 * 125]


def with_artefacts(ecg: np.ndarray) -> np.ndarray:
    broken = ecg.copy()
    broken[1000:1100] = np.nan  # non-finite
    broken[2000:2400] = broken[2000]  # flat for 3.2 s
    broken[3500:3520] = np.nanmax(ecg) + 1.0  # saturated: pinned at the new maximum
    return broken


def test_chunked_equals_whole_record_pass(model_file, real_ecg):
    model = load_model(model_file)
    ecg = with_artefacts(real_ecg)
    extremes = ecg_extremes(ecg)
    whole = run(model, ecg, None, extremes)
    chunked = run(model, ecg, [1, 7, 300, 87, *[100] * 45, 1], extremes)
    np.testing.assert_array_equal(chunked.sample, whole.sample)
    np.testing.assert_array_equal(chunked.flag, whole.flag)
    predicted = whole.flag == PREDICTED
    np.testing.assert_allclose(chunked.abp[predicted], whole.abp[predicted], rtol=1e-5)
    assert np.isnan(chunked.abp[~predicted]).all()
    # one row per sample from the first full window on
    np.testing.assert_array_equal(whole.sample, np.arange(model.window - 1, len(ecg)))


def test_unusable_ecg_is_flagged_with_the_cleaning_reason_never_predicted(model_file, real_ecg):
    model = load_model(model_file)
    ecg = with_artefacts(real_ecg)
    rows = run(model, ecg, [500] * 9, ecg_extremes(ecg))
    flag = np.full(len(ecg), -1)
    flag[rows.sample] = rows.flag
    names = np.array(FLAGS)
    assert set(names[flag[1000:1100]]) == {"nonfinite"}
    assert set(names[flag[2000:2400]]) == {"ecg_flat"}
    assert set(names[flag[3500:3520]]) == {"ecg_saturated"}
    # the same samples the cleaning rules give an ECG reason, next to a clean ABP
    abp = synth_record(np.random.default_rng(3), len(ecg))[1]
    labels = label_samples(ecg, abp, FS, model.cleaning)
    ecg_reasons = [REASONS.index(r) for r in ("nonfinite", "ecg_saturated", "ecg_flat")]
    judged = labels != REASONS.index("short_segment")
    unusable = (flag != PREDICTED) & (flag != FILLING) & (flag >= 0)
    end = model.window - 1
    np.testing.assert_array_equal(
        unusable[end:][judged[end:]], np.isin(labels, ecg_reasons)[end:][judged[end:]]
    )
    # after each unusable stretch a new window has to fill before anything is predicted again
    after = np.flatnonzero(np.diff(unusable.astype(int)) == -1) + 1
    for start in after:
        assert (flag[start : start + model.window - 1] == FILLING).all()
        assert flag[start + model.window - 1] == PREDICTED
    assert np.isnan(rows.abp[rows.flag != PREDICTED]).all()
    assert np.isfinite(rows.abp[rows.flag == PREDICTED]).all()


def test_flags_become_final_after_a_fixed_lookahead():
    settings = CleaningSettings()
    flags = EcgFlags(FS, settings, extremes=(1.0, -1.0))
    raw, labels = flags.push(np.zeros(flags.lookahead + 10))
    assert len(raw) == len(labels) == 10
    raw, labels = flags.push(np.zeros(0), final=True)
    assert len(labels) == flags.lookahead
