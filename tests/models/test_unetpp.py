"""MSCA-CSSC-UNet and its ablations: size, wiring, refusals, learning, attention paths."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ecg2abp.errors import InputError
from ecg2abp.models import build
from ecg2abp.models.base import BPModel
from ecg2abp.models.unetpp import ChannelCrossAttention, sinusoid_table

MODELS = ("msca_cssc_unet", "unetpp_msca", "unetpp_cssc", "unetpp", "unet")
WITH_MSCA = {"msca_cssc_unet", "unetpp_msca"}
WITH_CSSC = {"msca_cssc_unet", "unetpp_cssc"}
DEPTH = 5


def node(level: int, column: int) -> str:
    return f"x{level}_{column}"


def decoder_nodes(model_name: str) -> list[tuple[int, int]]:
    """Decoder nodes per reference §2 (all of UNet++, or the UNet's one anti-diagonal path)."""
    return [
        (level, column)
        for column in range(1, DEPTH)
        for level in range(DEPTH - column)
        if model_name != "unet" or level + column == DEPTH - 1
    ]


def small(model_name: str, width: float = 1 / 16, **options) -> BPModel:
    torch.manual_seed(0)
    return build(model_name, width=width, **options)


@pytest.fixture(scope="module")
def full_model() -> BPModel:
    torch.manual_seed(0)
    return build("msca_cssc_unet")


# --- size at the paper's widths -------------------------------------------------------------


def test_full_width_parameter_count_matches_reference(full_model):
    assert sum(p.numel() for p in full_model.parameters()) == 55_384_492


def test_full_width_forward_flops_match_reference(full_model):
    full_model.eval()
    full_model.set_attention("reference")
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            full_model(torch.randn(1, 1, 88))
    finally:
        full_model.set_attention("fused")
    assert counter.get_total_flops() == pytest.approx(2.39e9, rel=0.005)


def test_full_width_convblock_input_widths(full_model):
    expected = {
        "x0_1": 384, "x0_2": 640, "x0_3": 896, "x0_4": 1152,
        "x1_1": 768, "x1_2": 1280, "x1_3": 1792,
        "x2_1": 1536, "x2_2": 2560,
        "x3_1": 3072,
    }  # fmt: skip
    widths = {name: full_model.nodes[name][0].in_channels for name in expected}
    assert widths == expected
    outputs = {name: block[3].out_channels for name, block in full_model.nodes.items()}
    assert outputs == {
        node(level, column): 128 * 2**level for level, column in decoder_nodes("unetpp")
    } | {node(level, 0): 128 * 2**level for level in range(DEPTH)}


def test_full_width_attention_heads_and_lengths(full_model):
    heads_by_length = {88: 4, 44: 4, 22: 2, 11: 1}
    for level, column in decoder_nodes("msca_cssc_unet"):
        blocks = full_model.msca[node(level, column)]
        assert len(blocks) == column  # one block per dense skip
        for block in blocks:
            length = 88 // 2**level
            assert block.attention.embed_dim == length
            assert block.attention.num_heads == heads_by_length[length]


# --- shapes, batch of one, registry ---------------------------------------------------------


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("width", [1 / 16, 1 / 8])
def test_shapes_at_batch_one_and_more(model_name, width):
    model = small(model_name, width)
    assert isinstance(model, BPModel)
    for batch in (1, 3):
        x = torch.randn(batch, 1, 88)
        model.train()
        heads = model.forward_heads(x)
        assert len(heads) == model.n_heads
        assert all(h.shape == (batch,) for h in heads)
        model.eval()
        with torch.no_grad():
            assert model(x).shape == (batch,)
            assert torch.equal(model(x), model.forward_heads(x)[-1])


def test_head_counts():
    expected = {"msca_cssc_unet": 4, "unetpp_msca": 4, "unetpp_cssc": 4, "unetpp": 4, "unet": 1}
    assert {name: small(name).n_heads for name in MODELS} == expected


def test_widths_scale_and_stay_positive():
    model = small("msca_cssc_unet", width=1 / 16)
    assert [model.nodes[node(level, 0)][3].out_channels for level in range(DEPTH)] == [
        8, 16, 32, 64, 128,
    ]  # fmt: skip
    tiny = small("unetpp", width=1e-4)
    assert all(block[3].out_channels == 1 for block in tiny.nodes.values())


# --- wiring ---------------------------------------------------------------------------------


def record_forward(model: BPModel, x: torch.Tensor) -> dict:
    """Inputs and outputs of every node, MSCA block and CSSC block during one forward."""
    seen: dict = {"node_in": {}, "node_out": {}, "msca": {}, "cssc": {}}

    def record_node(name: str):
        def hook(_module, args, output) -> None:
            seen["node_in"][name] = args[0]
            seen["node_out"][name] = output

        return hook

    def record_call(calls: list):
        def hook(_module, args, output) -> None:
            calls.append((args, output))

        return hook

    hooks = [block.register_forward_hook(record_node(name)) for name, block in model.nodes.items()]
    for group, modules in (("msca", model.msca), ("cssc", model.cssc)):
        for name, blocks in modules.items():
            seen[group][name] = []
            hooks.extend(
                block.register_forward_hook(record_call(seen[group][name])) for block in blocks
            )
    try:
        with torch.no_grad():
            seen["heads"] = model.forward_heads(x)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


@pytest.mark.parametrize("model_name", MODELS)
def test_every_block_reads_the_nodes_the_reference_names(model_name):
    model = small(model_name).eval()
    seen = record_forward(model, torch.randn(2, 1, 88))
    out = seen["node_out"]
    existing = {node(level, 0) for level in range(DEPTH)} | {
        node(*pair) for pair in decoder_nodes(model_name)
    }
    assert set(out) == existing
    for level, column in decoder_nodes(model_name):
        name = node(level, column)
        skips = [node(level, j) for j in range(column) if node(level, j) in existing]
        up = F.interpolate(
            out[node(level + 1, column - 1)], size=88 // 2**level, mode="linear", align_corners=True
        )
        parts = []
        if model_name in WITH_MSCA:
            calls = seen["msca"][name]
            assert len(calls) == len(skips)
            for (args, attended), skip in zip(calls, skips, strict=True):
                query, context = args
                assert query is out[skip]
                assert torch.equal(context, up)
                assert attended.shape == out[skip].shape
                parts.append(attended)
        else:
            parts.extend(out[skip] for skip in skips)
        parts.append(up)
        if model_name in WITH_CSSC:
            sources = [node(level + k, column - k) for k in range(column, 1, -1)]
            calls = seen["cssc"][name]
            assert len(calls) == len(sources)
            for source, (args, _) in zip(sources, calls, strict=True):
                assert args[0] is out[source]
            parts.extend(mapped for _, mapped in calls)
        assert torch.equal(seen["node_in"][name], torch.cat(parts, dim=1))
    for j, (head_name, prediction) in enumerate(zip(model.heads, seen["heads"], strict=True)):
        assert head_name == (node(0, j + 1) if model_name != "unet" else node(0, 4))
        assert torch.equal(prediction, model.heads[head_name](out[head_name])[:, 0, -1])


def test_encoder_nodes_read_the_pooled_level_above():
    model = small("msca_cssc_unet").eval()
    x = torch.randn(2, 1, 88)
    seen = record_forward(model, x)
    assert torch.equal(seen["node_in"]["x0_0"], x)
    for level in range(1, DEPTH):
        pooled = F.max_pool1d(seen["node_out"][node(level - 1, 0)], 2)
        assert torch.equal(seen["node_in"][node(level, 0)], pooled)


def test_cross_scale_skip_upsamples_to_the_target_length():
    model = small("msca_cssc_unet").eval()
    seen = record_forward(model, torch.randn(2, 1, 88))
    for (args, mapped), k in zip(seen["cssc"]["x0_4"], (4, 3, 2), strict=True):
        assert args[0].shape[2] == 88 // 2**k
        assert mapped.shape == (2, 8, 88)


# --- ablations ------------------------------------------------------------------------------


def module_names(model: BPModel) -> set[str]:
    return {name for name, _ in model.named_modules()}


def without(names: set[str], *prefixes: str) -> set[str]:
    return {n for n in names if not n.startswith(prefixes)}


def test_ablations_differ_only_in_the_named_blocks():
    full = module_names(small("msca_cssc_unet"))
    assert any(n.startswith("msca.") for n in full) and any(n.startswith("cssc.") for n in full)
    assert module_names(small("unetpp_msca")) == without(full, "cssc.")
    assert module_names(small("unetpp_cssc")) == without(full, "msca.")
    assert module_names(small("unetpp")) == without(full, "msca.", "cssc.")


def test_removing_msca_keeps_every_other_parameter_shape():
    full = small("msca_cssc_unet").state_dict()
    ablated = small("unetpp_cssc").state_dict()
    assert {k: v.shape for k, v in full.items() if not k.startswith("msca.")} == {
        k: v.shape for k, v in ablated.items()
    }


def test_unet_keeps_one_decoder_path_at_the_same_widths():
    unet = small("unet")
    unetpp = small("unetpp")
    assert set(unet.nodes) == {node(level, 0) for level in range(DEPTH)} | {
        "x3_1", "x2_2", "x1_3", "x0_4",
    }  # fmt: skip
    for name in unet.nodes:
        assert unet.nodes[name][3].out_channels == unetpp.nodes[name][3].out_channels
    # each decoder node reads its encoder skip and U only
    assert [unet.nodes[n][0].in_channels for n in ("x3_1", "x2_2", "x1_3", "x0_4")] == [
        64 + 128, 32 + 64, 16 + 32, 8 + 16,
    ]  # fmt: skip


# --- gradients, windows, options ------------------------------------------------------------


@pytest.mark.parametrize("model_name", MODELS)
def test_gradient_reaches_every_parameter(model_name):
    model = small(model_name).train()
    x, y = torch.randn(4, 1, 88), torch.randn(4)
    sum(F.mse_loss(p, y) for p in model.forward_heads(x)).backward()
    missing = [
        name for name, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)
    ]
    assert missing == []


@pytest.mark.parametrize("model_name", sorted(WITH_MSCA))
def test_window_whose_lengths_do_not_split_into_heads_is_refused(model_name):
    with pytest.raises(InputError) as refused:
        build(model_name, window=90, width=1 / 16)
    message = str(refused.value)
    assert "\n" not in message
    for fact in (
        "window 90",
        "level 0 length 90 into 4",
        "level 1 length 45 into 4 attention heads",
    ):
        assert fact in message


@pytest.mark.parametrize("model_name", sorted(set(MODELS) - WITH_MSCA))
def test_models_without_attention_take_any_window(model_name):
    model = small(model_name, window=90).train()
    assert model(torch.randn(2, 1, 90)).shape == (2,)


def test_other_windows_derive_lengths_and_accept_custom_heads():
    model = build("msca_cssc_unet", window=90, width=1 / 16, heads=(2, 1, 2, 1)).train()
    assert model(torch.randn(1, 1, 90)).shape == (1,)
    lengths = {block.attention.embed_dim: block.attention.num_heads for block in model.modules()
               if isinstance(block, ChannelCrossAttention)}  # fmt: skip
    assert lengths == {90: 2, 45: 1, 22: 2, 11: 1}
    doubled = build("msca_cssc_unet", window=176, width=1 / 16).train()
    assert doubled(torch.randn(2, 1, 176)).shape == (2,)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"window": 16}, "window 16"),
        ({"width": 0}, "width 0"),
        ({"heads": (4, 4, 2)}, "heads"),
        ({"attention": "flash"}, "attention 'flash'"),
        ({"attention_precision": "fp8"}, "attention_precision 'fp8'"),
        ({"dropout": 0.1}, "dropout"),
    ],
)
def test_bad_options_are_refused(options, fragment):
    with pytest.raises(InputError, match=fragment):
        build("msca_cssc_unet", **{"width": 1 / 16, **options})


def test_wrong_input_shape_is_refused():
    model = small("unet")
    with pytest.raises(InputError, match=r"expected \[batch, 1, 88\]"):
        model(torch.randn(2, 1, 87))


# --- positional table and attention paths ---------------------------------------------------


@pytest.mark.parametrize("d_model", [11, 22, 88])
def test_sinusoid_table_handles_odd_width(d_model):
    table = sinusoid_table(4096, d_model).numpy()
    position = np.arange(4096)[:, None]
    sine_columns = np.arange(0, d_model, 2)
    cosine_columns = np.arange(1, d_model, 2)
    assert len(sine_columns) == math.ceil(d_model / 2)
    assert len(cosine_columns) == d_model // 2
    rate = lambda columns: 10000.0 ** (-(columns - columns % 2) / d_model)  # noqa: E731
    # float32 angles, as the original computes them: off by up to ~1.3e-4 at position 4,095
    np.testing.assert_allclose(table[:, sine_columns], np.sin(position * rate(sine_columns)),
                               atol=3e-4)  # fmt: skip
    np.testing.assert_allclose(table[:, cosine_columns], np.cos(position * rate(cosine_columns)),
                               atol=3e-4)  # fmt: skip


def test_attention_adds_the_positional_table_by_channel():
    block = ChannelCrossAttention(length=11, heads=1, channels=16).eval()
    query, context = torch.randn(2, 8, 11), torch.randn(2, 16, 11)
    table = sinusoid_table(4096, 11)
    expected, _ = block.attention(query + table[:8], context + table[:16], context + table[:16])
    with torch.no_grad():
        assert torch.allclose(block(query, context), expected, atol=1e-6)


@pytest.mark.parametrize("model_name", sorted(WITH_MSCA))
def test_fused_and_reference_attention_agree(model_name):
    model = small(model_name, width=1 / 8)
    x, y = torch.randn(3, 1, 88), torch.randn(3)
    predictions, gradients = {}, {}
    model.eval()
    for mode in ("reference", "fused"):
        model.set_attention(mode)
        with torch.no_grad():
            predictions[mode] = model(x)
    model.train()
    for mode in ("reference", "fused"):
        model.set_attention(mode)
        model.zero_grad()
        heads = model.forward_heads(x)
        sum(F.mse_loss(p, y) for p in heads).backward()
        predictions[mode + " train"] = torch.stack(heads).detach()
        gradients[mode] = [p.grad.clone() for p in model.parameters()]
    assert torch.allclose(predictions["fused"], predictions["reference"], atol=1e-5)
    assert torch.allclose(predictions["fused train"], predictions["reference train"], atol=1e-5)
    for fused, reference in zip(gradients["fused"], gradients["reference"], strict=True):
        assert torch.allclose(fused, reference, atol=1e-5, rtol=1e-4)


def test_float32_attention_precision_holds_under_autocast():
    dtypes = {}
    for precision in ("autocast", "float32"):
        model = small("msca_cssc_unet", attention_precision=precision).eval()
        block = model.msca["x0_1"][0]
        hook = block.register_forward_hook(
            lambda _m, _a, out, precision=precision: dtypes.__setitem__(precision, out.dtype)
        )
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            model(torch.randn(2, 1, 88))
        hook.remove()
    assert dtypes == {"autocast": torch.bfloat16, "float32": torch.float32}


# --- learning -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("model_name", MODELS)
def test_beats_the_training_mean_on_held_out_windows(model_name, learnable_problem):
    torch.manual_seed(0)
    model = build(model_name, width=1 / 16)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x_train, y_train = (
        torch.from_numpy(learnable_problem.x_train),
        torch.from_numpy(learnable_problem.y_train),
    )
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(80):
        batch = torch.randint(0, len(x_train), (32,), generator=generator)
        optimizer.zero_grad()
        heads = model.forward_heads(x_train[batch])
        sum(F.mse_loss(p, y_train[batch]) for p in heads).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = model(torch.from_numpy(learnable_problem.x_test)).numpy()
    y_test = learnable_problem.y_test
    naive = np.mean((y_test - learnable_problem.y_train.mean()) ** 2)
    assert np.mean((predicted - y_test) ** 2) < naive / 2
