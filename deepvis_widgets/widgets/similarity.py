"""SimilarityMatrix: layers x layers CKA or SVCCA heatmap with the two layers' projections.

Front end: ``js/similarity.ts`` (BokehJS via ``js/lib/bokeh.ts``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import traitlets as t

from .._arrays import encode_array
from ..compute.projection import project
from ..compute.similarity import Kernel, _named, capture_activations, similarity_matrix
from .bokeh_loader import BokehView, bokeh_item, new_figure
from .projection import encode_labels

__all__ = ["SimilarityMatrix"]

Activations = Mapping[str, Any] | Sequence[Any]


class SimilarityMatrix(BokehView, entry="similarity"):
    """How alike the layers of one or two networks represent the same examples.

    Each cell is the CKA (or SVCCA) similarity of a layer of ``activations_a``
    (rows) and one of ``activations_b`` (columns; ``activations_a`` again when
    omitted). Clicking a cell shows both layers' 2-D PCA projections side by
    side, coloured by ``labels``, and sets :attr:`selected`.

    Parameters
    ----------
    activations_a
        ``{layer name: (n, ...) activations}`` or a list of arrays.
    activations_b
        The same for a second model or checkpoint, on the same ``n`` examples.
    method
        ``'cka'`` (default) or ``'svcca'``.
    kernel, unbiased
        CKA options (see :func:`~deepvis_widgets.compute.similarity.cka`).
    keep
        SVCCA option (see :func:`~deepvis_widgets.compute.similarity.svcca`).
    labels
        Optional ``n`` labels to colour the projections.
    class_names
        Names of integer labels.
    names
        ``(name of a, name of b)`` shown on the axes, e.g. ``("epoch 1", "final")``.
    max_points
        Examples drawn in each projection (an even subsample when ``n`` is larger).
    title
        Optional title.

    Example
    -------
    >>> import numpy as np, deepvis_widgets as dv
    >>> x = np.random.default_rng(0).normal(size=(200, 10))
    >>> m = dv.SimilarityMatrix({"x": x, "relu": np.maximum(x, 0), "noise": np.random.rand(200, 5)})
    >>> m.selected
    (2, 2)
    """

    # --- data ------------------------------------------------------------------------
    _matrix = t.Dict(help="(rows, cols) float32 similarities (binary payload).").tag(sync=True)
    names_a = t.List(t.Unicode(), help="Row layer names (text).").tag(sync=True)
    names_b = t.List(t.Unicode(), help="Column layer names (text).").tag(sync=True)
    model_names = t.Tuple(t.Unicode(), t.Unicode(), default_value=("A", "B"), help="Names of the two sides.").tag(sync=True)
    _proj = t.Dict(help="(rows + cols, points, 2) float32 PCA projection of every layer (rows first).").tag(sync=True)
    _labels = t.Dict(help="(points,) int32 label codes of the projected examples, or {}.").tag(sync=True)
    label_names = t.List(t.Unicode(), help="Name of each label code. Default [].").tag(sync=True)
    method = t.Unicode("cka", help="What the cells hold, e.g. 'linear CKA'.").tag(sync=True)
    _item = t.Unicode(help="The Bokeh layout: bokeh.embed.json_item as a JSON string.").tag(sync=True)

    # --- interaction -------------------------------------------------------------------
    selected = t.Tuple(
        t.Int(), t.Int(), default_value=None, allow_none=True, help="(row, col) of the clicked cell, or None."
    ).tag(sync=True)

    def __init__(
        self,
        activations_a: Activations,
        activations_b: Activations | None = None,
        *,
        method: Literal["cka", "svcca"] = "cka",
        kernel: Kernel = "linear",
        unbiased: bool = False,
        keep: float | int = 0.99,
        labels: Any = None,
        class_names: Sequence[str] | None = None,
        names: tuple[str, str] | None = None,
        max_points: int = 1000,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        if max_points < 10:
            raise ValueError(f"max_points: expected at least 10, got {max_points}")
        names_a, acts_a = _named(activations_a, "activations_a")
        names_b, acts_b = (names_a, acts_a) if activations_b is None else _named(activations_b, "activations_b")
        matrix, _, _ = similarity_matrix(
            activations_a, activations_b, method=method, kernel=kernel, unbiased=unbiased, keep=keep
        )
        n = acts_a[0].shape[0]
        pick = np.unique(np.linspace(0, n - 1, min(n, max_points)).round().astype(np.int64))
        layers = acts_a + ([] if activations_b is None else acts_b)
        proj = np.stack([project(a[pick]).coords for a in layers]).astype(np.float32)
        if activations_b is None:
            proj = np.concatenate([proj, proj])
        label_payload: dict[str, Any] = {}
        label_names: list[str] = []
        if labels is not None:
            lab = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels).reshape(-1)
            if lab.shape[0] != n:
                raise ValueError(f"labels: expected {n} labels (one per example), got {lab.shape[0]}")
            label_payload, label_names = encode_labels(lab[pick], len(pick), class_names)
        side: tuple[str, ...] = ("A", "A") if activations_b is None else ("A", "B")
        side = tuple(str(s) for s in names) if names is not None else side
        if len(side) != 2:
            raise ValueError(f"names: expected two names (rows, columns), got {names!r}")
        what = f"{'unbiased ' if unbiased else ''}{kernel} CKA" if method == "cka" else "SVCCA"
        self._matrix = encode_array(matrix.astype(np.float32), "float32", name="activations")
        self._proj = encode_array(proj, "float32", name="activations")
        self._labels = label_payload
        self._item = self._layout(names_a, names_b, side, what)
        kwargs.setdefault("selected", (len(names_a) - 1, len(names_b) - 1))
        super().__init__(
            names_a=names_a,
            names_b=names_b,
            model_names=side,
            label_names=label_names,
            method=what,
            title="" if title is None else str(title),
            **kwargs,
        )

    @classmethod
    def from_models(
        cls,
        model_a: Any,
        inputs: Any,
        model_b: Any = None,
        *,
        layers: Sequence[str] | None = None,
        layers_b: Sequence[str] | None = None,
        batch_size: int = 256,
        **kwargs: Any,
    ) -> SimilarityMatrix:
        """Captures the layers of one or two models (or checkpoints) on ``inputs`` and compares them.

        Parameters
        ----------
        model_a, model_b
            ``torch.nn.Module``; ``model_b=None`` compares ``model_a``'s layers with each other.
        inputs
            Tensor of examples (first dimension), fed to both models.
        layers, layers_b
            Module names (default: leaf modules with parameters); ``layers_b``
            defaults to ``layers``.
        **kwargs
            Passed to :class:`SimilarityMatrix` (``labels``, ``names``, ``method``...).

        Example
        -------
        >>> m = SimilarityMatrix.from_models(early, x_test, final, names=("epoch 1", "final"))  # doctest: +SKIP
        """
        acts_a = capture_activations(model_a, inputs, layers, batch_size=batch_size)
        acts_b = None
        if model_b is not None:
            acts_b = capture_activations(model_b, inputs, layers_b if layers_b is not None else layers, batch_size=batch_size)
        return cls(acts_a, acts_b, **kwargs)

    @t.validate("selected")
    def _check_selected(self, proposal: t.Bunch) -> tuple[int, int] | None:
        value = proposal["value"]
        if value is None:
            return None
        r, c = (int(v) for v in value)
        rows, cols = len(self.names_a), len(self.names_b)
        if rows and not (0 <= r < rows and 0 <= c < cols):
            raise t.TraitError(f"selected: expected (row, col) inside the {rows}x{cols} matrix, got {value!r}")
        return (r, c)

    @staticmethod
    def _layout(names_a: list[str], names_b: list[str], side: tuple[str, ...], what: str) -> str:
        from bokeh.layouts import column, row
        from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper, TapTool

        cell = max(14, min(40, 420 // max(len(names_a), len(names_b), 1)))
        heat = new_figure(
            width=cell * len(names_b) + 170,
            height=cell * len(names_a) + 130,
            x_range=list(names_b),
            y_range=list(reversed(names_a)),
            tools="tap,reset",
            toolbar_location=None,
            x_axis_label=side[1],
            y_axis_label=side[0],
            x_axis_location="above",
        )
        heat.grid.visible = False
        heat.xaxis.major_label_orientation = 0.9
        mapper = LinearColorMapper(palette="Viridis256", low=0.0, high=1.0, nan_color="#808080")
        source = ColumnDataSource(data={"x": [], "y": [], "value": [], "label": [], "ink": []}, name="dv_cells")
        cells = heat.rect(
            "x", "y", 1, 1, source=source, fill_color={"field": "value", "transform": mapper}, line_color=None,
            nonselection_fill_alpha=1.0, selection_line_color="#ff7f0e", selection_line_width=3, name="dv_heat",
        )
        heat.text("x", "y", text="label", source=source, text_align="center", text_baseline="middle",
                  text_font_size="10px", text_color="ink", nonselection_text_alpha=1.0, name="dv_values")
        heat.add_tools(HoverTool(renderers=[cells], tooltips=None, name="dv_hover"))
        heat.select_one({"type": TapTool}).renderers = [cells]
        heat.add_layout(ColorBar(color_mapper=mapper, title=what, width=8), "right")
        plots = []
        for k in ("a", "b"):
            p = new_figure(width=260, height=240, tools="pan,wheel_zoom,reset", toolbar_location=None, title=" ")
            p.xaxis.axis_label = "PC1"
            p.yaxis.axis_label = "PC2"
            p.axis.major_label_text_font_size = "0px"  # PCA units mean nothing across layers
            src = ColumnDataSource(data={"x": [], "y": [], "color": []}, name=f"dv_proj_{k}")
            p.scatter("x", "y", source=src, size=4, fill_color="color", line_color=None, fill_alpha=0.75)
            p.title.name = f"dv_title_{k}"
            plots.append(p)
        return bokeh_item(row(heat, column(*plots), name="dv_layout"))
