"""ProjectionView: a 2-D projection of representations with the examples beside it.

Front end: ``js/projection.ts`` (BokehJS scatter via ``js/lib/bokeh.ts``,
example thumbnails via ``js/lib/examples.ts``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import traitlets as t

from .._arrays import as_numpy, encode_array
from ..compute.projection import Method, Projection, error_rate_surface, project
from .bokeh_loader import BokehView, bokeh_item, new_figure

__all__ = ["ProjectionView", "encode_examples", "encode_labels", "take_examples"]

#: Above this many points the scatter draws with WebGL.
WEBGL_POINTS = 5000
#: Longest side of an example thumbnail sent to the front end.
MAX_THUMB = 96
MAX_TEXT = 2000


def encode_examples(examples: Any, n: int, name: str = "examples") -> dict[str, Any]:
    """Encodes examples shown beside a chart: images as uint8 thumbnails, or texts.

    Parameters
    ----------
    examples
        ``None``; a sequence of ``n`` strings; or ``n`` images as an array
        ``(n, h, w)``, ``(n, h, w, 1|3)``, ``(n, 1|3, h, w)`` or ``(n, d)`` with
        ``d`` a square (e.g. 64 for 8x8 digits). Images are scaled to 0..254 by
        the global min and max and subsampled to at most 96 pixels a side.
    n
        The number of points the examples belong to.
    name
        Argument name for error messages.

    Returns
    -------
    dict
        ``{"kind": "none"}``, ``{"kind": "text", "texts": [...]}`` or
        ``{"kind": "image", "images": <uint8 payload (n, h, w, c)>}``.

    Example
    -------
    >>> encode_examples(np.zeros((3, 8, 8)), 3)["images"]["shape"]
    [3, 8, 8, 1]
    >>> encode_examples(["a", "b"], 2)["texts"]
    ['a', 'b']
    """
    if examples is None:
        return {"kind": "none"}
    if isinstance(examples, str):
        raise TypeError(f"{name}: expected {n} examples (strings or images), got a single string")
    if isinstance(examples, (list, tuple)) and examples and all(isinstance(e, str) for e in examples):
        if len(examples) != n:
            raise ValueError(f"{name}: expected {n} examples (one per point), got {len(examples)}")
        return {"kind": "text", "texts": [e if len(e) <= MAX_TEXT else e[:MAX_TEXT] + "…" for e in examples]}
    arr = as_numpy(examples, name).astype(np.float32, copy=False)
    if arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} examples (one per point), got {arr.shape[0]}")
    if arr.ndim == 2:
        side = math.isqrt(arr.shape[1])
        if side * side != arr.shape[1]:
            raise ValueError(f"{name}: flat examples must have a square number of pixels, got {arr.shape[1]}")
        arr = arr.reshape(n, side, side, 1)
    elif arr.ndim == 3:
        arr = arr[..., None]
    elif arr.ndim == 4:
        if arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
            arr = arr.transpose(0, 2, 3, 1)
        if arr.shape[-1] not in (1, 3):
            raise ValueError(f"{name}: expected images with 1 or 3 channels, got shape {arr.shape}")
    else:
        raise ValueError(f"{name}: expected images (n, h, w[, c]) or a list of strings, got shape {arr.shape}")
    stride = max(1, math.ceil(max(arr.shape[1], arr.shape[2]) / MAX_THUMB))
    arr = np.ascontiguousarray(arr[:, ::stride, ::stride, :])
    return {"kind": "image", "images": encode_array(arr, "uint8", name=name)}


def take_examples(examples: Any, indices: np.ndarray, n: int, name: str = "examples") -> Any:
    """The examples at ``indices`` of ``n`` examples (strings, arrays or tensors), for :func:`encode_examples`.

    Views that show only a sample of many examples encode just that sample.

    Example
    -------
    >>> take_examples(["a", "b", "c"], np.array([2, 0]), 3)
    ['c', 'a']
    """
    if examples is None:
        return None
    if isinstance(examples, str):
        raise TypeError(f"{name}: expected {n} examples (strings or images), got a single string")
    if isinstance(examples, (list, tuple)):
        if len(examples) != n:
            raise ValueError(f"{name}: expected {n} examples (one per point), got {len(examples)}")
        return [examples[int(i)] for i in indices]
    if not hasattr(examples, "shape") or not hasattr(examples, "__getitem__"):
        raise TypeError(f"{name}: expected a list of strings, a numpy array or a torch tensor, got {type(examples).__name__}")
    if len(examples.shape) == 0 or examples.shape[0] != n:
        raise ValueError(f"{name}: expected {n} examples (one per point), got shape {tuple(examples.shape)}")
    arr = as_numpy(examples[np.asarray(indices, dtype=np.int64)] if type(examples).__module__.startswith("torch") else np.asarray(examples)[indices], name)
    return arr


def encode_labels(labels: Any, n: int, class_names: Sequence[str] | None = None, name: str = "labels") -> tuple[dict[str, Any], list[str]]:
    """Labels as int32 codes plus their display names.

    Integer labels keep their values as codes (named by ``class_names`` when
    given); any other labels (strings...) are coded in sorted order.

    Example
    -------
    >>> payload, names = encode_labels(["cat", "dog", "cat"], 3)
    >>> names, payload["shape"]
    (['cat', 'dog'], [3])
    """
    if isinstance(labels, str):
        raise TypeError(f"{name}: expected {n} labels, got a single string")
    arr = labels.detach().cpu().numpy() if type(labels).__module__.startswith("torch") else np.asarray(labels)
    arr = arr.reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} labels (one per point), got {arr.shape[0]}")
    if arr.dtype.kind in "iub":
        codes = arr.astype(np.int64)
        if codes.min(initial=0) < 0:
            raise ValueError(f"{name}: integer labels must be class indices >= 0, got {int(codes.min())}")
        k = int(codes.max(initial=-1)) + 1
        if class_names is not None:
            names = [str(c) for c in class_names]
            if len(names) < k:
                raise ValueError(f"class_names: expected at least {k} names (labels go up to {k - 1}), got {len(names)}")
        else:
            names = [str(i) for i in range(k)]
    else:
        if class_names is not None:
            raise TypeError("class_names: only applies to integer labels")
        text = arr.astype(str)
        uniques, codes = np.unique(text, return_inverse=True)
        names = uniques.tolist()
    return encode_array(codes.astype(np.int32), "int32", name=name), names


def _errors(errors: Any, n: int) -> np.ndarray:
    e = as_numpy(errors, "errors").astype(np.float64).reshape(-1)
    if e.shape[0] != n:
        raise ValueError(f"errors: expected {n} values (one per point), got {e.shape[0]}")
    if not np.all(np.isfinite(e)) or e.min(initial=0) < 0 or e.max(initial=0) > 1:
        raise ValueError("errors: expected booleans or values in [0, 1] (1 = wrong), without NaN")
    return e


class ProjectionView(BokehView, entry="projection"):
    """A 2-D projection of representations (PCA, UMAP or t-SNE) with linked examples.

    Points are coloured by label or by error; hovering a point shows its
    example (thumbnail or text) beside the chart, and a box, lasso or tap
    selection lists the selected examples there and sets :attr:`selected`.
    With ``errors``, a kernel-smoothed error rate (see
    :func:`~deepvis_widgets.compute.projection.error_rate_surface`) can be
    painted underneath: red where nearby examples are often wrong.

    Parameters
    ----------
    features
        ``(n, ...)`` activations (numpy or torch), flattened per example.
    labels
        Optional ``n`` labels (class indices or strings).
    examples
        Optional ``n`` images or strings (see :func:`encode_examples`).
    errors
        Optional ``n`` booleans or values in [0, 1] (1 = the model is wrong).
    method
        ``'pca'`` (default), ``'umap'`` (falls back to PCA with a notice when
        ``umap-learn`` is missing) or ``'tsne'``.
    class_names
        Names of integer labels.
    title
        Optional title.
    surface
        Compute the error-rate background (needs ``errors``).
    seed
        Random seed of UMAP / t-SNE.

    Example
    -------
    >>> import numpy as np, deepvis_widgets as dv
    >>> x = np.random.default_rng(0).normal(size=(300, 16))
    >>> view = dv.ProjectionView(x, labels=np.arange(300) % 3, errors=np.arange(300) % 7 == 0)
    >>> view.color_by, view.selected
    ('label', [])
    """

    # --- data -----------------------------------------------------------------------
    _points = t.Dict(help="(n, 2) float32 projected coordinates (binary payload).").tag(sync=True)
    _labels = t.Dict(help="(n,) int32 label codes, or {} without labels.").tag(sync=True)
    label_names = t.List(t.Unicode(), help="Name of each label code (text, never HTML). Default [].").tag(sync=True)
    _errors = t.Dict(help="(n,) float32 error per point in [0, 1], or {}.").tag(sync=True)
    _examples = t.Dict(help="Examples shown beside the chart (see encode_examples).").tag(sync=True)
    _item = t.Unicode(help="The Bokeh figure: bokeh.embed.json_item as a JSON string.").tag(sync=True)
    method = t.Unicode(help="Projection method actually used ('pca', 'umap' or 'tsne').").tag(sync=True)
    note = t.Unicode("", help="Remark shown under the title (e.g. why UMAP fell back to PCA). Default ''.").tag(sync=True)

    # --- appearance -------------------------------------------------------------------
    color_by = t.Enum(
        ["label", "error", "none"], default_value="none", help="Colour points by 'label', 'error' or 'none'."
    ).tag(sync=True)
    show_surface = t.Bool(True, help="Show the smoothed error-rate background when there is one. Default True.").tag(sync=True)
    point_size = t.Float(6.0, help="Marker size in pixels. Default 6.").tag(sync=True)

    # --- interaction ------------------------------------------------------------------
    selected = t.List(t.Int(), help="Indices of the selected points (box, lasso or tap). Default [].").tag(sync=True)

    def __init__(
        self,
        features: Any,
        labels: Any = None,
        examples: Any = None,
        errors: Any = None,
        method: Method = "pca",
        *,
        class_names: Sequence[str] | None = None,
        title: str | None = None,
        surface: bool = True,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        proj = project(features, method, seed=seed)
        self._init_from(proj, proj.axis_labels, labels, examples, errors, class_names, title, surface, kwargs)

    @classmethod
    def from_coords(
        cls,
        coords: Any,
        labels: Any = None,
        examples: Any = None,
        errors: Any = None,
        *,
        axis_labels: tuple[str, str] = ("x", "y"),
        class_names: Sequence[str] | None = None,
        title: str | None = None,
        surface: bool = True,
        **kwargs: Any,
    ) -> ProjectionView:
        """A view of coordinates you already have (e.g. from your own UMAP run).

        Example
        -------
        >>> view = ProjectionView.from_coords(np.random.rand(50, 2), labels=[0, 1] * 25)
        """
        xy = as_numpy(coords, "coords").astype(np.float32)
        if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] < 1:
            raise ValueError(f"coords: expected shape (n, 2), got {xy.shape}")
        if not np.all(np.isfinite(xy)):
            raise ValueError("coords: contains NaN or infinity")
        self = cls.__new__(cls)
        self._init_from(
            Projection(xy, "given"), axis_labels, labels, examples, errors, class_names, title, surface, kwargs
        )
        return self

    @classmethod
    def from_model(
        cls,
        model: Any,
        inputs: Any,
        layer: str,
        labels: Any = None,
        *,
        examples: Any = None,
        method: Method = "pca",
        batch_size: int = 256,
        **kwargs: Any,
    ) -> ProjectionView:
        """Projects one layer's activations on ``inputs``; errors come from the model's predictions.

        When ``labels`` are integer classes and the model outputs ``(n, classes)``
        logits, ``errors`` is ``argmax != labels``.

        Example
        -------
        >>> view = ProjectionView.from_model(net, x_test, "features.7", labels=y_test, examples=x_test)  # doctest: +SKIP
        """
        import torch

        from ..compute.similarity import capture_activations

        acts = capture_activations(model, inputs, [layer], batch_size=batch_size)[layer]
        errors = kwargs.pop("errors", None)
        if errors is None and labels is not None:
            y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
            if not y.is_floating_point():
                from ..compute._hooks import preserved_model

                with preserved_model(model), torch.no_grad():
                    logits = torch.cat([model(b) for b in inputs.split(batch_size)])
                if logits.ndim == 2 and logits.shape[0] == len(y):
                    errors = (logits.argmax(1).cpu() != y.cpu()).numpy()
        kwargs.setdefault("title", f"{layer}: {method.upper()} of {acts.shape[1]} features")
        return cls(acts, labels, examples, errors, method, **kwargs)

    # --- construction -------------------------------------------------------------------
    def _init_from(
        self,
        proj: Projection,
        axis: tuple[str, str],
        labels: Any,
        examples: Any,
        errors: Any,
        class_names: Sequence[str] | None,
        title: str | None,
        surface: bool,
        kwargs: dict[str, Any],
    ) -> None:
        n = proj.coords.shape[0]
        label_payload: dict[str, Any] = {}
        names: list[str] = []
        if labels is not None:
            label_payload, names = encode_labels(labels, n, class_names)
        elif class_names is not None:
            raise TypeError("class_names: given without labels")
        err = None if errors is None else _errors(errors, n)
        self._n = n
        item = self._figure(proj.coords, axis, err if surface else None)
        kwargs.setdefault("color_by", "label" if labels is not None else ("error" if err is not None else "none"))
        # Private traits are set before the widget opens its comm, so they travel
        # in the first state message (DeepVisWidget refuses them as keywords).
        self._points = encode_array(proj.coords, "float32", name="features")
        self._labels = label_payload
        self._errors = {} if err is None else encode_array(err, "float32", name="errors")
        self._examples = encode_examples(examples, n)
        self._item = item
        super().__init__(
            label_names=names,
            method=proj.method,
            note=proj.note,
            title="" if title is None else str(title),
            **kwargs,
        )

    @t.validate("selected")
    def _check_selected(self, proposal: t.Bunch) -> list[int]:
        value = [int(i) for i in proposal["value"]]
        bad = [i for i in value if not 0 <= i < self._n]
        if bad:
            raise t.TraitError(f"selected: expected point indices in 0..{self._n - 1}, got {bad[:5]}")
        return value

    def _figure(self, coords: np.ndarray, axis: tuple[str, str], err: np.ndarray | None) -> str:
        from bokeh.models import (
            BoxSelectTool,
            ColorBar,
            ColumnDataSource,
            HoverTool,
            LinearColorMapper,
        )

        n = coords.shape[0]
        lo, hi = coords.min(0), coords.max(0)
        pad = np.maximum((hi - lo) * 0.05, 1e-6)
        p = new_figure(
            width=460,
            height=420,
            x_range=(float(lo[0] - pad[0]), float(hi[0] + pad[0])),
            y_range=(float(lo[1] - pad[1]), float(hi[1] + pad[1])),
            webgl=n > WEBGL_POINTS,
            tools="pan,wheel_zoom,box_select,lasso_select,tap,reset",
            x_axis_label=axis[0],
            y_axis_label=axis[1],
        )
        p.toolbar.active_drag = p.select_one({"type": BoxSelectTool})
        if err is not None:
            s = error_rate_surface(coords, err)
            mapper = LinearColorMapper(palette=_ERROR_PALETTE, low=0.0, high=1.0, nan_color="#00000000")
            p.image(
                image=[s.rate],
                x=s.x_range[0],
                y=s.y_range[0],
                dw=s.x_range[1] - s.x_range[0],
                dh=s.y_range[1] - s.y_range[0],
                color_mapper=mapper,
                name="dv_surface",
                level="image",
            )
            bar = ColorBar(color_mapper=mapper, title="smoothed error rate", width=8, name="dv_surface_bar")
            p.add_layout(bar, "right")
        source = ColumnDataSource(data={"x": [], "y": [], "color": []}, name="dv_points")
        r = p.scatter(
            "x", "y", source=source, size=6, fill_color="color", line_color=None, fill_alpha=0.8,
            nonselection_fill_alpha=0.12, selection_fill_alpha=1.0, selection_line_color="color", name="dv_scatter",
        )
        p.add_tools(HoverTool(renderers=[r], tooltips=None, name="dv_hover"))
        return bokeh_item(p)


# Transparent to red: the background stays readable in light and dark themes.
_ERROR_PALETTE = [f"#d62728{round(a):02x}" for a in np.linspace(0, 200, 64)]
