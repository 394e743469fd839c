"""The normalised container every attention view reads: :class:`AttentionData`.

Kept apart from the code that produces it (``_attention_capture``) and the
code that summarises it (``_attention_stats``) so that each stays short.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import InitVar, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .._arrays import as_numpy

__all__ = ["AttentionData", "causal_from_weights"]


def _as_layer_array(attention: Any, batch_index: int) -> np.ndarray:
    """Turns a transformers-style tuple or an array into float32 ``(layers, heads, q, k)``."""
    if isinstance(attention, (tuple, list)):
        if len(attention) == 0:
            raise ValueError(
                "attention: got an empty tuple. transformers returns one when the model runs with "
                "SDPA or flash attention; load it with attn_implementation='eager' or use "
                "attention_from_model(), which switches to eager attention for the call"
            )
        layers: list[np.ndarray] = []
        for i, layer in enumerate(attention):
            if layer is None:
                raise ValueError(
                    f"attention: layer {i} is None (the model returned no weights for it)"
                )
            arr = as_numpy(layer, f"attention[{i}]")
            if arr.ndim == 4:
                if not -arr.shape[0] <= batch_index < arr.shape[0]:
                    raise IndexError(
                        f"batch_index: expected an index into a batch of {arr.shape[0]}, got {batch_index}"
                    )
                arr = arr[batch_index]
            elif arr.ndim != 3:
                raise ValueError(
                    f"attention[{i}]: expected a (batch, heads, q, k) or (heads, q, k) array per layer, "
                    f"got shape {tuple(arr.shape)}"
                )
            if layers and arr.shape != layers[0].shape:
                raise ValueError(
                    f"attention[{i}]: every layer must have the shape of layer 0 {tuple(layers[0].shape)}, "
                    f"got {tuple(arr.shape)}"
                )
            layers.append(arr)
        stacked = np.stack(layers)
    else:
        stacked = as_numpy(attention, "attention")
        if stacked.ndim == 5:
            if not -stacked.shape[1] <= batch_index < stacked.shape[1]:
                raise IndexError(
                    f"batch_index: expected an index into a batch of {stacked.shape[1]}, got {batch_index}"
                )
            stacked = stacked[:, batch_index]
        elif stacked.ndim != 4:
            raise ValueError(
                "attention: expected an array of shape (layers, heads, q, k) (or (layers, batch, heads, q, k), "
                f"or a tuple of per-layer (batch, heads, q, k) tensors), got shape {tuple(stacked.shape)}"
            )
    if 0 in stacked.shape:
        raise ValueError(
            f"attention: every axis needs at least one entry, got shape {tuple(stacked.shape)}"
        )
    return np.ascontiguousarray(stacked, dtype=np.float32)


def _as_tokens(tokens: Sequence[str] | None, n: int, name: str, axis: str) -> list[str]:
    if tokens is None:
        return [str(i) for i in range(n)]
    if isinstance(tokens, str):
        raise TypeError(f"{name}: expected a sequence of token strings, got one string")
    out = list(tokens)
    for i, tok in enumerate(out):
        if not isinstance(tok, str):
            raise TypeError(f"{name}[{i}]: expected a str, got {type(tok).__name__}")
    if len(out) != n:
        raise ValueError(
            f"{name}: attention has {n} {axis} positions but {len(out)} tokens were given"
        )
    return out


def _as_mask(mask: Any, n: int, name: str) -> np.ndarray:
    if mask is None:
        return np.zeros(n, dtype=bool)
    arr = as_numpy(mask, name)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(
            f"{name}: expected {n} flags (one per token), got shape {tuple(arr.shape)}"
        )
    return np.ascontiguousarray(arr.astype(bool))


def causal_from_weights(attention: np.ndarray) -> bool | None:
    """Whether every weight above the diagonal is exactly zero (``None`` when it cannot tell).

    A softmax over finite scores is never exactly 0, so bidirectional attention
    fails this test while a causal mask (-inf or the dtype minimum) passes it.

    Example
    -------
    >>> causal_from_weights(np.tril(np.ones((1, 1, 3, 3))) / 3)
    True
    """
    q, k = attention.shape[-2:]
    if q != k or q < 2:
        return None
    upper = np.triu(np.ones((q, k), dtype=bool), 1)
    return bool(np.all(attention[..., upper] == 0))


@dataclass(frozen=True, eq=False)
class AttentionData:
    """Attention weights of one stack of layers, with the tokens they connect.

    Parameters
    ----------
    attention
        A transformers-style tuple of per-layer ``(batch, heads, q, k)`` tensors
        (``outputs.attentions``), or an array ``(layers, heads, q, k)`` (also
        ``(layers, batch, heads, q, k)``). Numpy arrays and torch tensors are
        accepted; they are stored as a C-contiguous float32 numpy array, ready
        for ``encode_array(data.attention[layer], "uint8")``.
    tokens
        Query-side tokens (``q`` strings). ``None`` numbers the positions.
    tokens_k
        Key-side tokens (``k`` strings) for cross-attention. ``None`` means
        self-attention: ``q`` must equal ``k`` and ``tokens`` is reused.
    tokens_b
        Index into ``tokens`` where sentence B starts (sentence pairs), or ``None``.
    special_mask, special_mask_k
        Booleans per query / key token: ``[CLS]``, ``[SEP]``, padding, bos,
        eos. ``special_mask_k`` defaults to ``special_mask`` for self-attention.
    causal
        Whether a causal mask was applied (decoder self-attention). ``None``
        reads it from the weights (all zero above the diagonal).
    cross
        Whether queries and keys come from different sequences; ``None`` means
        ``tokens_k is not None``.
    name
        The stack's name, e.g. ``"encoder"``, ``"decoder"``, ``"cross"``.
    layer_names
        One label per layer; defaults to ``"0"``, ``"1"``, ...
    batch_index
        Which example to take when ``attention`` has a batch axis (default 0).

    Attributes
    ----------
    attention : numpy.ndarray
        float32, shape ``(layers, heads, q, k)``, C-contiguous.

    Example
    -------
    >>> w = np.full((2, 3, 4, 4), 0.25)
    >>> data = AttentionData(w, ["[CLS]", "hi", "there", "[SEP]"], special_mask=[1, 0, 0, 1])
    >>> data.shape, data.special_mask.tolist()
    ((2, 3, 4, 4), [True, False, False, True])
    """

    attention: np.ndarray
    tokens: list[str] | None = None
    tokens_k: list[str] | None = None
    tokens_b: int | None = None
    special_mask: np.ndarray | None = None
    special_mask_k: np.ndarray | None = None
    causal: bool | None = None
    cross: bool | None = None
    name: str = "self"
    layer_names: list[str] | None = field(default=None)
    batch_index: InitVar[int] = 0

    if TYPE_CHECKING:
        # What the generated __init__ accepts: the fields above are the types after
        # __post_init__ has normalised them (tensors and tuples to arrays, sequences to lists).
        def __init__(
            self,
            attention: Any,
            tokens: Sequence[str] | None = None,
            tokens_k: Sequence[str] | None = None,
            tokens_b: int | None = None,
            special_mask: Any = None,
            special_mask_k: Any = None,
            causal: bool | None = None,
            cross: bool | None = None,
            name: str = "self",
            layer_names: Sequence[str] | None = None,
            batch_index: int = 0,
        ) -> None: ...

    def __post_init__(self, batch_index: int) -> None:
        if not isinstance(batch_index, (int, np.integer)) or isinstance(batch_index, bool):
            raise TypeError(f"batch_index: expected an int, got {type(batch_index).__name__}")
        arr = _as_layer_array(self.attention, int(batch_index))
        n_layers, _, n_q, n_k = arr.shape
        cross = self.tokens_k is not None if self.cross is None else bool(self.cross)
        if not cross and n_q != n_k:
            raise ValueError(
                f"tokens_k: attention has {n_q} query and {n_k} key positions (cross-attention); "
                "pass the key-side tokens as tokens_k"
            )
        tokens = _as_tokens(self.tokens, n_q, "tokens", "query")
        tokens_k = (
            _as_tokens(self.tokens_k, n_k, "tokens_k", "key") if self.tokens_k is not None else None
        )
        if tokens_k is None:
            tokens_k = tokens if n_q == n_k else [str(i) for i in range(n_k)]
        if self.tokens_b is not None:
            if not isinstance(self.tokens_b, (int, np.integer)) or isinstance(self.tokens_b, bool):
                raise TypeError(
                    f"tokens_b: expected an int index or None, got {type(self.tokens_b).__name__}"
                )
            if not 0 <= self.tokens_b <= n_q:
                raise ValueError(
                    f"tokens_b: expected an index between 0 and {n_q}, got {self.tokens_b}"
                )
        special = _as_mask(self.special_mask, n_q, "special_mask")
        if self.special_mask_k is not None:
            special_k = _as_mask(self.special_mask_k, n_k, "special_mask_k")
        elif not cross:
            special_k = special
        else:
            special_k = np.zeros(n_k, dtype=bool)
        causal = self.causal
        if causal is None:
            causal = False if cross else bool(causal_from_weights(arr))
        names = (
            [str(i) for i in range(n_layers)]
            if self.layer_names is None
            else [str(n) for n in self.layer_names]
        )
        if len(names) != n_layers:
            raise ValueError(
                f"layer_names: attention has {n_layers} layers but {len(names)} names were given"
            )
        if not isinstance(self.name, str):
            raise TypeError(f"name: expected a str, got {type(self.name).__name__}")
        for key, value in (
            ("attention", arr),
            ("tokens", tokens),
            ("tokens_k", tokens_k),
            ("tokens_b", None if self.tokens_b is None else int(self.tokens_b)),
            ("special_mask", special),
            ("special_mask_k", special_k),
            ("causal", bool(causal)),
            ("cross", cross),
            ("layer_names", names),
        ):
            object.__setattr__(self, key, value)

    # Shape helpers -----------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(layers, heads, q, k)``."""
        return tuple(int(s) for s in self.attention.shape)  # type: ignore[return-value]

    @property
    def n_layers(self) -> int:
        """Number of layers (including an appended rollout layer)."""
        return int(self.attention.shape[0])

    @property
    def n_heads(self) -> int:
        """Number of heads per layer."""
        return int(self.attention.shape[1])

    def layer(self, index: int) -> np.ndarray:
        """The float32 ``(heads, q, k)`` weights of one layer (a view, not a copy).

        Example
        -------
        >>> AttentionData(np.ones((2, 1, 1, 1))).layer(-1).shape
        (1, 1, 1)
        """
        if not -self.n_layers <= index < self.n_layers:
            raise IndexError(f"index: expected a layer index below {self.n_layers}, got {index}")
        return self.attention[index]

    def with_rollout(self, *, residual: float = 0.5, head_fusion: str = "mean") -> AttentionData:
        """A copy with attention rollout appended as an extra layer named ``"rollout"``.

        The rollout matrix is repeated for every head so that all layers keep the
        same shape (this costs one more layer of memory). See
        :func:`deepvis_widgets.compute.attention.attention_rollout` for the maths.

        Example
        -------
        >>> eye = np.broadcast_to(np.eye(3), (2, 2, 3, 3))
        >>> AttentionData(eye).with_rollout().layer_names
        ['0', '1', 'rollout']
        """
        from ._attention_stats import attention_rollout

        if "rollout" in self.layer_names:  # type: ignore[operator]
            raise ValueError("with_rollout: this AttentionData already has a rollout layer")
        rolled = attention_rollout(self, residual=residual, head_fusion=head_fusion)
        extra = np.broadcast_to(rolled, (1, self.n_heads, *rolled.shape))
        return replace(
            self,
            attention=np.concatenate([self.attention, extra]),
            layer_names=[*self.layer_names, "rollout"],  # type: ignore[misc]
        )

    def __repr__(self) -> str:
        layers, heads, q, k = self.shape
        side = f"q={q}, k={k}" if self.cross else f"tokens={q}"
        return (
            f"AttentionData(name={self.name!r}, layers={layers}, heads={heads}, {side}, "
            f"causal={self.causal}, cross={self.cross}, tokens_b={self.tokens_b})"
        )
