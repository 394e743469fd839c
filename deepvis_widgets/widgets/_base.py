"""DeepVisWidget: the base every view inherits.

It supplies the bundled ES module and stylesheet, the traits every view's
scaffolding reads (``js/lib/base.ts``): title, theme, error panel and
progress line, and the ways a view leaves the notebook: the JupyterLab
sidebar and a single offline HTML file.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator
from os import PathLike
from typing import Any, ClassVar

import anywidget
import traitlets as t

from .._static import css_source, esm_source

__all__ = ["DeepVisWidget", "progress_bar"]

# Typed so that the trait below holds str -> Any (message: str, fraction: float | None);
# traitlets copies it for each widget.
_STATUS_IDLE: dict[str, Any] = {"message": "", "fraction": None}


@contextlib.contextmanager
def progress_bar(desc: str) -> Iterator[Any]:
    """A tqdm.auto bar driven by the ``progress(message, fraction)`` callbacks of compute/.

    Used by ``from_model`` constructors, which run before their view exists.

    Example
    -------
    >>> with progress_bar("logit lens") as report:
    ...     report("projecting layer 3", 0.1)
    """
    from tqdm.auto import tqdm

    bar = tqdm(total=100, desc=desc, leave=False)

    def report(message: str, fraction: float | None) -> None:
        bar.set_description(message or desc, refresh=False)
        if fraction is not None:
            bar.n = round(100 * fraction)
        bar.refresh()

    try:
        yield report
    finally:
        bar.close()


class DeepVisWidget(anywidget.AnyWidget):
    """Base class of every deepvis view.

    Subclasses name their front-end entry (``js/<entry>.ts``) with the class
    keyword ``entry``::

        class ArrayHeatmap(DeepVisWidget, entry="heatmap"): ...

    Example
    -------
    >>> import deepvis_widgets as dv, numpy as np
    >>> w = dv.ArrayHeatmap(np.eye(4), title="identity")
    >>> w.save_html("identity.html")  # doctest: +SKIP
    """

    _entry: ClassVar[str] = ""

    # --- shared view state -------------------------------------------------
    title = t.Unicode("", help="Title shown above the view (text, never HTML). Default ''.").tag(sync=True)
    theme = t.Enum(
        ["auto", "light", "dark"],
        default_value="auto",
        help="Colour theme: 'auto' follows JupyterLab or the browser. Default 'auto'.",
    ).tag(sync=True)
    error = t.Unicode("", help="Error message shown as a panel in the view; '' when all is well.").tag(sync=True)
    _status = t.Dict(
        default_value=_STATUS_IDLE,
        help="Progress line: message and fraction in [0, 1] (None = indeterminate).",
    ).tag(sync=True)

    def __init_subclass__(cls, entry: str | None = None, **kwargs: Any) -> None:
        if entry is not None:
            cls._entry = entry
            cls._esm = esm_source(entry)
            cls._css = css_source()
        super().__init_subclass__(**kwargs)

    def __init__(self, **kwargs: Any) -> None:
        unknown = sorted(k for k in kwargs if not self.has_trait(k) or k.startswith("_"))
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword argument(s): {', '.join(unknown)}")
        super().__init__(**kwargs)

    # --- progress and errors ------------------------------------------------
    def _progress(self, message: str, fraction: float | None = None) -> None:
        """Shows a progress line in the view (``message=''`` hides it)."""
        self._status = {"message": message, "fraction": None if fraction is None else float(fraction)}

    @contextlib.contextmanager
    def _working(self, message: str) -> Iterator[None]:
        """Shows ``message`` while the block runs; on an exception shows the error panel and re-raises."""
        self._progress(message)
        try:
            yield
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self._last_traceback = traceback.format_exc()
            raise
        else:
            self.error = ""
        finally:
            self._progress("")

    # --- leaving the notebook ------------------------------------------------
    def show_in_sidebar(self, title: str | None = None, anchor: str = "right") -> Any:
        """Shows this view in JupyterLab's right sidebar (needs the ``sidecar`` package).

        Parameters
        ----------
        title
            Tab title; defaults to the widget's ``title`` or class name.
        anchor
            ``'right'`` (sidebar), ``'split-right'``, ``'split-bottom'``, ``'tab-after'``...

        Returns
        -------
        sidecar.Sidecar
            Close it with ``.close()``.

        Example
        -------
        >>> w.show_in_sidebar(title="attention")  # doctest: +SKIP
        """
        try:
            from sidecar import Sidecar
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "show_in_sidebar needs the 'sidecar' package: pip install 'deepvis-widgets[sidebar]'"
            ) from exc
        from IPython.display import display

        sc = Sidecar(title=title or self.title or type(self).__name__, anchor=anchor)
        with sc:
            display(self)
        return sc

    def save_html(self, path: str | PathLike[str], *, title: str | None = None) -> None:
        """Writes this view as ONE self-contained HTML file that renders with no network.

        All JavaScript, CSS and data are inline; hover, clicks and downloads keep
        working without a kernel.

        Example
        -------
        >>> w.save_html("heatmap.html")  # doctest: +SKIP
        """
        from .._html import save_html

        save_html(path, self, title=title)
