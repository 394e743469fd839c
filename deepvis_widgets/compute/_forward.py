"""The forward pass as attribution methods see it: output, target, input checks.

Captum wants a forward function that returns one row of scores per example
and a target index into it. Users have models that return dicts, tuples or
``transformers`` outputs with ``.logits``, and they want to say "the predicted
class" or "this function of the output". :class:`ForwardWrapper` turns any of
those into what Captum expects, without touching the user's model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._hooks import preserved_model

__all__ = [
    "ForwardWrapper",
    "Predictions",
    "TargetSpec",
    "check_inputs",
    "model_device",
    "output_scores",
    "resolve_target",
    "top_predictions",
]

TargetType = None | int | Sequence[int] | Tensor | np.ndarray | Callable[[Any], Tensor]


def output_scores(output: Any) -> Tensor:
    """The score tensor inside a model output.

    A tensor is returned as is; otherwise ``.logits`` (``transformers``
    outputs), the ``"logits"`` key of a mapping, or the first element of a
    tuple or list.

    Example
    -------
    >>> output_scores({"logits": torch.zeros(2, 3)}).shape
    torch.Size([2, 3])
    """
    if isinstance(output, Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(output, Mapping) and isinstance(output.get("logits"), Tensor):
        return output["logits"]
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    raise TypeError(
        f"model output: expected a tensor, an object with .logits, a dict with 'logits' or a "
        f"tuple starting with a tensor, got {type(output).__name__}; pass target as a callable "
        "that returns one score per example"
    )


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a parameter-free model)."""
    for tensor in model.parameters():
        return tensor.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def check_inputs(
    inputs: Any,
    *,
    name: str = "inputs",
    floating: bool = True,
    min_ndim: int = 2,
    device: torch.device | None = None,
) -> Tensor:
    """Validates a batch and returns it as a detached tensor on ``device``.

    Raises ``TypeError`` for non-tensors and (with ``floating``) integer
    dtypes, ``ValueError`` for a missing batch dimension, an empty batch or
    NaN/infinite values.

    Example
    -------
    >>> check_inputs(torch.zeros(2, 3)).shape
    torch.Size([2, 3])
    """
    if isinstance(inputs, np.ndarray):
        inputs = torch.from_numpy(inputs)
    if not isinstance(inputs, Tensor):
        raise TypeError(
            f"{name}: expected a torch.Tensor of shape (N, ...), got {type(inputs).__name__}"
        )
    if inputs.ndim < min_ndim:
        raise ValueError(
            f"{name}: expected a batch with at least {min_ndim} dimensions (N, ...), got shape "
            f"{tuple(inputs.shape)}; add a batch dimension with inputs.unsqueeze(0)"
        )
    if inputs.shape[0] == 0:
        raise ValueError(f"{name}: the batch is empty (shape {tuple(inputs.shape)})")
    if floating:
        if not inputs.is_floating_point():
            raise TypeError(
                f"{name}: expected a floating-point tensor, got {inputs.dtype}; "
                "for token ids use attribute_text"
            )
        finite = torch.isfinite(inputs)
        if not bool(finite.all()):
            bad = (~finite).reshape(inputs.shape[0], -1).any(1).nonzero().flatten().tolist()
            raise ValueError(f"{name}: contains NaN or infinite values (examples {bad[:10]})")
    elif inputs.is_floating_point() or inputs.is_complex():
        raise TypeError(f"{name}: expected integer token ids, got {inputs.dtype}")
    inputs = inputs.detach()
    if device is not None and inputs.device != device:
        inputs = inputs.to(device)
    return inputs


@dataclass
class TargetSpec:
    """What to explain: class indices, a scalar function of the output, or the output itself."""

    indices: Tensor | None = None
    """One class index per example (int64, shape (N,)), or None."""
    function: Callable[[Any], Tensor] | None = None
    """A callable mapping the model output to one score per example."""

    def take(self, start: int, stop: int) -> Tensor | None:
        return None if self.indices is None else self.indices[start:stop]

    def as_list(self) -> list[int] | None:
        return None if self.indices is None else [int(i) for i in self.indices.tolist()]


def resolve_target(target: TargetType, n: int, device: torch.device) -> TargetSpec | None:
    """Normalizes ``target``; returns None when it must be predicted.

    Example
    -------
    >>> resolve_target(3, 2, torch.device("cpu")).indices
    tensor([3, 3])
    """
    if target is None:
        return None
    if callable(target) and not isinstance(target, (Tensor, np.ndarray)):
        return TargetSpec(function=target)
    if isinstance(target, bool):
        raise TypeError("target: expected an int, a sequence of ints, None or a callable, got bool")
    if isinstance(target, (int, np.integer)):
        if target < 0:
            raise ValueError(f"target: expected a class index >= 0, got {int(target)}")
        return TargetSpec(indices=torch.full((n,), int(target), dtype=torch.long, device=device))
    try:
        indices = torch.as_tensor(target)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(
            f"target: expected an int, a sequence of ints, None or a callable, got {type(target).__name__}"
        ) from exc
    if indices.is_floating_point() or indices.dtype == torch.bool:
        raise TypeError(f"target: expected integer class indices, got dtype {indices.dtype}")
    indices = indices.reshape(-1).to(device=device, dtype=torch.long)
    if indices.numel() == 1 and n > 1:
        indices = indices.expand(n).clone()
    if indices.numel() != n:
        raise ValueError(f"target: expected one class per example ({n}), got {indices.numel()}")
    if bool((indices < 0).any()):
        raise ValueError(f"target: expected class indices >= 0, got {indices.min().item()}")
    return TargetSpec(indices=indices)


def check_target_range(scores: Tensor, spec: TargetSpec | None) -> None:
    """Raises a clear error when class indices do not fit the model's output."""
    if spec is None or spec.indices is None:
        return
    if scores.ndim != 2:
        raise ValueError(
            f"target: class indices need a model output of shape (N, classes), got "
            f"{tuple(scores.shape)}; pass target as a callable returning one score per example"
        )
    n_classes = scores.shape[1]
    top = int(spec.indices.max())
    if top >= n_classes:
        raise ValueError(
            f"target: class {top} is out of range for a model with {n_classes} outputs "
            f"(expected 0..{n_classes - 1})"
        )


def predicted_target(scores: Tensor) -> tuple[TargetSpec, Tensor | None]:
    """The predicted class per example from scores, and softmax probabilities when there are classes."""
    if scores.ndim == 1:
        return TargetSpec(), None
    if scores.ndim != 2:
        raise ValueError(
            f"target: the model output has shape {tuple(scores.shape)}; pass target as a callable "
            "returning one score per example"
        )
    if scores.shape[1] == 1:
        return TargetSpec(
            indices=torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
        ), None
    probabilities = torch.softmax(scores.float(), dim=1)
    return TargetSpec(indices=scores.argmax(dim=1)), probabilities


class ForwardWrapper(nn.Module):
    """The user's model seen as Captum wants it; holds no state of its own.

    Parameters
    ----------
    model
        The user's model (not modified).
    target_fn
        Optional callable applied to the raw output; must return one score per
        example.
    forward_kwargs
        Keyword arguments passed to every call (e.g. ``attention_mask``).

    Example
    -------
    >>> net = nn.Linear(3, 2)
    >>> ForwardWrapper(net, target_fn=lambda out: out[:, 1])(torch.zeros(4, 3)).shape
    torch.Size([4])
    """

    def __init__(
        self,
        model: nn.Module,
        target_fn: Callable[[Any], Tensor] | None = None,
        forward_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.target_fn = target_fn
        self.forward_kwargs = dict(forward_kwargs or {})
        self.input_shape: tuple[int, ...] | None = None
        """Shape of the user's whole batch, for error messages."""
        self.on_batch: Callable[[int], None] | None = None
        self.first_call_check: Callable[[Tensor], None] | None = None
        self._calls = 0

    def forward(self, *args: Any) -> Tensor:
        first = self._calls == 0
        self._calls += 1
        if self.on_batch is not None and args and isinstance(args[0], Tensor):
            self.on_batch(int(args[0].shape[0]))
        if first:
            try:
                output = self.model(*args, **self.forward_kwargs)
            except RuntimeError as exc:
                shape = self.input_shape or (
                    tuple(args[0].shape) if args and isinstance(args[0], Tensor) else "?"
                )
                raise ValueError(
                    f"inputs: the model could not run on inputs of shape {shape}: {exc}"
                ) from exc
        else:
            output = self.model(*args, **self.forward_kwargs)
        if self.target_fn is not None:
            scores = self.target_fn(output)
            if not isinstance(scores, Tensor):
                raise TypeError(
                    f"target: the callable must return a tensor, got {type(scores).__name__}"
                )
            if scores.ndim == 2 and scores.shape[1] == 1:
                scores = scores[:, 0]
            if scores.ndim != 1:
                raise ValueError(
                    f"target: the callable must return one score per example (shape (N,)), got "
                    f"shape {tuple(scores.shape)}"
                )
        else:
            scores = output_scores(output)
        if first and self.first_call_check is not None:
            self.first_call_check(scores)
        return scores


@dataclass
class Predictions:
    """Top-k classes of a classifier for a batch."""

    indices: Tensor
    """(N, k) int64 class indices, most probable first."""
    probabilities: Tensor
    """(N, k) softmax probabilities of those classes."""
    logits: Tensor
    """(N, classes) raw scores."""

    def as_lists(self) -> list[list[tuple[int, float]]]:
        """Per example, ``[(class, probability), ...]`` for a target selector."""
        return [
            [(int(c), float(p)) for c, p in zip(row_c, row_p, strict=True)]
            for row_c, row_p in zip(self.indices.tolist(), self.probabilities.tolist(), strict=True)
        ]


def predict_scores(forward: Callable[..., Tensor], inputs: Tensor, *, chunk: int = 64) -> Tensor:
    """Scores for ``inputs`` without gradients, in chunks of ``chunk`` examples."""
    outs = []
    with torch.no_grad():
        for start in range(0, inputs.shape[0], chunk):
            outs.append(forward(inputs[start : start + chunk]).detach())
    return torch.cat(outs)


def top_predictions(
    model: nn.Module,
    inputs: Tensor,
    k: int = 5,
    *,
    forward_kwargs: dict[str, Any] | None = None,
) -> Predictions:
    """The ``k`` most probable classes of ``model`` for each example.

    Runs in eval mode without gradients; the model comes back unchanged.

    Parameters
    ----------
    model
        A classifier returning (N, classes) scores (or a dict/tuple/``.logits`` holding them).
    inputs
        A batch (N, ...): images, features or token ids.
    k
        How many classes (capped at the number of classes).
    forward_kwargs
        Extra keyword arguments for the model (e.g. ``attention_mask``).

    Returns
    -------
    Predictions
        ``indices`` and ``probabilities`` of shape (N, k), and the full ``logits``.

    Example
    -------
    >>> net = nn.Linear(4, 10)
    >>> top_predictions(net, torch.randn(2, 4), k=3).indices.shape
    torch.Size([2, 3])
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k: expected a positive int, got {k!r}")
    device = model_device(model)
    floating = bool(isinstance(inputs, Tensor) and inputs.is_floating_point())
    inputs = check_inputs(inputs, floating=floating, device=device)
    with preserved_model(model):
        logits = predict_scores(ForwardWrapper(model, forward_kwargs=forward_kwargs), inputs)
    if logits.ndim != 2:
        raise ValueError(f"model output: expected shape (N, classes), got {tuple(logits.shape)}")
    probs = torch.softmax(logits.float(), dim=1)
    top = probs.topk(min(k, probs.shape[1]), dim=1)
    return Predictions(indices=top.indices, probabilities=top.values, logits=logits)


def is_perfect_grid(tokens: int, height: int, width: int) -> tuple[int, int] | None:
    """A (h, w) grid with ``h * w == tokens`` and the aspect ratio of a height x width image."""
    if tokens < 4:
        return None
    h = round(math.sqrt(tokens * height / width))
    if h < 2 or tokens % h:
        return None
    w = tokens // h
    if w < 2 or abs(w - round(h * width / height)) > 0:
        return None
    return h, w
