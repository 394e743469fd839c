"""HeadView and ModelView: attention as weighted lines between tokens, and as a grid of heads.

Front ends: ``js/head_view.ts`` and ``js/model_view.ts``; both draw the lines
with ``js/lib/head_lines.ts`` and read layers through ``js/lib/attention.ts``.

How the weights travel (the point of these views is that they scale):

- Every layer is one payload in :attr:`_AttentionView._attention`: uint8 per
  layer ``(heads, q, k)`` (``"dense"``; error at most 1/508 for weights in
  [0, 1]) while all layers of all stacks hold at most
  :data:`DENSE_BUDGET` weights (BERT-base at 512 tokens: 37.7M), else the
  ``top_k`` largest weights per query and head (``"top_k"``: int32 key
  indices and uint8 weights).
- With ``embed=True`` (default) every layer is embedded, so saved notebooks,
  exported HTML and :meth:`save_html` pages stay explorable with no kernel.
  With ``embed=False`` only the first shown layer is; the view fetches the
  others from the kernel when asked (``ctx.invoke`` -> :meth:`_attention_layer`).
- In a live kernel, hovering a token of a pruned (top-k) layer fetches that
  token's exact row as float16 (:meth:`_attention_row`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import traitlets as t
from anywidget.experimental import command

from .._arrays import command_reply, encode_array
from ..compute.attention import (
    AttentionData,
    attention_rollout,
    attention_stacks_from_model,
    head_summary,
    top_k_edges,
)
from ._base import DeepVisWidget

__all__ = ["DENSE_BUDGET", "HeadView", "ModelView"]

#: Most weights (layers x heads x q x k over all stacks) embedded densely as uint8;
#: beyond it layers are pruned to the top-k keys per query. BERT-base at 512 tokens is 37.7M.
DENSE_BUDGET = 40_000_000
#: Keys kept per query and head when pruning.
DEFAULT_TOP_K = 16
#: Side of a model-view thumbnail, in weights (longer inputs are mean-pooled to it).
THUMBNAIL = 64
#: Token strings treated as special when an array comes without a special_mask.
SPECIAL_TOKENS = frozenset(
    {
        "[CLS]", "[SEP]", "[PAD]", "[MASK]", "<s>", "</s>", "<pad>", "<mask>", "<|endoftext|>",
        "<bos>", "<eos>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|end_of_text|>",
    }
)  # fmt: skip

SentenceFilter = Literal["all", "A->A", "A->B", "B->A", "B->B"]


# Inputs -----------------------------------------------------------------------
def _split_tokens(
    tokens: Sequence[str] | None, tokens_b: Sequence[str] | int | None
) -> tuple[list[str] | None, int | None]:
    """``tokens`` + ``tokens_b`` (strings of sentence B, or where B starts) -> all tokens, B index."""
    if tokens is not None and isinstance(tokens, str):
        raise TypeError("tokens: expected a sequence of token strings, got one string")
    if tokens_b is None:
        return (None if tokens is None else list(tokens)), None
    if isinstance(tokens_b, bool):
        raise TypeError("tokens_b: expected sentence B's tokens or the index where it starts, got a bool")
    if isinstance(tokens_b, (int, np.integer)):
        return (None if tokens is None else list(tokens)), int(tokens_b)
    if isinstance(tokens_b, str):
        raise TypeError("tokens_b: expected a sequence of token strings (sentence B), got one string")
    if tokens is None:
        raise ValueError("tokens_b: sentence B's tokens need sentence A's tokens as tokens=")
    a, b = list(tokens), list(tokens_b)
    return a + b, len(a)


def _guess_special(tokens: list[str] | None) -> np.ndarray | None:
    if tokens is None:
        return None
    return np.array([tok in SPECIAL_TOKENS for tok in tokens], dtype=bool)


def _as_stacks(
    attention: Any,
    tokens: Sequence[str] | None,
    tokens_b: Sequence[str] | int | None,
    tokens_k: Sequence[str] | None,
    special_mask: Any,
) -> dict[str, AttentionData]:
    """Normalises every accepted form of ``attention`` to named :class:`AttentionData` stacks."""
    given = {"tokens": tokens, "tokens_b": tokens_b, "tokens_k": tokens_k, "special_mask": special_mask}
    if isinstance(attention, (AttentionData, Mapping)):
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise TypeError(
                f"{', '.join(extra)}: an AttentionData already carries its tokens and masks; "
                "pass them when building it, not here"
            )
        stacks = {attention.name: attention} if isinstance(attention, AttentionData) else dict(attention)
        if not stacks:
            raise ValueError("attention: expected at least one stack, got an empty mapping")
        for name, data in stacks.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"attention: stack names must be non-empty strings, got {name!r}")
            if not isinstance(data, AttentionData):
                raise TypeError(
                    f"attention[{name!r}]: expected an AttentionData, got {type(data).__name__}"
                )
            if "rollout" in (data.layer_names or []):
                raise ValueError(
                    f"attention[{name!r}]: pass the data without with_rollout(); the view adds rollout itself"
                )
        return stacks
    all_tokens, b_index = _split_tokens(tokens, tokens_b)
    if all_tokens is not None and tokens_b is not None and not isinstance(tokens_b, (int, np.integer)):
        _check_pair_length(attention, all_tokens, len(all_tokens) - b_index)  # type: ignore[operator]
    k_tokens = None if tokens_k is None else list(tokens_k)
    data = AttentionData(
        attention,
        all_tokens,
        tokens_k=k_tokens,
        tokens_b=b_index,
        special_mask=_guess_special(all_tokens) if special_mask is None else special_mask,
        special_mask_k=_guess_special(k_tokens) if k_tokens is not None and special_mask is None else None,
        name="cross" if k_tokens is not None else "self",
    )
    return {data.name: data}


def _check_pair_length(attention: Any, tokens: list[str], n_b: int) -> None:
    shape = getattr(attention, "shape", None)
    if shape is None and isinstance(attention, (tuple, list)) and attention:
        shape = getattr(attention[0], "shape", None)
    if shape is not None and len(shape) >= 2 and int(shape[-2]) != len(tokens):
        raise ValueError(
            f"tokens, tokens_b: attention has {int(shape[-2])} query positions but tokens "
            f"({len(tokens) - n_b}) + tokens_b ({n_b}) = {len(tokens)}"
        )


def _check_top_k(top_k: Any) -> int | None:
    if top_k is None or top_k == "auto":
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k: expected 'auto' or a positive int (keys kept per query), got {top_k!r}")
    return int(top_k)


# Payloads ---------------------------------------------------------------------
def _pool(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Mean-pools the last two axes of ``a`` to ``(rows, cols)`` bins of (nearly) equal size."""
    n_q, n_k = a.shape[-2:]
    if (n_q, n_k) == (rows, cols):
        return a.astype(np.float32, copy=False)
    qe = np.linspace(0, n_q, rows + 1).astype(int)
    ke = np.linspace(0, n_k, cols + 1).astype(int)
    sums = np.add.reduceat(np.add.reduceat(a, qe[:-1], axis=-2), ke[:-1], axis=-1)
    counts = np.diff(qe)[:, None] * np.diff(ke)[None, :]
    return (sums / counts).astype(np.float32)


def _int(msg: Mapping[str, Any], key: str) -> int:
    value = msg.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ValueError(f"{key}: expected an int, got {value!r}")
    return int(value)


# The shared widget ---------------------------------------------------------------
class _AttentionView(DeepVisWidget):
    """Data, view state and kernel commands shared by :class:`HeadView` and :class:`ModelView`."""

    # --- data (set at construction) -------------------------------------------------
    stacks = t.List(
        t.Dict(),
        help="One entry per stack (name, tokens, tokens_k, sentence_b, special, special_k, causal, "
        "cross, layer_names, heads, mode, top_k, rollout); read-only.",
    ).tag(sync=True)
    _attention = t.Dict(
        help="{stack: [layer payload or None]}: {'dense': uint8 (heads, q, k)} or {'index': int32, "
        "'value': uint8} (heads, q, top_k); None = fetch from the kernel. The last layer is rollout "
        "when the stack has one (1 head)."
    ).tag(sync=True)

    # --- view state --------------------------------------------------------------------
    stack = t.Unicode("", help="Name of the stack shown. Default: the first ('encoder' when there is one).").tag(sync=True)
    layer = t.Int(0, help="Layer shown, an index into the stack's layer_names (rollout is last). Default 0.").tag(sync=True)
    heads = t.List(t.Int(), help="Heads drawn; [] draws none. Default all.").tag(sync=True)
    sentence_filter = t.Enum(
        ["all", "A->A", "A->B", "B->A", "B->B"],
        default_value="all",
        help="Sentence-pair filter: which sentence's tokens are shown on the left -> right. Default 'all'.",
    ).tag(sync=True)
    special = t.Enum(
        ["show", "dim", "hide"],
        default_value="show",
        help="Special tokens ([CLS], [SEP], padding, bos, eos): shown, dimmed or hidden. Default 'show'.",
    ).tag(sync=True)
    max_lines = t.Int(
        5_000, help="Most lines drawn at once; the faintest are left out beyond it. Default 5000."
    ).tag(sync=True)

    def __init__(
        self,
        attention: Any,
        tokens: Sequence[str] | None = None,
        tokens_b: Sequence[str] | int | None = None,
        *,
        tokens_k: Sequence[str] | None = None,
        special_mask: Any = None,
        rollout: bool = True,
        top_k: int | Literal["auto"] = "auto",
        embed: bool = True,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        stacks = _as_stacks(attention, tokens, tokens_b, tokens_k, special_mask)
        if not isinstance(rollout, bool):
            raise TypeError(f"rollout: expected True or False, got {rollout!r}")
        if not isinstance(embed, bool):
            raise TypeError(f"embed: expected True or False, got {embed!r}")
        k = _check_top_k(top_k)
        self._data = stacks
        self._rollouts = {
            name: attention_rollout(d) for name, d in stacks.items() if rollout and not d.cross
        }
        total = sum(int(np.prod(d.shape)) for d in stacks.values())
        self._top_k = {
            name: (k if k is not None else (None if total <= DENSE_BUDGET else DEFAULT_TOP_K))
            for name in stacks
        }
        for name, d in stacks.items():  # pruning to >= every key is dense
            if self._top_k[name] is not None and self._top_k[name] >= d.shape[3]:  # type: ignore[operator]
                self._top_k[name] = None
        self._embed = embed
        first = "encoder" if "encoder" in stacks else next(iter(stacks))
        kwargs["stack"] = start_stack = str(kwargs.get("stack") or first)
        if start_stack not in stacks:
            raise ValueError(f"stack: expected one of {', '.join(map(repr, stacks))}, got {start_stack!r}")
        kwargs.setdefault("heads", list(range(stacks[start_stack].n_heads)))
        start_layer = kwargs.get("layer", 0)
        if isinstance(start_layer, bool) or not isinstance(start_layer, (int, np.integer)):
            raise TypeError(f"layer: expected an int, got {start_layer!r}")
        payloads = self._payloads(None if embed else (start_stack, int(start_layer)))
        super().__init__(
            stacks=[self._stack_meta(name) for name in stacks],
            title="" if title is None else str(title),
            **kwargs,
        )
        self._attention = payloads

    # Construction helpers ----------------------------------------------------------------
    def _stack_meta(self, name: str) -> dict[str, Any]:
        d = self._data[name]
        top = self._top_k[name]
        return {
            "name": name,
            "tokens": list(d.tokens or []),
            "tokens_k": list(d.tokens_k or []),
            "sentence_b": d.tokens_b,
            "special": [int(x) for x in d.special_mask],  # type: ignore[union-attr]
            "special_k": [int(x) for x in d.special_mask_k],  # type: ignore[union-attr]
            "causal": bool(d.causal),
            "cross": bool(d.cross),
            "layer_names": [*(d.layer_names or []), *(["rollout"] if name in self._rollouts else [])],
            "heads": d.n_heads,
            "mode": "dense" if top is None else "top_k",
            "top_k": top,
            "rollout": name in self._rollouts,
        }

    def _n_layers(self, stack: str) -> int:
        return self._data[stack].n_layers + (1 if stack in self._rollouts else 0)

    def _layer_array(self, stack: str, layer: int) -> np.ndarray:
        """float32 ``(heads, q, k)`` of one layer; rollout is ``(1, q, k)``."""
        if stack not in self._data:
            raise ValueError(f"stack: expected one of {', '.join(map(repr, self._data))}, got {stack!r}")
        n = self._n_layers(stack)
        if not 0 <= layer < n:
            raise IndexError(f"layer: expected an index below {n} for stack {stack!r}, got {layer}")
        data = self._data[stack]
        if layer == data.n_layers:
            return self._rollouts[stack][None]
        return data.layer(layer)

    def _layer_payload(self, stack: str, layer: int) -> dict[str, Any]:
        a = self._layer_array(stack, layer)
        top = self._top_k[stack]
        where = f"attention[{stack!r}][{layer}]"
        if top is None:
            return {"dense": encode_array(a, "uint8", name=where)}
        index, value = top_k_edges(a, top)
        return {"index": encode_array(index, "int32", name=where), "value": encode_array(value, "uint8", name=where)}

    def _payloads(self, only: tuple[str, int] | None = None) -> dict[str, list[Any]]:
        """Every layer's payload, or (``only``) just that one layer's with None elsewhere."""
        out: dict[str, list[Any]] = {}
        for name in self._data:
            out[name] = [
                self._layer_payload(name, i) if only is None or only == (name, i) else None
                for i in range(self._n_layers(name))
            ]
        return out

    # Validation -------------------------------------------------------------------------
    @t.validate("stack")
    def _check_stack(self, proposal: t.Bunch) -> str:
        value = proposal["value"]
        if value not in self._data:
            raise t.TraitError(f"stack: expected one of {', '.join(map(repr, self._data))}, got {value!r}")
        return str(value)

    @t.validate("layer")
    def _check_layer(self, proposal: t.Bunch) -> int:
        value = int(proposal["value"])
        most = max(self._n_layers(s) for s in self._data)
        if not 0 <= value < most:
            raise t.TraitError(f"layer: expected an index between 0 and {most - 1}, got {value}")
        return value

    @t.validate("heads")
    def _check_heads(self, proposal: t.Bunch) -> list[int]:
        value = [int(h) for h in proposal["value"]]
        most = max(d.n_heads for d in self._data.values())
        bad = [h for h in value if not 0 <= h < most]
        if bad:
            raise t.TraitError(f"heads: expected head indices below {most}, got {bad}")
        return sorted(set(value))

    @t.validate("max_lines")
    def _check_max_lines(self, proposal: t.Bunch) -> int:
        if proposal["value"] < 1:
            raise t.TraitError(f"max_lines: expected a positive int, got {proposal['value']}")
        return int(proposal["value"])

    # Python-side access ----------------------------------------------------------------
    @property
    def data(self) -> dict[str, AttentionData]:
        """The attention shown, by stack name (float32, as given; no rollout layer)."""
        return dict(self._data)

    def received(self, stack: str | None = None) -> np.ndarray:
        """What the front end gets, decoded: float32 ``(layers, heads, q, k)`` (dense stacks only).

        The rollout layer, when present, is left out (it has one head). Layers not
        embedded (``embed=False``) are encoded on the fly, exactly as the kernel
        would send them.

        Example
        -------
        >>> view = HeadView(np.full((2, 3, 4, 4), 0.25))
        >>> float(abs(view.received() - 0.25).max()) < 1 / 508
        True
        """
        from .._arrays import decode_array

        name = self.stack if stack is None else stack
        if name not in self._data:
            raise ValueError(f"stack: expected one of {', '.join(map(repr, self._data))}, got {name!r}")
        if self._top_k[name] is not None:
            raise ValueError(f"stack: {name!r} is pruned to the top {self._top_k[name]} keys; received() needs a dense stack")
        layers = []
        for i in range(self._data[name].n_layers):
            payload = self._attention[name][i] or self._layer_payload(name, i)
            layers.append(decode_array(payload["dense"]))
        return np.stack(layers)

    def save_html(self, path: Any, *, title: str | None = None) -> None:
        """Writes one self-contained HTML file; every layer is embedded even with ``embed=False``.

        Example
        -------
        >>> view.save_html("attention.html")  # doctest: +SKIP
        """
        if self._embed:
            super().save_html(path, title=title)
            return
        partial = self._attention
        with self.hold_sync():
            self._attention = self._payloads()
            try:
                super().save_html(path, title=title)
            finally:
                self._attention = partial

    # Kernel commands (js/lib/attention.ts) ----------------------------------------------
    @command
    def _attention_ping(self, msg: Any, buffers: list[bytes]) -> tuple[Any, list[memoryview]]:
        return {"ok": True}, []

    @command
    def _attention_layer(self, msg: Any, buffers: list[bytes]) -> tuple[Any, list[memoryview]]:
        """One layer's payload, as embedded ones are: {'dense': ...} or {'index', 'value'}."""
        return command_reply(self._layer_payload(str(msg.get("stack")), _int(msg, "layer")))

    @command
    def _attention_row(self, msg: Any, buffers: list[bytes]) -> tuple[Any, list[memoryview]]:
        """Exact float16 weights of one token over every head: a query's row or a key's column."""
        a = self._layer_array(str(msg.get("stack")), _int(msg, "layer"))
        index = _int(msg, "index")
        side = msg.get("side")
        if side not in ("query", "key"):
            raise ValueError(f"side: expected 'query' or 'key', got {side!r}")
        n = a.shape[1] if side == "query" else a.shape[2]
        if not 0 <= index < n:
            raise IndexError(f"index: expected a {side} position below {n}, got {index}")
        row = a[:, index, :] if side == "query" else a[:, :, index]
        return command_reply({"row": encode_array(np.ascontiguousarray(row), "float16", name="row")})

    # Constructors -------------------------------------------------------------------------
    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        text: str,
        text_b: str | None = None,
        *,
        decoder_text: str | None = None,
        max_length: int | None = None,
        stacks: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Runs a transformers model once (eager attention, restored after) and shows every stack.

        Parameters
        ----------
        model, tokenizer
            A transformers model (encoder, decoder or encoder-decoder) and its tokenizer.
        text, text_b
            The input, and an optional second sentence (sentence-pair filters).
        decoder_text
            Encoder-decoder models: the decoder-side text (default ``text``).
        max_length
            Truncate the input to this many tokens.
        stacks
            Which of ``"encoder"``, ``"decoder"``, ``"cross"`` to show (default all the model has).
        **kwargs
            Passed to the view (``layer``, ``heads``, ``top_k``, ``embed``, ``title``...).

        Example
        -------
        >>> view = HeadView.from_model(bert, tokenizer, "The cat sat.", "It was tired.")  # doctest: +SKIP
        """
        found = attention_stacks_from_model(
            model, tokenizer, text, text_b, decoder_text=decoder_text, max_length=max_length
        )
        if stacks is not None:
            if isinstance(stacks, str):
                stacks = [stacks]
            missing = [s for s in stacks if s not in found]
            if missing or not stacks:
                raise ValueError(
                    f"stacks: this model has {', '.join(map(repr, found))}, got {list(stacks)!r}"
                )
            found = {s: found[s] for s in stacks}
        return cls(found, **kwargs)


class HeadView(_AttentionView, entry="head_view"):
    """Attention of one layer as lines from query tokens (left) to key tokens (right).

    One colour per head, a layer selector (with attention rollout as an extra
    last "layer"), head toggles (click; double-click shows one head alone),
    hover a token to see only its attention, sentence A/B filters, special
    tokens shown, dimmed or hidden, and a stack selector for encoder-decoder
    models. Long inputs scroll (only what is on screen is drawn) and are pruned
    to the strongest edges (see the module docstring for sizes).

    Parameters
    ----------
    attention
        A transformers-style tuple of per-layer ``(batch, heads, q, k)`` tensors,
        an array ``(layers, heads, q, k)``, an :class:`AttentionData`, or a dict
        of them by stack name (``"encoder"``, ``"decoder"``, ``"cross"``).
    tokens
        Query tokens (sentence A's when ``tokens_b`` is a list); shown as text.
    tokens_b
        Sentence B: its tokens (then ``tokens + tokens_b`` must match the
        attention) or the index in ``tokens`` where it starts.
    tokens_k
        Key tokens for cross-attention arrays (q != k).
    special_mask
        Booleans per token; default: tokens such as ``[CLS]``, ``[SEP]``, ``<s>``.
    rollout
        Add attention rollout (Abnar & Zuidema 2020) as a last layer. Default True.
    top_k
        ``'auto'`` (dense up to :data:`DENSE_BUDGET` weights, else 16) or the
        number of keys kept per query and head.
    embed
        Embed every layer (True, default) so exports stay explorable, or only
        the first shown (False: others come from the kernel on demand).
    title
        Optional title.
    **kwargs
        Initial view state: ``stack``, ``layer``, ``heads``, ``sentence_filter``,
        ``special``, ``max_lines``, ``theme``.

    Example
    -------
    >>> import numpy as np
    >>> w = np.random.default_rng(0).dirichlet(np.ones(4), size=(2, 3, 4))  # 2 layers, 3 heads
    >>> view = HeadView(w, ["[CLS]", "hello", "world", "[SEP]"])
    >>> view.stacks[0]["layer_names"]
    ['0', '1', 'rollout']
    """


class ModelView(_AttentionView, entry="model_view"):
    """Every head of every layer as a thumbnail; click one to open the head view on it.

    Thumbnails are the attention matrices (queries down, keys across), mean-pooled
    to at most 64 x 64 and each scaled to its own largest value. Heads can be
    sorted within each layer by entropy, mean attention distance or attention to
    special tokens (:func:`~deepvis_widgets.compute.attention.head_summary`).

    Parameters
    ----------
    attention, tokens, tokens_b, tokens_k, special_mask, rollout, top_k, embed, title
        As for :class:`HeadView`.
    **kwargs
        Initial view state: ``sort_by``, ``selected`` and :class:`HeadView`'s.

    Example
    -------
    >>> import numpy as np
    >>> w = np.random.default_rng(0).dirichlet(np.ones(6), size=(3, 4, 6))
    >>> view = ModelView(w, sort_by="entropy")
    >>> view.summary["self"]["entropy"]["shape"]
    [3, 4]
    """

    # --- data --------------------------------------------------------------------------
    _thumbnails = t.Dict(
        help="{stack: uint8 (layers, heads, rows, cols)}: mean-pooled matrices, each scaled to its max."
    ).tag(sync=True)
    summary = t.Dict(
        help="{stack: {'entropy', 'distance', 'special', 'peak': float32 (layers, heads)}}; read-only."
    ).tag(sync=True)

    # --- view state ---------------------------------------------------------------------
    sort_by = t.Enum(
        ["head", "entropy", "distance", "special"],
        default_value="head",
        help="Order of heads within each layer (ascending). Default 'head' (model order).",
    ).tag(sync=True)
    selected = t.Tuple(
        t.Int(), t.Int(), default_value=None, allow_none=True,
        help="(layer, head) opened in the head view below the grid, or None.",
    ).tag(sync=True)  # fmt: skip

    def __init__(self, attention: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(attention, *args, **kwargs)
        thumbs: dict[str, Any] = {}
        summary: dict[str, Any] = {}
        for name, d in self._data.items():
            _, _, n_q, n_k = d.shape
            rows, cols = min(n_q, THUMBNAIL), min(n_k, THUMBNAIL)
            pooled = np.stack([_pool(d.layer(i), rows, cols) for i in range(d.n_layers)])
            peak = pooled.max(axis=(-2, -1))
            scaled = pooled / np.where(peak > 0, peak, 1)[..., None, None]
            thumbs[name] = encode_array(scaled, "uint8", name=f"thumbnails[{name!r}]")
            s = head_summary(d)
            summary[name] = {
                key: encode_array(getattr(s, key), "float32", name=key)
                for key in ("entropy", "distance", "special")
            }
            summary[name]["peak"] = encode_array(peak, "float32", name="peak")
        self._thumbnails = thumbs
        self.summary = summary

    @t.validate("selected")
    def _check_selected(self, proposal: t.Bunch) -> tuple[int, int] | None:
        value = proposal["value"]
        if value is None:
            return None
        layer, head = (int(v) for v in value)
        d = self._data[self.stack]
        if not (0 <= layer < d.n_layers and 0 <= head < d.n_heads):
            raise t.TraitError(
                f"selected: expected (layer, head) inside {d.n_layers} layers x {d.n_heads} heads "
                f"of stack {self.stack!r}, got {value!r}"
            )
        return (layer, head)
