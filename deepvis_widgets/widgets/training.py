"""TrainingMonitor: live training curves, per-example loss trajectories with linked brushing, layer statistics.

Front end: ``js/training.ts`` (Bokeh panels via ``js/lib/bokeh.ts``; the
dense trajectory panel on canvas via ``js/lib/trajectories.ts``).

Updates are throttled: logging calls only record numbers; the view's data is
re-sent at most ``max_updates_per_second`` times a second and never so often
that encoding it costs more than ~5% of the wall time. Whatever is still
pending when a notebook cell finishes is sent then (an IPython
``post_run_cell`` hook), so the view is complete after the loop, and so is the
state saved with the notebook. Call :meth:`TrainingMonitor.flush` to force it.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import traitlets as t

from .._arrays import WireDType, encode_array
from ..compute.dynamics import (
    LAYER_METRICS,
    ExampleLog,
    LayerStats,
    LayerTracker,
    ScalarLog,
    track_layers,
)
from .bokeh_loader import BokehView, bokeh_item, new_figure
from .projection import encode_examples, encode_labels

__all__ = ["TrainingMonitor"]

#: Fraction of wall time the encoding of updates may take (the throttle backs off beyond it).
OVERHEAD_BUDGET = 0.05
#: ...but the view is never left more than this many seconds behind a running loop.
MAX_INTERVAL = 5.0
_SPLIT_COLORS = {"train": "#4c78a8", "val": "#f58518", "valid": "#f58518", "validation": "#f58518", "test": "#54a24b"}
_OTHER_COLORS = ["#e45756", "#72b7b2", "#b279a2", "#9d755d", "#eeca3b"]


class TrainingMonitor(BokehView, entry="training"):
    """A live view of training: curves, per-example loss trajectories and layer statistics.

    Display it in a cell, then call :meth:`log` and :meth:`log_examples` from
    the training loop (same cell or a later one). Panels appear as data
    arrives: one chart per logged metric (a line per split); for logged
    examples, a scatter of each example's early loss against its latest loss
    beside every example's loss trajectory, linked both ways: brushing either
    highlights the same examples in the other and lists them below (images
    or texts, sorted by loss) while :attr:`selected_ids` holds their ids; and
    with :meth:`track_layers`, a layers x steps heatmap of gradient norms,
    activation statistics and dead units.

    Parameters
    ----------
    examples
        Optional images or strings of the tracked examples (see
        :func:`~deepvis_widgets.widgets.projection.encode_examples`), shown for
        selected examples. Their ids are ``example_ids`` (default ``0..n-1``).
    example_ids
        The ids that :meth:`log_examples` will use. When given (or implied by
        ``examples``), any other id is an error; otherwise ids are added as
        they are first logged.
    labels
        Optional label per declared example (class indices or strings).
    class_names
        Names of integer labels.
    early_step
        The scatter's x axis is each example's loss at its first observation
        at or after this step (default: its first observation).
    title
        Optional title.
    max_updates_per_second
        Upper bound on front-end updates (default 10).

    Example
    -------
    >>> import deepvis_widgets as dv
    >>> mon = dv.TrainingMonitor(title="digits")
    >>> for step in range(3):
    ...     mon.log(step, split="train", loss=1.0 / (step + 1))
    ...     mon.log_examples(step, ids=[0, 1, 2], losses=[0.5, 1.0, 2.0 / (step + 1)])
    >>> mon.flush(); mon.selected_ids
    []
    """

    # --- data (binary payloads; see js/training.ts) -----------------------------------
    _scalars = t.Dict(help="Scalar series: keys [[split, name]...], concatenated steps/values, offsets.").tag(sync=True)
    _curves_item = t.Unicode("", help="Bokeh json_item string of the curves panel ('' before any scalar).").tag(sync=True)
    _ex = t.Dict(help="Per-example trajectories: ids, loss (n, c), steps (c,) or (n, c), preds.").tag(sync=True)
    _scatter_item = t.Unicode("", help="Bokeh json_item string of the early-vs-latest loss scatter.").tag(sync=True)
    _examples = t.Dict(help="Examples of the declared ids (see encode_examples).").tag(sync=True)
    _labels = t.Dict(help="(declared,) int32 label codes, or {}.").tag(sync=True)
    label_names = t.List(t.Unicode(), help="Name of each label code (text). Default [].").tag(sync=True)
    _layers = t.Dict(help="Layer statistics: names, steps and one (layers, steps) payload per metric.").tag(sync=True)
    _layers_item = t.Unicode("", help="Bokeh json_item string of the layers x steps heatmap.").tag(sync=True)
    notices = t.List(t.Unicode(), help="Remarks about the data (NaN losses...), shown above the panels.").tag(sync=True)

    # --- appearance --------------------------------------------------------------------
    early_step = t.Int(None, allow_none=True, help="Step of the scatter's x axis (None: first observation).").tag(sync=True)
    layer_metric = t.Enum(list(LAYER_METRICS), default_value="grad_norm", help="Metric of the layers heatmap.").tag(sync=True)
    max_updates_per_second = t.Float(10.0, help="Upper bound on front-end updates a second. Default 10.")

    # --- interaction -------------------------------------------------------------------
    selected_ids = t.List(t.Int(), help="Ids of the examples brushed in the scatter or the trajectories.").tag(sync=True)

    def __init__(
        self,
        examples: Any = None,
        *,
        example_ids: Sequence[int] | np.ndarray | None = None,
        labels: Any = None,
        class_names: Sequence[str] | None = None,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        if examples is not None and example_ids is None:
            n = len(examples)
            example_ids = np.arange(n)
        self._scalar_log = ScalarLog()
        self._example_log = ExampleLog(example_ids)
        n_declared = len(self._example_log)
        if labels is not None and example_ids is None:
            raise TypeError("labels: give example_ids (or examples) so labels can be matched to ids")
        label_payload: dict[str, Any] = {}
        names: list[str] = []
        if labels is not None:
            label_payload, names = encode_labels(labels, n_declared, class_names)
        elif class_names is not None:
            raise TypeError("class_names: given without labels")
        self._layer_stats: LayerStats | None = None
        self._layer_version = 0
        self._trackers: list[LayerTracker] = []
        self._sent = {"scalars": -1, "examples": -1, "layers": -1, "keys": (), "layer_names": ()}
        self._dirty = False
        self._next_flush = 0.0
        self.updates_sent = 0
        self.last_update_seconds = 0.0
        self._examples = encode_examples(examples, n_declared) if examples is not None else {"kind": "none"}
        self._labels = label_payload
        self._ex = {}
        self._scalars = {}
        self._layers = {}
        # Figures are built once per process (cached); with declared examples the
        # scatter is built now, so the first logging call in the loop does not pay for it.
        self._scatter_item = self._scatter_figure() if self._example_log.fixed else ""
        super().__init__(label_names=names, title="" if title is None else str(title), **kwargs)
        self._hook_registered = self._register_cell_hook()

    # --- logging ---------------------------------------------------------------------
    def log(self, step: int, split: str = "train", **scalars: Any) -> None:
        """Records scalars (``loss=...``, ``acc=...``) of ``split`` at ``step``.

        NaN and infinite values are kept (drawn as gaps) and reported in
        :attr:`notices`; a step below the last one logged for a series is an error.

        Example
        -------
        >>> mon.log(100, split="val", loss=0.42, acc=0.91)  # doctest: +SKIP
        """
        self._scalar_log.add(step, split, **scalars)
        self._touch()

    def log_examples(self, step: int, ids: Any, losses: Any, preds: Any = None) -> None:
        """Records per-example losses (and optionally predictions) at ``step``.

        Log a whole evaluation set now and then, or each training batch as it
        is trained on; each example keeps its own sequence of observations.

        Parameters
        ----------
        step
            Training step; per example it must not go back in time.
        ids
            Integer ids of the examples (no repeats within a call).
        losses
            One loss per id (tensor or array; NaN allowed, reported in :attr:`notices`).
        preds
            Optional predicted class (or value) per id, shown with selected examples.

        Example
        -------
        >>> losses = F.cross_entropy(logits, y, reduction="none")  # doctest: +SKIP
        >>> mon.log_examples(step, ids=batch_ids, losses=losses, preds=logits.argmax(1))  # doctest: +SKIP
        """
        self._example_log.add(step, ids, losses, preds)
        self._touch()

    def track_layers(self, model: Any, every: int = 10, layers: Sequence[str] | None = None) -> LayerTracker:
        """Hooks ``model`` and shows its layer statistics (see :func:`~deepvis_widgets.compute.dynamics.track_layers`).

        Returns the tracker: use it as a context manager around training, or
        call ``.remove()`` afterwards; the model keeps no hook of ours.

        Example
        -------
        >>> with mon.track_layers(model, every=5):  # doctest: +SKIP
        ...     train(model)
        """
        tracker = track_layers(model, every, layers, on_record=self._on_layer_stats)
        self._trackers.append(tracker)
        return tracker

    def show_layer_stats(self, stats: LayerStats | LayerTracker) -> None:
        """Shows layer statistics recorded elsewhere (a :class:`LayerStats` or a tracker)."""
        self._on_layer_stats(stats.stats if isinstance(stats, LayerTracker) else stats)
        self.flush()

    def _on_layer_stats(self, stats: LayerStats) -> None:
        self._layer_stats = stats
        self._layer_version += 1
        self._touch()

    # --- what was logged ---------------------------------------------------------------
    @property
    def scalars(self) -> ScalarLog:
        """The recorded scalar series."""
        return self._scalar_log

    @property
    def example_log(self) -> ExampleLog:
        """The recorded per-example trajectories."""
        return self._example_log

    @property
    def layer_stats(self) -> LayerStats | None:
        """The latest layer statistics, if any."""
        return self._layer_stats

    # --- sending ---------------------------------------------------------------------
    def _touch(self) -> None:
        self._dirty = True
        if time.perf_counter() >= self._next_flush:
            self.flush()

    def flush(self) -> None:
        """Sends everything logged so far to the view now (also called when a cell finishes)."""
        if not self._dirty:
            return
        start = time.perf_counter()
        figures = 0.0  # one-off figure building does not count against the update budget
        with self.hold_sync():
            sl = self._scalar_log
            if sl.version != self._sent["scalars"]:
                keys = tuple(sl.keys)
                if keys != self._sent["keys"]:
                    f0 = time.perf_counter()
                    self._curves_item = self._curves_figure(keys)
                    figures += time.perf_counter() - f0
                    self._sent["keys"] = keys
                self._scalars = self._scalars_payload()
                self._sent["scalars"] = sl.version
            el = self._example_log
            if el.version != self._sent["examples"]:
                if not self._scatter_item:
                    f0 = time.perf_counter()
                    self._scatter_item = self._scatter_figure()
                    figures += time.perf_counter() - f0
                self._ex = self._examples_payload()
                self._sent["examples"] = el.version
            stats = self._layer_stats
            if stats is not None and self._layer_version != self._sent["layers"]:
                if tuple(stats.layers) != self._sent["layer_names"]:
                    f0 = time.perf_counter()
                    self._layers_item = self._layers_figure(tuple(stats.layers))
                    figures += time.perf_counter() - f0
                    self._sent["layer_names"] = tuple(stats.layers)
                self._layers = self._layers_payload(stats)
                self._sent["layers"] = self._layer_version
            self.notices = self._notices()
        self._dirty = False
        self.updates_sent += 1
        cost = time.perf_counter() - start - figures
        self.last_update_seconds = cost
        interval = min(max(1.0 / self.max_updates_per_second, cost / OVERHEAD_BUDGET), MAX_INTERVAL)
        self._next_flush = time.perf_counter() + interval

    def _register_cell_hook(self) -> bool:
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - IPython ships with ipywidgets
            return False
        ip = get_ipython()
        if ip is None:
            return False
        ip.events.register("post_run_cell", self._after_cell)
        return True

    def _after_cell(self, *_args: Any) -> None:
        self.flush()

    def close(self) -> None:
        """Closes the view, removes any layer hooks it added, and stops listening for cells."""
        for tracker in getattr(self, "_trackers", []):
            tracker.remove()
        if getattr(self, "_hook_registered", False):
            from IPython import get_ipython

            ip = get_ipython()
            if ip is not None:
                with contextlib.suppress(ValueError):
                    ip.events.unregister("post_run_cell", self._after_cell)
            self._hook_registered = False
        super().close()

    # --- payloads ----------------------------------------------------------------------
    def _scalars_payload(self) -> dict[str, Any]:
        sl = self._scalar_log
        keys = sl.keys
        steps, values, offsets = [], [], [0]
        for split, name in keys:
            s, v = sl.series(split, name)
            steps.append(s)
            values.append(v)
            offsets.append(offsets[-1] + len(s))
        return {
            "keys": [[split, name] for split, name in keys],
            "steps": encode_array(np.concatenate(steps) if steps else np.zeros(0), "float32", name="step"),
            "values": encode_array(np.concatenate(values) if values else np.zeros(0), "float32", name="scalars"),
            "offsets": offsets,
        }

    def _examples_payload(self) -> dict[str, Any]:
        el = self._example_log
        loss = el.losses()
        wire: WireDType = "float16" if loss.size > 200_000 else "float32"
        uniform = el.uniform_steps()
        steps = uniform if uniform is not None else el.steps()
        out = {
            "ids": encode_array(el.ids, "int32", name="ids"),
            "loss": encode_array(loss, wire, name="losses"),
            "steps": encode_array(steps, "int32", name="step"),
            "uniform": uniform is not None,
            "declared": len(el) if el.fixed else 0,
        }
        preds = el.final_pred()
        if preds is not None:
            out["final_pred"] = encode_array(preds, "float32", name="preds")
        return out

    def _layers_payload(self, stats: LayerStats) -> dict[str, Any]:
        return {
            "names": list(stats.layers),
            "steps": encode_array(stats.steps, "int32", name="steps"),
            "metrics": {m: encode_array(v.astype(np.float32), "float32", name=m) for m, v in stats.metrics.items()},
        }

    def _notices(self) -> list[str]:
        out = []
        for (split, name), count in self._scalar_log.nan_count.items():
            out.append(f"{count} NaN or infinite value(s) in {split}/{name} (drawn as gaps)")
        if self._example_log.nan_count:
            out.append(f"{self._example_log.nan_count} NaN or infinite per-example loss(es) (drawn as gaps)")
        return out

    # --- figures ------------------------------------------------------------------------
    @staticmethod
    @functools.lru_cache(maxsize=32)
    def _curves_figure(keys: tuple[tuple[str, str], ...]) -> str:
        from bokeh.layouts import row
        from bokeh.models import ColumnDataSource, Legend, LegendItem

        metrics = list(dict.fromkeys(name for _, name in keys))
        splits = list(dict.fromkeys(split for split, _ in keys))
        colors = {s: _SPLIT_COLORS.get(s, _OTHER_COLORS[k % len(_OTHER_COLORS)]) for k, s in enumerate(splits)}
        figs = []
        shared_x = None
        for metric in metrics:
            p = new_figure(width=340 if len(metrics) > 1 else 560, height=220, x_axis_label="step", y_axis_label=metric,
                           tools="pan,wheel_zoom,box_zoom,reset", **({"x_range": shared_x} if shared_x else {}))
            shared_x = shared_x or p.x_range
            items = []
            for k, (split, name) in enumerate(keys):
                if name != metric:
                    continue
                src = ColumnDataSource(data={"x": [], "y": []}, name=f"dv_series_{k}")
                r = p.line("x", "y", source=src, line_color=colors[split], line_width=1.8)
                dots = p.scatter("x", "y", source=src, size=3, color=colors[split], name=f"dv_dots_{k}")
                items.append(LegendItem(label=split, renderers=[r, dots]))
            p.add_layout(Legend(items=items, location="top_right", label_text_font_size="10px",
                                background_fill_alpha=0.6, padding=4, spacing=0), "center")
            figs.append(p)
        return bokeh_item(row(*figs))

    @staticmethod
    @functools.cache
    def _scatter_figure() -> str:
        from bokeh.models import BoxSelectTool, ColumnDataSource, HoverTool, Slope

        p = new_figure(width=360, height=320, x_axis_type="log", y_axis_type="log",
                       tools="box_select,lasso_select,tap,wheel_zoom,pan,reset",
                       x_axis_label="early loss", y_axis_label="latest loss")
        p.toolbar.active_drag = p.select_one({"type": BoxSelectTool})
        src = ColumnDataSource(data={"x": [], "y": [], "color": []}, name="dv_points")
        # The points are drawn by the front end (js/lib/scatter_layer.ts: one image instead of 10,000 canvas
        # paths per selection change); the glyph stays, unpainted, for hit testing, hover, selection and ranges.
        r = p.scatter("x", "y", source=src, size=5, fill_color=None, line_color=None, name="dv_scatter")
        p.add_layout(Slope(gradient=1, y_intercept=0, line_dash="dashed", line_alpha=0.5, name="dv_diagonal"))
        p.add_tools(HoverTool(renderers=[r], tooltips=None, name="dv_hover"))
        p.xaxis.name = "dv_xaxis"
        return bokeh_item(p)

    @staticmethod
    @functools.lru_cache(maxsize=32)
    def _layers_figure(layers: tuple[str, ...]) -> str:
        from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper

        rows = len(layers)
        p = new_figure(width=720, height=max(160, 22 * rows + 80), y_range=list(reversed(layers)),
                       tools="pan,wheel_zoom,reset", x_axis_label="step")
        p.grid.visible = False
        mapper = LinearColorMapper(palette="Viridis256", low=0, high=1, nan_color="#80808040", name="dv_mapper")
        src = ColumnDataSource(data={"x": [], "y": [], "w": [], "value": []}, name="dv_cells")
        r = p.rect("x", "y", "w", 1, source=src, fill_color={"field": "value", "transform": mapper}, line_color=None,
                   dilate=True)
        p.add_tools(HoverTool(renderers=[r], tooltips=None, name="dv_hover"))
        p.add_layout(ColorBar(color_mapper=mapper, width=8, name="dv_colorbar"), "right")
        return bokeh_item(p)

    # --- validation ---------------------------------------------------------------------
    @t.validate("selected_ids")
    def _check_selected(self, proposal: t.Bunch) -> list[int]:
        value = [int(i) for i in proposal["value"]]
        index = self._example_log._index
        unknown = [i for i in value if i not in index]
        if unknown:
            raise t.TraitError(f"selected_ids: {len(unknown)} id(s) were never logged, e.g. {unknown[:5]}")
        return value

    @t.validate("max_updates_per_second")
    def _check_rate(self, proposal: t.Bunch) -> float:
        if not proposal["value"] > 0:
            raise t.TraitError(f"max_updates_per_second: expected a positive number, got {proposal['value']}")
        return float(proposal["value"])
