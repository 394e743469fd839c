"""Getting attention weights out of models: transformers models and ``nn.MultiheadAttention``.

transformers is optional: nothing here imports it. A transformers model is
recognised by its ``config`` and called like any module.
"""

from __future__ import annotations

import inspect
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ._attention_data import AttentionData, causal_from_weights
from ._hooks import ModelSession, preserved_model

__all__ = [
    "attention_from_model",
    "attention_stacks_from_model",
    "capture_attention",
    "capture_attention_stacks",
    "use_eager_attention",
]

_STACK_FIELDS = {
    "encoder": "encoder_attentions",
    "decoder": "decoder_attentions",
    "cross": "cross_attentions",
}


# Eager attention -------------------------------------------------------------
def _transformers_configs(model: nn.Module) -> list[Any]:
    """Every distinct transformers config reachable from the model and its sub-configs."""
    seen: dict[int, Any] = {}
    queue = [getattr(m, "config", None) for m in model.modules()]
    while queue:
        cfg = queue.pop()
        if cfg is None or id(cfg) in seen or not hasattr(cfg, "_attn_implementation_internal"):
            continue
        seen[id(cfg)] = cfg
        queue.extend(getattr(cfg, key, None) for key in getattr(cfg, "sub_configs", {}) or {})
    return list(seen.values())


def use_eager_attention(session: ModelSession) -> bool:
    """Switches a transformers model to eager attention until ``session`` ends.

    SDPA and flash kernels never form the weight matrix, and transformers 5
    then returns an empty ``attentions`` tuple (with only a log message).
    Every config reachable from the model (including sub-configs of
    encoder-decoder and multimodal models) is set to ``"eager"`` through
    :meth:`ModelSession.set_attr`, so the previous value comes back on exit.

    Returns
    -------
    bool
        Whether anything was switched (``False`` for non-transformers models or
        models already on eager attention).

    Example
    -------
    >>> with preserved_model(model) as session:  # doctest: +SKIP
    ...     use_eager_attention(session)
    ...     out = model(**inputs, output_attentions=True)
    """
    switched = False
    for cfg in _transformers_configs(session.model):
        if cfg._attn_implementation_internal != "eager":
            session.set_attr(cfg, "_attn_implementation_internal", "eager")
            switched = True
    return switched


# Running a transformers model ------------------------------------------------
@dataclass
class _Side:
    """The tokens of one side (encoder input or decoder input)."""

    input_ids: torch.Tensor
    tokens: list[str]
    special: np.ndarray
    tokens_b: int | None


def _check_text(value: Any, name: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a str, got {type(value).__name__}")


def _encode(
    tokenizer: Any, text: str, text_b: str | None, max_length: int | None, *, target: bool
) -> tuple[dict[str, Any], _Side]:
    kwargs: dict[str, Any] = {"return_tensors": "pt", "return_special_tokens_mask": True}
    if max_length is not None:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length: expected a positive int or None, got {max_length!r}")
        kwargs.update(truncation=True, max_length=max_length)
    if not callable(tokenizer):
        raise TypeError(
            f"tokenizer: expected a transformers tokenizer (callable), got {type(tokenizer).__name__}"
        )
    enc = tokenizer(text_target=text, **kwargs) if target else tokenizer(text, text_b, **kwargs)
    ids = enc["input_ids"]
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.shape[0] != 1:
        raise ValueError(
            "tokenizer: expected it to return input_ids of shape (1, n) for return_tensors='pt'"
        )
    tokens = [str(t) for t in tokenizer.convert_ids_to_tokens(ids[0].tolist())]
    special = np.zeros(len(tokens), dtype=bool)
    if "special_tokens_mask" in enc:
        special |= enc["special_tokens_mask"][0].numpy().astype(bool)
    else:
        specials = set(getattr(tokenizer, "all_special_tokens", []))
        special |= np.array([t in specials for t in tokens], dtype=bool)
    if "attention_mask" in enc:
        special |= enc["attention_mask"][0].numpy() == 0
    tokens_b = None
    if text_b is not None:
        try:
            seq = enc.sequence_ids(0)
        except (ValueError, AttributeError):  # slow tokenizers have no sequence ids
            seq = None
        if seq is not None and 1 in seq:
            tokens_b = seq.index(1)
        elif "token_type_ids" in enc and bool((enc["token_type_ids"][0] == 1).any()):
            tokens_b = int((enc["token_type_ids"][0] == 1).nonzero()[0, 0])
    model_inputs = {
        k: v for k, v in enc.items() if k != "special_tokens_mask" and isinstance(v, torch.Tensor)
    }
    return model_inputs, _Side(ids, tokens, special, tokens_b)


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _accepted(model: nn.Module, inputs: dict[str, Any]) -> dict[str, Any]:
    """Drops tokenizer outputs the model's forward does not name (e.g. token_type_ids for Llama)."""
    params = inspect.signature(model.forward).parameters
    if "input_ids" not in params and any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(inputs)  # forward(**kwargs): it cannot tell us what it takes
    return {k: v for k, v in inputs.items() if k in params}


def _run_transformers(
    model: nn.Module,
    tokenizer: Any,
    text: str,
    text_b: str | None,
    decoder_text: str | None,
    max_length: int | None,
    session: ModelSession,
) -> tuple[dict[str, tuple[torch.Tensor, ...]], _Side, _Side | None]:
    """One forward pass with attentions; returns the raw per-stack tuples and the tokens."""
    _check_text(text, "text")
    _check_text(text_b, "text_b", optional=True)
    _check_text(decoder_text, "decoder_text", optional=True)
    config = getattr(model, "config", None)
    if config is None:
        raise TypeError(
            f"model: expected a transformers model (with a .config), got {type(model).__name__}; "
            "for other models use capture_attention(model, inputs)"
        )
    encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
    if decoder_text is not None and not encoder_decoder:
        raise ValueError("decoder_text: only encoder-decoder models take a decoder-side text")
    inputs, side = _encode(tokenizer, text, text_b, max_length, target=False)
    dec_side = None
    if encoder_decoder:
        dec_inputs, dec_side = _encode(
            tokenizer, text if decoder_text is None else decoder_text, None, max_length, target=True
        )
        inputs["decoder_input_ids"] = dec_inputs["input_ids"]
        if "attention_mask" in dec_inputs:
            inputs["decoder_attention_mask"] = dec_inputs["attention_mask"]
    device = _model_device(model)
    inputs = {k: v.to(device) for k, v in _accepted(model, inputs).items()}
    if "use_cache" in inspect.signature(model.forward).parameters:
        inputs["use_cache"] = False
    use_eager_attention(session)
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    fields = _STACK_FIELDS if encoder_decoder else {"": "attentions"}
    raw: dict[str, tuple[torch.Tensor, ...]] = {}
    for name, attr in fields.items():
        value = getattr(out, attr, None)
        if not value or any(v is None for v in value):
            raise RuntimeError(
                f"model returned no {attr} even with eager attention; its attention layers may not "
                "support output_attentions (try loading it with attn_implementation='eager')"
            )
        raw[name] = tuple(value)
    return raw, side, dec_side


def _causal_hint(model: nn.Module) -> bool:
    """Whether the model's attention modules declare themselves causal (for one-token inputs)."""
    return any(getattr(m, "is_causal", False) is True for m in model.modules())


def _stacks(
    model: nn.Module, raw: dict[str, tuple[torch.Tensor, ...]], side: _Side, dec_side: _Side | None
) -> dict[str, AttentionData]:
    if dec_side is None:
        arr = AttentionData(
            raw[""], side.tokens, causal=False
        ).attention  # validated (layers, heads, n, n)
        causal = causal_from_weights(arr)
        if causal is None:
            causal = _causal_hint(model)
        name = "decoder" if causal else "encoder"
        return {
            name: AttentionData(
                arr,
                side.tokens,
                tokens_b=side.tokens_b,
                special_mask=side.special,
                causal=causal,
                name=name,
            )
        }
    return {
        "encoder": AttentionData(
            raw["encoder"],
            side.tokens,
            tokens_b=side.tokens_b,
            special_mask=side.special,
            causal=False,
            name="encoder",
        ),
        "decoder": AttentionData(
            raw["decoder"],
            dec_side.tokens,
            special_mask=dec_side.special,
            causal=True,
            name="decoder",
        ),
        "cross": AttentionData(
            raw["cross"],
            dec_side.tokens,
            tokens_k=side.tokens,
            special_mask=dec_side.special,
            special_mask_k=side.special,
            causal=False,
            cross=True,
            name="cross",
        ),
    }


def attention_stacks_from_model(
    model: nn.Module,
    tokenizer: Any,
    text: str,
    text_b: str | None = None,
    *,
    decoder_text: str | None = None,
    max_length: int | None = None,
) -> dict[str, AttentionData]:
    """Runs a transformers model once and returns the attention of every stack.

    Works for encoders (BERT-like: one stack ``"encoder"``), decoders
    (GPT-2- or Llama-like: one stack ``"decoder"``, causal) and
    encoder-decoder models (BART, T5, Marian: ``"encoder"``, ``"decoder"``
    and ``"cross"``). The model runs in eval mode under ``torch.no_grad`` with
    eager attention (SDPA and flash kernels return no weights); its mode,
    attention implementation and hooks are restored afterwards, also on error.

    Parameters
    ----------
    model
        A transformers ``PreTrainedModel`` (any head: ``AutoModel``,
        ``...ForCausalLM``, ``...ForSeq2SeqLM``).
    tokenizer
        Its tokenizer.
    text
        The input text (encoder side for encoder-decoder models).
    text_b
        Optional second sentence of a pair; ``AttentionData.tokens_b`` marks
        where it starts.
    decoder_text
        Encoder-decoder models only: the decoder-side text, tokenized with
        ``text_target=`` and fed (teacher-forced) as ``decoder_input_ids``.
        Defaults to ``text``.
    max_length
        Truncate the input(s) to this many tokens.

    Returns
    -------
    dict[str, AttentionData]
        Stack name to attention, float32 ``(layers, heads, q, k)`` each.

    Example
    -------
    >>> stacks = attention_stacks_from_model(bart, tok, "Hello world", decoder_text="Hallo Welt")  # doctest: +SKIP
    >>> sorted(stacks), stacks["cross"].cross  # doctest: +SKIP
    (['cross', 'decoder', 'encoder'], True)
    """
    with preserved_model(model) as session:
        raw, side, dec_side = _run_transformers(
            model, tokenizer, text, text_b, decoder_text, max_length, session
        )
        return _stacks(model, raw, side, dec_side)


def attention_from_model(
    model: nn.Module,
    tokenizer: Any,
    text: str,
    text_b: str | None = None,
    *,
    stack: str | None = None,
    decoder_text: str | None = None,
    max_length: int | None = None,
) -> AttentionData:
    """The attention of one stack of a transformers model for a text (or sentence pair).

    See :func:`attention_stacks_from_model` for what runs and what comes back.

    Parameters
    ----------
    model, tokenizer, text, text_b, decoder_text, max_length
        As in :func:`attention_stacks_from_model`.
    stack
        ``"encoder"``, ``"decoder"`` or ``"cross"``. Default: the model's
        only stack, or ``"encoder"`` for encoder-decoder models.

    Returns
    -------
    AttentionData

    Example
    -------
    >>> data = attention_from_model(bert, tok, "The cat sat.", "It was tired.")  # doctest: +SKIP
    >>> data.shape, data.tokens[data.tokens_b]  # doctest: +SKIP
    ((12, 12, 11, 11), 'it')
    """
    if stack is not None and stack not in _STACK_FIELDS:
        raise ValueError(f"stack: expected 'encoder', 'decoder', 'cross' or None, got {stack!r}")
    stacks = attention_stacks_from_model(
        model, tokenizer, text, text_b, decoder_text=decoder_text, max_length=max_length
    )
    if stack is None:
        return stacks.get("encoder") or next(iter(stacks.values()))
    if stack not in stacks:
        raise ValueError(f"stack: this model has {', '.join(map(repr, stacks))}, not {stack!r}")
    return stacks[stack]


# nn.MultiheadAttention -------------------------------------------------------
def _stack_key(name: str) -> str:
    """``encoder.layers.3.self_attn`` -> ``encoder.layers.*.self_attn``: one stack per repeated path."""
    return re.sub(r"(?<=\.)\d+(?=\.|$)|^\d+(?=\.|$)", "*", name) or "self"


def _call(model: nn.Module, inputs: Any) -> Any:
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def capture_attention_stacks(
    model: nn.Module, inputs: Any, *, batch_index: int = 0
) -> dict[str, AttentionData]:
    """Attention weights of every ``torch.nn.MultiheadAttention`` in a model, by hooks.

    During one forward pass each ``MultiheadAttention`` is made to compute
    per-head weights (``need_weights=True, average_attn_weights=False``);
    what its caller receives is unchanged (``None`` or head-averaged weights
    when that is what it asked for). PyTorch's fused "fast path" for
    ``TransformerEncoderLayer`` would skip the module call (recent versions
    skip it themselves when hooks are attached, older ones do not), so it is
    switched off for the pass (``torch.backends.mha.set_fastpath_enabled``)
    and the previous setting restored. Modules at the same path up to layer
    numbers (``encoder.layers.*.self_attn``) form one stack, in call order.

    Parameters
    ----------
    model
        Any ``nn.Module`` containing ``nn.MultiheadAttention`` modules.
    inputs
        What the model is called with: a tensor, a tuple of positional
        arguments, or a dict of keyword arguments.
    batch_index
        Which example of the batch to keep.

    Returns
    -------
    dict[str, AttentionData]
        Stack name (module path with ``*`` for layer numbers) to attention;
        tokens are position numbers (``"0"``, ``"1"``, ...).

    Example
    -------
    >>> layer = nn.TransformerEncoderLayer(8, 2, batch_first=True)
    >>> net = nn.TransformerEncoder(layer, 3, enable_nested_tensor=False)
    >>> stacks = capture_attention_stacks(net, torch.randn(1, 5, 8))
    >>> {k: v.shape for k, v in stacks.items()}
    {'layers.*.self_attn': (3, 2, 5, 5)}
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    modules = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]
    if not modules:
        raise ValueError(
            "model: found no torch.nn.MultiheadAttention inside; for transformers models use attention_from_model"
        )
    records: list[tuple[str, torch.Tensor, bool]] = []
    pending: dict[int, list[tuple[bool, bool, bool]]] = defaultdict(list)

    def pre_hook(
        module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        bound = inspect.signature(module.forward).bind(*args, **kwargs)
        given = dict(bound.arguments)
        query, key, value = given.pop("query"), given.pop("key"), given.pop("value")
        pending[id(module)].append(
            (given.get("need_weights", True), given.get("average_attn_weights", True), query is key)
        )
        given["need_weights"] = True
        given["average_attn_weights"] = False
        return (query, key, value), given

    def make_hook(name: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
            need, average, is_self = pending[id(module)].pop()
            attn_out, weights = output
            records.append((name, weights.detach(), is_self))
            if not need:
                return attn_out, None
            if average:
                return attn_out, weights.mean(dim=-3)
            return None

        return hook

    with preserved_model(model) as session:
        mha = getattr(torch.backends, "mha", None)
        if mha is not None and hasattr(mha, "set_fastpath_enabled"):
            previous = mha.get_fastpath_enabled()
            mha.set_fastpath_enabled(False)
            session.on_exit(lambda: mha.set_fastpath_enabled(previous))
        for name, module in modules:
            session.forward_pre_hook(module, pre_hook, with_kwargs=True)
            session.forward_hook(module, make_hook(name))
        with torch.no_grad():
            _call(model, inputs)
    if not records:
        raise RuntimeError("model: no MultiheadAttention module was called during the forward pass")
    grouped: dict[str, list[tuple[torch.Tensor, bool]]] = defaultdict(list)
    for name, weights, is_self in records:
        grouped[_stack_key(name)].append((weights, is_self))
    stacks = {}
    for key, items in grouped.items():
        cross = not all(is_self for _, is_self in items)
        layers = [w for w, _ in items]
        stacks[key] = AttentionData(
            layers,
            tokens_k=[str(i) for i in range(layers[0].shape[-1])] if cross else None,
            cross=cross,
            name=key,
            batch_index=batch_index,
        )
    return stacks


def capture_attention(
    model: nn.Module,
    inputs: Any,
    *,
    stack: str | None = None,
    tokens: Sequence[str] | None = None,
    tokens_k: Sequence[str] | None = None,
    tokens_b: int | None = None,
    special_mask: Any = None,
    special_mask_k: Any = None,
    batch_index: int = 0,
) -> AttentionData:
    """Attention weights of a model built from ``torch.nn.MultiheadAttention``, as one stack.

    See :func:`capture_attention_stacks` for how the weights are collected.

    Parameters
    ----------
    model, inputs, batch_index
        As in :func:`capture_attention_stacks`.
    stack
        Which stack to return when the model has several (e.g.
        ``"decoder.layers.*.multihead_attn"`` in ``nn.Transformer``); the
        error lists them.
    tokens, tokens_k, tokens_b, special_mask, special_mask_k
        As in :class:`AttentionData`; position numbers when omitted.

    Returns
    -------
    AttentionData

    Example
    -------
    >>> layer = nn.TransformerEncoderLayer(8, 2, batch_first=True)
    >>> net = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    >>> data = capture_attention(net, torch.randn(1, 3, 8), tokens=["a", "b", "c"])
    >>> data.shape, data.tokens
    ((2, 2, 3, 3), ['a', 'b', 'c'])
    """
    stacks = capture_attention_stacks(model, inputs, batch_index=batch_index)
    if stack is None:
        if len(stacks) > 1:
            raise ValueError(
                f"stack: the model has several attention stacks, pass one of {sorted(stacks)}"
            )
        data = next(iter(stacks.values()))
    elif stack not in stacks:
        raise ValueError(f"stack: expected one of {sorted(stacks)}, got {stack!r}")
    else:
        data = stacks[stack]
    if tokens_k is not None and not data.cross:
        raise ValueError(f"tokens_k: stack {data.name!r} is self-attention; pass tokens only")
    if (
        tokens is None
        and tokens_k is None
        and tokens_b is None
        and special_mask is None
        and special_mask_k is None
    ):
        return data
    return AttentionData(
        data.attention,
        tokens,
        tokens_k=tokens_k if data.cross else None,
        tokens_b=tokens_b,
        special_mask=special_mask,
        special_mask_k=special_mask_k,
        causal=data.causal,
        cross=data.cross,
        name=data.name,
    )
