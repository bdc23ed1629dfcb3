import numpy as np
import torch

from ecg2abp.report.saliency import gradient_x_input, saliency_figure


class LastSampleWeighted(torch.nn.Module):
    """A linear read-out of the window: its gradient is the weights, whatever the input."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.weights = weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.squeeze(1) * self.weights).sum(1)


def test_gradient_times_input_of_a_linear_read_out_is_weight_times_input():
    weights = torch.linspace(0.0, 1.0, 16)
    x = np.random.default_rng(0).normal(size=(5, 16)).astype(np.float32)
    profile = gradient_x_input(LastSampleWeighted(weights), x)
    np.testing.assert_allclose(profile, np.abs(x * weights.numpy()).mean(0), rtol=1e-6)
    assert profile[0] == 0.0 and np.argmax(profile) > 8  # the late samples drive it


def test_the_profile_ends_at_the_predicted_sample():
    figure = saliency_figure("v", np.arange(88.0), 10, fs=125.0)
    (line,) = figure.axes[0].lines
    assert line.get_xdata()[-1] == 0.0 and line.get_xdata()[0] == -87 * 8.0
