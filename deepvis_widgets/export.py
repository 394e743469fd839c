"""Notebook export that keeps widgets alive offline.

nbconvert's default HTML loads require.js, the ipywidgets HTML manager and the
``anywidget`` front-end module from CDNs, so an exported notebook shows
nothing behind a firewall or offline. :func:`export_notebook` renders with a
template (``templates/deepvis_offline``) that inlines all three, and
:func:`execute_notebook` runs a notebook storing the widget state, so the
views still render and respond to hover and clicks without a kernel.
"""

from __future__ import annotations

import re
from functools import cache
from os import PathLike
from pathlib import Path
from typing import Any

from ._html import js_for_script
from ._static import read_static

__all__ = ["execute_notebook", "export_notebook"]

TEMPLATES = Path(__file__).parent / "templates"


def _anywidget_amd() -> str:
    """anywidget's AMD front end (shipped in its wheel), as a module named ``anywidget``."""
    from jupyter_core.paths import jupyter_path

    for base in jupyter_path("nbextensions"):
        path = Path(base) / "anywidget" / "index.js"
        if path.exists():
            source = path.read_text(encoding="utf-8")
            named, n = re.subn(r"\bdefine\(\[", 'define("anywidget", [', source, count=1)
            if n != 1:
                raise RuntimeError(f"{path}: expected one anonymous AMD define() to name")
            return named
    raise FileNotFoundError(
        "anywidget's nbextension (share/jupyter/nbextensions/anywidget/index.js) was not found "
        "in any Jupyter path; reinstall anywidget"
    )


@cache
def _inline_js() -> dict[str, str]:
    return {
        "requirejs": js_for_script(read_static("vendor/require.js")),
        "anywidget": js_for_script(_anywidget_amd()),
        "html_manager": js_for_script(read_static("vendor/embed-amd.js")),
    }


def execute_notebook(
    path: str | PathLike[str], *, timeout: int = 600, kernel_name: str = "python3", cwd: str | PathLike[str] | None = None
) -> Any:
    """Runs every cell of a notebook, keeping widget state, and returns the executed notebook.

    Example
    -------
    >>> nb = execute_notebook("notebooks/01_array_heatmap.ipynb")  # doctest: +SKIP
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(str(path), as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        store_widget_state=True,
        resources={"metadata": {"path": str(cwd if cwd is not None else Path(path).parent)}},
    )
    client.execute()
    return nb


def export_notebook(notebook: Any, out: str | PathLike[str], *, title: str | None = None) -> Path:
    """Writes a notebook as one HTML file whose widgets render offline.

    Parameters
    ----------
    notebook
        A path to an ``.ipynb`` file (exported as saved: run it with
        :func:`execute_notebook` first so it carries widget state) or an
        ``nbformat.NotebookNode``.
    out
        Output ``.html`` path.
    title
        Page title (default: the notebook's file name).

    Example
    -------
    >>> nb = execute_notebook("notebooks/01_array_heatmap.ipynb")  # doctest: +SKIP
    >>> export_notebook(nb, "build/01_array_heatmap.html")  # doctest: +SKIP
    """
    import nbformat
    from nbconvert import HTMLExporter

    if isinstance(notebook, (str, PathLike)):
        nb = nbformat.read(str(notebook), as_version=4)
        name = Path(notebook).stem
    else:
        nb = notebook
        name = Path(out).stem
    exporter = HTMLExporter(template_name="deepvis_offline", extra_template_basedirs=[str(TEMPLATES)])
    resources = {"metadata": {"name": title or name}, "deepvis_inline_js": _inline_js()}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(body, encoding="utf-8")
    return out_path
