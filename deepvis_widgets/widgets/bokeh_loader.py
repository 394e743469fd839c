"""BokehJS, shipped once per page, and the base of every Bokeh-drawn view.

Chart views (training curves, projections, similarity heatmaps) draw with
BokehJS inside our anywidget views (shared/DESIGN.md, decision 4). BokehJS is
~1.5 MB; copying it into every view's saved state would cost that much per
chart. Instead ONE :class:`BokehLoader` model per kernel holds the library
(read from the installed ``bokeh`` package, so the version always matches the
Python side that builds the figures) and every chart view points at it with a
widget reference (``_bokeh``). The front end (``js/lib/bokeh.ts``) resolves
the reference through ``model.widget_manager.get_model`` and evaluates the
library once per page. That works in a live notebook, in exported notebooks
(the ipywidgets HTML manager) and in ``save_html`` pages (``js/standalone.ts``),
whose saved state holds the loader once however many views refer to it.

Figures are built in Python with ``bokeh.plotting`` and travel as the JSON
*string* of ``bokeh.embed.json_item`` (a dict would have its keys sorted by
nbformat, which breaks Bokeh's references); bulky per-point data travels
separately as binary arrays and is put into the figure's data sources by
the front end.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import anywidget
import traitlets as t
from ipywidgets import widget_serialization

from .._static import esm_source
from ._base import DeepVisWidget

__all__ = ["BokehLoader", "BokehView", "bokeh_item", "new_figure"]

#: Files of the installed bokeh package that make up the JS we ship: the core
#: library and the WebGL plugin (large scatter plots use output_backend="webgl").
BOKEH_FILES = ("bokeh.min.js", "bokeh-gl.min.js")


@cache
def bokeh_js() -> tuple[str, str]:
    """``(version, source)`` of the installed BokehJS (core + WebGL plugin).

    Example
    -------
    >>> version, source = bokeh_js()
    >>> version == __import__("bokeh").__version__ and len(source) > 1_000_000
    True
    """
    import bokeh
    from bokeh.resources import CDN  # noqa: F401  (the import checks bokeh is complete)

    folder = Path(bokeh.__file__).parent / "server" / "static" / "js"
    parts = []
    for name in BOKEH_FILES:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: reinstall bokeh ({bokeh.__version__})")
        parts.append(path.read_text(encoding="utf-8"))
    return bokeh.__version__, "\n;\n".join(parts)


class BokehLoader(anywidget.AnyWidget):
    """Holds BokehJS for every chart view of a kernel (never displayed itself).

    Use :meth:`shared` rather than the constructor: one loader per kernel is
    the point.

    Example
    -------
    >>> loader = BokehLoader.shared()
    >>> loader is BokehLoader.shared()
    True
    """

    _instance: ClassVar[BokehLoader | None] = None
    # anywidget needs an _esm (set in the class body, where anywidget reads it);
    # the loader shows one line if someone displays it.
    _esm = esm_source("bokeh_loader")

    version = t.Unicode(help="BokehJS version (that of the installed bokeh package).").tag(sync=True)
    _bokeh_js = t.Unicode(help="Source of bokeh.min.js and bokeh-gl.min.js, evaluated once per page.").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        version, source = bokeh_js()
        super().__init__(version=version, _bokeh_js=source, **kwargs)

    @classmethod
    def shared(cls) -> BokehLoader:
        """The kernel's loader, created on first use (and again if it was closed)."""
        inst = cls._instance
        if inst is None or inst.comm is None:
            inst = cls._instance = cls()
        return inst


class BokehView(DeepVisWidget):
    """Base of the views drawn with BokehJS: the shared loader reference and figure helpers."""

    _bokeh = t.Instance(
        BokehLoader, help="The shared BokehJS loader (a widget reference, resolved by the front end)."
    ).tag(sync=True, **widget_serialization)

    @t.default("_bokeh")
    def _default_bokeh(self) -> BokehLoader:
        return BokehLoader.shared()


def bokeh_item(model: Any) -> str:
    """``bokeh.embed.json_item(model)`` as a JSON string (see the module docstring for why a string).

    Example
    -------
    >>> from bokeh.plotting import figure
    >>> item = json.loads(bokeh_item(figure(width=100, height=100)))
    >>> sorted(item)
    ['doc', 'root_id', 'target_id', 'version']
    """
    from bokeh.embed import json_item

    return json.dumps(json_item(model), separators=(",", ":"), allow_nan=False)


def new_figure(*, width: int = 420, height: int = 320, webgl: bool = False, **kwargs: Any) -> Any:
    """A ``bokeh.plotting.figure`` with the house style (no logo, quiet borders, small fonts).

    Colours are left to the front end, which themes every figure from the
    view's CSS variables (light, dark or JupyterLab's theme).

    Example
    -------
    >>> p = new_figure(width=200, height=150, tools="pan,box_select")
    >>> p.width, p.toolbar.logo
    (200, None)
    """
    from bokeh.plotting import figure

    kwargs.setdefault("tools", "pan,wheel_zoom,box_zoom,reset")
    kwargs.setdefault("toolbar_location", "right")
    p = figure(width=width, height=height, output_backend="webgl" if webgl else "canvas", **kwargs)
    p.toolbar.logo = None
    p.min_border_left = 48
    p.min_border_bottom = 36
    p.outline_line_alpha = 0.4
    p.grid.grid_line_alpha = 0.35
    for axis in (*p.xaxis, *p.yaxis):
        axis.axis_label_text_font_style = "normal"
        axis.axis_label_text_font_size = "11px"
        axis.major_label_text_font_size = "10px"
    return p
