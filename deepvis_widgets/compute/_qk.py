"""Query and key vectors of one attention head, for the neuron view.

The vectors are read by forward hooks on the attention module's query and key
projections, reshaped into heads, and (for Llama-like models) passed through
the model's own rotary embedding, so that ``softmax(q . k * scaling)`` with
the causal mask reproduces the weights the model reports. The reproduction
error is measured on every call.
"""

from __future__ import annotations

import difflib
import sys
import warnings
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ._attention_capture import _call, _causal_hint, _run_transformers
from ._attention_data import causal_from_weights
from ._hooks import preserved_model

__all__ = ["QueryKeyData", "query_key"]

# (query child, key child, fused): how known architectures name their projections.
_PRESETS: tuple[tuple[str, str, bool], ...] = (
    ("query", "key", False),  # BERT, RoBERTa, MiniLM, ELECTRA
    ("q_proj", "k_proj", False),  # Llama, Mistral, Qwen, BART, OPT, Whisper
    ("c_attn", "c_attn", True),  # GPT-2 (Conv1D producing q, k, v side by side)
    ("q", "k", False),  # T5 (no scaling and a position bias: reported, not reproduced)
)
_HEAD_ATTRS = ("num_heads", "num_attention_heads", "n_head", "n_heads")
_HEAD_DIM_ATTRS = ("head_dim", "attention_head_size")


@dataclass(frozen=True, eq=False)
class QueryKeyData:
    """Query/key vectors and scores of one head, as BertViz's neuron view shows them.

    Attributes
    ----------
    query : numpy.ndarray
        float32 ``(q, d)``: the query vector of every query token.
    key : numpy.ndarray
        float32 ``(k, d)``: the key vector of every key token.
    scores : numpy.ndarray
        float32 ``(q, k)``: scaled dot products ``query @ key.T * scaling``,
        before masking.
    mask : numpy.ndarray
        bool ``(q, k)``: True where a query may attend to a key (causal mask).
    attention : numpy.ndarray
        float32 ``(q, k)``: softmax of the masked scores.
    tokens, tokens_k : list[str]
        Query-side and key-side tokens.
    layer, head : int
        Where in the model this is.
    stack : str
        ``"encoder"``, ``"decoder"``, ``"cross"`` (or the module path for
        models hooked by name).
    scaling : float
        The factor applied to ``q . k`` (``1/sqrt(d)`` unless the model says otherwise).
    causal : bool
        Whether the causal mask was applied.
    max_error : float
        Largest absolute difference between ``attention`` and the model's own
        weights for this head; NaN when the model reports none.
    source : str
        What was captured (module names, and whether rotary embedding was applied).

    Example
    -------
    >>> qk = query_key(bert, tok, "The cat sat.", layer=0, head=3)  # doctest: +SKIP
    >>> qk.product(1).shape  # token 1's query times every key, elementwise  # doctest: +SKIP
    (6, 32)
    """

    query: np.ndarray
    key: np.ndarray
    scores: np.ndarray
    mask: np.ndarray
    attention: np.ndarray
    tokens: list[str]
    tokens_k: list[str]
    layer: int
    head: int
    stack: str
    scaling: float
    causal: bool
    max_error: float
    source: str

    def product(self, query_index: int) -> np.ndarray:
        """Elementwise product of one query vector with every key: float32 ``(k, d)``.

        Its rows sum (times ``scaling``) to that query's row of ``scores``.

        Example
        -------
        >>> qk.product(0).sum(-1) * qk.scaling  # == qk.scores[0]  # doctest: +SKIP
        """
        n = self.query.shape[0]
        if (
            isinstance(query_index, bool)
            or not isinstance(query_index, (int, np.integer))
            or not -n <= query_index < n
        ):
            raise IndexError(
                f"query_index: expected a query position below {n}, got {query_index!r}"
            )
        return np.ascontiguousarray(self.query[query_index][None, :] * self.key, dtype=np.float32)

    def __repr__(self) -> str:
        return (
            f"QueryKeyData(stack={self.stack!r}, layer={self.layer}, head={self.head}, q={self.query.shape[0]}, "
            f"k={self.key.shape[0]}, d={self.query.shape[1]}, max_error={self.max_error:.2e}, source={self.source!r})"
        )


@dataclass
class _Target:
    """One attention module and the children whose outputs hold its queries and keys."""

    module: nn.Module
    name: str
    q_child: nn.Module
    k_child: nn.Module
    q_name: str
    k_name: str
    fused: bool


def _find_targets(model: nn.Module) -> list[_Target]:
    """Attention modules recognised by the names of their projections."""
    targets = []
    for name, module in model.named_modules():
        children = dict(module.named_children())
        for q_name, k_name, fused in _PRESETS:
            q, k = children.get(q_name), children.get(k_name)
            if q is None or k is None or not hasattr(q, "weight") or not hasattr(k, "weight"):
                continue
            # Qwen3/OLMo-2 normalise q and k after the projection: read the normalised vectors.
            if (
                not fused
                and isinstance(children.get("q_norm"), nn.Module)
                and isinstance(children.get("k_norm"), nn.Module)
            ):
                q_name, k_name, q, k = "q_norm", "k_norm", children["q_norm"], children["k_norm"]
            targets.append(_Target(module, name, q, k, q_name, k_name, fused))
            break
    return targets


def _target_by_name(model: nn.Module, query_module: str, key_module: str, layer: int) -> _Target:
    modules = dict(model.named_modules())
    names = {}
    for arg, pattern in (("query_module", query_module), ("key_module", key_module)):
        if not isinstance(pattern, str):
            raise TypeError(f"{arg}: expected a module name (str), got {type(pattern).__name__}")
        name = pattern.format(layer=layer)
        if name not in modules:
            close = difflib.get_close_matches(name, list(modules), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"{arg}: the model has no module named {name!r}{hint}")
        names[arg] = name
    q_name, k_name = names["query_module"], names["key_module"]
    parent_name = q_name.rpartition(".")[0]
    return _Target(
        modules[parent_name],
        parent_name,
        modules[q_name],
        modules[k_name],
        q_name,
        k_name,
        q_name == k_name,
    )


def _head_layout(
    target: _Target, q_width: int, k_width: int, num_heads: int | None, config: Any
) -> tuple[int, int, int]:
    """(query heads, key heads, head dim) from the module's attributes or ``num_heads``."""
    if num_heads is not None:
        if (
            isinstance(num_heads, bool)
            or not isinstance(num_heads, int)
            or num_heads < 1
            or q_width % num_heads
        ):
            raise ValueError(
                f"num_heads: expected a positive int dividing the query width {q_width}, got {num_heads!r}"
            )
        head_dim = q_width // num_heads
    else:
        head_dim = next(
            (
                int(v)
                for a in _HEAD_DIM_ATTRS
                if isinstance(v := getattr(target.module, a, None), int)
            ),
            0,
        )
        if not head_dim:
            heads = next(
                (
                    int(v)
                    for a in _HEAD_ATTRS
                    if isinstance(v := getattr(target.module, a, None), int)
                ),
                0,
            )
            heads = heads or int(getattr(config, "num_attention_heads", 0) or 0)
            if not heads or q_width % heads:
                raise ValueError(
                    f"num_heads: could not read the number of heads of module {target.name!r}; pass num_heads="
                )
            head_dim = q_width // heads
    if q_width % head_dim or k_width % head_dim:
        raise ValueError(
            f"num_heads: query width {q_width} and key width {k_width} do not split into heads of {head_dim}"
        )
    return q_width // head_dim, k_width // head_dim, head_dim


def _split_heads(x: torch.Tensor, head_dim: int) -> torch.Tensor:
    """(batch, seq, ...) -> (batch, heads, seq, head_dim)."""
    b, s = x.shape[:2]
    return x.reshape(b, s, -1, head_dim).transpose(1, 2)


def query_key(
    model: nn.Module,
    tokenizer: Any,
    text: Any,
    layer: int,
    head: int,
    *,
    text_b: str | None = None,
    stack: str | None = None,
    decoder_text: str | None = None,
    max_length: int | None = None,
    query_module: str | None = None,
    key_module: str | None = None,
    num_heads: int | None = None,
    scaling: float | None = None,
    causal: bool | None = None,
    tokens: list[str] | None = None,
    tolerance: float = 1e-4,
) -> QueryKeyData:
    """Query and key vectors of one head for a text, and the attention they produce.

    What is captured: the outputs of the attention module's query and key
    projections, split into heads: ``query``/``key`` Linear modules
    (BERT-like), the first and second thirds of ``c_attn`` (GPT-2), or
    ``q_proj``/``k_proj`` (Llama, Mistral, BART, ...), read after ``q_norm``/
    ``k_norm`` where the model has them (Qwen3). For Llama-like models the
    captured vectors are then passed through the model's own
    ``apply_rotary_pos_emb`` with the ``position_embeddings`` the attention
    module received, so they are the post-rotary vectors whose dot products
    the softmax sees. With grouped-query attention, ``key`` is the shared
    key head that query head ``head`` uses. Position biases added to the
    scores (T5, ALiBi) and sliding windows are not modelled: ``max_error``
    then shows the gap and a warning is raised.

    Parameters
    ----------
    model
        A transformers model, or any module when ``query_module`` and
        ``key_module`` are given.
    tokenizer
        Its tokenizer; ``None`` for a non-transformers model, in which case
        ``text`` is what the model is called with (tensor, tuple or dict).
    text
        Input text (or model inputs, see ``tokenizer``).
    layer, head
        Layer index within the stack and head index within the layer.
    text_b, stack, decoder_text, max_length
        As in :func:`attention_from_model`; ``stack`` picks ``"encoder"``,
        ``"decoder"`` or ``"cross"`` in encoder-decoder models.
    query_module, key_module
        Module names (``model.named_modules()``), ``{layer}`` is replaced by
        ``layer``, e.g. ``"blocks.{layer}.attn.q"``. The same name for both
        means a fused projection whose output is q, k, v side by side.
    num_heads
        Heads in that module, when its attributes do not say.
    scaling
        Factor on ``q . k``; default the module's ``scaling`` or ``1/sqrt(d)``.
    causal
        Apply the causal mask; default the module's ``is_causal``.
    tokens
        Token labels for a non-transformers model (default position numbers).
    tolerance
        Warn when the reproduced attention differs from the model's by more.

    Returns
    -------
    QueryKeyData

    Example
    -------
    >>> qk = query_key(gpt2, tok, "The cat sat on the mat", layer=1, head=0)  # doctest: +SKIP
    >>> qk.causal, qk.max_error < 1e-4  # doctest: +SKIP
    (True, True)
    """
    if (query_module is None) != (key_module is None):
        raise ValueError("query_module, key_module: give both module names or neither")
    for arg, value in (("layer", layer), ("head", head)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{arg}: expected a non-negative int, got {value!r}")
    if tokenizer is None and query_module is None:
        raise ValueError(
            "query_module: without a tokenizer the model is not a transformers model; name its query/key modules"
        )
    if tokenizer is not None and tokens is not None:
        raise ValueError(
            "tokens: only for models without a tokenizer; the tokenizer names the tokens"
        )
    config = getattr(model, "config", None)
    if query_module is not None:
        assert key_module is not None
        targets = [_target_by_name(model, query_module, key_module, int(layer))]
    else:
        targets = _find_targets(model)
        if not targets:
            raise ValueError(
                "query_module: found no attention module with query/key, q_proj/k_proj or c_attn projections; "
                "pass query_module= and key_module="
            )

    child_out: dict[int, list[torch.Tensor]] = defaultdict(list)
    calls: list[tuple[_Target, list[torch.Tensor], dict[str, Any], torch.Tensor, torch.Tensor]] = []

    def child_hook(module: nn.Module, args: Any, output: Any) -> None:
        child_out[id(module)].append((output[0] if isinstance(output, tuple) else output).detach())

    def make_parent_hook(target: _Target) -> Any:
        def hook(module: nn.Module, args: Any, kwargs: dict[str, Any], output: Any) -> None:
            q_list, k_list = child_out[id(target.q_child)], child_out[id(target.k_child)]
            if not q_list or not k_list:
                return
            q_out = q_list.pop()
            k_out = q_out if target.fused else k_list.pop()
            # Most modules return (output, weights); T5 returns (output, position_bias, weights).
            returned = (
                [t for t in output[1:] if isinstance(t, torch.Tensor)]
                if isinstance(output, tuple)
                else []
            )
            calls.append((target, returned, kwargs, q_out, k_out))

        return hook

    reference: torch.Tensor | None = None
    stack_name = stack or ""
    tokens_q: list[str]
    tokens_k: list[str]
    with preserved_model(model) as session:
        for target in targets:
            session.forward_hook(target.q_child, child_hook)
            if not target.fused:
                session.forward_hook(target.k_child, child_hook)
            session.forward_hook(target.module, make_parent_hook(target), with_kwargs=True)
        if tokenizer is not None:
            raw, side, dec_side = _run_transformers(
                model, tokenizer, text, text_b, decoder_text, max_length, session
            )
            if dec_side is None:
                layers_raw = raw[""]
                tokens_q = tokens_k = side.tokens
                # Named as attention_from_model names it.
                seen_causal = causal_from_weights(layers_raw[0][0].float().cpu().numpy())
                seen_causal = _causal_hint(model) if seen_causal is None else seen_causal
                stack_name = "decoder" if seen_causal else "encoder"
                if stack is not None and stack != stack_name:
                    raise ValueError(f"stack: this model has {stack_name!r}, not {stack!r}")
            else:
                stack_name = stack or "encoder"
                if stack_name not in raw:
                    raise ValueError(
                        f"stack: expected 'encoder', 'decoder' or 'cross', got {stack!r}"
                    )
                layers_raw = raw[stack_name]
                tokens_q = side.tokens if stack_name == "encoder" else dec_side.tokens
                tokens_k = dec_side.tokens if stack_name == "decoder" else side.tokens
            if layer >= len(layers_raw):
                raise ValueError(
                    f"layer: the {stack_name} stack has {len(layers_raw)} layers, got {layer}"
                )
            reference = layers_raw[layer][0].detach().cpu()
        else:
            with torch.no_grad():
                _call(model, text)
    if reference is not None:
        wanted = layers_raw[layer]
        found = [c for c in calls if any(t is wanted for t in c[1])]
        found = found or [
            c
            for c in calls
            if any(t.shape == wanted.shape and torch.equal(t, wanted) for t in c[1])
        ]
        if not found:
            raise RuntimeError(
                f"could not tell which attention module computed layer {layer} of the {stack_name} stack; "
                "pass query_module= and key_module="
            )
        target, _, kwargs, q_out, k_out = found[0]
    else:
        if not calls:
            raise RuntimeError(
                f"query_module: module {targets[0].name!r} was not called during the forward pass"
            )
        target, _, kwargs, q_out, k_out = calls[-1]
        stack_name = stack or target.name
        tokens_q = tokens if tokens is not None else [str(i) for i in range(q_out.shape[1])]
        tokens_k = (
            tokens_q
            if k_out.shape[1] == q_out.shape[1]
            else [str(i) for i in range(k_out.shape[1])]
        )
        if len(tokens_q) != q_out.shape[1]:
            raise ValueError(
                f"tokens: the model saw {q_out.shape[1]} positions but {len(tokens_q)} tokens were given"
            )

    # Everything below runs on the CPU in float32/float64, whatever the model's device and dtype.
    q_flat = q_out.reshape(*q_out.shape[:2], -1).float().cpu()
    k_flat = k_out.reshape(*k_out.shape[:2], -1).float().cpu()
    if target.fused:
        width = q_flat.shape[-1] // 3
        q_flat, k_flat = q_flat[..., :width], k_flat[..., width : 2 * width]
    n_q_heads, n_k_heads, head_dim = _head_layout(
        target, q_flat.shape[-1], k_flat.shape[-1], num_heads, config
    )
    if head >= n_q_heads:
        raise ValueError(f"head: layer {layer} has {n_q_heads} heads, got {head}")
    if n_q_heads % n_k_heads:
        raise ValueError(f"num_heads: {n_q_heads} query heads cannot share {n_k_heads} key heads")
    q = _split_heads(q_flat, head_dim)
    k = _split_heads(k_flat, head_dim)
    source = (
        f"{target.q_name}/{target.k_name} outputs of {target.name!r}"
        if not target.fused
        else f"{target.q_name} (q, k thirds) of {target.name!r}"
    )
    rotary = kwargs.get("position_embeddings")
    apply_rotary = getattr(
        sys.modules.get(type(target.module).__module__), "apply_rotary_pos_emb", None
    )
    if rotary is not None and apply_rotary is not None:
        cos, sin = rotary
        q, k = apply_rotary(q, k, cos.float().cpu(), sin.float().cpu())
        source += ", after rotary position embedding"

    q_head = q[0, head].double()
    k_head = k[0, head // (n_q_heads // n_k_heads)].double()
    if scaling is None:
        module_scaling = getattr(target.module, "scaling", None)
        scaling = (
            float(module_scaling) if isinstance(module_scaling, (int, float)) else head_dim**-0.5
        )
    is_cross = q_head.shape[0] != k_head.shape[0] or stack_name == "cross"
    if causal is None:
        causal = bool(getattr(target.module, "is_causal", False)) and not is_cross
    scores = (q_head @ k_head.T) * scaling
    n_q, n_k = scores.shape
    mask = torch.ones(n_q, n_k, dtype=torch.bool)
    if causal:
        mask = torch.tril(mask, diagonal=n_k - n_q)
    attention = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    max_error = float("nan")
    if reference is not None:
        max_error = float((attention - reference[head].double()).abs().max())
        if max_error > tolerance:
            warnings.warn(
                f"query_key: softmax(q.k) differs from the model's attention by {max_error:.2e} at layer {layer}, "
                f"head {head}; the model may add position biases (T5, ALiBi) or use a window that q.k does not show",
                UserWarning,
                stacklevel=2,
            )
    return QueryKeyData(
        query=np.ascontiguousarray(q_head.numpy(), dtype=np.float32),
        key=np.ascontiguousarray(k_head.numpy(), dtype=np.float32),
        scores=np.ascontiguousarray(scores.numpy(), dtype=np.float32),
        mask=mask.numpy(),
        attention=np.ascontiguousarray(attention.numpy(), dtype=np.float32),
        tokens=list(tokens_q),
        tokens_k=list(tokens_k),
        layer=int(layer),
        head=int(head),
        stack=stack_name,
        scaling=float(scaling),
        causal=bool(causal),
        max_error=max_error,
        source=source,
    )
