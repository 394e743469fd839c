"""SanityCheckView: maps under model or label randomization, similarity curves and verdicts.

Front end: ``js/sanity.ts``. Compute: ``deepvis_widgets/compute/sanity.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import traitlets as t

from .._arrays import encode_array
from ..compute.sanity import (
    METRIC_LABELS,
    METRICS,
    SanityResult,
    label_randomization_check,
    sanity_check,
    verdict_details,
)
from ._base import DeepVisWidget, progress_bar

__all__ = ["SanityCheckView"]

#: Longest side of a map as sent to the view; larger maps are averaged down by an integer factor.
MAX_SIDE = 96


def _shrink(maps: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """Block-averages the last two axes by the smallest integer factor that fits ``max_side``."""
    h, w = maps.shape[-2:]
    f = max(1, -(-max(h, w) // max_side))
    if f == 1:
        return maps
    ph, pw = -h % f, -w % f
    pad = [(0, 0)] * (maps.ndim - 2) + [(0, ph), (0, pw)]
    padded = np.pad(maps, pad, mode="edge")
    shape = (*maps.shape[:-2], (h + ph) // f, f, (w + pw) // f, f)
    return padded.reshape(shape).mean(axis=(-3, -1))


def _unit_maps(maps: np.ndarray, n_lead: int) -> np.ndarray:
    """Each map divided by its own maximum |value| (values in [-1, 1]; zero maps stay 0)."""
    flat = maps.reshape(*maps.shape[:n_lead], -1)
    top = np.abs(flat).max(-1, keepdims=True)
    out = np.where(top > 0, flat / np.where(top > 0, top, 1), 0.0)
    return out.reshape(maps.shape).astype(np.float32)


def _display_inputs(inputs: np.ndarray) -> np.ndarray:
    """(N, C, H, W) images as (N, h, w) grey or (N, h, w, 3) RGB in [0, 1], each min-max scaled."""
    x = inputs.astype(np.float32)
    x = x.mean(1) if x.shape[1] != 3 else np.moveaxis(x, 1, -1)
    lo = x.reshape(x.shape[0], -1).min(1).reshape(-1, *([1] * (x.ndim - 1)))
    hi = x.reshape(x.shape[0], -1).max(1).reshape(-1, *([1] * (x.ndim - 1)))
    x = (x - lo) / np.where(hi > lo, hi - lo, 1.0)
    if x.ndim == 4:
        return np.moveaxis(_shrink(np.moveaxis(x, -1, 1)), 1, -1)
    return _shrink(x)


class SanityCheckView(DeepVisWidget, entry="sanity"):
    """Small multiples of each method's map as the model is randomized, with verdicts.

    Rows are methods; columns are the original map then the randomization
    steps (each map scaled to its own maximum). Beside them, one line chart per
    similarity metric (mean over examples, per method), and below, a
    plain-language verdict per method with the threshold used. Hover a map for
    its similarities; choose the example in the toolbar.

    Build it with :meth:`from_model` / :meth:`from_label_randomization`, or
    from a :class:`~deepvis_widgets.compute.sanity.SanityResult`.

    Parameters
    ----------
    result
        From ``sanity_check`` or ``label_randomization_check``.
    tokens
        Text results only: the token strings of each example (N lists of T
        strings), or a tokenizer with ``convert_ids_to_tokens``. Default: ids.
    threshold, metric
        The verdict rule (see :func:`~deepvis_widgets.compute.sanity.verdicts`).
    example
        Index of the example whose maps are shown.
    title
        Title; default names the kind of check.

    Example
    -------
    >>> from deepvis_widgets.examples.digits import digits_cnn, digits_data
    >>> view = SanityCheckView.from_model(digits_cnn(), digits_data().x_test[:4])  # doctest: +SKIP
    >>> view.verdicts[0]["passed"]  # doctest: +SKIP
    True
    """

    # --- data ------------------------------------------------------------------
    kind = t.Enum(
        ["image", "text", "dense"], default_value="image", help="What the inputs were."
    ).tag(sync=True)
    mode = t.Enum(
        ["cascading", "independent", "labels"],
        default_value="cascading",
        help="Kind of randomization.",
    ).tag(sync=True)
    methods = t.List(t.Unicode(), help="Method names, one per row.").tag(sync=True)
    method_labels = t.List(t.Unicode(), help="Display names of the methods (text).").tag(sync=True)
    signed = t.List(t.Bool(), help="Per method: signed maps use a diverging scale.").tag(sync=True)
    steps = t.List(
        t.Unicode(), help="Column labels: 'original', then the block re-initialised at each step."
    ).tag(sync=True)
    maps = t.Dict(
        help="(methods, steps, N, h, w) or (..., T) uint8: each map divided by its max |value|."
    ).tag(sync=True)
    inputs = t.Dict(
        help="Images only: (N, h, w) grey or (N, h, w, 3) RGB in [0, 1], uint8; {} otherwise."
    ).tag(sync=True)
    tokens = t.List(
        t.List(t.Unicode()), help="Text only: token strings per example. Default []."
    ).tag(sync=True)
    targets = t.List(t.Int(), help="Class explained per example ([] for a callable target).").tag(
        sync=True
    )
    metric_names = t.List(t.Unicode(), help="Metric keys, in the order of scores' last axis.").tag(
        sync=True
    )
    metric_labels = t.List(t.Unicode(), help="Metric display names.").tag(sync=True)
    scores = t.Dict(
        help="(methods, steps, N, metrics) float32 similarity with the original map."
    ).tag(sync=True)

    # --- verdicts ------------------------------------------------------------------
    threshold = t.Float(0.5, help="Similarity below which a method passes. Default 0.5.").tag(
        sync=True
    )
    verdict_metric = t.Enum(
        list(METRICS), default_value="spearman_abs", help="Metric the verdict uses."
    ).tag(sync=True)
    verdicts = t.List(
        t.Dict(),
        help="[{method, passed, text, value}] per method, from threshold and verdict_metric.",
    ).tag(sync=True)

    # --- interaction --------------------------------------------------------------
    example = t.Int(0, help="Index of the example whose maps are shown. Default 0.").tag(sync=True)

    def __init__(
        self,
        result: SanityResult,
        *,
        tokens: Any = None,
        threshold: float = 0.5,
        metric: str = "spearman_abs",
        example: int = 0,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(result, SanityResult):
            raise TypeError(
                "result: expected a SanityResult (see SanityCheckView.from_model), got "
                f"{type(result).__name__}"
            )
        if metric not in METRICS:
            raise ValueError(f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")
        self._result = result
        maps = result.maps
        if maps.ndim == 5:
            maps = _shrink(maps)
        judged = verdict_details(result, threshold, metric)
        default_title = (
            "Label randomization check"
            if result.mode == "labels"
            else f"Sanity check: {result.mode} model randomization"
        )
        super().__init__(
            kind=result.kind,
            mode=result.mode,
            methods=list(result.methods),
            method_labels=list(result.method_labels),
            signed=[bool(s) for s in result.signed],
            steps=list(result.steps),
            maps=encode_array(_unit_maps(maps, 3), "uint8", name="maps"),
            inputs=(
                encode_array(_display_inputs(result.inputs), "uint8", name="inputs")
                if result.kind == "image"
                else {}
            ),
            tokens=self._tokens(tokens, result),
            targets=[int(c) for c in result.target] if result.target is not None else [],
            metric_names=list(result.metrics),
            metric_labels=[METRIC_LABELS[m] for m in result.metrics],
            scores=encode_array(result.scores.astype(np.float32), "float32", name="scores"),
            threshold=float(threshold),
            verdict_metric=metric,
            verdicts=judged,
            example=example,
            title=default_title if title is None else str(title),
            **kwargs,
        )

    @staticmethod
    def _tokens(tokens: Any, result: SanityResult) -> list[list[str]]:
        if result.kind != "text":
            if tokens is not None:
                raise TypeError("tokens: only text results (token ids) have tokens")
            return []
        ids = result.inputs
        if tokens is None:
            return [[f"#{int(i)}" for i in row] for row in ids]
        convert = getattr(tokens, "convert_ids_to_tokens", None)
        if callable(convert):
            return [[str(s) for s in convert([int(i) for i in row])] for row in ids]
        if isinstance(tokens, str) or not isinstance(tokens, Sequence):
            raise TypeError(
                "tokens: expected one list of token strings per example, or a tokenizer"
            )
        out = []
        for e, row in enumerate(tokens):
            if isinstance(row, str) or not isinstance(row, Sequence):
                raise TypeError(f"tokens[{e}]: expected a list of token strings")
            out.append([str(s) for s in row])
        if len(out) != ids.shape[0] or any(len(r) != ids.shape[1] for r in out):
            raise ValueError(
                f"tokens: expected {ids.shape[0]} lists of {ids.shape[1]} strings (the shape of "
                f"the token ids), got {[len(r) for r in out]}"
            )
        return out

    @property
    def result(self) -> SanityResult:
        """The :class:`~deepvis_widgets.compute.sanity.SanityResult` shown."""
        return self._result

    @t.validate("example")
    def _check_example(self, proposal: t.Bunch) -> int:
        value = proposal["value"]
        n = self._result.maps.shape[2]
        if not 0 <= value < n:
            raise t.TraitError(f"example: expected 0 <= example < {n}, got {value}")
        return int(value)

    @t.validate("threshold")
    def _check_threshold(self, proposal: t.Bunch) -> float:
        value = float(proposal["value"])
        if not -1.0 <= value <= 1.0:
            raise t.TraitError(f"threshold: expected a similarity between -1 and 1, got {value}")
        return value

    @t.observe("threshold", "verdict_metric")
    def _rejudge(self, change: t.Bunch) -> None:
        self.verdicts = verdict_details(self._result, self.threshold, self.verdict_metric)

    @classmethod
    def from_model(
        cls,
        model: Any,
        inputs: Any,
        methods: Sequence[str] | str | None = None,
        *,
        mode: str = "cascading",
        target: Any = None,
        seed: int = 0,
        tokens: Any = None,
        threshold: float = 0.5,
        metric: str = "spearman_abs",
        title: str | None = None,
        **options: Any,
    ) -> SanityCheckView:
        """Runs :func:`~deepvis_widgets.compute.sanity.sanity_check` (with a progress bar) and shows it.

        ``options`` go to ``sanity_check`` (``blocks=``, ``method_options=``, ``attention_mask=``...).

        Example
        -------
        >>> SanityCheckView.from_model(model, images, ["saliency", "gradcam"])  # doctest: +SKIP
        """
        with progress_bar("sanity check") as report:
            result = sanity_check(
                model,
                inputs,
                methods,
                mode=mode,
                target=target,
                seed=seed,
                **{"progress": report, **options},
            )
        return cls(result, tokens=tokens, threshold=threshold, metric=metric, title=title)

    @classmethod
    def from_label_randomization(
        cls,
        model_true: Any,
        model_random_labels: Any,
        inputs: Any,
        methods: Sequence[str] | str | None = None,
        *,
        target: Any = None,
        seed: int = 0,
        tokens: Any = None,
        threshold: float = 0.5,
        metric: str = "spearman_abs",
        title: str | None = None,
        **options: Any,
    ) -> SanityCheckView:
        """Runs :func:`~deepvis_widgets.compute.sanity.label_randomization_check` and shows it.

        Example
        -------
        >>> SanityCheckView.from_label_randomization(digits_cnn(), digits_cnn(permuted_labels=True), x)  # doctest: +SKIP
        """
        with progress_bar("label randomization check") as report:
            result = label_randomization_check(
                model_true,
                model_random_labels,
                inputs,
                methods,
                target=target,
                seed=seed,
                **{"progress": report, **options},
            )
        return cls(result, tokens=tokens, threshold=threshold, metric=metric, title=title)
