"""FilterGrid: the kernels of a convolution layer as small images.

Front end: ``js/filters.ts``. Compute: :func:`deepvis_widgets.compute.cnn.conv_filters`.
"""

from __future__ import annotations

from typing import Any

import traitlets as t
from anywidget.experimental import command
from torch import nn

from .._arrays import encode_array
from ..compute.cnn import ConvFilters, FilterMode, conv_filters, conv_layers
from ._base import DeepVisWidget

__all__ = ["FilterGrid"]


def _payload(f: ConvFilters) -> dict[str, Any]:
    return {
        "layer": f.layer,
        "weights": encode_array(f.weights, "float16", name="weights"),
        "norms": encode_array(f.norms, "float32", name="norms"),
        "mode": f.mode,
        "in_channels": f.in_channels,
        "groups": f.groups,
    }


class FilterGrid(DeepVisWidget, entry="filters"):
    """The kernels of a convolution layer drawn as small images, sortable by norm.

    A first layer (kernels over 3 input channels) draws each filter as an RGB
    image, grey meaning 0 (Zeiler and Fergus's figure); deeper layers draw each
    filter as a grid of its per-input-channel kernels on a diverging scale
    (blue negative, red positive), or, when a filter has more than 4,096
    weights, as the L2 norm over input channels at each kernel position.
    Hover a filter for its index and norm; click it to enlarge it. With a live
    kernel the layer menu loads another layer.

    Parameters
    ----------
    model
        A model with ``nn.Conv2d`` layers (or one ``nn.Conv2d``).
    layer
        Layer name as in ``model.named_modules()``, the module, or None for the first convolution.
    mode
        ``'auto'``, ``'rgb'``, ``'channels'`` or ``'summary'`` (see :func:`~deepvis_widgets.compute.cnn.conv_filters`).
    sort
        ``'index'`` or ``'norm'`` (largest first).
    title
        Optional title.

    Example
    -------
    >>> from torch import nn
    >>> from deepvis_widgets.widgets.filters import FilterGrid
    >>> net = nn.Sequential(nn.Conv2d(3, 16, 5), nn.ReLU(), nn.Conv2d(16, 32, 3))
    >>> w = FilterGrid(net, sort="norm")
    >>> w.layer, w.mode, w.weights["shape"]
    ('0', 'rgb', [16, 3, 5, 5])
    """

    # --- data ---------------------------------------------------------------------
    layer = t.Unicode(help="Name of the layer shown.").tag(sync=True)
    layers = t.List(t.Unicode(), help="Names of every convolution layer of the model (the layer menu).").tag(sync=True)
    weights = t.Dict(help="Kernels (out, k, kh, kw) as a float16 payload; k as described by mode.").tag(sync=True)
    norms = t.Dict(help="L2 norm of each filter, float32 payload (out,).").tag(sync=True)
    mode = t.Enum(["rgb", "channels", "summary"], default_value="channels", help="How each filter is drawn.").tag(sync=True)
    in_channels = t.Int(1, help="Input channels of the layer.").tag(sync=True)
    groups = t.Int(1, help="Groups of the layer (in_channels for depthwise).").tag(sync=True)

    # --- appearance -----------------------------------------------------------------
    sort = t.Enum(["index", "norm"], default_value="index", help="Filter order: by index or by decreasing norm. Default 'index'.").tag(sync=True)
    normalize = t.Enum(
        ["filter", "layer"],
        default_value="filter",
        help="Colour range per filter (each uses the full range) or shared by the layer (compare magnitudes). Default 'filter'.",
    ).tag(sync=True)
    tile_size = t.Int(0, help="Tile side in CSS pixels; 0 picks one from the number of filters. Default 0.").tag(sync=True)

    # --- interaction ------------------------------------------------------------------
    selected = t.Int(None, allow_none=True, help="Index of the enlarged filter, or None.").tag(sync=True)

    def __init__(
        self,
        model: nn.Module,
        layer: str | nn.Module | None = None,
        *,
        mode: FilterMode = "auto",
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        f = conv_filters(model, layer, mode=mode)
        self._model = model
        self._mode_arg = mode
        names = [n for n, _ in conv_layers(model)]
        super().__init__(
            **_payload(f),
            layers=names,
            title="" if title is None else str(title),
            **kwargs,
        )

    @t.validate("selected")
    def _check_selected(self, proposal: t.Bunch) -> int | None:
        value = proposal["value"]
        n = self.weights["shape"][0] if self.weights else 0
        if value is not None and not 0 <= value < n:
            raise t.TraitError(f"selected: expected a filter index in 0..{n - 1}, got {value}")
        return value

    @t.validate("tile_size")
    def _check_tile(self, proposal: t.Bunch) -> int:
        if proposal["value"] != 0 and not 8 <= proposal["value"] <= 256:
            raise t.TraitError(f"tile_size: expected 0 (automatic) or 8..256 pixels, got {proposal['value']}")
        return int(proposal["value"])

    def show_layer(self, layer: str | nn.Module) -> None:
        """Replaces the kernels shown by those of another convolution layer of the model.

        Example
        -------
        >>> w.show_layer("2")  # doctest: +SKIP
        """
        with self._working(f"loading {layer}"):
            f = conv_filters(self._model, layer, mode=self._mode_arg if self._mode_arg != "rgb" else "auto")
            self.selected = None
            with self.hold_sync():
                for key, value in _payload(f).items():
                    setattr(self, key, value)

    @command
    def _load_layer(self, msg: dict[str, Any], buffers: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
        """Front-end request (the layer menu, live kernel only)."""
        del buffers
        try:
            self.show_layer(str(msg.get("layer", "")))
        except Exception as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}, []
        return {"ok": True, "layer": self.layer}, []
