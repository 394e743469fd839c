"""NeuronView: how one head's query and key vectors produce its attention (BertViz's neuron view).

Front end: ``js/neuron_view.ts``. For the chosen layer, head and query token it
shows the query vector, every key vector, their elementwise product, the
scaled dot products ``q . k * scaling`` and the softmax over them.

Each (layer, head) travels as float16 query ``(q, d)`` and key ``(k, d)``
vectors; scores and softmax are recomputed from them in the browser (the
causal mask included), so a head costs ``2 (q + k) d`` bytes whatever the
sequence length. ``embed=True`` embeds every computed head (exported pages
stay explorable); ``embed=False`` embeds the first and computes the others in
the kernel when the view asks (``_neuron_head``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import traitlets as t
from anywidget.experimental import command

from .._arrays import command_reply, encode_array
from ..compute.attention import QueryKeyData, attention_stacks_from_model, query_key
from ._base import DeepVisWidget
from .attention import _int

__all__ = ["NeuronView"]


def _key(layer: int, head: int) -> str:
    return f"{layer}:{head}"


def _head_payload(qk: QueryKeyData) -> dict[str, Any]:
    n_q, n_k = qk.scores.shape
    standard = np.tril(np.ones((n_q, n_k), dtype=bool), n_k - n_q) if qk.causal else np.ones((n_q, n_k), bool)
    where = f"query_key(layer={qk.layer}, head={qk.head})"
    return {
        "query": encode_array(qk.query, "float16", name=f"{where}.query"),
        "key": encode_array(qk.key, "float16", name=f"{where}.key"),
        # The mask travels only when it is not the plain causal (or empty) one.
        "mask": None if np.array_equal(qk.mask, standard) else encode_array(qk.mask, "uint8", name=f"{where}.mask"),
        "scaling": float(qk.scaling),
        "causal": bool(qk.causal),
        "max_error": None if math.isnan(qk.max_error) else float(qk.max_error),
    }


class NeuronView(DeepVisWidget, entry="neuron_view"):
    """Query and key vectors of one head, their product, the scores and the softmax.

    Hover or click a query token on the left: each key token's row shows its key
    vector, the elementwise product with the query (its sum times ``scaling``
    is the score), the score and the softmax weight. Layer and head selectors
    switch between the heads that were computed (or, in a live kernel with
    ``embed=False``, compute the chosen one).

    Parameters
    ----------
    data
        One :class:`~deepvis_widgets.compute.attention.QueryKeyData` (from
        :func:`~deepvis_widgets.compute.attention.query_key`) or several, for
        different layers/heads of the same input.
    title
        Optional title.
    **kwargs
        Initial state: ``layer``, ``head``, ``query``, ``theme``.

    Example
    -------
    >>> from deepvis_widgets.compute.attention import query_key
    >>> view = NeuronView(query_key(bert, tokenizer, "The cat sat.", layer=0, head=3))  # doctest: +SKIP
    >>> view = NeuronView.from_model(bert, tokenizer, "The cat sat.")  # every layer and head  # doctest: +SKIP
    """

    # --- data ------------------------------------------------------------------------
    tokens = t.List(t.Unicode(), help="Query tokens (text, never HTML); read-only.").tag(sync=True)
    tokens_k = t.List(t.Unicode(), help="Key tokens; read-only.").tag(sync=True)
    n_layers = t.Int(1, help="Layers in the stack (for the selector); read-only.").tag(sync=True)
    n_heads = t.Int(1, help="Heads per layer (for the selector); read-only.").tag(sync=True)
    stack_name = t.Unicode("", help="'encoder', 'decoder', 'cross' or a module path; read-only.").tag(sync=True)
    available = t.List(
        t.List(t.Int()), help="[layer, head] pairs that are embedded or can be computed; read-only."
    ).tag(sync=True)
    _heads = t.Dict(
        help="{'layer:head': {query: float16 (q, d), key: float16 (k, d), mask, scaling, causal, max_error}}."
    ).tag(sync=True)

    # --- view state --------------------------------------------------------------------
    layer = t.Int(0, help="Layer shown. Default: the first available.").tag(sync=True)
    head = t.Int(0, help="Head shown. Default: the first available.").tag(sync=True)
    query = t.Int(0, help="Index of the query token shown. Default 0.").tag(sync=True)

    def __init__(
        self,
        data: QueryKeyData | Sequence[QueryKeyData],
        *,
        title: str | None = None,
        n_layers: int | None = None,
        n_heads: int | None = None,
        **kwargs: Any,
    ) -> None:
        items = [data] if isinstance(data, QueryKeyData) else list(data) if isinstance(data, Iterable) else None
        if not items:
            raise TypeError(
                f"data: expected a QueryKeyData or a non-empty sequence of them, got {type(data).__name__}"
            )
        for i, qk in enumerate(items):
            if not isinstance(qk, QueryKeyData):
                raise TypeError(f"data[{i}]: expected a QueryKeyData, got {type(qk).__name__}")
            if qk.tokens != items[0].tokens or qk.tokens_k != items[0].tokens_k:
                raise ValueError(f"data[{i}]: tokens differ from data[0]'s; every head must come from the same input")
            if qk.query.shape[1] != qk.key.shape[1]:
                raise ValueError(f"data[{i}]: query and key vectors differ in size ({qk.query.shape[1]} vs {qk.key.shape[1]})")
        self._source: dict[str, Any] | None = None
        self._computed = {(qk.layer, qk.head): qk for qk in items}
        layers = n_layers if n_layers is not None else max(q.layer for q in items) + 1
        heads = n_heads if n_heads is not None else max(q.head for q in items) + 1
        pairs = sorted(self._computed)
        kwargs.setdefault("layer", pairs[0][0])
        kwargs.setdefault("head", pairs[0][1])
        super().__init__(
            tokens=list(items[0].tokens),
            tokens_k=list(items[0].tokens_k),
            n_layers=int(layers),
            n_heads=int(heads),
            stack_name=items[0].stack,
            available=[list(p) for p in pairs],
            title="" if title is None else str(title),
            **kwargs,
        )
        self._heads = {_key(*p): _head_payload(qk) for p, qk in self._computed.items()}

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        text: str,
        text_b: str | None = None,
        *,
        stack: str | None = None,
        layers: Sequence[int] | None = None,
        heads: Sequence[int] | None = None,
        embed: bool = True,
        layer: int | None = None,
        head: int | None = None,
        decoder_text: str | None = None,
        max_length: int | None = None,
        title: str | None = None,
        **kwargs: Any,
    ) -> NeuronView:
        """Query/key vectors of a transformers model's heads for a text.

        Parameters
        ----------
        model, tokenizer, text, text_b
            As for :func:`~deepvis_widgets.compute.attention.query_key`.
        stack
            ``"encoder"``, ``"decoder"`` or ``"cross"`` for encoder-decoder models.
        layers, heads
            Which layers and heads to compute (default all). One forward pass each.
        embed
            True: compute them all now and embed them (exports stay explorable).
            False: compute the first now and the others when the view asks.
        layer, head
            The head shown first (default the first computed).
        decoder_text, max_length
            As for :func:`~deepvis_widgets.compute.attention.query_key`.
        title
            Optional title.
        **kwargs
            View state (``query``, ``theme``).

        Example
        -------
        >>> view = NeuronView.from_model(gpt2, tokenizer, "The cat sat", layers=[0], heads=[0, 1])  # doctest: +SKIP
        """
        if not isinstance(embed, bool):
            raise TypeError(f"embed: expected True or False, got {embed!r}")
        stacks = attention_stacks_from_model(
            model, tokenizer, text, text_b, decoder_text=decoder_text, max_length=max_length
        )
        name = stack or ("encoder" if "encoder" in stacks else next(iter(stacks)))
        if name not in stacks:
            raise ValueError(f"stack: this model has {', '.join(map(repr, stacks))}, not {stack!r}")
        n_layers, n_heads = stacks[name].n_layers, stacks[name].n_heads
        layer_list = _indices(layers, n_layers, "layers")
        head_list = _indices(heads, n_heads, "heads")
        first = (
            layer if layer is not None else layer_list[0],
            head if head is not None else head_list[0],
        )
        if first[0] not in layer_list or first[1] not in head_list:
            raise ValueError(f"layer, head: {first} is not among the layers {layer_list} and heads {head_list} asked for")
        source = {
            "model": model, "tokenizer": tokenizer, "text": text, "text_b": text_b,
            "stack": stack, "decoder_text": decoder_text, "max_length": max_length,
        }  # fmt: skip
        pairs = [(la, h) for la in layer_list for h in head_list] if embed else [first]
        computed = []
        for la, h in pairs:
            computed.append(_compute(source, la, h))
        view = cls(computed, title=title, n_layers=n_layers, n_heads=n_heads, layer=first[0], head=first[1], **kwargs)
        view._source = source
        view.available = [[la, h] for la in layer_list for h in head_list]
        return view

    # Validation ---------------------------------------------------------------------------
    @t.validate("layer")
    def _check_layer(self, proposal: t.Bunch) -> int:
        value = int(proposal["value"])
        if not 0 <= value < self.n_layers:
            raise t.TraitError(f"layer: expected an index below {self.n_layers}, got {value}")
        return value

    @t.validate("head")
    def _check_head(self, proposal: t.Bunch) -> int:
        value = int(proposal["value"])
        if not 0 <= value < self.n_heads:
            raise t.TraitError(f"head: expected an index below {self.n_heads}, got {value}")
        return value

    @t.validate("query")
    def _check_query(self, proposal: t.Bunch) -> int:
        value = int(proposal["value"])
        if not 0 <= value < len(self.tokens):
            raise t.TraitError(f"query: expected a token index below {len(self.tokens)}, got {value}")
        return value

    # Python-side access -----------------------------------------------------------------
    def head_data(self, layer: int, head: int) -> QueryKeyData:
        """The :class:`QueryKeyData` of one head (computed now if the model is at hand).

        Example
        -------
        >>> view.head_data(0, 1).attention.shape  # doctest: +SKIP
        (6, 6)
        """
        pair = (int(layer), int(head))
        if pair not in self._computed:
            if self._source is None or list(pair) not in self.available:
                raise ValueError(
                    f"layer, head: {pair} was not computed; available: {[tuple(p) for p in self.available]}"
                )
            self._computed[pair] = _compute(self._source, *pair)
        return self._computed[pair]

    @command
    def _neuron_head(self, msg: Any, buffers: list[bytes]) -> tuple[Any, list[memoryview]]:
        """One head's payload, computed in the kernel when it was not embedded."""
        with self._working("computing query and key vectors…"):
            return command_reply(_head_payload(self.head_data(_int(msg, "layer"), _int(msg, "head"))))

    def save_html(self, path: Any, *, title: str | None = None) -> None:
        """Writes one self-contained HTML file with every available head embedded.

        Example
        -------
        >>> view.save_html("neurons.html")  # doctest: +SKIP
        """
        missing = [tuple(p) for p in self.available if _key(*p) not in self._heads]
        if not missing:
            super().save_html(path, title=title)
            return
        partial = self._heads
        with self.hold_sync():
            self._heads = {**partial, **{_key(*p): _head_payload(self.head_data(*p)) for p in missing}}
            try:
                super().save_html(path, title=title)
            finally:
                self._heads = partial


def _indices(values: Sequence[int] | None, n: int, name: str) -> list[int]:
    if values is None:
        return list(range(n))
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [int(values)]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < n:
            raise ValueError(f"{name}: expected indices below {n}, got {v!r}")
        out.append(int(v))
    if not out:
        raise ValueError(f"{name}: expected at least one index")
    return sorted(set(out))


def _compute(source: dict[str, Any], layer: int, head: int) -> QueryKeyData:
    return query_key(
        source["model"], source["tokenizer"], source["text"], layer, head,
        text_b=source["text_b"], stack=source["stack"], decoder_text=source["decoder_text"],
        max_length=source["max_length"],
    )  # fmt: skip
