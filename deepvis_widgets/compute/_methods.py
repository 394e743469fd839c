"""The registry of attribution methods: Captum classes, defaults, sign and granularity.

Defaults follow the papers rather than Captum where the two differ: Grad-CAM
keeps only positive evidence (its ReLU), SmoothGrad's noise is 15% of the
input range, LIME fits a ridge surrogate (Captum's Lasso often zeroes every
feature), occlusion and LIME/Kernel SHAP work on image patches (about 8 x 8
of them) instead of single pixels.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import captum.attr as ca
import torch
from torch import Tensor, nn

__all__ = ["METHODS", "MethodInfo", "available_methods", "split_options"]

RESERVED = ("inputs", "target", "baselines", "additional_forward_args", "layer")


@dataclass(frozen=True)
class MethodInfo:
    """What a method computes and how to show it."""

    name: str
    label: str
    """Display name, e.g. ``"Integrated Gradients"``."""
    signed: bool
    """True: positive and negative evidence (diverging colours); False: non-negative (sequential)."""
    granularity: str
    """``"pixel"``: one value per input element; ``"layer"``: a coarse map upsampled to the input."""
    uses_layer: bool
    """Needs a target layer (chosen automatically when not given)."""
    gradient: bool
    """Needs backward passes (else forward passes only)."""
    batch_option: str | None
    """The Captum option that sets how many evaluations share one pass, chosen from the memory budget."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """Options passed to Captum unless given; ``"auto"`` values depend on the input shape."""
    reference: str = ""
    captum: type[Any] | None = None
    """The Captum class used, or None for methods implemented here."""

    def signed_with(self, options: Mapping[str, Any]) -> bool:
        """Whether the maps are signed under ``options`` (e.g. ``abs=False`` makes saliency signed)."""
        if self.name in ("saliency", "smoothgrad"):
            if options.get("nt_type") == "smoothgrad_sq":
                return False
            return not options.get("abs", True)
        if self.name == "gradcam":
            return not options.get("relu_attributions", True)
        return self.signed


def _info(
    name: str,
    label: str,
    signed: bool,
    granularity: str,
    gradient: bool,
    captum: type[Any] | None,
    batch: str | None = None,
    defaults: dict[str, Any] | None = None,
    reference: str = "",
) -> MethodInfo:
    return MethodInfo(
        name,
        label,
        signed,
        granularity,
        granularity == "layer" or name == "guided_gradcam",
        gradient,
        batch,
        MappingProxyType(defaults or {}),
        reference,
        captum,
    )


METHODS: dict[str, MethodInfo] = {
    info.name: info
    for info in (
        _info(
            "saliency",
            "Saliency",
            False,
            "pixel",
            True,
            ca.Saliency,
            defaults={"abs": True},
            reference="Simonyan et al. 2013, arXiv:1312.6034",
        ),
        _info(
            "input_x_gradient",
            "Input × Gradient",
            True,
            "pixel",
            True,
            ca.InputXGradient,
            reference="Shrikumar et al. 2016, arXiv:1605.01713",
        ),
        _info(
            "smoothgrad",
            "SmoothGrad",
            False,
            "pixel",
            True,
            ca.NoiseTunnel,
            "nt_samples_batch_size",
            {"nt_type": "smoothgrad", "nt_samples": 20, "stdevs": "auto"},
            "Smilkov et al. 2017, arXiv:1706.03825",
        ),
        _info(
            "integrated_gradients",
            "Integrated Gradients",
            True,
            "pixel",
            True,
            ca.IntegratedGradients,
            "internal_batch_size",
            {"n_steps": 50, "method": "gausslegendre", "return_convergence_delta": True},
            "Sundararajan et al. 2017, arXiv:1703.01365",
        ),
        _info(
            "guided_backprop",
            "Guided Backprop",
            True,
            "pixel",
            True,
            ca.GuidedBackprop,
            reference="Springenberg et al. 2014, arXiv:1412.6806",
        ),
        _info(
            "cam", "CAM", True, "layer", False, None, reference="Zhou et al. 2016, arXiv:1512.04150"
        ),
        _info(
            "gradcam",
            "Grad-CAM",
            False,
            "layer",
            True,
            ca.LayerGradCam,
            defaults={"relu_attributions": True},
            reference="Selvaraju et al. 2017, arXiv:1610.02391",
        ),
        _info(
            "guided_gradcam",
            "Guided Grad-CAM",
            True,
            "pixel",
            True,
            ca.GuidedGradCam,
            reference="Selvaraju et al. 2017, arXiv:1610.02391",
        ),
        _info(
            "occlusion",
            "Occlusion",
            True,
            "pixel",
            False,
            ca.Occlusion,
            "perturbations_per_eval",
            {"sliding_window_shapes": "auto", "strides": "auto"},
            "Zeiler & Fergus 2014, arXiv:1311.2901",
        ),
        _info(
            "lime",
            "LIME",
            True,
            "pixel",
            False,
            ca.Lime,
            "perturbations_per_eval",
            {"n_samples": 200, "feature_mask": "auto"},
            "Ribeiro et al. 2016, arXiv:1602.04938",
        ),
        _info(
            "kernel_shap",
            "Kernel SHAP",
            True,
            "pixel",
            False,
            ca.KernelShap,
            "perturbations_per_eval",
            {"n_samples": 200, "feature_mask": "auto"},
            "Lundberg & Lee 2017, arXiv:1705.07874",
        ),
        _info(
            "deeplift",
            "DeepLIFT",
            True,
            "pixel",
            True,
            ca.DeepLift,
            defaults={"return_convergence_delta": True},
            reference="Shrikumar et al. 2017, arXiv:1704.02685",
        ),
    )
}


def available_methods() -> dict[str, MethodInfo]:
    """The attribution methods :func:`attribute` knows by name.

    Returns
    -------
    dict of str to MethodInfo
        In display order; ``info.signed`` says whether to use diverging
        colours, ``info.granularity`` whether the map is per pixel or a coarse
        layer map.

    Example
    -------
    >>> methods = available_methods()
    >>> methods["gradcam"].granularity, methods["integrated_gradients"].signed
    ('layer', True)
    """
    return dict(METHODS)


def _params(fn: Callable[..., Any]) -> list[str]:
    return [
        name
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and name != "self"
    ]


def split_options(
    info: MethodInfo | None, captum_obj: Any, options: Mapping[str, Any]
) -> tuple[dict, dict]:
    """Splits user options into Captum constructor and ``attribute`` keyword arguments.

    Unknown names are an error that lists the accepted ones.
    """
    for name in RESERVED:
        if name in options:
            raise TypeError(
                f"{name}: pass it as attribute(..., {name}=...), not as a method option"
            )
    if info is not None and info.captum is None:  # implemented here
        allowed_attr = ["interpolate_mode"]
        allowed_init: list[str] = []
    else:
        if info is None:
            cls = type(captum_obj)
        else:
            assert info.captum is not None  # the methods implemented here are handled above
            cls = info.captum
        allowed_attr = _params(cls.attribute)
        if cls is ca.NoiseTunnel:
            allowed_attr += _params(ca.Saliency.attribute)
        if info is not None and info.granularity == "layer":
            allowed_attr.append("interpolate_mode")
        allowed_init = _params(cls.__init__)[2 if info is not None and info.uses_layer else 1 :]
        if info is None:
            allowed_init = []
    allowed_attr = [a for a in allowed_attr if a not in RESERVED]
    init, attr = {}, {}
    for key, value in options.items():
        if key in allowed_attr:
            attr[key] = value
        elif key in allowed_init and key != "layer":
            init[key] = value
        else:
            name = info.name if info is not None else type(captum_obj).__name__
            accepted = sorted(set(allowed_attr) | {a for a in allowed_init if a != "layer"})
            raise TypeError(
                f"{key}: not an option of method {name!r}; accepted: {', '.join(accepted)}"
            )
    return init, attr


def build(
    info: MethodInfo, forward: nn.Module, layer: nn.Module | None, init: dict[str, Any]
) -> Any:
    """The Captum object for ``info`` around ``forward`` (a module wrapping the user's model)."""
    cls = info.captum
    assert cls is not None
    if info.name == "smoothgrad":
        return ca.NoiseTunnel(ca.Saliency(forward))
    if info.name == "lime" and "interpretable_model" not in init:
        # Captum's default Lasso(alpha=0.01) zeroes every feature when the output
        # varies little (small or untrained models); the LIME paper's ridge does not.
        init = {**init, "interpretable_model": lime_surrogate()}
    if info.uses_layer:
        return cls(forward, layer, **init)
    return cls(forward, **init)


def lime_surrogate() -> Any:
    """The surrogate model LIME fits by default here: ridge regression, alpha=1 (as in the ``lime`` package)."""
    from captum._utils.models.linear_model import SkLearnRidge

    return SkLearnRidge(alpha=1.0)


def patch_size(side: int) -> int:
    """About an eighth of an image side: 28 px at 224, at least 1."""
    return max(1, round(side / 8))


def grid_feature_mask(shape: torch.Size, device: torch.device) -> Tensor:
    """Square patches (about 8 x 8 of them) shared by all channels, as LIME's features."""
    height, width = shape[-2], shape[-1]
    ph, pw = patch_size(height), patch_size(width)
    rows = torch.arange(height, device=device) // ph
    cols = torch.arange(width, device=device) // pw
    mask = rows[:, None] * (int(cols.max()) + 1) + cols[None, :]
    return mask.expand(1, 1, height, width) if len(shape) == 4 else mask.expand(1, height, width)


def fill_defaults(info: MethodInfo, attr: dict[str, Any], inputs: Tensor) -> dict[str, Any]:
    """The method's defaults under the user's options, with ``"auto"`` resolved for ``inputs``."""
    merged = {**info.defaults, **attr}
    if merged.get("stdevs") == "auto":
        span = float(inputs.max() - inputs.min())
        merged["stdevs"] = 0.15 * span if span > 0 else 0.15
    if merged.get("sliding_window_shapes") == "auto":
        if inputs.ndim == 4:
            merged["sliding_window_shapes"] = (
                inputs.shape[1],
                patch_size(inputs.shape[2]),
                patch_size(inputs.shape[3]),
            )
        else:
            merged["sliding_window_shapes"] = (1,) * (inputs.ndim - 1)
    if merged.get("strides") == "auto":
        merged["strides"] = tuple(
            max(1, w // 2) if i or inputs.ndim != 4 else w
            for i, w in enumerate(merged["sliding_window_shapes"])
        )
    if merged.get("feature_mask") == "auto":
        merged["feature_mask"] = (
            grid_feature_mask(inputs.shape, inputs.device)
            if inputs.ndim in (3, 4) and inputs.shape[-1] > 8
            else None
        )
    return merged


def n_evaluations(info: MethodInfo | None, attr: Mapping[str, Any], inputs: Tensor) -> int | None:
    """Examples the method evaluates in total (for the progress bar), or None if unknown."""
    n = inputs.shape[0]
    if info is None:
        return None
    if info.name == "integrated_gradients":
        return n * (attr.get("n_steps", 50) + (2 if attr.get("return_convergence_delta") else 0))
    if info.name == "smoothgrad":
        return n * attr.get("nt_samples", 5)
    if info.name in ("lime", "kernel_shap"):
        return n * (attr.get("n_samples", 25) + 1)
    if info.name == "occlusion":
        windows = attr["sliding_window_shapes"]
        strides = attr["strides"]
        strides = (strides,) * len(windows) if isinstance(strides, int) else strides
        count = 1
        for size, window, stride in zip(inputs.shape[1:], windows, strides, strict=False):
            count *= math.ceil(max(size - window, 0) / stride) + 1
        return n * (count + 1)
    return n
