"""HiddenStateExplorer: LSTMVis's select-and-match view of hidden states over a corpus.

Front end: ``js/hidden_state_explorer.ts`` (shared pieces in ``js/lib/hidden_states.ts``).
Compute: :class:`~deepvis_widgets.compute.hidden_states.HiddenStates`.

The corpus can be far larger than what a page should hold. The view shows a
window of tokens; with a live kernel it asks for other windows on demand
(the ``_hs_window`` command). A bounded first part of the corpus (``embed_tokens``,
float16) travels with the widget's state, so ``save_html`` pages and exported
notebooks stay explorable without a kernel: there the view selects and
matches inside that part and says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import traitlets as t
from anywidget.experimental import command

from .._arrays import command_reply, encode_array
from ..compute.hidden_states import HiddenStates, Matches, Selection
from ._base import DeepVisWidget

__all__ = ["HiddenStateExplorer"]

#: Most float16 values (tokens x cells) embedded with the widget for kernel-less pages.
EMBED_VALUES = 1_000_000
#: Most tokens embedded, whatever the number of cells.
EMBED_MAX_TOKENS = 8192
#: Longest window the front end may ask for in one request.
MAX_WINDOW = 4096
#: Tokens of context shown on each side of a match snippet.
SNIPPET_CONTEXT = 4
#: Longest part of a match shown in its snippet.
SNIPPET_MAX = 32
#: Most cells drawn in a match snippet's heatmap.
SNIPPET_CELLS = 16


def _int(value: Any, name: str, exc: type[Exception] = t.TraitError) -> int:
    """``value`` as an int (integral floats from JSON accepted), else ``exc`` naming ``name``."""
    if isinstance(value, bool) or (not isinstance(value, (int, np.integer)) and not (
        isinstance(value, float) and value.is_integer()
    )):
        raise exc(f"{name}: expected an int, got {value!r}")
    return int(value)


class _SelectionTrait(t.Dict):
    """A dict trait that also takes a :class:`Selection` (turned into its dict)."""

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, Selection):
            value = value.to_dict()
        elif value is not None and not isinstance(value, Mapping):
            raise t.TraitError(
                f"selection: expected None, a Selection or a dict with start and end, got {type(value).__name__}"
            )
        return super().validate(obj, dict(value) if value is not None else None)


class _MatchesTrait(t.List):
    """A list trait that also takes a :class:`Matches` (turned into its records, keeping its cells)."""

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, Matches):
            obj._matched_cells = value.cells.tolist()
            value = value.to_records()
        else:
            obj._matched_cells = None
        return super().validate(obj, value)


class HiddenStateExplorer(DeepVisWidget, entry="hidden_state_explorer"):
    """LSTMVis in a notebook: select cells by brushing a token range and a threshold, then match.

    The top plot draws every cell's activation over a window of tokens as a
    line. Drag across the plot (or the text under it) to brush a token range;
    drag the dashed threshold line up or down. The cells that are on
    (``>= threshold``) at every brushed token and off just before and after it
    are selected (LSTMVis's rule; the view shows them at once, and with a
    kernel :meth:`HiddenStates.select` confirms them). The selected cells are
    drawn as a heatmap under the text, and the places in the whole corpus where
    the same cells switch on together (:meth:`HiddenStates.match`) are listed as
    snippets with their heatmaps: click one to scroll there.

    Parameters
    ----------
    states
        A :class:`~deepvis_widgets.compute.hidden_states.HiddenStates` (build one
        with ``HiddenStates.from_model`` or from an ``(n_tokens, n_cells)`` array).
    selection
        Optional initial selection: ``{"start", "end"[, "threshold"]}`` or a :class:`Selection`.
    threshold
        Initial on/off threshold (default 0.3, LSTMVis's default).
    top_k
        How many matches to list (default 20).
    match_length
        Only matches of exactly this many tokens (LSTMVis's phrase length), or ``None``.
    embed_tokens
        Tokens saved with the widget for kernel-less pages; default as many as fit
        in 1,000,000 float16 values (at most 8,192).
    y_range
        ``(low, high)`` of the line plot; default the range of the states (sampled at up to 20,000 tokens).
    token_width
        Width of a token column in pixels; default 12 for single characters, wider for words.
    title
        Optional title.

    Attributes
    ----------
    selection
        ``{"start", "end", "threshold", "cells", "scores"}`` or ``None``; settable
        (``cells`` are always recomputed by LSTMVis's rule).
    matches
        ``[{"start", "end", "length", "intersection", "union"}]`` in rank order;
        settable with a list of such records or a :class:`Matches`.

    Example
    -------
    >>> import numpy as np, deepvis_widgets as dv
    >>> hs = dv.HiddenStates(np.random.default_rng(0).uniform(-1, 1, (5000, 32)), ["a"] * 5000)
    >>> w = dv.HiddenStateExplorer(hs, threshold=0.2)
    >>> w.selection = {"start": 100, "end": 103}
    >>> w.selection["cells"] == hs.select(100, 103, 0.2).cells.tolist()
    True
    """

    # --- data (set at construction) ---------------------------------------------------
    n_tokens = t.Int(0, help="Tokens in the corpus (read-only).").tag(sync=True)
    n_cells = t.Int(0, help="Cells per token (read-only).").tag(sync=True)
    cell_labels = t.List(t.Unicode(), help="Name per cell, or [] for 'cell <i>' (read-only).").tag(sync=True)
    embed_tokens = t.Int(0, help="Tokens [0, embed_tokens) saved with the widget for kernel-less pages (read-only).").tag(sync=True)
    _embedded = t.Dict(help="{start: 0, tokens, docs, values: float16 (embed_tokens, n_cells)}: the saved part.").tag(sync=True)
    y_range = t.Tuple(t.Float(), t.Float(), default_value=(-1.0, 1.0), help="(low, high) of the line plot.").tag(sync=True)

    # --- view state --------------------------------------------------------------------
    position = t.Int(0, help="First token shown in the window. Default 0.").tag(sync=True)
    token_width = t.Int(12, help="Width of one token column in pixels (6..200).").tag(sync=True)
    threshold = t.Float(0.3, help="On/off threshold: a cell is on at a token when its state is >= threshold. Default 0.3.").tag(sync=True)
    top_k = t.Int(20, help="How many matches to list (1..500). Default 20.").tag(sync=True)
    match_length = t.Int(None, allow_none=True, help="Only matches of exactly this many tokens, or None (any length >= 2).").tag(sync=True)

    # --- selection and matches -----------------------------------------------------------
    selection = _SelectionTrait(
        default_value=None, allow_none=True,
        help="{start, end, threshold, cells, scores} of the brushed range, or None. Cells are recomputed by LSTMVis's rule.",
    ).tag(sync=True)
    matches = _MatchesTrait(t.Dict(), help="Matches in rank order: [{start, end, length, intersection, union}].").tag(sync=True)
    _match_data = t.Dict(help="Snippets of the matches: {cells, items: [{lo, hi, tokens}], values: float16 (sum(hi - lo), len(cells))}.").tag(sync=True)
    _match_note = t.Unicode("", help="Why there are no matches, shown in the matches panel.").tag(sync=True)
    _match_serial = t.Int(0, help="Counts finished match updates (the view waits for it after sending a selection).").tag(sync=True)

    def __init__(
        self,
        states: HiddenStates,
        *,
        selection: Mapping[str, Any] | Selection | None = None,
        threshold: float = 0.3,
        top_k: int = 20,
        match_length: int | None = None,
        embed_tokens: int | None = None,
        y_range: tuple[float, float] | None = None,
        token_width: int | None = None,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(states, HiddenStates):
            raise TypeError(
                f"states: expected a HiddenStates (HiddenStates(array, tokens) or HiddenStates.from_model(...)), "
                f"got {type(states).__name__}"
            )
        self._states = states
        n, c = states.shape
        if embed_tokens is None:
            embed_tokens = min(n, EMBED_MAX_TOKENS, max(256, EMBED_VALUES // c))
        embed_tokens = _int(embed_tokens, "embed_tokens", TypeError)
        if not 1 <= embed_tokens <= n:
            raise ValueError(f"embed_tokens: expected 1..{n} (the corpus has {n} tokens), got {embed_tokens}")
        labels = states.cell_labels
        embedded = self._window_payload(0, embed_tokens)
        super().__init__(
            n_tokens=n,
            n_cells=c,
            cell_labels=list(labels) if labels is not None else [],
            embed_tokens=embed_tokens,
            y_range=self._default_range(threshold) if y_range is None else self._check_range(y_range),
            token_width=self._default_width(embedded["tokens"]) if token_width is None else token_width,
            threshold=threshold,
            top_k=top_k,
            match_length=match_length,
            title="" if title is None else str(title),
            **kwargs,
        )
        self._embedded = embedded
        if selection is not None:
            self.selection = selection  # type: ignore[assignment]

    # --- Python API -------------------------------------------------------------------------
    @property
    def states(self) -> HiddenStates:
        """The hidden states shown."""
        return self._states

    def scroll_to(self, position: int) -> None:
        """Shows the window starting at token ``position`` (clipped to the corpus).

        Example
        -------
        >>> w.scroll_to(1200)  # doctest: +SKIP
        """
        p = _int(position, "position", TypeError)
        self.position = min(max(p, 0), self._states.n_tokens - 1)

    # --- defaults ------------------------------------------------------------------------------
    def _default_range(self, threshold: float) -> tuple[float, float]:
        values = self._states.values
        n = values.shape[0]
        rows = np.unique(np.linspace(0, n - 1, min(n, 20_000)).astype(np.int64))
        sample = np.asarray(values[rows], dtype=np.float32)
        sample = sample[np.isfinite(sample)]
        if sample.size == 0:
            return (-1.0, 1.0)
        lo, hi = float(sample.min()), float(sample.max())
        lo, hi = min(lo, 0.0, float(threshold)), max(hi, 0.0, float(threshold))
        if hi - lo < 1e-6:
            hi = lo + 1.0
        return (lo, hi)

    @staticmethod
    def _check_range(y_range: Any) -> tuple[float, float]:
        try:
            lo, hi = (float(v) for v in y_range)
        except (TypeError, ValueError):
            raise ValueError(f"y_range: expected (low, high) numbers, got {y_range!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"y_range: expected finite low < high, got {y_range!r}")
        return (lo, hi)

    @staticmethod
    def _default_width(tokens: Sequence[str]) -> int:
        lengths = [len(tok) for tok in tokens[:2000]]
        if not lengths or max(lengths) <= 1:
            return 12
        return int(min(80, max(24, 7 * float(np.median(lengths)) + 10)))

    # --- windows -------------------------------------------------------------------------------
    def _window_payload(self, start: int, end: int) -> dict[str, Any]:
        hs = self._states
        docs = hs.doc_starts
        inside = docs[(docs >= start) & (docs < end)]
        return {
            "start": int(start),
            "end": int(end),
            "tokens": hs.tokens_in(start, end),
            "docs": [int(d) for d in inside],
            "values": encode_array(np.asarray(hs.values[start:end]), "float16", name="states"),
        }

    @command
    def _hs_ping(self, msg: Any, buffers: list[bytes]) -> tuple[dict[str, Any], list[memoryview]]:
        """Tells the front end that a kernel answers (pages without one never wait again)."""
        del msg, buffers
        return {"ok": True}, []

    @command
    def _hs_window(self, msg: Any, buffers: list[bytes]) -> tuple[dict[str, Any], list[memoryview]]:
        """Tokens ``[start, end)`` with all cells (float16), for scrolling past the saved part."""
        del buffers
        if not isinstance(msg, Mapping):
            raise TypeError(f"msg: expected a mapping with start and end, got {type(msg).__name__}")
        n = self._states.n_tokens
        start = _int(msg.get("start"), "start", ValueError)
        end = min(_int(msg.get("end"), "end", ValueError), n)
        if not 0 <= start < end:
            raise ValueError(f"start, end: expected 0 <= start < end <= {n}, got {msg.get('start')}, {msg.get('end')}")
        if end - start > MAX_WINDOW:
            raise ValueError(f"end: at most {MAX_WINDOW} tokens per request, got {end - start}")
        return command_reply(self._window_payload(start, end))

    # --- validation -------------------------------------------------------------------------------
    @t.validate("position")
    def _check_position(self, proposal: t.Bunch) -> int:
        p = _int(proposal["value"], "position")
        n = self._states.n_tokens
        if not 0 <= p < n:
            raise t.TraitError(f"position: expected 0 <= position < {n}, got {p}")
        return p

    @t.validate("token_width")
    def _check_token_width(self, proposal: t.Bunch) -> int:
        w = _int(proposal["value"], "token_width")
        if not 6 <= w <= 200:
            raise t.TraitError(f"token_width: expected 6..200 pixels, got {w}")
        return w

    @t.validate("threshold")
    def _check_threshold(self, proposal: t.Bunch) -> float:
        v = proposal["value"]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
            raise t.TraitError(f"threshold: expected a finite number, got {v!r}")
        return float(v)

    @t.validate("top_k")
    def _check_top_k(self, proposal: t.Bunch) -> int:
        k = _int(proposal["value"], "top_k")
        if not 1 <= k <= 500:
            raise t.TraitError(f"top_k: expected 1..500, got {k}")
        return k

    @t.validate("match_length")
    def _check_match_length(self, proposal: t.Bunch) -> int | None:
        v = proposal["value"]
        if v is None:
            return None
        k = _int(v, "match_length")
        if k < 1:
            raise t.TraitError(f"match_length: expected None or a positive int, got {k}")
        return k

    @t.validate("selection")
    def _check_selection(self, proposal: t.Bunch) -> dict[str, Any] | None:
        value = proposal["value"]
        if value is None:
            return None
        missing = [k for k in ("start", "end") if k not in value]
        if missing:
            raise t.TraitError(f"selection: missing {', '.join(missing)}; expected {{'start': int, 'end': int, 'threshold': float}}")
        start, end = _int(value["start"], "selection start"), _int(value["end"], "selection end")
        thr = value.get("threshold", self.threshold)
        if thr is None or isinstance(thr, bool) or not isinstance(thr, (int, float, np.number)) or not math.isfinite(thr):
            raise t.TraitError(f"selection threshold: expected a finite number, got {thr!r}")
        try:
            sel = self._states.select(start, end, float(thr))
        except ValueError as exc:
            raise t.TraitError(f"selection: {exc}") from None
        return sel.to_dict()

    @t.validate("matches")
    def _check_matches(self, proposal: t.Bunch) -> list[dict[str, Any]]:
        value = proposal["value"]
        n = self._states.n_tokens
        out = []
        for i, rec in enumerate(value):
            if not isinstance(rec, Mapping) or "start" not in rec or ("end" not in rec and "length" not in rec):
                raise t.TraitError(f"matches[{i}]: expected a dict with start and end (or length), got {rec!r}")
            s = _int(rec["start"], f"matches[{i}] start")
            e = _int(rec["end"], f"matches[{i}] end") if "end" in rec else s + _int(rec["length"], f"matches[{i}] length")
            if not 0 <= s < e <= n:
                raise t.TraitError(f"matches[{i}]: expected 0 <= start < end <= {n}, got start={s}, end={e}")
            inter, union = rec.get("intersection"), rec.get("union")
            out.append({
                "start": s, "end": e, "length": e - s,
                "intersection": None if inter is None else _int(inter, f"matches[{i}] intersection"),
                "union": None if union is None else _int(union, f"matches[{i}] union"),
            })
        return out

    # --- reactions ----------------------------------------------------------------------------------
    @t.observe("threshold")
    def _on_threshold(self, change: t.Bunch) -> None:
        sel = self.selection
        if sel is not None and sel["threshold"] != change["new"]:
            self.selection = {"start": sel["start"], "end": sel["end"], "threshold": change["new"]}

    @t.observe("selection")
    def _on_selection(self, change: t.Bunch) -> None:
        sel = change["new"]
        if sel is not None and sel["threshold"] != self.threshold:
            self.threshold = sel["threshold"]
        self._update_matches()

    @t.observe("top_k", "match_length")
    def _on_match_options(self, change: t.Bunch) -> None:
        del change
        if self.selection is not None:
            self._update_matches()

    @t.observe("matches")
    def _on_matches(self, change: t.Bunch) -> None:
        cells = getattr(self, "_matched_cells", None)
        if cells is None:
            cells = list(self.selection["cells"]) if self.selection else []
        else:
            sel_cells = list(self.selection["cells"]) if self.selection else []
            if sorted(sel_cells) == sorted(cells):
                cells = sel_cells  # keep the selection's ranking for the snippet rows
        self._matched_cells = None
        self._match_data = self._snippets(change["new"], cells)
        if change["new"]:
            self._match_note = ""

    def _update_matches(self) -> None:
        try:
            self._match_selection()
        finally:
            self._match_serial += 1

    def _match_selection(self) -> None:
        sel = self.selection
        if sel is None:
            self.matches = []
            self._match_note = ""
            return
        if not sel["cells"]:
            self.matches = []
            self._match_note = (
                f"No cell is on (>= {sel['threshold']:g}) at every token of [{sel['start']}, {sel['end']}) "
                "and off just outside it: lower the threshold or brush another range."
            )
            return
        hs = self._states
        with self._working(f"matching {len(sel['cells'])} cells over {hs.n_tokens:,} tokens…"):
            m = hs.match(sel["cells"], length=self.match_length, top_k=self.top_k, threshold=sel["threshold"])
        self.matches = m  # type: ignore[assignment]
        if not len(m):
            self._match_note = "No range of 2 or more tokens has these cells on together." if self.match_length is None else (
                f"No range of exactly {self.match_length} tokens has these cells on together."
            )

    def _snippets(self, records: list[dict[str, Any]], cells: list[int]) -> dict[str, Any]:
        hs = self._states
        cells = cells[:SNIPPET_CELLS]
        items = []
        blocks = []
        for rec in records:
            lo = max(0, rec["start"] - SNIPPET_CONTEXT)
            hi = min(hs.n_tokens, min(rec["end"], rec["start"] + SNIPPET_MAX) + SNIPPET_CONTEXT)
            items.append({"lo": lo, "hi": hi, "tokens": hs.tokens_in(lo, hi)})
            if cells:
                blocks.append(np.asarray(hs.values[lo:hi])[:, cells])
        values = np.concatenate(blocks) if blocks else np.zeros((0, len(cells)), np.float16)
        return {"cells": [int(c) for c in cells], "items": items, "values": encode_array(values, "float16", name="snippets")}
