"""Deep baselines: a stacked LSTM, a 1-D residual CNN and a patch transformer encoder."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ecg2abp.errors import InputError
from ecg2abp.models.base import BPModel

RESNET_CHANNELS = (64, 128, 256)  # per stage at width 1.0; every stage after the first halves


def scaled_size(base: int, width: float, *, minimum: int, multiple: int = 1) -> int:
    """`base × width` rounded to a multiple of `multiple`, but at least `minimum` (rounded up)."""
    return multiple * max(math.ceil(minimum / multiple), round(base * width / multiple))


def check_window_and_width(model: str, window: int, width: float) -> None:
    """Refuse a window that is not a positive integer or a width that is not a positive number."""
    check_integer(model, "window", window)
    if not isinstance(width, int | float) or not math.isfinite(width) or width <= 0:
        raise InputError(f"model {model}: width must be a positive number, got {width!r}")


def check_integer(model: str, name: str, value: int, minimum: int = 1) -> None:
    """Refuse an integer setting below `minimum` (or not an integer)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"model {model}: {name} must be an integer ≥ {minimum}, got {value!r}")


def check_dropout(model: str, dropout: float) -> None:
    """Refuse a dropout probability outside [0, 1)."""
    if not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise InputError(f"model {model}: dropout must be in [0, 1), got {dropout!r}")


class LSTMRegressor(BPModel):
    """Stacked LSTM over the window's samples; a linear head reads the last time step."""

    def __init__(self, hidden: int, num_layers: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(
            input_size=1,
            hidden_size=hidden,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sequence, _ = self.lstm(x.transpose(1, 2))  # [B, W, hidden]
        return self.head(sequence[:, -1]).squeeze(-1)


def build_lstm(
    *, window: int = 88, width: float = 1.0, num_layers: int = 2, dropout: float = 0.1
) -> LSTMRegressor:
    """LSTM with `num_layers` layers of round(128 × width) (at least 8) hidden units."""
    check_window_and_width("lstm", window, width)
    check_integer("lstm", "num_layers", num_layers)
    check_dropout("lstm", dropout)
    return LSTMRegressor(scaled_size(128, width, minimum=8), num_layers, dropout)


class ResidualBlock(nn.Module):
    """Two same-padded convolutions with batch norm; a projected shortcut when shapes change."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        padding = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv1d(in_channels, out_channels, kernel_size, stride, padding, bias=False),
            nn.BatchNorm1d(out_channels),
            nn.ReLU(),
            nn.Conv1d(out_channels, out_channels, kernel_size, 1, padding, bias=False),
            nn.BatchNorm1d(out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv1d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm1d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ResNet1d(BPModel):
    """Conv stem, residual stages (each after the first halves the length), linear head."""

    def __init__(
        self,
        window: int,
        channels: tuple[int, ...],
        blocks_per_stage: int,
        kernel_size: int,
        dropout: float,
    ):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv1d(1, channels[0], kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm1d(channels[0]),
            nn.ReLU(),
        )
        blocks = []
        in_channels = channels[0]
        for stage, out_channels in enumerate(channels):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(ResidualBlock(in_channels, out_channels, kernel_size, stride))
                in_channels = out_channels
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(channels[-1] * resnet_output_length(window, len(channels)), 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x))).squeeze(-1)


def resnet_output_length(window: int, n_stages: int) -> int:
    """Length after the stages: each stride-2, same-padded stage after the first halves it, ceil."""
    length = window
    for _ in range(n_stages - 1):
        length = math.ceil(length / 2)
    return length


def build_resnet1d(
    *,
    window: int = 88,
    width: float = 1.0,
    blocks_per_stage: int = 2,
    kernel_size: int = 7,
    dropout: float = 0.0,
) -> ResNet1d:
    """ResNet with stages of 64, 128, 256 channels × width (at least 8 each)."""
    check_window_and_width("resnet1d", window, width)
    check_integer("resnet1d", "blocks_per_stage", blocks_per_stage)
    check_integer("resnet1d", "kernel_size", kernel_size)
    check_dropout("resnet1d", dropout)
    if kernel_size % 2 == 0:
        raise InputError(f"model resnet1d: kernel_size must be odd, got {kernel_size}")
    shortest = 2 ** (len(RESNET_CHANNELS) - 1) + 1  # batch norm needs ≥ 2 positions at B = 1
    if window < shortest:
        raise InputError(f"model resnet1d: window {window} is too short (needs ≥ {shortest})")
    channels = tuple(scaled_size(c, width, minimum=8) for c in RESNET_CHANNELS)
    return ResNet1d(window, channels, blocks_per_stage, kernel_size, dropout)


class PatchTransformer(BPModel):
    """Pre-norm transformer encoder over non-overlapping patches; the last patch's token is read.

    A window that is not a whole number of patches is padded at its start by repeating its first
    sample, so the last patch always ends on the window's last sample.
    """

    def __init__(
        self,
        window: int,
        patch_size: int,
        d_model: int,
        num_layers: int,
        n_attention_heads: int,
        dropout: float,
    ):
        super().__init__()
        self.patch_size = patch_size
        n_patches = math.ceil(window / patch_size)
        self.padding = n_patches * patch_size - window
        self.embed = nn.Linear(patch_size, d_model)
        self.position = nn.Parameter(0.02 * torch.randn(1, n_patches, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model,
            n_attention_heads,
            dim_feedforward=4 * d_model,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )
        self.head = nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding:
            x = F.pad(x, (self.padding, 0), mode="replicate")
        patches = x.reshape(x.shape[0], -1, self.patch_size)  # [B, n_patches, patch_size]
        tokens = self.encoder(self.embed(patches) + self.position)
        return self.head(tokens[:, -1]).squeeze(-1)


def build_transformer(
    *,
    window: int = 88,
    width: float = 1.0,
    num_layers: int = 4,
    n_attention_heads: int = 4,
    patch_size: int = 8,
    dropout: float = 0.1,
) -> PatchTransformer:
    """Transformer of d_model round(128 × width) (a multiple of the head count, ≥ 4 per head)."""
    check_window_and_width("transformer", window, width)
    check_integer("transformer", "num_layers", num_layers)
    check_integer("transformer", "n_attention_heads", n_attention_heads)
    check_integer("transformer", "patch_size", patch_size)
    check_dropout("transformer", dropout)
    if patch_size > window:
        raise InputError(
            f"model transformer: patch_size {patch_size} is longer than the window {window}"
        )
    d_model = scaled_size(128, width, minimum=4 * n_attention_heads, multiple=n_attention_heads)
    return PatchTransformer(window, patch_size, d_model, num_layers, n_attention_heads, dropout)
