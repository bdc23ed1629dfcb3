"""predict --plot: the predicted ABP, and the true ABP beside it when the input carries one."""

import numpy as np
import pytest
from real_record import REAL_RECORD

from ecg2abp.data.readers import iter_records
from ecg2abp.serving.ensemble import load_model
from ecg2abp.serving.inputs import in_memory
from ecg2abp.serving.plot import prediction_figure
from ecg2abp.serving.predict import InputOptions, Sketch, model_inputs, predict_record


def lines_below(figure) -> dict[str, np.ndarray]:
    return {line.get_label(): line.get_ydata() for line in figure.axes[1].lines}


def test_the_true_abp_is_drawn_beside_the_prediction_when_given():
    time = np.arange(250) / 125.0
    ecg, pred, true = np.sin(time), 90 + np.cos(time), 95 + np.cos(time)
    drawn = lines_below(prediction_figure("r", time, ecg, pred, "notice", true))
    assert set(drawn) == {"true ABP", "predicted ABP"}
    np.testing.assert_array_equal(drawn["true ABP"], true)
    np.testing.assert_array_equal(drawn["predicted ABP"], pred)
    alone = lines_below(prediction_figure("r", time, ecg, pred, "notice"))
    assert list(alone) == ["predicted ABP"] and not figure_has_legend(time, ecg, pred)


def figure_has_legend(time, ecg, pred) -> bool:
    return prediction_figure("r", time, ecg, pred, "n").axes[1].get_legend() is not None


@pytest.mark.slow
def test_a_recording_with_abp_plots_its_own_abp_at_the_predicted_samples(model_file):
    model = load_model(model_file)
    record = next(model_inputs(model, REAL_RECORD, InputOptions()))
    sketch = Sketch(record)
    for _, rows in predict_record(model, record):
        sketch.add(rows)
    drawn = lines_below(sketch.figure("notice"))
    expected = next(iter_records(REAL_RECORD)).abp  # the fixture is at the model's 125 Hz
    start = sketch.start
    np.testing.assert_allclose(
        drawn["true ABP"], expected[start : start + len(drawn["predicted ABP"])], rtol=1e-6
    )


@pytest.mark.slow
def test_a_recording_without_abp_plots_the_prediction_alone(model_file):
    model = load_model(model_file)
    ecg = next(iter_records(REAL_RECORD)).ecg[: 12 * 125]
    record = in_memory("ecg_only", 125.0, ecg)
    sketch = Sketch(record)
    for _, rows in predict_record(model, record):
        sketch.add(rows)
    assert list(lines_below(sketch.figure("notice"))) == ["predicted ABP"]
