"""The inference forward equals the model's eval-mode final head (fp32) or stays within bf16."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ecg2abp.models import build
from ecg2abp.models.inference import (
    EXPLICIT_MAX_TOKENS,
    InferenceUNet,
    fold_batchnorm,
    resize_matrix,
)

MODELS = ("msca_cssc_unet", "unetpp_msca", "unetpp_cssc", "unetpp", "unet")
FP32_TOLERANCE = 1e-4  # max |fast − reference| / max |reference|
BF16_TOLERANCE = 5e-2  # ‖fast − reference‖ / ‖reference‖, as the model benchmark judges bf16


def trained_like(model_name: str, **options) -> nn.Module:
    """A width-1/16 model in eval mode whose BatchNorm statistics and attention biases are not
    their initial values (folding a zero bias or a unit variance would prove little)."""
    torch.manual_seed(0)
    model = build(model_name, width=1 / 16, **options)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                size = module.num_features
                module.running_mean.copy_(torch.rand(size, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(size, generator=generator) - 0.5)
            if isinstance(module, nn.MultiheadAttention):
                module.in_proj_bias.copy_(torch.randn(module.in_proj_bias.shape) * 0.3)
                module.out_proj.bias.copy_(torch.randn(module.out_proj.bias.shape) * 0.3)
    return model.eval()


def reference(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's own fp32 output, attention computed as the original computes it."""
    previous = getattr(model, "attention_mode", None)
    if previous:
        model.set_attention("reference")
    with torch.inference_mode():
        out = model(x)
    if previous:
        model.set_attention(previous)
    return out


def max_relative(fast: torch.Tensor, ref: torch.Tensor) -> float:
    return float((fast.float() - ref).abs().max() / ref.abs().max())


def test_folded_convolution_equals_conv_then_eval_batchnorm():
    torch.manual_seed(0)
    conv, norm = nn.Conv1d(5, 7, 3, padding=1), nn.BatchNorm1d(7)
    norm.running_mean.uniform_(-1, 1)
    norm.running_var.uniform_(0.2, 3)
    norm.weight.data.uniform_(0.5, 2)
    norm.bias.data.uniform_(-1, 1)
    norm.eval()
    x = torch.randn(4, 5, 30)
    weight, bias = fold_batchnorm(conv, norm)
    with torch.no_grad():
        expected = norm(conv(x))
    assert torch.allclose(F.conv1d(x, weight, bias, padding=1), expected, atol=1e-5)


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize(("n_in", "n_out"), [(44, 88), (5, 11), (11, 88), (22, 44)])
def test_resize_matrix_equals_linear_interpolation(n_in, n_out, align_corners):
    x = torch.randn(3, 4, n_in)
    expected = F.interpolate(x, size=n_out, mode="linear", align_corners=align_corners)
    product = x @ resize_matrix(n_in, n_out, align_corners=align_corners)
    assert torch.allclose(product, expected, atol=1e-6)


@pytest.mark.parametrize("model_name", MODELS)
def test_fp32_inference_equals_the_models_final_head(model_name):
    model = trained_like(model_name)
    x = torch.randn(64, 1, 88)
    with torch.inference_mode():
        fast = InferenceUNet(model, "fp32")(x)
    assert fast.shape == (64,)
    assert max_relative(fast, reference(model, x)) <= FP32_TOLERANCE


@pytest.mark.parametrize("attention_precision", ["autocast", "float32"])
def test_bf16_inference_stays_within_bf16_of_the_fp32_reference(attention_precision):
    model = trained_like("msca_cssc_unet", attention_precision=attention_precision)
    x = torch.randn(64, 1, 88)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        fast = InferenceUNet(model, "bf16")(x).float()
    ref = reference(model, x)
    assert float(torch.linalg.vector_norm(fast - ref) / torch.linalg.vector_norm(ref)) < (
        BF16_TOLERANCE
    )


def test_bf16_on_the_cpu_uses_explicit_attention_and_fp32_the_fused_kernel():
    model = trained_like("msca_cssc_unet")
    assert all(a.explicit for a in InferenceUNet(model, "bf16").attention.values())
    assert not any(a.explicit for a in InferenceUNet(model, "fp32").attention.values())


def test_wide_contexts_keep_the_fused_kernel_under_bf16():
    """At full width every context has 256 or more channels: explicit attention is not used."""
    model = build("msca_cssc_unet", width=1.0).eval()
    assert min(model.widths[1:]) > EXPLICIT_MAX_TOKENS
    assert not any(a.explicit for a in InferenceUNet(model, "bf16").attention.values())


def test_explicit_attention_in_fp32_equals_the_fused_kernel():
    """The two attention kernels compute the same thing (compared where both run in fp32)."""
    model = trained_like("msca_cssc_unet")
    fast = InferenceUNet(model, "bf16")  # explicit attention, here run without autocast
    x = torch.randn(32, 1, 88)
    with torch.inference_mode():
        explicit, fused = fast(x), InferenceUNet(model, "fp32")(x)
    assert max_relative(explicit, fused) <= FP32_TOLERANCE


def test_explicit_attention_folds_the_last_nodes_output_projection_into_its_values():
    """Only the last node is folded, only where attention is explicit; it still equals the model
    (the fp32 comparison above runs this folded node too)."""
    model = trained_like("msca_cssc_unet")
    last = model.plan[-1].name
    explicit = InferenceUNet(model, "bf16").attention
    assert explicit[last].first == model.lengths[0] - 3
    assert all(a.first == 0 for name, a in explicit.items() if name != last)
    assert all(a.first == 0 for a in InferenceUNet(model, "fp32").attention.values())
    x = torch.randn(32, 1, 88)
    with torch.inference_mode():
        folded = InferenceUNet(model, "bf16")(x)  # run in fp32: no autocast here
    assert max_relative(folded, reference(model, x)) <= FP32_TOLERANCE


def test_a_model_in_training_mode_is_refused():
    model = build("unet", width=1 / 16).train()
    with pytest.raises(ValueError, match="eval"):
        InferenceUNet(model, "fp32")


@pytest.mark.parametrize("scale", [1.0, 300.0, -300.0])
def test_exp_weighted_sum_equals_softmax_also_where_exp_overflows_or_underflows(scale):
    """Scores of ±300·(something ≥ 1) overflow exp or underflow it to 0 in every column: the
    unshifted sum must then fall back to softmax, not return inf or 0/0."""
    attention = InferenceUNet(trained_like("msca_cssc_unet"), "bf16").attention["x0_1"]
    generator = torch.Generator().manual_seed(2)
    q = torch.rand(2, 3, 5, 4, generator=generator) + 1.0
    k = torch.rand(2, 3, 6, 4, generator=generator) + 1.0
    values = torch.randn(2, 3, 6, 7, generator=generator)
    v = torch.cat([values, torch.ones(2, 3, 6, 1)], dim=-1)
    expected = torch.softmax(scale * q @ k.mT, dim=-1) @ values
    got = attention.weighted(scale * q, k, v)
    assert torch.isfinite(got).all()
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6)
