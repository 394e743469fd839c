"""ModelComparison: where two models agree and disagree, per class, with the examples behind every count.

Front end: ``js/comparison.ts``. The per-example outcomes travel as int32
arrays, so the table and its drill-down work in exported HTML without a
kernel; at most ``max_per_cell`` examples per cell are embedded as pictures
or texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import traitlets as t

from .._arrays import encode_array
from ..compute.comparison import CATEGORIES, Comparison, compare_predictions
from ._base import DeepVisWidget
from .projection import encode_examples, take_examples

__all__ = ["ModelComparison"]


def _spread(idx: np.ndarray, k: int) -> np.ndarray:
    """``k`` indices evenly spread over ``idx`` (all of them when there are few)."""
    if idx.size <= k:
        return idx
    return idx[np.linspace(0, idx.size - 1, k).round().astype(np.int64)]


class ModelComparison(DeepVisWidget, entry="comparison"):
    """Two models on the same labelled examples: both right, only A right, only B right, both wrong.

    One row per true class (plus an "all classes" row), one column per
    outcome; each cell shows its count and a bar of its share of the class.
    Clicking a cell lists its examples (true label and both predictions
    under each) and sets :attr:`selected` and :attr:`selected_ids`. The
    header gives both accuracies and McNemar's exact test on the examples
    only one model gets right.

    Parameters
    ----------
    y_true
        ``(n,)`` integer class indices.
    preds_a, preds_b
        ``(n,)`` predicted class indices, or ``(n, classes)`` scores (argmax is taken).
    examples
        Optional ``n`` images or strings (see
        :func:`~deepvis_widgets.widgets.projection.encode_examples`).
    class_names
        Optional class names (text, never HTML).
    model_names
        Names of the two models. Default ``("A", "B")``.
    max_per_cell
        Examples embedded per cell (spread evenly over the cell). Default 48.
    title
        Optional title.

    Example
    -------
    >>> import deepvis_widgets as dv
    >>> w = dv.ModelComparison([0, 1, 1, 2], [0, 1, 0, 2], [0, 0, 1, 1], model_names=("small", "big"))
    >>> w.comparison.counts.sum(axis=0).tolist()
    [1, 2, 1, 0]
    """

    # --- data (int32 payloads; see js/comparison.ts) ------------------------------------
    _y_true = t.Dict(help="(n,) int32 true classes.").tag(sync=True)
    _pred_a = t.Dict(help="(n,) int32 predictions of model A.").tag(sync=True)
    _pred_b = t.Dict(help="(n,) int32 predictions of model B.").tag(sync=True)
    _example_index = t.Dict(help="(n,) int32 row of each example in _examples, or -1 when not embedded.").tag(sync=True)
    _examples = t.Dict(help="The embedded examples (see encode_examples).").tag(sync=True)
    class_names = t.List(t.Unicode(), help="Name of each class index (text).").tag(sync=True)
    model_names = t.List(t.Unicode(), default_value=["A", "B"], help="Names of the two models. Default ['A', 'B'].").tag(sync=True)
    p_value = t.Float(1.0, help="McNemar's exact two-sided p-value (read-only).").tag(sync=True)

    # --- appearance ----------------------------------------------------------------------
    sort_by = t.Enum(["class", "disagreement", "errors"], default_value="class", help="Row order. Default 'class'.").tag(sync=True)

    # --- interaction ---------------------------------------------------------------------
    selected = t.Tuple(
        t.Int(), t.Unicode(), default_value=None, allow_none=True,
        help="(class index or -1 for all classes, category) of the clicked cell, or None.",
    ).tag(sync=True)
    selected_ids = t.List(t.Int(), help="Indices of the examples in the selected cell (read-only).").tag(sync=True)

    def __init__(
        self,
        y_true: Any,
        preds_a: Any,
        preds_b: Any,
        examples: Any = None,
        *,
        class_names: Sequence[str] | None = None,
        model_names: Sequence[str] = ("A", "B"),
        max_per_cell: int = 48,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        comp = compare_predictions(y_true, preds_a, preds_b, class_names)
        if isinstance(model_names, str) or len(model_names) != 2:
            raise ValueError(f"model_names: expected two names (A, B), got {model_names!r}")
        if not isinstance(max_per_cell, (int, np.integer)) or isinstance(max_per_cell, bool) or max_per_cell < 0:
            raise ValueError(f"max_per_cell: expected a non-negative integer, got {max_per_cell!r}")
        n = comp.y_true.shape[0]
        keep = np.zeros(n, dtype=bool)
        if examples is not None and max_per_cell:
            for c in range(len(comp.class_names)):
                for cat in CATEGORIES:
                    keep[_spread(comp.indices(cat, c), max_per_cell)] = True
        rows = np.flatnonzero(keep)
        index = np.full(n, -1, dtype=np.int32)
        index[rows] = np.arange(rows.size, dtype=np.int32)
        embedded = take_examples(examples, rows, n) if examples is not None else None
        self.comparison: Comparison = comp
        super().__init__(
            class_names=comp.class_names,
            model_names=[str(m) for m in model_names],
            p_value=comp.mcnemar_p,
            title="" if title is None else str(title),
            **kwargs,
        )
        self._y_true = encode_array(comp.y_true.astype(np.int32), "int32", name="y_true")
        self._pred_a = encode_array(comp.pred_a.astype(np.int32), "int32", name="preds_a")
        self._pred_b = encode_array(comp.pred_b.astype(np.int32), "int32", name="preds_b")
        self._example_index = encode_array(index, "int32", name="examples")
        self._examples = encode_examples(embedded, rows.size)

    @t.validate("selected")
    def _check_selected(self, proposal: t.Bunch) -> tuple[int, str] | None:
        value = proposal["value"]
        if value is None:
            return None
        cls, cat = int(value[0]), str(value[1])
        k = len(self.comparison.class_names)
        if not -1 <= cls < k:
            raise t.TraitError(f"selected: expected a class index in -1..{k - 1} (-1 = all classes), got {cls}")
        if cat not in CATEGORIES:
            raise t.TraitError(f"selected: expected a category in {', '.join(CATEGORIES)}, got {cat!r}")
        return (cls, cat)

    @t.observe("selected")
    def _sync_ids(self, change: t.Bunch) -> None:
        sel = change["new"]
        if sel is None:
            self.selected_ids = []
        else:
            self.selected_ids = self.comparison.indices(sel[1], None if sel[0] < 0 else sel[0]).tolist()

    def table(self) -> list[dict[str, Any]]:
        """The per-class counts (see :meth:`~deepvis_widgets.compute.comparison.Comparison.table`)."""
        return self.comparison.table()

    def to_pandas(self) -> Any:
        """The per-class table as a DataFrame (needs pandas)."""
        return self.comparison.to_pandas()
