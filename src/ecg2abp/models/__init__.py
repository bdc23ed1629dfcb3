"""Model registry: every model is built by name with a window length and a width multiplier."""

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from inspect import Parameter, signature
from typing import Any

from ecg2abp.errors import InputError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # "deep" or "classical"
    summary: str
    builder: str  # "module:function", imported on first use so torch-free code stays light


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            "msca_cssc_unet",
            "deep",
            "1-D UNet++ with multi-scale cross-attention and cross-scale skips (the paper)",
            "ecg2abp.models.unetpp:build_msca_cssc_unet",
        ),
        ModelSpec(
            "unetpp_msca",
            "deep",
            "ablation: MSCA kept, cross-scale skip connections removed",
            "ecg2abp.models.unetpp:build_unetpp_msca",
        ),
        ModelSpec(
            "unetpp_cssc",
            "deep",
            "ablation: CSSC kept, MSCA replaced by plain dense-skip concatenation",
            "ecg2abp.models.unetpp:build_unetpp_cssc",
        ),
        ModelSpec(
            "unetpp",
            "deep",
            "ablation: plain 1-D UNet++ (neither MSCA nor CSSC)",
            "ecg2abp.models.unetpp:build_unetpp",
        ),
        ModelSpec(
            "unet",
            "deep",
            "baseline: 1-D UNet, one decoder path, same depth and widths",
            "ecg2abp.models.unetpp:build_unet",
        ),
        ModelSpec(
            "lstm",
            "deep",
            "baseline: stacked LSTM over the window",
            "ecg2abp.models.baselines:build_lstm",
        ),
        ModelSpec(
            "resnet1d",
            "deep",
            "baseline: 1-D residual CNN",
            "ecg2abp.models.baselines:build_resnet1d",
        ),
        ModelSpec(
            "transformer",
            "deep",
            "baseline: small transformer encoder over patches of the window",
            "ecg2abp.models.baselines:build_transformer",
        ),
        ModelSpec(
            "ridge",
            "classical",
            "baseline: ridge regression on the raw window",
            "ecg2abp.models.classical:build_ridge",
        ),
        ModelSpec(
            "knn",
            "classical",
            "baseline: the target of the nearest training window (the leak's measure)",
            "ecg2abp.models.knn:build_knn",
        ),
        ModelSpec(
            "template",
            "classical",
            "floor: the mean training ABP beat against time since the window's last R peak",
            "ecg2abp.models.classical:build_template",
        ),
        ModelSpec(
            "gbm",
            "classical",
            "baseline: histogram gradient boosting on the window plus R-peak timing features",
            "ecg2abp.models.classical:build_gbm",
        ),
    ]
}


def spec(name: str) -> ModelSpec:
    """The registry entry for `name`, or an InputError listing the known models."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(REGISTRY)
        raise InputError(f"model {name!r}: unknown model (known: {known})") from None


def build(name: str, *, window: int = 88, width: float = 1.0, **options: Any) -> Any:
    """Build model `name` for windows of `window` samples at `width` × the paper's widths."""
    module_name, function_name = spec(name).builder.split(":")
    builder: Callable[..., Any] = getattr(import_module(module_name), function_name)
    parameters = signature(builder).parameters.values()
    checks_itself = any(p.kind is Parameter.VAR_KEYWORD for p in parameters)
    accepted = {p.name for p in parameters} - {"window", "width"}
    unknown = sorted(set(options) - accepted)
    if unknown and not checks_itself:
        allowed = ", ".join(sorted(accepted)) or "none"
        raise InputError(f"model {name!r}: unknown option {unknown[0]!r} (options: {allowed})")
    return builder(window=window, width=width, **options)
