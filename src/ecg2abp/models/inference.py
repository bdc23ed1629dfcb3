"""Inference forward of a trained UNet++: its final head's prediction with less work per window.

Serving and evaluation only ever run an eval-mode network's final head, so `InferenceUNet`,
built once from a trained `UNetPlusPlus`, does what training cannot:

- each Conv1d → BatchNorm1d pair is one Conv1d, the running statistics folded in;
- every linear resize is a product with its fixed interpolation matrix (under bf16 on the CPU
  the interpolation kernel is several times slower than that product);
- the key/value projections of a node's attention blocks, which all read the same context,
  run as one product, and that product takes the context before its resize: the resize
  matrix and the position table are folded into it (half the inner dimension, no table add);
- under bf16 on the CPU, for contexts of up to EXPLICIT_MAX_TOKENS channels (every node at
  the demo's width 1/16, none at full width), attention is explicit in bf16 (the fused kernel
  is slower than that for heads this small): exp(q kᵀ) times values that carry a column of
  ones, divided by that column's sum (softmax's denominator) — one pass over the scores instead
  of three; each head's q, k and v are copied into head order before the products. Otherwise
  the fused kernel, as `fused_cross_attention` runs it.

It holds the model and derived tensors only: the model keeps its parameters, its state-dict
names and its training behaviour.
"""

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ecg2abp.models.unetpp import (
    HEAD_DIM_MULTIPLE,
    ChannelCrossAttention,
    ConvBlock,
    NodePlan,
    UNetPlusPlus,
    node_name,
    padded_projection,
)

RECEPTIVE = 3  # input samples of a ConvBlock that its last output sample depends on
DENOMINATOR_RANGE = (1e-30, 1e30)  # softmax denominators summed without the max shift
# Explicit attention only for contexts of at most this many tokens (channels): beyond, its
# score tensors outgrow the fused kernel's tiles (full width: 1.75x slower, 6.5 GB at batch 1024).
EXPLICIT_MAX_TOKENS = 128


def fold_batchnorm(conv: nn.Conv1d, norm: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of the one Conv1d that equals `norm(conv(x))` with `norm` in eval mode."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    weight = conv.weight * scale[:, None, None]
    return weight.detach(), ((bias - norm.running_mean) * scale + norm.bias).detach()


def resize_matrix(n_in: int, n_out: int, *, align_corners: bool) -> torch.Tensor:
    """[n_in, n_out] matrix M with x @ M == F.interpolate(x, n_out, mode="linear", ...)."""
    identity = torch.eye(n_in)[None]
    return F.interpolate(identity, size=n_out, mode="linear", align_corners=align_corners)[0]


@dataclass(frozen=True)
class FoldedBlock:
    """A ConvBlock with both BatchNorms folded into their convolutions."""

    weights: tuple[torch.Tensor, torch.Tensor]
    biases: tuple[torch.Tensor, torch.Tensor]

    @staticmethod
    def of(block: ConvBlock) -> "FoldedBlock":
        first = fold_batchnorm(block[0], block[1])
        second = fold_batchnorm(block[3], block[4])
        return FoldedBlock((first[0], second[0]), (first[1], second[1]))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for weight, bias in zip(self.weights, self.biases, strict=True):
            x = F.conv1d(x, weight, bias, padding=1).relu_()
        return x


@dataclass(frozen=True)
class NodeAttention:
    """A decoder node's cross-attention blocks, with one key/value projection for them all.

    Heads are padded to `head_size` for the fused kernel. The query projection carries the
    1/√head_dim scale. The key bias is dropped (it adds the same q·b to every score of a
    query, which softmax ignores) and the value bias moves into the output projection's bias
    (softmax rows sum to 1, so it reaches the output as out_proj.weight @ b): the key/value
    product needs no bias.

    Built for a node whose output is read from sample `first` > 0 on (explicit attention only),
    the output projection's rows first.. are folded into each head's value projection: a head
    then carries `length − first` values per token instead of head_dim, and the heads' products
    are summed (Σᵢ Pᵢ (Vᵢ Wᵢᵀ) == [P₁V₁ … PₕVₕ] Wᵀ): no output projection and far narrower
    values for the last node, whose head reads 3 samples.
    """

    q_weights: list[torch.Tensor]
    q_biases: list[torch.Tensor]
    kv_weight: torch.Tensor  # [blocks · 2 · heads · head_size, source length]: resize folded in
    kv_table: torch.Tensor  # [tokens, blocks · 2 · heads · head_size]: the table's projection
    out_weights: list[torch.Tensor]
    out_biases: list[torch.Tensor]
    table: torch.Tensor  # the blocks' positional rows (the same table for every block)
    heads: int
    head_dim: int
    head_size: int  # head_dim, or head_dim padded for the fused kernel
    explicit: bool  # matmul → softmax → matmul in the inputs' dtype, else the fused kernel
    float32: bool  # run in fp32 even under autocast (attention_precision "float32")
    first: int = 0  # > 0: the output projection's rows first.. are folded into the values
    exact: bool = False  # explicit with softmax itself: no data-dependent branch (traceable)

    @staticmethod
    def of(
        blocks: list[ChannelCrossAttention],
        resize: torch.Tensor,
        tokens: int,
        *,
        explicit: bool,
        float32: bool,
        first: int = 0,
        exact: bool = False,
    ) -> "NodeAttention":
        """`resize`: the [source length, length] matrix that makes the context from its source;
        `tokens`: the context's channels; `first`: the first output sample read (folded into
        the values where attention is explicit)."""
        first = first if explicit else 0
        length, heads = blocks[0].attention.embed_dim, blocks[0].attention.num_heads
        head_dim = length // heads
        size = head_dim if explicit else -(-head_dim // HEAD_DIM_MULTIPLE) * HEAD_DIM_MULTIPLE
        per_head = length - first if first else size  # value columns per head
        scale = head_dim**-0.5
        queries, pairs, outs = [], [], []
        for block in blocks:
            weight, bias = block.attention.in_proj_weight, block.attention.in_proj_bias
            out_proj = block.attention.out_proj
            queries.append(
                padded_projection(weight[:length] * scale, bias[:length] * scale, head_dim, size)
            )
            pair = padded_projection(weight[length:], bias[length:], head_dim, size)[0]
            keys, values = pair[: heads * size], pair[heads * size :]
            if first:  # each head's values times its columns of out_proj's rows first..
                value = weight[2 * length :].view(heads, head_dim, length)
                columns = out_proj.weight[first:].view(length - first, heads, head_dim)
                values = torch.einsum("nhd,hdl->hnl", columns, value).flatten(0, 1)
            if explicit:  # a zero row per head, made a column of ones below
                values = F.pad(values.view(heads, per_head, length), (0, 0, 0, 1)).flatten(0, 1)
            pairs.append(torch.cat([keys, values]))
            outs.append((out_proj.weight, out_proj.bias + out_proj.weight @ bias[2 * length :]))
        kv_weight = torch.cat(pairs)
        # kv(source @ resize + table) == source @ (resize @ kvᵀ) + table @ kvᵀ
        table = blocks[0].position_table[:tokens].to(kv_weight)
        kv_table = table @ kv_weight.T
        if explicit:  # each head's last value column: the softmax denominator's ones
            block_width = pairs[0].shape[0]
            kv_table.view(tokens, len(blocks), block_width)[
                ..., heads * size + per_head :: per_head + 1
            ] = 1.0
        return NodeAttention(
            [w.detach() for w, _ in queries],
            [b.detach() for _, b in queries],
            (kv_weight @ resize.to(kv_weight).T).detach(),
            kv_table.detach(),
            [w.detach() for w, _ in outs],
            [b.detach() for _, b in outs],
            blocks[0].position_table,
            heads,
            head_dim,
            size,
            explicit,
            float32,
            first,
            exact,
        )

    def __call__(
        self, queries: list[torch.Tensor], source: torch.Tensor, first: int = 0
    ) -> list[torch.Tensor]:
        """Each block's `block(query, context)[..., first:]` for its query, in order, where the
        context is `source` resized as `of` was told."""
        device = source.device.type
        in_float32 = self.float32 and torch.is_autocast_enabled(device)
        with torch.autocast(device, enabled=False) if in_float32 else nullcontext():
            if in_float32:
                queries, source = [q.float() for q in queries], source.float()
            if self.first and first != self.first:
                raise ValueError(f"attention built for samples {self.first}.. asked for {first}..")
            kv = F.linear(source, self.kv_weight)
            kv += self.kv_table.to(kv.dtype)
            width = self.heads * self.head_size
            values = self.heads * (self.value_columns + self.explicit)
            out = []
            for index, query in enumerate(queries):
                query = query + self.table[: query.shape[1]].to(query.dtype)
                q = F.linear(query, self.q_weights[index], self.q_biases[index])
                at = index * (width + values)
                k, v = kv[..., at : at + width], kv[..., at + width : at + width + values]
                bias = self.out_biases[index][first:]
                if self.first:
                    out.append(self.attend_folded(q, k, v) + bias.to(q.dtype))
                    continue
                attended = self.attend(q, k, v)
                out.append(F.linear(attended, self.out_weights[index][first:], bias))
            return out

    @property
    def embed(self) -> int:
        return self.heads * self.head_dim

    @property
    def value_columns(self) -> int:
        """Value columns per head, the denominator's column of ones (explicit) not counted."""
        return self.embed - self.first if self.first else self.head_size

    def by_head(self, x: torch.Tensor, columns: int) -> torch.Tensor:
        """[batch, tokens, heads · columns] as a contiguous [batch, heads, tokens, columns].

        Copied here, row by row, rather than left to matmul: its own copy of a transposed view
        writes the transposed layout element by element, several times slower on these shapes.
        """
        return x.unflatten(-1, (self.heads, columns)).transpose(1, 2).contiguous()

    def weighted(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """softmax(q kᵀ) v per head, v's last column being ones ([..., value_columns + 1] in);
        written into `out` (any strides) when given.

        exp(q kᵀ) v carries each row's softmax denominator in its last column: the division
        then falls on the (narrow) result instead of the scores, and the scores need one
        elementwise pass, not softmax's three over rows this short. Without softmax's shift by
        the row maximum, a denominator outside DENOMINATOR_RANGE (exp over- or underflow)
        sends the call back to softmax itself.
        """
        with torch.autocast(q.device.type, enabled=False):
            scores = q @ k.transpose(-1, -2)  # k contiguous: read transposed by the product
            if not self.exact:
                summed = torch.exp(scores) @ v
                low, high = summed[..., -1].aminmax()
                if DENOMINATOR_RANGE[0] <= low and high <= DENOMINATOR_RANGE[1]:
                    return torch.div(summed[..., :-1], summed[..., -1:], out=out)
            exact = torch.softmax(scores, dim=-1) @ v[..., :-1]
            return exact if out is None else out.copy_(exact)

    def attend_folded(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Σ over heads of softmax(q kᵀ) v, v being a head's values already through out_proj."""
        q, k = (self.by_head(t, self.head_size) for t in (q, k))
        return self.weighted(q, k, self.by_head(v, self.value_columns + 1)).sum(1)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """softmax(q kᵀ) v per head ([batch, tokens, heads · head_size] in, unpadded out)."""
        batch, tokens = q.shape[:2]
        if self.explicit:  # written straight into [batch, tokens, heads, head_dim] order
            q, k = (self.by_head(t, self.head_size) for t in (q, k))
            v = self.by_head(v, self.head_dim + 1)
            if self.exact:  # traced: no output allocated from the (dynamic) batch size
                return self.weighted(q, k, v).transpose(1, 2).flatten(2)
            out = q.new_empty(batch, tokens, self.heads, self.head_dim)
            self.weighted(q, k, v, out=out.transpose(1, 2))
            return out.view(batch, tokens, self.embed)
        q, k, v = (t.unflatten(-1, (self.heads, self.head_size)).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0)[..., : self.head_dim]
        return out.transpose(1, 2).reshape(batch, tokens, self.embed)


class InferenceUNet:
    """The final head of an eval-mode UNetPlusPlus, computed as the module docstring says."""

    def __init__(self, model: UNetPlusPlus, precision: str, *, traceable: bool = False) -> None:
        """`precision`: the model file's, "bf16" (run under bf16 autocast) or "fp32";
        `traceable`: explicit attention with softmax itself everywhere (for ONNX export)."""
        if model.training:
            raise ValueError("InferenceUNet folds BatchNorm statistics: the model must be in eval")
        self.model = model
        device = next(model.parameters()).device
        bf16_cpu = precision == "bf16" and device.type == "cpu"
        float32 = model.attention_precision == "float32"
        with torch.no_grad():
            self.blocks = {name: FoldedBlock.of(block) for name, block in model.nodes.items()}
        self.resize: dict[tuple[int, int, bool], torch.Tensor] = {}
        for node in model.plan:
            lengths = [model.lengths[node.level + 1]]
            lengths += [model.lengths[level] for level, _ in node.cross_scale_sources]
            for n_in, align in zip(lengths, [True] + [False] * (len(lengths) - 1), strict=True):
                key = (n_in, model.lengths[node.level], align)
                self.resize[key] = resize_matrix(*key[:2], align_corners=align).to(device)
        # Built in fp32 even where an autocast encloses the build (the folded products).
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            self.attention = {
                node.name: NodeAttention.of(
                    list(model.msca[node.name]),
                    self.resize[(model.lengths[node.level + 1], model.lengths[node.level], True)],
                    model.widths[node.level + 1],
                    explicit=traceable
                    or (bf16_cpu and model.widths[node.level + 1] <= EXPLICIT_MAX_TOKENS),
                    exact=traceable,
                    float32=float32,
                    first=model.lengths[node.level] - RECEPTIVE if node == model.plan[-1] else 0,
                )
                for node in model.plan
                if node.name in model.msca
            }

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        model = self.model
        model.check_input(x)
        out = {node_name(0, 0): self.blocks[node_name(0, 0)](x)}
        for level in range(1, len(model.widths)):
            below = F.max_pool1d(out[node_name(level - 1, 0)], 2)
            out[node_name(level, 0)] = self.blocks[node_name(level, 0)](below)
        *inner, last = model.plan
        for node in inner:
            out[node.name] = self.decode(node, out)
        # The head reads the last sample only, which the last block computes from the last
        # RECEPTIVE samples of its input (two k3 convolutions; zero padding only on the right).
        final = self.decode(last, out, first=model.lengths[last.level] - RECEPTIVE)[..., -1:]
        return model.heads[last.name](final)[:, 0, -1]

    def resized(
        self, x: torch.Tensor, length: int, *, align_corners: bool, first: int = 0
    ) -> torch.Tensor:
        """Samples first.. of x resized to `length` (F.interpolate, mode "linear")."""
        n_in = int(x.shape[-1])  # a tensor, not an int, under the ONNX tracer
        return x @ self.resize[(n_in, length, align_corners)][:, first:]

    def decode(self, node: NodePlan, out: dict[str, torch.Tensor], first: int = 0) -> torch.Tensor:
        """UNetPlusPlus.decode with this class's blocks, fed samples first.. of each input (its
        first two output samples are then wrong unless first is 0)."""
        length = self.model.lengths[node.level]
        if node.name in self.attention:
            skips = [out[skip] for skip in node.skips]
            parts = self.attention[node.name](skips, out[node.up_source], first)
        else:
            parts = [out[skip][..., first:] for skip in node.skips]
        parts.append(self.resized(out[node.up_source], length, align_corners=True, first=first))
        if node.name in self.model.cssc:
            before = max(first - 1, 0)  # the k3 refine needs one sample more on the left
            for block, source in zip(
                self.model.cssc[node.name], node.cross_scale_sources, strict=True
            ):
                reduced = block.reduce(out[node_name(*source)])
                resized = self.resized(reduced, length, align_corners=False, first=before)
                parts.append(block.refine(resized)[..., first - before :])
        return self.blocks[node.name](torch.cat(parts, dim=1))


def inference_forward(
    model: nn.Module, precision: str, *, traceable: bool = False
) -> Callable[[torch.Tensor], Any]:
    """What predicts with an eval-mode deep model: InferenceUNet for a UNet++, else the model."""
    if isinstance(model, UNetPlusPlus):
        return InferenceUNet(model, precision, traceable=traceable)
    return model
