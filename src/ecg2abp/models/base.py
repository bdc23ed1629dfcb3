"""The interface every deep model shares."""

import torch
from torch import nn


class BPModel(nn.Module):
    """An ECG-window → ABP model: [B, 1, window] in, [B] out (normalised units)."""

    n_heads: int = 1

    def forward_heads(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Deep-supervision predictions, each [B]; the last one is the model's output."""
        return [self.forward(x)]
