"""Inside a CNN: convolution kernels, a layer-by-layer activation walk, top-activating inputs.

Three computations, all read-only on the user's model (run inside
:func:`~deepvis_widgets.compute._hooks.preserved_model`):

- :func:`conv_filters`: the kernels of one convolution layer, ready to draw
  as small images (RGB for a first layer, per input channel or summarised
  deeper), with their norms.
- :func:`layer_walk`: the output of every convolution block for one input
  (CNN Explainer's walk), with the kernel that produced each channel and an
  effective receptive field for locating a channel's peak on the input.
- :func:`top_activating`: the inputs of a collection that excite a channel
  most, with the region of each input around the peak.

"Convolution blocks" are found from one traced forward pass
(:func:`find_conv_blocks`): a bare ``nn.Conv2d`` followed by its
normalisation and activation modules, or a model's own block module (an
EfficientNet ``MBConvBlock``, a ResNet ``BasicBlock``) with at most four
convolutions inside. ``nn.Sequential``/``nn.ModuleList`` containers are
looked through. Layers keep the names of ``model.named_modules()``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import Tensor, nn

from ._hooks import ModelSession, preserved_model

__all__ = [
    "ConvBlock",
    "ConvFilters",
    "LayerWalkData",
    "ReceptiveField",
    "TopActivating",
    "WalkLayer",
    "check_channel",
    "conv_filters",
    "conv_layers",
    "find_conv_blocks",
    "layer_walk",
    "model_device",
    "peak_positions",
    "receptive_field",
    "resolve_conv_layer",
    "resolve_layer",
    "top_activating",
]

FilterMode = Literal["auto", "rgb", "channels", "summary"]

#: A per-filter image of more values than this is summarised (L2 over input channels).
MAX_VALUES_PER_FILTER = 4096
#: A model module with more convolutions than this is looked into, not shown as one block.
MAX_CONVS_PER_BLOCK = 4

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_ELEMENTWISE = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.InstanceNorm2d,
    nn.LocalResponseNorm,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
)


# --- naming layers and channels ------------------------------------------------------


def _name_list(names: Sequence[str], limit: int = 60) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """Every ``nn.Conv2d`` of ``model`` with its name, in definition order.

    Example
    -------
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1))
    >>> [name for name, _ in conv_layers(net)]
    ['0', '2']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def resolve_conv_layer(model: nn.Module, layer: str | nn.Module | None = None) -> tuple[str, nn.Conv2d]:
    """The ``(name, nn.Conv2d)`` for ``layer``: a name, the module itself, or None for the first.

    Raises
    ------
    ValueError
        When the model has no such convolution; the message lists the valid names.

    Example
    -------
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    >>> resolve_conv_layer(net)[0]
    '0'
    """
    convs = conv_layers(model)
    if not convs:
        raise ValueError("model: expected a model with at least one nn.Conv2d layer, found none")
    names = [n for n, _ in convs]
    if layer is None:
        return convs[0]
    if isinstance(layer, nn.Module):
        for name, module in convs:
            if module is layer:
                return name, module
        raise ValueError(f"layer: the module given is not one of the model's convolution layers; valid names: {_name_list(names)}")
    if not isinstance(layer, str):
        raise TypeError(f"layer: expected a layer name (str), an nn.Conv2d of the model or None, got {type(layer).__name__}")
    for name, module in convs:
        if name == layer:
            return name, module
    close = difflib.get_close_matches(layer, names, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    other = dict(model.named_modules()).get(layer)
    what = f"{layer!r} is a {type(other).__name__}, not an nn.Conv2d" if other is not None else f"the model has no convolution layer named {layer!r}"
    raise ValueError(f"layer: {what}.{hint} Valid names ({len(names)}): {_name_list(names)}")


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """The ``(name, module)`` for a submodule given by its dotted name or as the module.

    Raises
    ------
    ValueError
        Unknown name: the message suggests close names and lists the convolution layers.

    Example
    -------
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    >>> resolve_layer(net, "1")
    ('1', ReLU())
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    modules = {n: m for n, m in model.named_modules() if n}
    if isinstance(layer, nn.Module):
        for name, module in modules.items():
            if module is layer:
                return name, module
        raise ValueError("layer: the module given is not a submodule of model")
    if not isinstance(layer, str):
        raise TypeError(f"layer: expected a submodule name (str) or an nn.Module, got {type(layer).__name__}")
    if layer in modules:
        return layer, modules[layer]
    close = difflib.get_close_matches(layer, list(modules), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
    listing = f" Convolution layers ({len(convs)}): {_name_list(convs)}" if convs else ""
    raise ValueError(
        f"layer: the model has no submodule named {layer!r}.{hint}{listing}"
        f" (any name of model.named_modules() works: {len(modules)} in all)"
    )


def check_channel(
    channel: Any, n: int, layer: str, *, name: str = "channel", labels: Sequence[str] | None = None, what: str = "channels"
) -> int:
    """Validates a channel (or class) index against ``n``; a label is accepted when ``labels`` are given.

    Example
    -------
    >>> check_channel(3, 8, "conv1")
    3
    >>> check_channel("b", 3, "logits", labels=["a", "b", "c"])
    1
    """
    if isinstance(channel, str) and labels is not None:
        if channel in labels:
            return list(labels).index(channel)
        close = difflib.get_close_matches(channel, list(labels), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"{name}: {layer} has no label {channel!r}{hint}")
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)):
        raise TypeError(f"{name}: expected an int index, got {type(channel).__name__} {channel!r}")
    if not 0 <= int(channel) < n:
        raise ValueError(f"{name}: expected an index in 0..{n - 1} ({layer} has {n} {what}), got {int(channel)}")
    return int(channel)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither).

    Example
    -------
    >>> model_device(nn.Linear(2, 2))
    device(type='cpu')
    """
    for t in model.parameters():
        return t.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def _freeze(model: nn.Module, session: ModelSession) -> None:
    """No weight gradients inside a session (``preserved_model`` restores the flags)."""
    del session
    for p in model.parameters():
        p.requires_grad_(False)


# --- filters ------------------------------------------------------------------------------


@dataclass
class ConvFilters:
    """The kernels of one convolution layer, laid out for drawing.

    Attributes
    ----------
    layer
        Name of the layer in ``model.named_modules()``.
    weights
        ``(out_channels, k, kh, kw)`` float32: ``k = 3`` RGB planes (mode ``'rgb'``),
        ``k = in_channels / groups`` (mode ``'channels'``), or ``k = 1``, the L2 norm over
        input channels at each kernel position (mode ``'summary'``).
    norms
        ``(out_channels,)`` L2 norm of each full kernel.
    mode
        ``'rgb'``, ``'channels'`` or ``'summary'``.
    in_channels, groups, kernel_size
        Of the layer (``groups == in_channels`` for a depthwise convolution).
    """

    layer: str
    weights: np.ndarray
    norms: np.ndarray
    mode: str
    in_channels: int
    groups: int
    kernel_size: tuple[int, int]

    def order(self, by: Literal["index", "norm"] = "norm") -> np.ndarray:
        """Filter indices in display order: by decreasing norm or by index.

        Example
        -------
        >>> f = conv_filters(nn.Conv2d(3, 4, 3))
        >>> sorted(f.order("norm").tolist())
        [0, 1, 2, 3]
        """
        if by == "index":
            return np.arange(len(self.norms))
        if by == "norm":
            return np.argsort(-self.norms, kind="stable")
        raise ValueError(f"by: expected 'index' or 'norm', got {by!r}")


def conv_filters(model: nn.Module, layer: str | nn.Module | None = None, *, mode: FilterMode = "auto") -> ConvFilters:
    """The kernels of a convolution layer as small images.

    Parameters
    ----------
    model
        A model with ``nn.Conv2d`` layers, or an ``nn.Conv2d`` itself.
    layer
        Name of the layer, the module, or None for the model's first convolution.
    mode
        ``'auto'`` (RGB when each kernel sees 3 input channels, per input channel
        when a kernel has at most 4,096 values, else summary), ``'rgb'``,
        ``'channels'`` or ``'summary'``.

    Returns
    -------
    ConvFilters

    Example
    -------
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 5), nn.ReLU(), nn.Conv2d(8, 16, 3))
    >>> f = conv_filters(net)
    >>> f.mode, f.weights.shape
    ('rgb', (8, 3, 5, 5))
    >>> conv_filters(net, "2").weights.shape
    (16, 8, 3, 3)
    """
    if mode not in ("auto", "rgb", "channels", "summary"):
        raise ValueError(f"mode: expected 'auto', 'rgb', 'channels' or 'summary', got {mode!r}")
    name, conv = resolve_conv_layer(model, layer)
    w = conv.weight.detach().to("cpu", torch.float32)
    _, per_group, kh, kw = w.shape
    if mode == "auto":
        mode = "rgb" if per_group == 3 else "channels" if per_group * kh * kw <= MAX_VALUES_PER_FILTER else "summary"
    if mode == "rgb" and per_group != 3:
        raise ValueError(f"mode: 'rgb' needs kernels over 3 input channels; {name or 'the layer'} has {per_group} per kernel")
    norms = w.flatten(1).norm(dim=1).numpy()
    weights = w.pow(2).sum(1, keepdim=True).sqrt() if mode == "summary" else w
    return ConvFilters(
        layer=name,
        weights=np.ascontiguousarray(weights.numpy()),
        norms=norms.astype(np.float32),
        mode=mode,
        in_channels=int(conv.in_channels),
        groups=int(conv.groups),
        kernel_size=(int(kh), int(kw)),
    )


# --- tracing convolution blocks ----------------------------------------------------------------


@dataclass
class _Call:
    name: str
    module: nn.Module
    inp: Tensor | None
    out: Tensor | None


@dataclass
class ConvBlock:
    """One step of the walk: where its output is read and which kernel produced it.

    Attributes
    ----------
    name
        The block as the model names it (``'_blocks.3'``, ``'features.0'``).
    output
        The module whose output is shown: the block itself, or for a bare
        convolution the last of the normalisation/activation modules applied
        right after it (``'features.1'`` for ``features.0`` followed by a ReLU).
    conv
        The last convolution inside the block whose output channels match the
        block's, or None.
    shape
        ``(C, H, W)`` of the output for the traced input.
    """

    name: str
    output: str
    conv: str | None
    shape: tuple[int, int, int]


def _tensor(x: Any) -> Tensor | None:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (tuple, list)) and x and isinstance(x[0], Tensor):
        return x[0]
    return None


def _check_input(model: nn.Module, x: Any, name: str = "image") -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor (1, C, H, W) model input, got {type(x).__name__}")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"{name}: expected one input of shape (1, C, H, W) or (C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got {x.dtype}")
    convs = conv_layers(model)
    if convs and convs[0][1].in_channels != x.shape[1] and convs[0][1].groups == 1:
        raise ValueError(f"{name}: the model's first convolution expects {convs[0][1].in_channels} channels, got {x.shape[1]} (shape {tuple(x.shape)})")
    return x.to(model_device(model))


def _trace(model: nn.Module, x: Tensor) -> list[_Call]:
    """One forward (no grad) recording every submodule call in finishing order."""
    calls: list[_Call] = []
    with preserved_model(model) as session:
        for name, module in model.named_modules():
            if not name:
                continue

            def hook(m: nn.Module, args: Any, output: Any, _name: str = name) -> None:
                calls.append(_Call(_name, m, _tensor(args), _tensor(output)))

            session.forward_hook(module, hook)
        with torch.no_grad():
            model(x)
    return calls


def _is_map(t: Tensor | None) -> bool:
    return t is not None and t.ndim == 4 and t.shape[-1] * t.shape[-2] > 1


def find_conv_blocks(model: nn.Module, example: Tensor) -> list[ConvBlock]:
    """The convolution blocks of ``model`` in execution order, found from one forward pass.

    Parameters
    ----------
    model
        Any model with ``nn.Conv2d`` layers.
    example
        One model input ``(1, C, H, W)`` (shapes depend on it).

    Example
    -------
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3))
    >>> [(b.name, b.output, b.shape) for b in find_conv_blocks(net, torch.zeros(1, 1, 12, 12))]
    [('0', '1', (4, 10, 10)), ('3', '3', (8, 3, 3))]
    """
    x = _check_input(model, example, "example")
    if not conv_layers(model):
        raise ValueError("model: expected a model with at least one nn.Conv2d layer, found none")
    calls = _trace(model, x)
    first: dict[str, int] = {}
    for i, c in enumerate(calls):
        first.setdefault(c.name, i)
    modules = dict(model.named_modules())
    n_convs = {name: sum(isinstance(m, nn.Conv2d) for m in mod.modules()) for name, mod in modules.items()}

    def is_block(name: str) -> bool:
        mod = modules[name]
        if name not in first or not _is_map(calls[first[name]].out):
            return False
        if isinstance(mod, nn.Conv2d):
            return True
        return not isinstance(mod, _CONTAINERS) and 0 < n_convs[name] <= MAX_CONVS_PER_BLOCK

    def expand(prefix: str) -> list[str]:
        children = [f"{prefix}.{c}" if prefix else c for c, _ in modules[prefix].named_children()]
        found: list[str] = []
        for child in children:
            if is_block(child):
                found.append(child)
            elif n_convs.get(child, 0) > 0:
                found.extend(expand(child))
        return found

    names = sorted(expand(""), key=lambda n: first[n])
    blocks = []
    for name in names:
        i = first[name]
        out_name, out = name, calls[i].out
        assert out is not None
        if isinstance(modules[name], nn.Conv2d):
            # Follow normalisation and activation modules applied right after the convolution.
            for later in calls[i + 1 :]:
                if later.inp is not out:
                    continue
                if not isinstance(later.module, _ELEMENTWISE) or later.out is None or later.out.shape != out.shape:
                    break
                out_name, out = later.name, later.out
        blocks.append(ConvBlock(name, out_name, _producing_conv(name, modules, calls, int(out.shape[1])), tuple(int(s) for s in out.shape[1:])))  # type: ignore[arg-type]
    return blocks


def _producing_conv(block: str, modules: dict[str, nn.Module], calls: list[_Call], channels: int) -> str | None:
    if isinstance(modules[block], nn.Conv2d):
        return block
    inside = [c.name for c in calls if c.name.startswith(block + ".") and isinstance(c.module, nn.Conv2d)]
    for name in reversed(inside):
        if modules[name].out_channels == channels:
            return name
    return None


# --- receptive fields -----------------------------------------------------------------------


@dataclass
class ReceptiveField:
    """Where on the input a position of a layer's map looks (empirically, from gradients).

    The radius holds ``mass`` of the input-gradient magnitude of the map's
    centre position (all channels summed), per axis; ``offset`` is how far the
    gradient's centre of mass sits from the position's nominal centre.

    Attributes
    ----------
    radius
        ``(ry, rx)`` in input pixels.
    offset
        ``(oy, ox)`` in input pixels.
    stride
        ``(sy, sx)`` input pixels per map position.
    input_size, map_size
        ``(H, W)`` of the input and of the layer's map.
    """

    radius: tuple[float, float]
    offset: tuple[float, float]
    stride: tuple[float, float]
    input_size: tuple[int, int]
    map_size: tuple[int, int]

    def box(self, y: int, x: int) -> tuple[float, float, float, float]:
        """``(top, left, bottom, right)`` in input pixels, clipped to the input, for map position (y, x).

        Example
        -------
        >>> rf = ReceptiveField((2.0, 2.0), (0.0, 0.0), (4.0, 4.0), (16, 16), (4, 4))
        >>> rf.box(0, 1)
        (0.0, 4.0, 4.0, 8.0)
        """
        cy = (y + 0.5) * self.stride[0] + self.offset[0]
        cx = (x + 0.5) * self.stride[1] + self.offset[1]
        h, w = self.input_size
        ry, rx = self.radius
        return (max(0.0, cy - ry), max(0.0, cx - rx), min(float(h), cy + ry), min(float(w), cx + rx))


def _radius(profile: Tensor, centre: float, mass: float) -> tuple[float, float]:
    """Half-width around the centre of mass holding ``mass`` of a 1-D profile, and that centre."""
    total = float(profile.sum())
    n = profile.numel()
    if total <= 0 or not math.isfinite(total):
        return float(n), 0.0
    pos = torch.arange(n, dtype=profile.dtype) + 0.5
    com = float((profile * pos).sum() / total)
    for r in range(0, n + 1):
        lo, hi = max(0, math.floor(com - r)), min(n, math.ceil(com + r))
        if float(profile[lo:hi].sum()) >= mass * (1 - 1e-9) * total:
            return max(com - lo, hi - com, 0.5), com - centre
    return float(n), com - centre


def _rf_from_graph(x: Tensor, out: Tensor, mass: float) -> ReceptiveField:
    """Receptive field of a (1, C, h, w) map computed from ``x`` with a live autograd graph.

    Probes the map's centre position; when no gradient reaches the input from
    there (every channel inactive, e.g. behind a ReLU), the most active position.
    """
    h, w = out.shape[-2:]
    H, W = x.shape[-2:]
    sy, sx = H / h, W / w
    strongest = int(out[0].detach().abs().sum(0).flatten().argmax())
    mag = torch.zeros(H, W, dtype=torch.float64)
    for cy, cx in ((h // 2, w // 2), (strongest // w, strongest % w)):
        (grad,) = torch.autograd.grad(out[0, :, cy, cx].sum(), x, retain_graph=True, allow_unused=True)
        if grad is not None:
            mag = grad[0].abs().sum(0).detach().to("cpu", torch.float64)
        if mag.sum() > 0:
            break
    ry, oy = _radius(mag.sum(1), (cy + 0.5) * sy, mass)
    rx, ox = _radius(mag.sum(0), (cx + 0.5) * sx, mass)
    if mag.sum() == 0:
        oy = ox = 0.0
    return ReceptiveField((ry, rx), (oy, ox), (sy, sx), (int(H), int(W)), (int(h), int(w)))


def receptive_field(model: nn.Module, layer: str | nn.Module, example: Tensor, *, mass: float = 0.9) -> ReceptiveField:
    """The effective receptive field of a layer: the input region its centre position depends on.

    Parameters
    ----------
    model
        The model.
    layer
        A submodule name or module with a ``(N, C, H, W)`` output.
    example
        One input ``(1, C, H, W)``; the field depends on the input through the activations.
    mass
        Fraction of the input-gradient magnitude the radius must hold (0.9).

    Example
    -------
    >>> net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1))
    >>> for conv in net:
    ...     _ = nn.init.constant_(conv.weight, 0.5)
    >>> rf = receptive_field(net, "1", torch.randn(1, 1, 16, 16), mass=1.0)
    >>> rf.radius, rf.box(8, 8)  # two 3x3 convolutions see 5x5 pixels
    ((2.5, 2.5), (6.0, 6.0, 11.0, 11.0))
    """
    if not 0 < mass <= 1:
        raise ValueError(f"mass: expected a fraction in (0, 1], got {mass!r}")
    name, module = resolve_layer(model, layer)
    x = _check_input(model, example, "example").detach().clone().requires_grad_(True)
    got: list[Tensor] = []
    with preserved_model(model) as session, torch.enable_grad():
        _freeze(model, session)
        session.forward_hook(module, lambda m, a, o: got.append(_tensor(o)))  # type: ignore[arg-type]
        model(x)
        if not got or not _is_map(got[0]):
            raise ValueError(f"layer: {name!r} does not output a (N, C, H, W) map with more than one position")
        return _rf_from_graph(x, got[0], mass)


# --- the layer walk ----------------------------------------------------------------------------


@dataclass
class WalkLayer:
    """One block of a :class:`LayerWalkData`.

    Attributes
    ----------
    block
        Where the output was read and which kernel produced it.
    activations
        ``(C, H, W)`` float32 output of ``block.output`` for the input.
    kernel
        ``(C, in_channels / groups, kh, kw)`` weights of ``block.conv``, or None.
    receptive_field
        Effective receptive field of the block's positions.
    """

    block: ConvBlock
    activations: np.ndarray
    kernel: np.ndarray | None
    receptive_field: ReceptiveField


@dataclass
class LayerWalkData:
    """Activations of every convolution block for one input (:func:`layer_walk`)."""

    input: np.ndarray
    """``(C, H, W)`` float32 model input."""
    layers: list[WalkLayer]
    output: np.ndarray
    """The model's output for the input (first element if a tuple), float32, batch dimension removed."""

    def names(self) -> list[str]:
        """Block names in order.

        Example
        -------
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
        >>> layer_walk(net, torch.zeros(1, 1, 8, 8)).names()
        ['0']
        """
        return [layer.block.name for layer in self.layers]


def layer_walk(
    model: nn.Module,
    x: Tensor,
    layers: Sequence[str] | None = None,
    *,
    mass: float = 0.9,
) -> LayerWalkData:
    """The activations of every convolution block of ``model`` for one input.

    Parameters
    ----------
    model
        A CNN (any ``nn.Module`` with ``nn.Conv2d`` layers).
    x
        One model input ``(1, C, H, W)`` or ``(C, H, W)``, on any device (moved to the model's).
    layers
        Submodule names to read instead of the automatic blocks
        (:func:`find_conv_blocks`); each must output a ``(N, C, H, W)`` map.
    mass
        Gradient mass of the effective receptive fields (see :class:`ReceptiveField`).

    Returns
    -------
    LayerWalkData
        One :class:`WalkLayer` per block, in execution order. The activations are
        the modules' outputs exactly as forward hooks see them.

    Example
    -------
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3))
    >>> walk = layer_walk(net, torch.randn(1, 1, 16, 16))
    >>> [(l.block.name, l.activations.shape) for l in walk.layers]
    [('0', (4, 16, 16)), ('3', (6, 6, 6))]
    """
    if not 0 < mass <= 1:
        raise ValueError(f"mass: expected a fraction in (0, 1], got {mass!r}")
    x = _check_input(model, x, "x")
    modules = dict(model.named_modules())
    if layers is None:
        blocks = find_conv_blocks(model, x)
    else:
        if isinstance(layers, str):
            raise TypeError("layers: expected a sequence of layer names, got a single string")
        blocks = []
        calls = None
        for given in layers:
            name, _ = resolve_layer(model, given)
            calls = calls if calls is not None else _trace(model, x)
            out = next((c.out for c in calls if c.name == name), None)
            if not _is_map(out):
                shape = None if out is None else tuple(out.shape)
                raise ValueError(f"layers: {name!r} does not output a (N, C, H, W) map with more than one position (output shape {shape})")
            assert out is not None
            blocks.append(ConvBlock(name, name, _producing_conv(name, modules, calls, int(out.shape[1])), tuple(int(s) for s in out.shape[1:])))  # type: ignore[arg-type]
    if not blocks:
        raise ValueError("model: found no convolution block with a spatial output for this input")

    xg = x.detach().clone().requires_grad_(True)
    got: dict[str, Tensor] = {}
    with preserved_model(model) as session, torch.enable_grad():
        _freeze(model, session)
        for block in blocks:

            def hook(m: nn.Module, a: Any, o: Any, _name: str = block.output) -> Any:
                t = _tensor(o)
                if _name not in got and t is not None:
                    got[_name] = t
                    # Later in-place ops (ReLU(inplace=True)) must not change what we read.
                    return t.clone() if isinstance(o, Tensor) else o
                return None

            session.forward_hook(modules[block.output], hook)
        output = model(xg)
        walked = []
        for block in blocks:
            act = got[block.output]
            rf = _rf_from_graph(xg, act, mass)
            kernel = None
            if block.conv is not None:
                kernel = modules[block.conv].weight.detach().to("cpu", torch.float32).numpy().copy()
            walked.append(WalkLayer(block, act[0].detach().to("cpu", torch.float32).numpy(), kernel, rf))
    out_t = _tensor(output)
    out_np = out_t[0].detach().to("cpu", torch.float32).numpy() if out_t is not None else np.zeros(0, np.float32)
    return LayerWalkData(x[0].detach().to("cpu", torch.float32).numpy(), walked, out_np)


def peak_positions(maps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Peak value and position ``(y, x)`` of each map in ``(..., H, W)``.

    Ties (a ReLU6 saturated at 6 over a region) resolve to the tied position
    nearest the ties' centroid, not to the first one in memory order.

    Example
    -------
    >>> m = torch.zeros(1, 5, 5); m[0, 1:4, 0:3] = 6.0
    >>> [int(t) for t in peak_positions(m)[1:]]
    [2, 1]
    """
    h, w = maps.shape[-2:]
    flat = maps.reshape(-1, h * w).float()
    top = flat.max(1, keepdim=True).values
    tied = (flat >= top - 1e-6 * top.abs().clamp(min=1)).float()
    ys = torch.arange(h, device=maps.device).repeat_interleave(w).float()
    xs = torch.arange(w, device=maps.device).repeat(h).float()
    count = tied.sum(1, keepdim=True)
    cy, cx = (tied * ys).sum(1, keepdim=True) / count, (tied * xs).sum(1, keepdim=True) / count
    dist = (ys - cy) ** 2 + (xs - cx) ** 2 + (1 - tied) * 1e9
    best = dist.argmin(1)
    shape = maps.shape[:-2]
    return top[:, 0].reshape(shape), (best // w).reshape(shape), (best % w).reshape(shape)


# --- top-activating inputs ------------------------------------------------------------------------


@dataclass
class TopActivating:
    """The inputs that excite one channel most (:func:`top_activating`).

    Attributes
    ----------
    layer, channel
        What was measured.
    indices
        ``(k,)`` indices into the images, strongest first.
    values
        ``(k,)`` the channel's peak (max over positions) on each.
    positions
        ``(k, 2)`` map position ``(y, x)`` of each peak.
    boxes
        ``(k, 4)`` ``(top, left, bottom, right)`` of the peak's receptive field, input pixels.
    all_values
        ``(N,)`` the peak on every image.
    """

    layer: str
    channel: int
    indices: np.ndarray
    values: np.ndarray
    positions: np.ndarray
    boxes: np.ndarray
    all_values: np.ndarray = field(repr=False)


def top_activating(
    model: nn.Module,
    layer: str | nn.Module,
    channel: int | Sequence[int],
    images: Tensor,
    *,
    k: int = 8,
    batch_size: int = 32,
    mass: float = 0.9,
    progress: Callable[[int, int], None] | None = None,
) -> TopActivating | list[TopActivating]:
    """The ``k`` images whose peak activation of ``channel`` in ``layer`` is highest.

    Parameters
    ----------
    model
        The model.
    layer
        A submodule name or module with a ``(N, C, H, W)`` output.
    channel
        Channel index in that output, or a sequence of them (one pass over the
        images serves them all; a list of results comes back).
    images
        ``(N, C, H, W)`` model inputs (a dataset or crops of photos).
    k
        How many to return (at most N).
    batch_size
        Images per forward pass.
    mass
        Gradient mass of the receptive field used for the boxes.
    progress
        Called as ``progress(done, total)`` after each batch.

    Example
    -------
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1))
    >>> imgs = torch.zeros(5, 1, 8, 8); imgs[3] += 1.0
    >>> top = top_activating(net, "0", 0, imgs, k=2)
    >>> top.indices.shape
    (2,)
    >>> [t.channel for t in top_activating(net, "0", [0, 1], imgs)]
    [0, 1]
    """
    if not isinstance(images, Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images: expected a tensor of model inputs (N, C, H, W), got {shape}")
    if len(images) == 0:
        raise ValueError("images: expected at least one image, got 0")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k: expected a positive int, got {k!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    single = not isinstance(channel, (list, tuple, range, np.ndarray))
    wanted: list[Any] = [channel] if single else list(cast(Sequence[int], channel))
    if not wanted:
        raise ValueError("channel: expected at least one channel index, got an empty sequence")
    name, module = resolve_layer(model, layer)
    device = model_device(model)
    got: list[Tensor] = []
    peaks, where = [], []
    n = len(images)
    act: Tensor | None = None
    with preserved_model(model) as session, torch.no_grad():
        session.forward_hook(module, lambda m, a, o: got.append(_tensor(o)))  # type: ignore[arg-type]
        for start in range(0, n, batch_size):
            got.clear()
            model(images[start : start + batch_size].to(device))
            act = got[0] if got else None
            if act is None or act.ndim != 4:
                raise ValueError(f"layer: {name!r} does not output a (N, C, H, W) map (got {None if act is None else tuple(act.shape)})")
            if start == 0:
                wanted = [check_channel(c, act.shape[1], f"layer {name!r}") for c in wanted]
            v, py, px = peak_positions(act[:, wanted])
            peaks.append(v.float().cpu())
            where.append(torch.stack([py, px], 2).cpu())
            if progress is not None:
                progress(min(start + batch_size, n), n)
    values = torch.cat(peaks).numpy()  # (N, channels)
    positions = torch.cat(where).numpy()  # (N, channels, 2)
    rf = receptive_field(model, name, images[:1], mass=mass) if _map_size_gt1(act) else None
    h, w = images.shape[-2:]
    results = []
    for j, c in enumerate(wanted):
        order = np.argsort(-values[:, j], kind="stable")[: min(k, n)]
        if rf is None:
            boxes = np.tile(np.array([0.0, 0.0, h, w], np.float32), (len(order), 1))
        else:
            boxes = np.array([rf.box(int(y), int(x)) for y, x in positions[order, j]], np.float32)
        results.append(TopActivating(name, int(c), order.astype(np.int64), values[order, j], positions[order, j], boxes, values[:, j].copy()))
    return results[0] if single else results


def _map_size_gt1(act: Tensor | None) -> bool:
    return act is not None and act.shape[-1] * act.shape[-2] > 1

