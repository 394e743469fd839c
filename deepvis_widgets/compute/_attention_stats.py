"""Summaries of attention weights: per-head statistics, rollout, top-k edges."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import torch

from .._arrays import as_numpy
from ._attention_data import AttentionData

__all__ = ["HeadSummary", "attention_rollout", "head_summary", "top_k_edges"]

SortKey = Literal["entropy", "distance", "special"]


@dataclass(frozen=True, eq=False)
class HeadSummary:
    """Per-head statistics, each a float32 array of shape ``(layers, heads)``.

    Attributes
    ----------
    entropy
        Mean over query tokens of the entropy (in nats) of each query's
        attention distribution. Low: focused heads; high: broad heads.
    distance
        Mean over query tokens of ``sum_j a_ij * |i - j|``, in tokens. NaN
        for cross-attention, where positions on the two sides are unrelated.
    special
        Mean over query tokens of the attention mass on special key tokens
        (``[CLS]``, ``[SEP]``, padding, bos, eos), between 0 and 1.

    Example
    -------
    >>> s = head_summary(AttentionData(np.broadcast_to(np.eye(3), (1, 2, 3, 3))))
    >>> s.entropy.tolist(), s.distance.tolist()
    ([[0.0, 0.0]], [[0.0, 0.0]])
    """

    entropy: np.ndarray
    distance: np.ndarray
    special: np.ndarray

    def order(self, by: SortKey = "entropy", *, descending: bool = False) -> np.ndarray:
        """Head indices sorted within each layer, int32 ``(layers, heads)``.

        Row ``l`` lists layer ``l``'s heads from the smallest value of ``by``
        (largest with ``descending=True``). NaNs go last; ties keep head order.

        Example
        -------
        >>> HeadSummary(np.array([[2.0, 1.0]]), np.zeros((1, 2)), np.zeros((1, 2))).order().tolist()
        [[1, 0]]
        """
        if by not in ("entropy", "distance", "special"):
            raise ValueError(f"by: expected 'entropy', 'distance' or 'special', got {by!r}")
        values = np.asarray(getattr(self, by), dtype=np.float64)
        key = -values if descending else values
        key = np.where(np.isnan(key), np.inf, key)
        return np.argsort(key, axis=1, kind="stable").astype(np.int32)


def head_summary(data: AttentionData) -> HeadSummary:
    """Entropy, mean attention distance and attention to special tokens per head.

    Used to sort heads in the model view.

    Parameters
    ----------
    data
        An :class:`AttentionData` (its ``special_mask_k`` marks special keys).

    Returns
    -------
    HeadSummary

    Example
    -------
    >>> w = np.zeros((1, 1, 2, 2)); w[0, 0, :, 0] = 1  # everyone looks at [CLS]
    >>> head_summary(AttentionData(w, ["[CLS]", "x"], special_mask=[1, 0])).special.tolist()
    [[1.0]]
    """
    if not isinstance(data, AttentionData):
        raise TypeError(f"data: expected an AttentionData, got {type(data).__name__}")
    # torch, layer by layer in float32: a 12 x 12 x 512 x 512 model takes well under a second.
    n_layers, n_heads, n_q, n_k = data.shape
    offsets = (torch.arange(n_q)[:, None] - torch.arange(n_k)[None, :]).abs().float()
    special_k = torch.from_numpy(data.special_mask_k)
    entropy = np.empty((n_layers, n_heads), dtype=np.float32)
    distance = np.full((n_layers, n_heads), np.nan, dtype=np.float32)
    special = np.empty((n_layers, n_heads), dtype=np.float32)
    for i in range(n_layers):
        a = torch.from_numpy(data.attention[i])
        entropy[i] = (0.0 - torch.special.xlogy(a, a).sum(-1).mean(-1)).numpy()
        if not data.cross:
            distance[i] = (a * offsets).sum(-1).mean(-1).numpy()
        special[i] = a[..., special_k].sum(-1).mean(-1).numpy()
    return HeadSummary(entropy=entropy, distance=distance, special=special)


def attention_rollout(
    attention: AttentionData | Any, *, residual: float = 0.5, head_fusion: str = "mean"
) -> np.ndarray:
    """Attention rollout across layers (Abnar & Zuidema 2020, "Quantifying Attention Flow").

    Each layer's heads are fused (mean by default), the residual connection
    is modelled as ``A' = residual * I + (1 - residual) * A`` (the paper's
    ``0.5 * A + 0.5 * I`` with the default), rows are renormalised to sum
    to 1, and the layers are multiplied from the first to the last:
    ``R = A'_L @ ... @ A'_1``. ``R[i, j]`` is how much of output token ``i``
    flows from input token ``j``.

    Parameters
    ----------
    attention
        :class:`AttentionData` (self-attention only) or an array
        ``(layers, heads, n, n)``.
    residual
        Weight of the identity, in ``[0, 1]``; 0 is plain attention products.
    head_fusion
        ``"mean"`` (the paper), ``"max"`` or ``"min"`` over heads.

    Returns
    -------
    numpy.ndarray
        float32 ``(n, n)``; each row sums to 1.

    Example
    -------
    >>> a = np.array([[[[1.0, 0.0], [1.0, 0.0]]]])  # one layer, one head: all look at token 0
    >>> attention_rollout(a).tolist()
    [[1.0, 0.0], [0.5, 0.5]]
    """
    if isinstance(attention, AttentionData):
        if attention.cross:
            raise ValueError("attention: rollout needs self-attention; got a cross-attention stack")
        arr = attention.attention
    else:
        arr = as_numpy(attention, "attention")
        if arr.ndim != 4 or arr.shape[-1] != arr.shape[-2]:
            raise ValueError(
                f"attention: expected an array of shape (layers, heads, n, n), got {tuple(arr.shape)}"
            )
    if not isinstance(residual, (int, float)) or not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual: expected a number between 0 and 1, got {residual!r}")
    fusions: dict[str, Callable[..., np.ndarray]] = {"mean": np.mean, "max": np.max, "min": np.min}
    if head_fusion not in fusions:
        raise ValueError(f"head_fusion: expected 'mean', 'max' or 'min', got {head_fusion!r}")
    # Reduce over heads before going to float64: a float64 copy of 12 x 12 x 2048 x 2048 is 4.8 GB.
    if head_fusion == "mean":
        # numpy types a reduction as "scalar or array"; over one axis of a 4-d array it is an array
        fused = cast(np.ndarray, np.mean(arr, axis=1, dtype=np.float64))
    else:
        fused = fusions[head_fusion](arr, axis=1).astype(np.float64)
    n = fused.shape[-1]
    eye = np.eye(n)
    rollout = eye
    for layer in fused:
        step = residual * eye + (1.0 - residual) * layer
        sums = step.sum(-1, keepdims=True)
        step = np.divide(step, sums, out=np.zeros_like(step), where=sums > 0)
        rollout = step @ rollout
    return np.ascontiguousarray(rollout, dtype=np.float32)


def top_k_edges(attention: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest weights per query row, for drawing long inputs.

    Parameters
    ----------
    attention
        Array ``(..., q, n_keys)``, e.g. one layer ``(heads, q, n_keys)``.
    k
        Edges to keep per query; capped at ``n_keys``.

    Returns
    -------
    indices : numpy.ndarray
        int32 ``(..., q, min(k, n_keys))``: key positions, largest weight first.
    values : numpy.ndarray
        float32, same shape: the weights at those positions.

    Example
    -------
    >>> idx, val = top_k_edges(np.array([[0.25, 0.625, 0.125]]), 2)
    >>> idx.tolist(), val.tolist()
    ([[1, 0]], [[0.625, 0.25]])
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: expected a positive int, got {k!r}")
    arr = as_numpy(attention, "attention")
    if arr.ndim < 2:
        raise ValueError(
            f"attention: expected an array (..., q, keys), got shape {tuple(arr.shape)}"
        )
    tensor = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    values, indices = torch.topk(
        tensor, min(int(k), arr.shape[-1]), dim=-1, largest=True, sorted=True
    )
    return (
        np.ascontiguousarray(indices.numpy(), dtype=np.int32),
        np.ascontiguousarray(values.numpy(), dtype=np.float32),
    )
