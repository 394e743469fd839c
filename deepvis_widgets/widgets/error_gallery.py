"""ErrorGallery: small multiples of examples sampled across a per-example metric (worst, median, best).

Front end: ``js/error_gallery.ts``. Only the sampled examples are embedded;
the metric's distribution travels as a histogram.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import traitlets as t

from .._arrays import as_numpy
from ..compute.comparison import as_class_predictions, per_example_loss, sample_by_metric
from ._base import DeepVisWidget
from .projection import encode_examples, take_examples

__all__ = ["ErrorGallery"]

HIST_BINS = 48


class ErrorGallery(DeepVisWidget, entry="error_gallery"):
    """Examples at the worst, median and best of a per-example metric, as small multiples.

    One row per group, worst first within each; a card shows the example,
    its metric value and (when given) its label and prediction, a wrong
    prediction marked. Above the rows a histogram of the metric (log-scaled
    counts) marks where every shown example lies; hovering a card
    highlights its mark, clicking it sets :attr:`selected`.

    Parameters
    ----------
    examples
        ``n`` images or strings (see
        :func:`~deepvis_widgets.widgets.projection.encode_examples`).
    metric
        ``(n,)`` per-example values (a loss, a margin, a confidence...).
        NaN or infinite values are never sampled; their count is shown.
    metric_name
        What the metric is called. Default ``"loss"``.
    labels, preds
        Optional ``(n,)`` true and predicted classes (``preds`` may be scores; argmax is taken).
    class_names
        Optional names for class indices (text, never HTML).
    per_group
        Examples per group. Default 8.
    groups
        ``"worst"``, ``"median"``, ``"best"`` or quantiles in [0, 1]
        (see :func:`~deepvis_widgets.compute.comparison.sample_by_metric`).
    higher_is_worse
        ``True`` for losses (default); ``False`` for accuracies or margins.
    title
        Optional title.

    Example
    -------
    >>> import numpy as np, deepvis_widgets as dv
    >>> w = dv.ErrorGallery(np.random.rand(100, 8, 8), np.random.rand(100), per_group=4)
    >>> [g["name"] for g in w.groups]
    ['worst', 'median', 'best']
    """

    # --- data ----------------------------------------------------------------------------
    _examples = t.Dict(help="The sampled examples (see encode_examples), one row per entry of sample_ids.").tag(sync=True)
    sample_ids = t.List(t.Int(), help="Index (in the user's examples) of each embedded example.").tag(sync=True)
    sample_values = t.List(t.Float(), help="Metric value of each embedded example.").tag(sync=True)
    sample_labels = t.List(t.Unicode(), help="True label text of each embedded example ('' when not given).").tag(sync=True)
    sample_preds = t.List(t.Unicode(), help="Predicted label text of each embedded example ('' when not given).").tag(sync=True)
    groups = t.List(t.Dict(), help="[{name, rows}] with rows indexing the embedded examples, worst first.").tag(sync=True)
    _hist = t.Dict(help="{edges: [bins + 1], counts: [bins]} of the finite metric values.").tag(sync=True)
    n_nonfinite = t.Int(0, help="How many metric values were NaN or infinite (never sampled).").tag(sync=True)

    # --- appearance ----------------------------------------------------------------------
    metric_name = t.Unicode("loss", help="Name of the metric (text). Default 'loss'.").tag(sync=True)
    higher_is_worse = t.Bool(True, help="Whether a higher metric is worse. Default True.").tag(sync=True)
    thumb_size = t.Int(72, help="Longest side of an image card in CSS pixels. Default 72.").tag(sync=True)

    # --- interaction ---------------------------------------------------------------------
    selected = t.Int(None, allow_none=True, help="Index (in the user's examples) of the clicked card, or None.").tag(sync=True)

    def __init__(
        self,
        examples: Any,
        metric: Any,
        *,
        metric_name: str = "loss",
        labels: Any = None,
        preds: Any = None,
        class_names: Sequence[str] | None = None,
        per_group: int = 8,
        groups: Sequence[str | float] = ("worst", "median", "best"),
        higher_is_worse: bool = True,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        m = as_numpy(metric, "metric").astype(np.float64)
        if m.ndim != 1:
            raise ValueError(f"metric: expected one value per example (n,), got shape {m.shape}")
        n = m.shape[0]
        if examples is None:
            raise TypeError("examples: expected n images or strings to show, got None")
        sampled = sample_by_metric(m, per_group, groups, higher_is_worse)
        rows: list[int] = []
        group_rows = []
        for name, idx in sampled.items():
            group_rows.append({"name": name, "rows": list(range(len(rows), len(rows) + idx.size))})
            rows.extend(int(i) for i in idx)
        ids = np.asarray(rows, dtype=np.int64)
        names = None if class_names is None else [str(c) for c in class_names]
        if isinstance(class_names, str):
            raise TypeError("class_names: expected a sequence of strings, got a single string")
        finite = m[np.isfinite(m)]
        counts, edges = np.histogram(finite, bins=HIST_BINS)
        self._n = n
        encoded = encode_examples(take_examples(examples, ids, n), ids.size)
        super().__init__(
            sample_ids=rows,
            sample_values=[float(m[i]) for i in rows],
            sample_labels=self._names(labels, n, ids, names, "labels"),
            sample_preds=self._names(preds, n, ids, names, "preds"),
            groups=group_rows,
            n_nonfinite=int(n - finite.size),
            metric_name=str(metric_name),
            higher_is_worse=bool(higher_is_worse),
            title="" if title is None else str(title),
            **kwargs,
        )
        self._examples = encoded
        self._hist = {"edges": edges.tolist(), "counts": counts.tolist()}

    @staticmethod
    def _names(values: Any, n: int, ids: np.ndarray, names: list[str] | None, arg: str) -> list[str]:
        if values is None:
            return [""] * ids.size
        cls = as_class_predictions(values, n, arg)
        if names is not None and cls.size and cls.max() >= len(names):
            raise ValueError(f"class_names: expected at least {int(cls.max()) + 1} names ({arg} go up to {int(cls.max())}), got {len(names)}")
        return [names[c] if names is not None else str(c) for c in cls[ids].tolist()]

    @classmethod
    def from_model(
        cls,
        model: Any,
        inputs: Any,
        targets: Any,
        examples: Any = None,
        *,
        batch_size: int = 256,
        **kwargs: Any,
    ) -> ErrorGallery:
        """Samples examples by their cross-entropy loss under ``model`` (computed here, without gradients).

        ``examples`` defaults to ``inputs``; the model comes back unchanged.

        Example
        -------
        >>> gallery = ErrorGallery.from_model(net, x_test, y_test, class_names=names)  # doctest: +SKIP
        """
        losses, preds = per_example_loss(model, inputs, targets, batch_size)
        return cls(inputs if examples is None else examples, losses, labels=targets, preds=preds, **kwargs)

    @t.validate("selected")
    def _check_selected(self, proposal: t.Bunch) -> int | None:
        value = proposal["value"]
        if value is not None and not 0 <= value < self._n:
            raise t.TraitError(f"selected: expected an example index in 0..{self._n - 1}, got {value}")
        return value

    @t.validate("thumb_size")
    def _check_thumb(self, proposal: t.Bunch) -> int:
        if not 16 <= proposal["value"] <= 512:
            raise t.TraitError(f"thumb_size: expected 16..512 CSS pixels, got {proposal['value']}")
        return int(proposal["value"])
