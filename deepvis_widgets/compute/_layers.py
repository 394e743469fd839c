"""Choosing the layer for CAM-family methods, and the token-grid reshape for ViTs.

The automatic choice is the last module whose output is a spatial map: an
(N, C, H, W) tensor with more than one position, or, for ViT-like models, a
token sequence (N, prefix + H*W, C) whose patch tokens still influence the
output. A container that finishes after its children (``layer4`` of a ResNet)
wins over them, so skip connections are included in the map.
"""

from __future__ import annotations

import difflib
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ._forward import is_perfect_grid
from ._hooks import ModelSession

__all__ = [
    "LayerChoice",
    "TokenGrid",
    "cached_layer_choice",
    "describe_layer",
    "find_cam_layer",
    "find_gap_classifier",
    "install_token_grid",
    "resolve_layer",
]

MAX_PREFIX_TOKENS = 8


@dataclass
class LayerChoice:
    """A layer for CAM methods and how to read a spatial map from it."""

    name: str
    module: nn.Module
    output_shape: tuple[int, ...]
    token_grid: tuple[int, int] | None = None
    """(h, w) when the layer outputs tokens (N, prefix + h*w, C); None for (N, C, H, W)."""
    prefix: int = 0
    """Number of tokens before the grid (class token, distillation token)."""


@dataclass
class _Record:
    order: int
    name: str
    module: nn.Module
    shape: tuple[int, ...]
    calls: int = 1
    tensor: Tensor | None = field(default=None, repr=False)


def _first_tensor(output: Any) -> Tensor | None:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    return None


_CHOICES: weakref.WeakKeyDictionary[nn.Module, dict[Any, LayerChoice]] = weakref.WeakKeyDictionary()


def cached_layer_choice(
    model: nn.Module, key: Any, compute: Callable[[], LayerChoice]
) -> LayerChoice:
    """``compute()`` once per model and input shape: the layer search costs a forward pass.

    A cached choice is used again only while its module is still at the same name in the model.
    """
    cached = _CHOICES.get(model, {}).get(key)
    if cached is not None:
        try:
            if model.get_submodule(cached.name) is cached.module:
                return cached
        except AttributeError:
            pass
    choice = compute()
    _CHOICES.setdefault(model, {})[key] = choice
    return choice


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """The (name, module) for ``layer`` given by dotted name or as a submodule of ``model``.

    Example
    -------
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    >>> resolve_layer(net, "0")[0]
    '0'
    """
    names = {name: module for name, module in model.named_modules() if name}
    if isinstance(layer, str):
        if layer in names:
            return layer, names[layer]
        close = difflib.get_close_matches(layer, list(names), n=5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"layer: the model has no submodule named {layer!r}{hint}")
    if isinstance(layer, nn.Module):
        for name, module in names.items():
            if module is layer:
                return name, module
        raise ValueError("layer: the module given is not a submodule of model")
    raise TypeError(
        f"layer: expected a module name (str), an nn.Module or None, got {type(layer).__name__}"
    )


def _trace(
    model: nn.Module,
    forward: Callable[[Tensor], Tensor],
    example: Tensor,
    *,
    keep: Callable[[tuple[int, ...]], bool] = lambda shape: False,
    with_grad: bool = False,
) -> tuple[list[_Record], Tensor, Tensor]:
    """One forward with a hook on every submodule; records output shapes in finishing order."""
    records: dict[int, _Record] = {}
    order = [0]
    session = ModelSession(model)

    def make_hook(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            tensor = _first_tensor(output)
            if tensor is None:
                return
            key = id(module)
            if key in records:
                records[key].calls += 1
                records[key].order = order[0]
            else:
                shape = tuple(tensor.shape)
                records[key] = _Record(
                    order[0], name, module, shape, tensor=tensor if keep(shape) else None
                )
            order[0] += 1

        return hook

    for name, module in model.named_modules():
        if name:
            session.forward_hook(module, make_hook(name))
    try:
        x = example.detach().clone().requires_grad_(with_grad and example.is_floating_point())
        with torch.set_grad_enabled(with_grad):
            scores = forward(x)
    finally:
        session.close()
    return sorted(records.values(), key=lambda r: r.order), scores, x


def _token_grid(
    shape: tuple[int, ...], image_hw: tuple[int, int]
) -> tuple[int, tuple[int, int]] | None:
    if len(shape) != 3:
        return None
    tokens = shape[1]
    for prefix in (1, 0, *range(2, MAX_PREFIX_TOKENS + 1)):
        grid = is_perfect_grid(tokens - prefix, *image_hw)
        if grid is not None:
            return prefix, grid
    return None


def _is_spatial(shape: tuple[int, ...]) -> bool:
    return len(shape) == 4 and shape[2] * shape[3] > 1


def _candidates_message(records: list[_Record]) -> str:
    rows = [f"{r.name} {r.shape}" for r in records if len(r.shape) >= 3][-15:]
    if not rows:
        return "no module outputs a tensor with 3 or more dimensions"
    return "candidates (name, output shape): " + "; ".join(rows)


def find_cam_layer(
    model: nn.Module, forward: Callable[[Tensor], Tensor], example: Tensor
) -> LayerChoice:
    """The last module with a spatial map (or a ViT token grid), found by one forward.

    Example
    -------
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    >>> find_cam_layer(net, net, torch.zeros(1, 3, 8, 8)).name
    '1'
    """
    image_hw = (example.shape[-2], example.shape[-1]) if example.ndim == 4 else (1, 1)
    records, _, _ = _trace(model, forward, example[:1])
    once = [r for r in records if r.calls == 1]
    spatial = [r for r in once if _is_spatial(r.shape)]
    last_spatial = spatial[-1].order if spatial else -1
    tokens = [
        r for r in once if r.order > last_spatial and _token_grid(r.shape, image_hw) is not None
    ]
    if tokens:
        choice = _choose_token_layer(model, forward, example[:1], tokens, image_hw)
        if choice is not None:
            return choice
    if spatial:
        r = spatial[-1]
        return LayerChoice(r.name, r.module, r.shape)
    raise ValueError(
        "layer: found no module with a spatial output (N, C, H, W) or a ViT token grid "
        f"(N, 1 + H*W, C); pass layer='name' ({_candidates_message(records)})"
    )


def _choose_token_layer(
    model: nn.Module,
    forward: Callable[[Tensor], Tensor],
    example: Tensor,
    tokens: list[_Record],
    image_hw: tuple[int, int],
) -> LayerChoice | None:
    # The residual stream's width is the most common channel count; this skips
    # qkv and MLP projections (3C, 4C) in favour of block inputs and outputs.
    width = Counter(r.shape[2] for r in tokens).most_common(1)[0][0]
    wanted = {id(r.module) for r in tokens if r.shape[2] == width}
    records, scores, _ = _trace(
        model, forward, example, keep=lambda shape: len(shape) == 3, with_grad=True
    )
    cands = [r for r in records if id(r.module) in wanted and r.tensor is not None and r.calls == 1]
    if not cands:
        return None
    scalar = scores[0].max() if scores.ndim == 2 else scores.sum()
    tensors = [r.tensor for r in cands if r.tensor is not None]  # all of them: cands are filtered
    try:
        grads = torch.autograd.grad(scalar, tensors, allow_unused=True)
    except RuntimeError:
        grads = tuple(torch.ones_like(x) for x in tensors)
    # With a class-token head, the patch tokens after the last attention reach
    # the output only through that token: their gradient is zero and Grad-CAM
    # would be blank there. Key/value projections inside the last attention do
    # get gradient, but the map users expect is the stream entering it (the
    # norm before attention), so linear projections are a last resort.
    useful = [
        (r, _token_grid(r.shape, image_hw))
        for r, g in zip(cands, grads, strict=True)
        if g is not None and bool(g[:, _token_grid(r.shape, image_hw)[0] :].abs().sum() > 0)  # type: ignore[index]
    ]
    ranked = [u for u in useful if not isinstance(u[0].module, nn.Linear)] or useful
    if ranked:
        r, (prefix, grid) = ranked[-1]  # type: ignore[misc]
        return LayerChoice(r.name, r.module, r.shape, token_grid=grid, prefix=prefix)
    return None


def describe_layer(
    model: nn.Module,
    forward: Callable[[Tensor], Tensor],
    example: Tensor,
    name: str,
    module: nn.Module,
) -> LayerChoice:
    """Checks that a layer chosen by the user gives a spatial map, and how to read it."""
    records, _, _ = _trace(model, forward, example[:1])
    found = [r for r in records if r.module is module]
    if not found:
        raise ValueError(f"layer: {name!r} does not run in the model's forward pass")
    r = found[0]
    if r.calls > 1:
        raise ValueError(
            f"layer: {name!r} runs {r.calls} times in one forward pass; choose a module that runs "
            "once (e.g. its parent block)"
        )
    if len(r.shape) == 4:
        return LayerChoice(name, module, r.shape)
    image_hw = (example.shape[-2], example.shape[-1]) if example.ndim == 4 else (1, 1)
    grid = _token_grid(r.shape, image_hw)
    if grid is not None:
        return LayerChoice(name, module, r.shape, token_grid=grid[1], prefix=grid[0])
    raise ValueError(
        f"layer: {name!r} outputs shape {r.shape}; CAM methods need (N, C, H, W) or a token grid "
        f"(N, 1 + H*W, C) ({_candidates_message(records)})"
    )


class TokenGrid(nn.Module):
    """Identity on (N, C, h, w); Captum's layer methods hook it to see ViT tokens as a map."""

    def forward(self, x: Tensor) -> Tensor:
        return x


def install_token_grid(session: ModelSession, choice: LayerChoice) -> nn.Module:
    """Routes the patch tokens of ``choice`` through a :class:`TokenGrid` as (N, C, h, w).

    The class token passes unchanged. Returns the module to give Captum as the layer.
    """
    assert choice.token_grid is not None
    grid = TokenGrid()
    h, w = choice.token_grid
    prefix = choice.prefix

    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        tokens = _first_tensor(output)
        assert tokens is not None
        n, _, c = tokens.shape
        patches = tokens[:, prefix:].transpose(1, 2).reshape(n, c, h, w)
        patches = grid(patches).reshape(n, c, h * w).transpose(1, 2)
        new = torch.cat([tokens[:, :prefix], patches], dim=1)
        if isinstance(output, Tensor):
            return new
        return type(output)([new, *output[1:]]) if isinstance(output, list) else (new, *output[1:])

    session.forward_hook(choice.module, hook)
    return grid


def find_gap_classifier(
    model: nn.Module,
    forward: Callable[[Tensor], Tensor],
    example: Tensor,
    layer: nn.Module,
    layer_name: str,
) -> nn.Linear:
    """The ``nn.Linear`` that maps the global average of ``layer``'s map to the scores.

    Original CAM is exact only for that architecture, so the candidate is
    checked numerically against the model's own output on ``example``.
    """
    seen: list[tuple[str, Any]] = []
    session = ModelSession(model)
    acts: list[Tensor] = []

    def on_layer(module: nn.Module, args: Any, output: Any) -> None:
        acts.append(output.detach())
        seen.append(("layer", None))

    def on_linear(module: nn.Module, args: Any, output: Any) -> None:
        seen.append(("linear", module))

    session.forward_hook(layer, on_layer)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            session.forward_hook(module, on_linear)
    try:
        with torch.no_grad():
            scores = forward(example[:1]).detach()
    finally:
        session.close()
    hint = (
        f"method='cam' needs global average pooling over {layer_name!r} followed by one nn.Linear "
        "giving the model's output (the original CAM architecture); use method='gradcam', which "
        "generalizes it"
    )
    if not acts or acts[0].ndim != 4:
        raise ValueError(hint)
    pooled = acts[0].mean(dim=(2, 3))
    start = next(i for i, (kind, _) in enumerate(seen) if kind == "layer")
    linears = [
        m for kind, m in seen[start:] if kind == "linear" and m.in_features == pooled.shape[1]
    ]
    for linear in reversed(linears):
        with torch.no_grad():
            predicted = linear(pooled)
        if predicted.shape == scores.shape and torch.allclose(
            predicted, scores, rtol=1e-3, atol=1e-4 * (1 + float(scores.abs().max()))
        ):
            return linear
    raise ValueError(hint)
