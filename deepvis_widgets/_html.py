"""Single-file HTML export of one or more views (``DeepVisWidget.save_html``).

The page carries everything inline: the widget state (binary buffers as
base64), each view's ES module and stylesheet, and a small runtime
(``js/standalone.ts``) that plays the part of the widget manager. Nothing is
fetched from any network, so the file renders from ``file://`` offline.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

from ipywidgets import Widget
from ipywidgets.embed import dependency_state, embed_data

from ._static import read_static

__all__ = ["save_html", "standalone_html"]

_SCRIPT_END = re.compile(r"<(/script|!--)", re.IGNORECASE)

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="deepvis_widgets {version}">
<title>{title}</title>
<style>
:root {{ color-scheme: light dark; }}
body {{ margin: 0; padding: 16px; font-family: system-ui, -apple-system, "Segoe UI", sans-serif;
  background: #ffffff; color: #1f1f1f; }}
@media (prefers-color-scheme: dark) {{ body {{ background: #111418; color: #e6e6e6; }} }}
.dv-standalone-view {{ margin-bottom: 24px; }}
</style>
</head>
<body>
{views}
<script type="application/json" id="dv-widget-state">{state}</script>
<script type="module">{runtime}</script>
</body>
</html>
"""


def json_for_script(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">`` (no ``</script>`` breakout)."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def js_for_script(code: str) -> str:
    """JavaScript that can sit inline in a ``<script>`` element."""
    return _SCRIPT_END.sub(lambda m: "<\\" + m.group(1), code)


def standalone_html(widgets: Iterable[Widget], title: str = "deepvis_widgets") -> str:
    """The text of a self-contained page showing ``widgets`` in order."""
    from ._version import __version__

    views = list(widgets)
    if not views:
        raise ValueError("widgets: expected at least one widget to save")
    for w in views:
        if not isinstance(w, Widget):
            raise TypeError(f"widgets: expected ipywidgets widgets, got {type(w).__name__}")
    # drop_defaults=False: _esm and _css are defaults of their class and must travel too.
    state = embed_data(views, drop_defaults=False, state=dependency_state(views, drop_defaults=False))["manager_state"]
    divs = "\n".join(
        f'<div class="dv-standalone-view" data-dv-model="{html.escape(w.model_id)}"></div>' for w in views
    )
    return _PAGE.format(
        version=__version__,
        title=html.escape(title),
        views=divs,
        state=json_for_script(state),
        runtime=js_for_script(read_static("standalone.js")),
    )


def save_html(path: str | PathLike[str], *widgets: Widget, title: str | None = None) -> Path:
    """Writes one HTML file that renders ``widgets`` with no network and no kernel.

    Parameters
    ----------
    path
        Output file.
    *widgets
        One or more deepvis views (any anywidget-based widget works).
    title
        Page title; defaults to the first widget's ``title``.

    Example
    -------
    >>> import deepvis_widgets as dv, numpy as np
    >>> dv.save_html("two.html", dv.ArrayHeatmap(np.eye(3)), dv.ArrayHeatmap(-np.eye(3)))  # doctest: +SKIP
    """
    if not widgets:
        raise ValueError("widgets: expected at least one widget to save")
    page_title = title if title is not None else (getattr(widgets[0], "title", "") or "deepvis_widgets")
    out = Path(path)
    out.write_text(standalone_html(widgets, page_title), encoding="utf-8")
    return out
