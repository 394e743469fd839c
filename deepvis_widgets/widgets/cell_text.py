"""CellOverText: text coloured by one cell's activation (Karpathy, Johnson and Fei-Fei 2015).

Front end: ``js/cell_text.ts``. Compute:
:meth:`~deepvis_widgets.compute.hidden_states.HiddenStates.rank_cells` and the
indicators of ``compute/_indicators.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import traitlets as t

from .._arrays import encode_array
from ..compute.hidden_states import (
    HiddenStates,
    bracket_depth,
    indentation_depth,
    inside_quotes,
)
from ._base import DeepVisWidget

__all__ = ["INDICATORS", "CellOverText"]

#: Indicators known by name; each takes the tokens of the shown range.
INDICATORS: dict[str, Callable[[Sequence[str]], np.ndarray]] = {
    "inside_quotes": inside_quotes,
    "indentation_depth": indentation_depth,
    "bracket_depth": bracket_depth,
}
#: Most tokens one view shows (each is a text span).
MAX_TOKENS = 20_000


class CellOverText(DeepVisWidget, entry="cell_text"):
    """Text coloured by one cell's activation, the cell picked from a ranked list.

    The list ranks cells by ``|Pearson r|`` between their state and a per-token
    indicator (is the character inside quotes? how deep is the line indented?
    how many brackets are open?), the way Karpathy et al. (2015) found cells
    that track quotes and line length. Without an indicator the list ranks
    cells by their standard deviation over the shown text. Click a cell to
    colour the text by it (red above 0, blue below); hover a character for its
    value; switch the colouring to the indicator to compare.

    Parameters
    ----------
    states
        A :class:`~deepvis_widgets.compute.hidden_states.HiddenStates`.
    cell
        The cell shown first; default the best-ranked one.
    indicator
        ``None``; a name (``"inside_quotes"``, ``"indentation_depth"``,
        ``"bracket_depth"``) or a function of the shown tokens (e.g.
        :func:`~deepvis_widgets.compute.hidden_states.indentation_depth`); or
        one number per token, either of the shown range (``end - start``
        values) or of the whole corpus (then cells are ranked over the whole corpus).
    start, end
        The tokens shown, ``[start, end)``; default the first 4,000 (at most 20,000).
    top
        How many ranked cells to list (default 20).
    indicator_name
        Label of the indicator; default its name, or ``"indicator"``.
    title
        Optional title.

    Example
    -------
    >>> import numpy as np, deepvis_widgets as dv
    >>> text = 'x = "ab" + c\\n' * 50
    >>> hs = dv.HiddenStates(np.random.default_rng(0).normal(size=(len(text), 8)), list(text))
    >>> w = dv.CellOverText(hs, indicator="inside_quotes", top=5)
    >>> len(w.ranked), w.cell == w.ranked[0]["cell"]
    (5, True)
    """

    # --- data (set at construction) -------------------------------------------------------
    tokens = t.List(t.Unicode(), help="Tokens shown, [start, end) of the corpus (read-only).").tag(sync=True)
    start = t.Int(0, help="Corpus position of the first token shown (read-only).").tag(sync=True)
    n_cells = t.Int(0, help="Cells per token (read-only).").tag(sync=True)
    cell_labels = t.List(t.Unicode(), help="Name per cell, or [] for 'cell <i>' (read-only).").tag(sync=True)
    ranked = t.List(t.Dict(), help="[{cell, score}] best first; score is Pearson r, or the std without an indicator (read-only).").tag(sync=True)
    score_name = t.Unicode("r", help="What the ranking score is: 'r' (with an indicator) or 'std' (read-only).").tag(sync=True)
    ranked_over = t.Unicode("", help="The token range the ranking was computed over, as text (read-only).").tag(sync=True)
    indicator_name = t.Unicode("", help="Label of the indicator ('' without one).").tag(sync=True)
    indicator = t.Dict(help="(len(tokens),) float32 indicator over the shown tokens, or {} without one.").tag(sync=True)
    _columns = t.List(t.Int(), help="Cells whose values are in _values, in column order.").tag(sync=True)
    _values = t.Dict(help="(len(tokens), len(_columns)) float16 states of those cells.").tag(sync=True)

    # --- view state ----------------------------------------------------------------------------
    cell = t.Int(0, help="The cell colouring the text (any cell; one not in the list is added).").tag(sync=True)
    color_by = t.Enum(["cell", "indicator"], default_value="cell", help="Colour the text by the cell or by the indicator. Default 'cell'.").tag(sync=True)

    def __init__(
        self,
        states: HiddenStates,
        cell: int | None = None,
        indicator: str | Callable[[Sequence[str]], Any] | Sequence[float] | np.ndarray | None = None,
        *,
        start: int = 0,
        end: int | None = None,
        top: int = 20,
        indicator_name: str | None = None,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(states, HiddenStates):
            raise TypeError(f"states: expected a HiddenStates, got {type(states).__name__}")
        self._states = states
        n = states.n_tokens
        if end is None:
            end = min(n, start + 4000) if isinstance(start, int) and not isinstance(start, bool) else None
        start, end = states._range(start, end)
        if end - start > MAX_TOKENS:
            raise ValueError(f"end: at most {MAX_TOKENS} tokens can be shown at once, got end - start = {end - start}")
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise ValueError(f"top: expected a positive int, got {top!r}")
        tokens = states.tokens_in(start, end)
        ind, name, r0, r1 = self._indicator(indicator, tokens, start, end, n)
        if ind is None:
            std = np.asarray(states.window(start, end), dtype=np.float64).std(axis=0)
            order = np.lexsort((np.arange(len(std)), -std))[:top]
            ranked: list[dict[str, Any]] = [{"cell": int(c), "score": float(std[c])} for c in order]
            score_name = "std"
        else:
            ranking = states.rank_cells(ind, r0, r1)
            ranked = [{"cell": c, "score": r} for c, r in ranking.top(top)]
            score_name = "r"
        self._columns_list = [d["cell"] for d in ranked]
        labels = states.cell_labels
        super().__init__(
            tokens=tokens,
            start=start,
            n_cells=states.n_cells,
            cell_labels=list(labels) if labels is not None else [],
            ranked=ranked,
            score_name=score_name,
            ranked_over=f"tokens [{r0}, {r1})" if ind is not None else f"tokens [{start}, {end})",
            indicator_name=(indicator_name or name) if ind is not None else "",
            indicator={} if ind is None else encode_array(ind[start - r0 : end - r0], "float32", name="indicator"),
            title="" if title is None else str(title),
            **kwargs,
        )
        self._range_shown = (start, end)
        self._sync_columns()
        self.cell = ranked[0]["cell"] if cell is None else cell

    @property
    def states(self) -> HiddenStates:
        """The hidden states shown."""
        return self._states

    @staticmethod
    def _indicator(
        indicator: Any, tokens: list[str], start: int, end: int, n: int
    ) -> tuple[np.ndarray | None, str, int, int]:
        """The indicator as float64, its name, and the token range it covers."""
        if indicator is None:
            return None, "", start, end
        if isinstance(indicator, str):
            if indicator not in INDICATORS:
                raise ValueError(f"indicator: unknown name {indicator!r}; expected one of {', '.join(INDICATORS)}, a function or an array")
            return np.asarray(INDICATORS[indicator](tokens), dtype=np.float64), indicator, start, end
        if callable(indicator):
            values = np.asarray(indicator(tokens), dtype=np.float64)
            name = getattr(indicator, "__name__", "indicator")
            if values.shape != (end - start,):
                raise ValueError(f"indicator: the function returned shape {values.shape}; expected ({end - start},), one value per shown token")
            return values, name, start, end
        try:
            values = np.asarray(indicator.detach().cpu() if hasattr(indicator, "detach") else indicator, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"indicator: expected None, a name, a function or numbers, got {type(indicator).__name__}") from None
        if values.ndim == 1 and len(values) == end - start:
            return values, "indicator", start, end
        if values.ndim == 1 and len(values) == n:
            return values, "indicator", 0, n
        raise ValueError(
            f"indicator: expected {end - start} values (one per shown token) or {n} (one per corpus token), got shape {values.shape}"
        )

    def _sync_columns(self) -> None:
        start, end = self._range_shown
        self._values = encode_array(self._states.window(start, end, cells=self._columns_list), "float16", name="states")
        self._columns = list(self._columns_list)

    @t.validate("cell")
    def _check_cell(self, proposal: t.Bunch) -> int:
        c = proposal["value"]
        n = self._states.n_cells
        if isinstance(c, bool) or (not isinstance(c, (int, np.integer)) and not (isinstance(c, float) and math.isfinite(c) and c.is_integer())):
            raise t.TraitError(f"cell: expected an int cell id, got {c!r}")
        c = int(c)
        if not 0 <= c < n:
            raise t.TraitError(f"cell: {c} is out of range for {n} cells (expected 0..{n - 1})")
        return c

    @t.observe("cell")
    def _on_cell(self, change: t.Bunch) -> None:
        if change["new"] not in self._columns_list:
            self._columns_list.append(change["new"])
            self._sync_columns()
