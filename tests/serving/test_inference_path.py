"""Serving (and evaluation, through the same Predictor) predicts with the inference forward."""

import numpy as np
import pytest
import torch

from ecg2abp.bench.serving import untrained_model_file
from ecg2abp.models.inference import InferenceUNet
from ecg2abp.serving.ensemble import load_model

FP32_TOLERANCE = 1e-4  # max |served − model| / max |model − train mean|, in mmHg
BF16_TOLERANCE = 5e-2  # the same as a norm ratio, as the model benchmark judges bf16


@pytest.mark.parametrize(("precision", "explicit"), [("fp32", False), ("bf16", True)])
def test_served_predictions_are_the_models_within_tolerance(tmp_path, precision, explicit):
    model = load_model(untrained_model_file(tmp_path, 1 / 16, precision))
    member = model.members[0]
    assert isinstance(member.inference, InferenceUNet)
    assert all(a.explicit == explicit for a in member.inference.attention.values())
    windows = np.random.default_rng(0).standard_normal((300, 88)).astype(np.float32)
    served, _ = model.predict("r", windows, batch_size=128)
    with torch.inference_mode():
        own = member.model(torch.from_numpy(windows)[:, None]).double().numpy()
    expected = own * member.stats.abp_scale + member.stats.abp_center
    error, scale = served - expected, expected - member.stats.abp_center
    if precision == "fp32":
        assert np.abs(error).max() / np.abs(scale).max() <= FP32_TOLERANCE
    else:
        assert np.linalg.norm(error) / np.linalg.norm(scale) < BF16_TOLERANCE
