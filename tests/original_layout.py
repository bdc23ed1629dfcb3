"""The original MSCA-CSSC-UNet's module names, rebuilt from its architecture (reference §2) to
test the checkpoint import: same state-dict names, shapes and order as the original's (see
fixtures/original_state_dict_shapes.json), written here from the description, not its code."""

import math

import torch
import torch.nn.functional as F
from torch import nn

WIDTHS = (128, 256, 512, 1024, 2048)
HEADS = (4, 4, 2, 1)  # attention heads by level


class Block(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm1d(out_channels),
            nn.ReLU(),
            nn.Conv1d(out_channels, out_channels, 3, padding=1),
            nn.BatchNorm1d(out_channels),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Table(nn.Module):
    """Fixed sinusoids [1, positions, d], float32: sine in even columns, cosine in odd."""

    def __init__(self, d: int, positions: int) -> None:
        super().__init__()
        position = torch.arange(positions, dtype=torch.float32)[:, None]
        frequency = torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d))
        table = torch.zeros(positions, d)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency)[:, : d // 2]
        self.register_buffer("pe", table[None])


class Attend(nn.Module):
    """Channels as tokens: query = a skip, key/value = U, both with the table added."""

    def __init__(self, d: int, positions: int, heads: int) -> None:
        super().__init__()
        self.pe = Table(d, positions)
        self.MHA = nn.MultiheadAttention(d, heads, batch_first=True)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        query = query + self.pe.pe[:, : query.shape[1]]
        context = context + self.pe.pe[:, : context.shape[1]]
        return self.MHA(query, context, context)[0]


class AttendMany(nn.Module):
    def __init__(self, n: int, d: int, positions: int, heads: int) -> None:
        super().__init__()
        self.models = nn.ModuleList(Attend(d, positions, heads) for _ in range(n))

    def forward(self, skips: list[torch.Tensor], context: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(s, context) for m, s in zip(self.models, skips, strict=True)], 1)


class Resize(nn.Module):
    """1×1 conv to the target width, linear resize by a fixed factor, conv k3."""

    def __init__(self, in_channels: int, out_channels: int, factor: float) -> None:
        super().__init__()
        self.channel_reduce = nn.Conv1d(in_channels, out_channels, 1)
        self.refine = nn.Conv1d(out_channels, out_channels, 3, padding=1)
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(
            self.channel_reduce(x), scale_factor=self.factor, mode="linear", align_corners=False
        )
        return self.refine(x)


def resize_names(level: int, column: int) -> list[str]:
    if column == 2:
        return [f"x{level}_{column}_up"]
    return [f"x{level}_{column}_up_{n}" for n in range(column - 1)]


class OriginalLayout(nn.Module):
    """Four deep-supervision heads on X(0,1..4), as the original with deep_supervision=True."""

    def __init__(self, width: float = 1.0, window: int = 88) -> None:
        super().__init__()
        w = [max(1, round(c * width)) for c in WIDTHS]
        self.lengths = [window // 2**level for level in range(5)]
        for level in range(5):
            setattr(self, f"conv{level}_0", Block(1 if level == 0 else w[level - 1], w[level]))
        for column in range(1, 5):
            for level in range(5 - column):
                sources = [(level + k, column - k) for k in range(column, 1, -1)]
                for name, (source, _) in zip(resize_names(level, column), sources, strict=True):
                    factor = self.lengths[level] / self.lengths[source]
                    setattr(self, name, Resize(w[source], w[level], factor))
                width_in = column * w[level] + w[level + 1] + len(sources) * w[level]
                setattr(self, f"conv{level}_{column}", Block(width_in, w[level]))
        positions = 2 * w[-1]
        for diagonal in range(1, 5):
            for level in range(diagonal - 1, -1, -1):
                column = diagonal - level
                d, heads = self.lengths[level], HEADS[level]
                block = (
                    Attend(d, positions, heads)
                    if column == 1
                    else AttendMany(column, d, positions, heads)
                )
                setattr(self, f"attblock{level}_{column}", block)
        for n in range(1, 5):
            setattr(self, f"final{n}", nn.Conv1d(w[0], 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = {(0, 0): self.conv0_0(x)}
        for level in range(1, 5):
            out[level, 0] = getattr(self, f"conv{level}_0")(F.max_pool1d(out[level - 1, 0], 2))
        for column in range(1, 5):
            for level in range(5 - column):
                up = F.interpolate(
                    out[level + 1, column - 1],
                    size=self.lengths[level],
                    mode="linear",
                    align_corners=True,
                )
                attend = getattr(self, f"attblock{level}_{column}")
                skips = [out[level, k] for k in range(column)]
                parts = [attend(skips[0], up) if column == 1 else attend(skips, up), up]
                sources = [(level + k, column - k) for k in range(column, 1, -1)]
                for name, source in zip(resize_names(level, column), sources, strict=True):
                    parts.append(getattr(self, name)(out[source]))
                out[level, column] = getattr(self, f"conv{level}_{column}")(torch.cat(parts, 1))
        return [getattr(self, f"final{n}")(out[0, n])[:, 0, -1] for n in range(1, 5)]
