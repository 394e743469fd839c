"""Comparing two models' predictions, and sampling examples across a per-example metric.

Pure numpy: :func:`compare_predictions` (both right / only A right / only B
right / both wrong, per class, with McNemar's exact test on the examples the
models disagree about) and :func:`sample_by_metric` (the worst, median and
best examples of a metric such as the loss). The views are
``widgets/comparison.py`` and ``widgets/error_gallery.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._arrays import as_numpy

__all__ = [
    "CATEGORIES",
    "Comparison",
    "as_class_predictions",
    "compare_predictions",
    "per_example_loss",
    "sample_by_metric",
]

#: The four outcomes of an example under two models, in display order.
CATEGORIES = ("both_right", "only_a", "only_b", "both_wrong")
_GROUPS = {"worst", "median", "best"}


def as_class_predictions(preds: Any, n: int | None, name: str) -> np.ndarray:
    """Class predictions as int64 ``(n,)``: class indices as they are, scores ``(n, classes)`` by argmax.

    Example
    -------
    >>> as_class_predictions([[0.1, 0.9], [2.0, -1.0]], 2, "preds_a").tolist()
    [1, 0]
    """
    if isinstance(preds, str):
        raise TypeError(f"{name}: expected class indices (n,) or scores (n, classes), got a string")
    arr = as_numpy(preds, name)
    if arr.ndim == 2:
        if arr.shape[1] < 2:
            raise ValueError(f"{name}: scores need at least 2 classes, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: scores contain NaN or infinity")
        arr = arr.argmax(axis=1)
    elif arr.ndim != 1:
        raise ValueError(f"{name}: expected class indices (n,) or scores (n, classes), got shape {arr.shape}")
    elif arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name}: expected integer class indices, got non-integer values")
    elif arr.dtype.kind not in "iub":
        raise TypeError(f"{name}: expected integer class indices, got dtype {arr.dtype}")
    out = arr.astype(np.int64)
    if n is not None and out.shape[0] != n:
        raise ValueError(f"{name}: expected {n} predictions (one per example in y_true), got {out.shape[0]}")
    if out.size and out.min() < 0:
        raise ValueError(f"{name}: class indices must be >= 0, got {int(out.min())}")
    return out


def _mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs (binomial, p = 1/2)."""
    m = b + c
    if m == 0:
        return 1.0
    k = min(b, c)
    # log-space binomial tail; doubling the smaller tail, capped at 1.
    logs = [math.lgamma(m + 1) - math.lgamma(i + 1) - math.lgamma(m - i + 1) - m * math.log(2.0) for i in range(k + 1)]
    top = max(logs)
    tail = math.exp(top) * sum(math.exp(v - top) for v in logs)
    return min(1.0, 2.0 * tail)


@dataclass(frozen=True)
class Comparison:
    """Two models' outcomes on the same labelled examples.

    Attributes
    ----------
    y_true, pred_a, pred_b
        ``(n,)`` int64 class indices.
    category
        ``(n,)`` int8 index into :data:`CATEGORIES` for each example.
    counts
        ``(classes, 4)`` int64: examples of each true class in each category.
    class_names
        One name per class index.
    """

    y_true: np.ndarray
    pred_a: np.ndarray
    pred_b: np.ndarray
    category: np.ndarray
    counts: np.ndarray
    class_names: list[str]

    @property
    def accuracy_a(self) -> float:
        return float(np.mean(self.pred_a == self.y_true)) if self.y_true.size else float("nan")

    @property
    def accuracy_b(self) -> float:
        return float(np.mean(self.pred_b == self.y_true)) if self.y_true.size else float("nan")

    @property
    def mcnemar_p(self) -> float:
        """Exact two-sided McNemar p-value: do A and B differ more than chance on the examples only one gets right?"""
        total = self.counts.sum(axis=0)
        return _mcnemar_exact(int(total[1]), int(total[2]))

    def indices(self, category: str, cls: int | None = None) -> np.ndarray:
        """Indices of the examples in ``category`` (one of :data:`CATEGORIES`), of true class ``cls`` or all."""
        if category not in CATEGORIES:
            raise ValueError(f"category: expected one of {', '.join(CATEGORIES)}, got {category!r}")
        mask = self.category == CATEGORIES.index(category)
        if cls is not None:
            if not 0 <= cls < len(self.class_names):
                raise ValueError(f"cls: expected a class index in [0, {len(self.class_names)}), got {cls}")
            mask &= self.y_true == cls
        return np.flatnonzero(mask)

    def table(self) -> list[dict[str, Any]]:
        """One dict per class: its name, the four category counts, support and both accuracies.

        Example
        -------
        >>> compare_predictions([0, 1], [0, 0], [0, 1]).table()[1]["only_b"]
        1
        """
        rows = []
        for k, name in enumerate(self.class_names):
            cnt = self.counts[k]
            support = int(cnt.sum())
            row: dict[str, Any] = {"class": name, **{c: int(v) for c, v in zip(CATEGORIES, cnt, strict=True)}, "support": support}
            row["accuracy_a"] = (int(cnt[0]) + int(cnt[1])) / support if support else float("nan")
            row["accuracy_b"] = (int(cnt[0]) + int(cnt[2])) / support if support else float("nan")
            rows.append(row)
        return rows

    def to_pandas(self) -> Any:
        """:meth:`table` as a ``pandas.DataFrame`` indexed by class (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("to_pandas needs pandas (pip install pandas); table() gives the same rows as dicts") from exc
        return pd.DataFrame(self.table()).set_index("class")


def compare_predictions(
    y_true: Any, preds_a: Any, preds_b: Any, class_names: Sequence[str] | None = None
) -> Comparison:
    """Splits examples into both right / only A right / only B right / both wrong, per true class.

    Parameters
    ----------
    y_true
        ``(n,)`` integer class indices.
    preds_a, preds_b
        ``(n,)`` class indices or ``(n, classes)`` scores (logits or probabilities; argmax is taken).
    class_names
        Optional names, at least one per class that occurs.

    Example
    -------
    >>> c = compare_predictions([0, 0, 1, 1], [0, 1, 1, 0], [0, 0, 0, 0])
    >>> c.counts.tolist()
    [[1, 0, 1, 0], [0, 1, 0, 1]]
    """
    y = as_class_predictions(y_true, None, "y_true")
    a = as_class_predictions(preds_a, y.shape[0], "preds_a")
    b = as_class_predictions(preds_b, y.shape[0], "preds_b")
    k = int(max(y.max(initial=-1), a.max(initial=-1), b.max(initial=-1))) + 1
    if class_names is not None:
        if isinstance(class_names, str):
            raise TypeError("class_names: expected a sequence of strings, got a single string")
        names = [str(c) for c in class_names]
        if len(names) < k:
            raise ValueError(f"class_names: expected at least {k} names (classes go up to {k - 1}), got {len(names)}")
    else:
        names = [str(i) for i in range(k)]
    ra, rb = a == y, b == y
    category = np.where(ra & rb, 0, np.where(ra, 1, np.where(rb, 2, 3))).astype(np.int8)
    counts = np.zeros((len(names), 4), dtype=np.int64)
    np.add.at(counts, (y, category), 1)
    return Comparison(y, a, b, category, counts, names)


def sample_by_metric(
    metric: Any,
    per_group: int = 8,
    groups: Sequence[str | float] = ("worst", "median", "best"),
    higher_is_worse: bool = True,
) -> dict[str, np.ndarray]:
    """Indices of examples spread over the range of a per-example metric.

    ``"worst"`` is the ``per_group`` examples with the highest metric (lowest
    when ``higher_is_worse=False``), ``"best"`` the other end, ``"median"``
    the ones around the middle of the sorted order, and a number ``q`` in
    [0, 1] the ones around that quantile (0 = best, 1 = worst). Each group is
    ordered worst first. NaN values are never sampled (a NaN loss is neither
    good nor bad); ties keep the lower index first.

    Example
    -------
    >>> s = sample_by_metric([0.1, 5.0, 0.3, 2.0, 0.2], per_group=1)
    >>> {k: v.tolist() for k, v in s.items()}
    {'worst': [1], 'median': [2], 'best': [0]}
    """
    m = as_numpy(metric, "metric").astype(np.float64)
    if m.ndim != 1:
        raise ValueError(f"metric: expected one value per example (n,), got shape {m.shape}")
    if not isinstance(per_group, (int, np.integer)) or isinstance(per_group, bool) or per_group < 1:
        raise ValueError(f"per_group: expected a positive integer, got {per_group!r}")
    if isinstance(groups, str) or not len(groups):
        raise ValueError("groups: expected a non-empty sequence like ('worst', 'median', 'best')")
    valid = np.flatnonzero(np.isfinite(m))
    if valid.size == 0:
        raise ValueError("metric: every value is NaN or infinite; nothing to sample")
    # best -> worst, stable so ties keep index order
    key = m[valid] if higher_is_worse else -m[valid]
    order = valid[np.argsort(key, kind="stable")]
    count = order.size
    k = min(int(per_group), count)
    out: dict[str, np.ndarray] = {}
    for g in groups:
        if isinstance(g, str):
            if g not in _GROUPS:
                raise ValueError(f"groups: expected 'worst', 'median', 'best' or a quantile in [0, 1], got {g!r}")
            q = {"best": 0.0, "median": 0.5, "worst": 1.0}[g]
            name = g
        else:
            q = float(g)
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"groups: quantiles must lie in [0, 1], got {g!r}")
            name = f"q{q:g}"
        centre = q * (count - 1)
        start = int(np.clip(round(centre - (k - 1) / 2), 0, count - k))
        out[name] = order[start : start + k][::-1].copy()
    return out


def per_example_loss(model: Any, inputs: Any, targets: Any, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Cross-entropy loss and predicted class of every example, in batches, without gradients.

    The model is lent through :func:`~deepvis_widgets.compute._hooks.preserved_model`
    (eval mode for the duration, its own mode restored, no hooks left).

    Parameters
    ----------
    model
        A classifier ``torch.nn.Module`` returning ``(n, classes)`` logits.
    inputs
        ``(n, ...)`` tensor of examples.
    targets
        ``(n,)`` integer class indices.
    batch_size
        Examples per forward pass.

    Returns
    -------
    (losses, preds)
        ``(n,)`` float64 losses and ``(n,)`` int64 predicted classes.

    Example
    -------
    >>> import torch
    >>> net = torch.nn.Linear(4, 3)
    >>> losses, preds = per_example_loss(net, torch.randn(10, 4), torch.zeros(10, dtype=torch.long))
    >>> losses.shape, preds.shape
    ((10,), (10,))
    """
    import torch
    import torch.nn.functional as F

    from ._hooks import preserved_model

    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs: expected a torch.Tensor of examples, got {type(inputs).__name__}")
    y = torch.as_tensor(as_class_predictions(targets, inputs.shape[0], "targets"))
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    losses, preds = [], []
    with preserved_model(model), torch.no_grad():
        for i in range(0, inputs.shape[0], batch_size):
            out = model(inputs[i : i + batch_size])
            logits = getattr(out, "logits", out)
            if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
                raise ValueError(f"model: expected (batch, classes) logits, got {type(logits).__name__} {getattr(logits, 'shape', '')}")
            yb = y[i : i + batch_size].to(logits.device)
            if yb.numel() and int(yb.max()) >= logits.shape[1]:
                raise ValueError(f"targets: class index {int(yb.max())} is out of range for {logits.shape[1]} classes")
            losses.append(F.cross_entropy(logits.float(), yb, reduction="none").cpu().numpy())
            preds.append(logits.argmax(1).cpu().numpy())
    return np.concatenate(losses).astype(np.float64), np.concatenate(preds).astype(np.int64)
