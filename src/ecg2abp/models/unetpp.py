"""MSCA-CSSC-UNet (reference §2) and its ablations, built from one parametrised 1-D UNet++.

Node X(i,j): level i (0 = full length), column j (0 = encoder). A decoder node concatenates,
in this order: one map per dense skip X(i,0..j-1) (passed through its own cross-attention block
when MSCA is on, as-is otherwise), U = Up(X(i+1,j-1)), and, when CSSC is on, one upsampled map
per node X(i+k,j-k), k = j..2, of the same anti-diagonal. The plain UNet keeps only the
anti-diagonal decoder path (one skip per node, from the encoder) and one output head.
"""

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ecg2abp.errors import InputError
from ecg2abp.models.base import BPModel

PAPER_WIDTHS = (128, 256, 512, 1024, 2048)
PAPER_HEADS = (4, 4, 2, 1)
AttentionMode = Literal["fused", "reference"]
ATTENTION_MODES = ("fused", "reference")
AttentionPrecision = Literal["autocast", "float32"]
ATTENTION_PRECISIONS = ("autocast", "float32")
HEAD_DIM_MULTIPLE = 8


def node_name(level: int, column: int) -> str:
    return f"x{level}_{column}"


@dataclass(frozen=True)
class NodePlan:
    """What one decoder node X(level, column) reads."""

    level: int
    column: int
    skips: tuple[str, ...]  # dense skips X(level, 0..column-1) that exist, in order
    up_source: str  # X(level+1, column-1), upsampled to this level's length
    cross_scale_sources: tuple[tuple[int, int], ...]  # (level+k, column-k), k = column..2

    @property
    def name(self) -> str:
        return node_name(self.level, self.column)


def decoder_plan(depth: int, *, dense: bool, cross_scale: bool) -> list[NodePlan]:
    """Decoder nodes in an order where every input is computed first (by column)."""
    exists = {(i, 0) for i in range(depth)}
    plans = []
    for column in range(1, depth):
        for level in range(depth - column):
            if dense or level + column == depth - 1:
                exists.add((level, column))
    for column in range(1, depth):
        for level in range(depth - column):
            if (level, column) not in exists:
                continue
            skips = tuple(node_name(level, j) for j in range(column) if (level, j) in exists)
            sources = (
                tuple((level + k, column - k) for k in range(column, 1, -1)) if cross_scale else ()
            )
            plans.append(NodePlan(level, column, skips, node_name(level + 1, column - 1), sources))
    return plans


def level_lengths(window: int, depth: int) -> tuple[int, ...]:
    """Lengths after each max-pool of 2 (floor)."""
    return tuple(window // 2**level for level in range(depth))


def scaled_widths(width: float) -> tuple[int, ...]:
    """The paper's channel widths times `width`, rounded, at least 1."""
    return tuple(max(1, round(channels * width)) for channels in PAPER_WIDTHS)


def sinusoid_table(positions: int, d_model: int) -> torch.Tensor:
    """Sinusoidal table [positions, d_model]: sine in even columns, cosine in odd (any d_model).

    Computed in float32 as the original computes it, so imported weights meet the very table
    they were trained with (a float64 table differs by up to 1e-4 at position 2,047).
    """
    position = torch.arange(positions, dtype=torch.float32)[:, None]
    frequency = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
    )
    angle = position * frequency
    table = torch.zeros(positions, d_model)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return table


class ConvBlock(nn.Sequential):
    """(Conv1d k3 p1 → BatchNorm → ReLU) twice."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv1d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm1d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv1d(out_channels, out_channels, 3, padding=1),
            nn.BatchNorm1d(out_channels),
            nn.ReLU(inplace=True),
        )


def padded_projection(
    weight: torch.Tensor, bias: torch.Tensor, head_dim: int, padded: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Projection rows (grouped by head) with each head zero-padded from head_dim to `padded`."""
    extra = padded - head_dim
    if extra == 0:
        return weight, bias
    weight = F.pad(weight.view(-1, head_dim, weight.shape[1]), (0, 0, 0, extra))
    return weight.flatten(0, 1), F.pad(bias.view(-1, head_dim), (0, extra)).flatten()


def fused_cross_attention(
    attention: nn.MultiheadAttention, query: torch.Tensor, context: torch.Tensor
) -> torch.Tensor:
    """`attention(query, context, context)` without weights, batch-first throughout.

    Same parameters and result as nn.MultiheadAttention with need_weights=False, minus its
    sequence-first transposes and copies: one fused scaled-dot-product kernel per call. Heads
    are zero-padded to a multiple of HEAD_DIM_MULTIPLE (zeros add nothing to q·k, and padded
    value columns are dropped), which the CPU kernel runs far faster than head sizes like 11.
    """
    batch, query_tokens, embed = query.shape
    context_tokens = context.shape[1]
    heads = attention.num_heads
    head_dim = embed // heads
    padded = -(-head_dim // HEAD_DIM_MULTIPLE) * HEAD_DIM_MULTIPLE
    weight, bias = attention.in_proj_weight, attention.in_proj_bias
    q_weight, q_bias = padded_projection(weight[:embed], bias[:embed], head_dim, padded)
    kv_weight, kv_bias = padded_projection(weight[embed:], bias[embed:], head_dim, padded)
    q = F.linear(query, q_weight, q_bias).view(batch, query_tokens, heads, padded)
    kv = F.linear(context, kv_weight, kv_bias).view(batch, context_tokens, 2, heads, padded)
    k, v = kv.permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k, v, scale=head_dim**-0.5)
    out = out[..., :head_dim].transpose(1, 2).reshape(batch, query_tokens, embed)
    return attention.out_proj(out)


class ChannelCrossAttention(nn.Module):
    """MSCA block: channels are tokens, time is the embedding; query = skip, key/value = U.

    The reference adds rows 0..C-1 of a 4,096-position sinusoidal table; each row depends only on
    its position, so only the rows the block indexes are stored (identical values).
    """

    def __init__(self, length: int, heads: int, channels: int):
        super().__init__()
        self.attention = nn.MultiheadAttention(length, heads, batch_first=True)
        table = sinusoid_table(channels, length)
        self.register_buffer("position_table", table, persistent=False)
        self.need_weights = False
        self.float32_under_autocast = False

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        device = query.device.type
        if self.float32_under_autocast and torch.is_autocast_enabled(device):
            with torch.autocast(device, enabled=False):
                return self.attend(query.float(), context.float())
        return self.attend(query, context)

    def attend(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Add the table in the inputs' dtype (bf16 under autocast: no fp32 round trip)."""
        query = query + self.position_table[: query.shape[1]].to(query.dtype)
        context = context + self.position_table[: context.shape[1]].to(context.dtype)
        if self.need_weights:
            return self.attention(query, context, context, need_weights=True)[0]
        return fused_cross_attention(self.attention, query, context)


class CrossScaleSkip(nn.Module):
    """CSSC: 1×1 conv to the target width → linear resize to the target length → conv k3."""

    def __init__(self, in_channels: int, out_channels: int, length: int):
        super().__init__()
        self.reduce = nn.Conv1d(in_channels, out_channels, 1)
        self.refine = nn.Conv1d(out_channels, out_channels, 3, padding=1)
        self.length = length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.reduce(x), size=self.length, mode="linear", align_corners=False)
        return self.refine(x)


class UNetPlusPlus(BPModel):
    """1-D UNet++ with optional MSCA and CSSC blocks, or the plain UNet (dense=False)."""

    def __init__(
        self,
        *,
        window: int,
        width: float,
        msca: bool,
        cssc: bool,
        dense: bool,
        heads: tuple[int, ...] = PAPER_HEADS,
        attention: AttentionMode = "fused",
        attention_precision: AttentionPrecision = "autocast",
        name: str = "unetpp",
    ):
        super().__init__()
        depth = len(PAPER_WIDTHS)
        self.window = window
        self.widths = check_widths(name, width)
        self.lengths = check_lengths(name, window, depth)
        if msca:
            check_heads(name, window, self.lengths, heads)
        self.plan = decoder_plan(depth, dense=dense, cross_scale=cssc)
        self.pool = nn.MaxPool1d(2)
        self.nodes = nn.ModuleDict()
        for level in range(depth):
            in_channels = 1 if level == 0 else self.widths[level - 1]
            self.nodes[node_name(level, 0)] = ConvBlock(in_channels, self.widths[level])
        self.msca = nn.ModuleDict()
        self.cssc = nn.ModuleDict()
        for node in self.plan:
            self.nodes[node.name] = ConvBlock(self.input_width(node), self.widths[node.level])
            if msca:
                self.msca[node.name] = nn.ModuleList(
                    ChannelCrossAttention(
                        self.lengths[node.level],
                        heads[node.level],
                        max(self.widths[node.level], self.widths[node.level + 1]),
                    )
                    for _ in node.skips
                )
            if cssc:
                self.cssc[node.name] = nn.ModuleList(
                    CrossScaleSkip(
                        self.widths[source_level],
                        self.widths[node.level],
                        self.lengths[node.level],
                    )
                    for source_level, _ in node.cross_scale_sources
                )
        self.head_nodes = [node.name for node in self.plan if node.level == 0]
        self.heads = nn.ModuleDict(
            {name: nn.Conv1d(self.widths[0], 1, 1) for name in self.head_nodes}
        )
        self.n_heads = len(self.head_nodes)
        self.set_attention(attention)
        self.set_attention_precision(attention_precision)

    def input_width(self, node: NodePlan) -> int:
        """Channels a decoder node's ConvBlock reads."""
        own = self.widths[node.level]
        return (
            len(node.skips) * own
            + self.widths[node.level + 1]
            + len(node.cross_scale_sources) * own
        )

    def set_attention(self, mode: AttentionMode) -> None:
        """'fused' (need_weights=False, fast kernel) or 'reference' (weights computed, unfused)."""
        if mode not in ATTENTION_MODES:
            raise InputError(f"attention {mode!r}: unknown mode (known: fused, reference)")
        self.attention_mode = mode
        for module in self.modules():
            if isinstance(module, ChannelCrossAttention):
                module.need_weights = mode == "reference"

    def set_attention_precision(self, precision: AttentionPrecision) -> None:
        """'autocast' (attention follows an enclosing autocast) or 'float32' (always fp32)."""
        if precision not in ATTENTION_PRECISIONS:
            raise InputError(
                f"attention_precision {precision!r}: unknown (known: autocast, float32)"
            )
        self.attention_precision = precision
        for module in self.modules():
            if isinstance(module, ChannelCrossAttention):
                module.float32_under_autocast = precision == "float32"

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[1] != 1 or x.shape[2] != self.window:
            raise InputError(
                f"model input of shape {tuple(x.shape)}: expected [batch, 1, {self.window}]"
            )

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every node's output by name."""
        self.check_input(x)
        out = {node_name(0, 0): self.nodes[node_name(0, 0)](x)}
        for level in range(1, len(self.widths)):
            below = self.pool(out[node_name(level - 1, 0)])
            out[node_name(level, 0)] = self.nodes[node_name(level, 0)](below)
        for node in self.plan:
            out[node.name] = self.decode(node, out)
        return out

    def decode(self, node: NodePlan, out: dict[str, torch.Tensor]) -> torch.Tensor:
        up = F.interpolate(
            out[node.up_source],
            size=self.lengths[node.level],
            mode="linear",
            align_corners=True,
        )
        if node.name in self.msca:
            parts = [
                block(out[skip], up)
                for block, skip in zip(self.msca[node.name], node.skips, strict=True)
            ]
        else:
            parts = [out[skip] for skip in node.skips]
        parts.append(up)
        if node.name in self.cssc:
            parts.extend(
                block(out[node_name(*source)])
                for block, source in zip(
                    self.cssc[node.name], node.cross_scale_sources, strict=True
                )
            )
        return self.nodes[node.name](torch.cat(parts, dim=1))

    def forward_heads(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = self.features(x)
        return [self.heads[name](out[name])[:, 0, -1] for name in self.head_nodes]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.features(x)
        final = self.head_nodes[-1]
        return self.heads[final](out[final])[:, 0, -1]

    @contextmanager
    def attention_as(self, mode: AttentionMode) -> Iterator[None]:
        """Switch the attention mode for the duration of a block."""
        previous = self.attention_mode
        self.set_attention(mode)
        try:
            yield
        finally:
            self.set_attention(previous)


def check_widths(name: str, width: float) -> tuple[int, ...]:
    if not (isinstance(width, int | float) and math.isfinite(width) and width > 0):
        raise InputError(f"model {name}: width {width!r} must be a positive number")
    return scaled_widths(width)


def check_lengths(name: str, window: int, depth: int) -> tuple[int, ...]:
    """Level lengths; the deepest must hold 2 samples so BatchNorm trains at batch 1."""
    minimum = 2 ** (depth - 1) * 2
    if not isinstance(window, int) or window < minimum:
        raise InputError(f"model {name}: window {window!r} must be an integer ≥ {minimum}")
    return level_lengths(window, depth)


def check_heads(name: str, window: int, lengths: tuple[int, ...], heads: tuple[int, ...]) -> None:
    """Every attention level's length must split evenly into its heads."""
    if len(heads) != len(lengths) - 1 or not all(isinstance(h, int) and h > 0 for h in heads):
        raise InputError(
            f"model {name}: heads {heads!r} must be {len(lengths) - 1} positive integers"
        )
    uneven = [
        f"level {level} length {length} into {count} attention heads"
        for level, (length, count) in enumerate(zip(lengths[:-1], heads, strict=True))
        if length % count
    ]
    if uneven:
        raise InputError(
            f"model {name}: window {window} cannot split {'; '.join(uneven)} "
            "(choose a window or heads option where every length divides evenly)"
        )


def build_variant(
    name: str, *, window: int, width: float, msca: bool, cssc: bool, dense: bool, **options: Any
) -> UNetPlusPlus:
    known = {"heads", "attention", "attention_precision"}
    unknown = set(options) - known
    if unknown:
        raise InputError(
            f"model {name}: unknown options {sorted(unknown)} (known: {sorted(known)})"
        )
    if "heads" in options:
        options["heads"] = tuple(options["heads"])
    return UNetPlusPlus(
        window=window, width=width, msca=msca, cssc=cssc, dense=dense, name=name, **options
    )


def build_msca_cssc_unet(*, window: int = 88, width: float = 1.0, **options: Any) -> UNetPlusPlus:
    return build_variant(
        "msca_cssc_unet", window=window, width=width, msca=True, cssc=True, dense=True, **options
    )


def build_unetpp_msca(*, window: int = 88, width: float = 1.0, **options: Any) -> UNetPlusPlus:
    return build_variant(
        "unetpp_msca", window=window, width=width, msca=True, cssc=False, dense=True, **options
    )


def build_unetpp_cssc(*, window: int = 88, width: float = 1.0, **options: Any) -> UNetPlusPlus:
    return build_variant(
        "unetpp_cssc", window=window, width=width, msca=False, cssc=True, dense=True, **options
    )


def build_unetpp(*, window: int = 88, width: float = 1.0, **options: Any) -> UNetPlusPlus:
    return build_variant(
        "unetpp", window=window, width=width, msca=False, cssc=False, dense=True, **options
    )


def build_unet(*, window: int = 88, width: float = 1.0, **options: Any) -> UNetPlusPlus:
    return build_variant(
        "unet", window=window, width=width, msca=False, cssc=False, dense=False, **options
    )
