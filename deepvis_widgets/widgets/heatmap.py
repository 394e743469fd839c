"""ArrayHeatmap: a 2-D array on canvas with hover, legend and click-to-select.

Front end: ``js/heatmap.ts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import traitlets as t

from .._arrays import WireDType, as_numpy, encode_array
from ._base import DeepVisWidget

__all__ = ["ArrayHeatmap"]

_COLORMAPS = ("auto", "viridis", "magma", "rdbu")


class ArrayHeatmap(DeepVisWidget, entry="heatmap"):
    """A 2-D array drawn as a heatmap.

    Hovering a cell shows its row, column, labels and value; clicking it sets
    :attr:`selected`. Large arrays (2048 x 2048 and beyond) travel as one
    binary buffer and are drawn with a single image blit.

    Parameters
    ----------
    array
        2-D numpy array or torch tensor of real numbers.
    row_labels, col_labels
        Optional labels, one per row / column (shown as text, never HTML).
    title
        Optional title.
    scale
        ``'auto'`` (diverging when the data has both signs), ``'sequential'``
        or ``'diverging'`` (symmetric around 0).
    colormap
        ``'auto'``, ``'viridis'``, ``'magma'`` or ``'rdbu'``.
    vmin, vmax
        Fix the colour range instead of using the data's.
    wire_dtype
        How values travel: ``'float32'`` (exact, default), ``'float16'`` or ``'uint8'``.

    Example
    -------
    >>> import numpy as np, deepvis_widgets as dv
    >>> w = dv.ArrayHeatmap(np.random.randn(8, 12), row_labels=list("abcdefgh"), title="weights")
    >>> w.selected is None
    True
    """

    # --- data ------------------------------------------------------------------
    data = t.Dict(help="The array as a binary payload {buffer, dtype, shape} (see _arrays.py).").tag(sync=True)
    row_labels = t.List(t.Unicode(), help="One label per row, or [] for none. Default [].").tag(sync=True)
    col_labels = t.List(t.Unicode(), help="One label per column, or [] for none. Default [].").tag(sync=True)

    # --- appearance -------------------------------------------------------------
    scale = t.Enum(["auto", "sequential", "diverging"], default_value="auto", help="Colour scale kind.").tag(sync=True)
    colormap = t.Enum(list(_COLORMAPS), default_value="auto", help="Colormap name.").tag(sync=True)
    vmin = t.Float(None, allow_none=True, help="Lower end of the colour range, or None for the data's.").tag(sync=True)
    vmax = t.Float(None, allow_none=True, help="Upper end of the colour range, or None for the data's.").tag(sync=True)
    max_size = t.Int(560, help="Longest side of the drawn array in CSS pixels. Default 560.").tag(sync=True)

    # --- interaction --------------------------------------------------------------
    selected = t.Tuple(
        t.Int(), t.Int(), default_value=None, allow_none=True, help="(row, col) of the clicked cell, or None."
    ).tag(sync=True)

    def __init__(
        self,
        array: Any,
        row_labels: Sequence[str] | None = None,
        col_labels: Sequence[str] | None = None,
        title: str | None = None,
        *,
        wire_dtype: WireDType = "float32",
        **kwargs: Any,
    ) -> None:
        arr = as_numpy(array, "array")
        if arr.ndim != 2:
            raise ValueError(f"array: expected a 2-D array (rows, columns), got {arr.ndim}-D shape {arr.shape}")
        if arr.dtype == np.bool_:
            arr = arr.astype(np.float32)
        self._shape = arr.shape
        super().__init__(
            data=encode_array(arr, wire_dtype, name="array"),
            row_labels=self._labels(row_labels, arr.shape[0], "row_labels", "rows"),
            col_labels=self._labels(col_labels, arr.shape[1], "col_labels", "columns"),
            title="" if title is None else str(title),
            **kwargs,
        )

    @staticmethod
    def _labels(labels: Sequence[str] | None, n: int, name: str, what: str) -> list[str]:
        if labels is None:
            return []
        if isinstance(labels, str):
            raise TypeError(f"{name}: expected a sequence of {n} strings, got a single string")
        out = [str(x) for x in labels]
        if len(out) != n:
            raise ValueError(f"{name}: expected {n} labels (one per {what[:-1]}; the array has {n} {what}), got {len(out)}")
        return out

    @t.validate("selected")
    def _check_selected(self, proposal: t.Bunch) -> tuple[int, int] | None:
        value = proposal["value"]
        if value is None:
            return None
        r, c = value
        rows, cols = self._shape
        if not (0 <= r < rows and 0 <= c < cols):
            raise t.TraitError(f"selected: expected (row, col) inside the {rows}x{cols} array, got {value!r}")
        return (int(r), int(c))

    @t.validate("max_size")
    def _check_max_size(self, proposal: t.Bunch) -> int:
        if proposal["value"] < 16:
            raise t.TraitError(f"max_size: expected at least 16 pixels, got {proposal['value']}")
        return int(proposal["value"])
