"""LayerWalk: the activations of every convolution block for one input (CNN Explainer style).

Front end: ``js/layer_walk.ts``. Compute: :func:`deepvis_widgets.compute.cnn.layer_walk`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import traitlets as t
from torch import nn
from torch.nn import functional as F

from .._arrays import encode_array
from ..compute.cnn import LayerWalkData, WalkLayer, layer_walk, peak_positions
from ..compute.feature_vis import display_image
from ._base import DeepVisWidget

__all__ = ["LayerWalk"]


def _positive(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    return int(value)


def _layer_payload(layer: WalkLayer, max_channels: int, max_side: int) -> dict[str, Any]:
    acts = layer.activations
    c, h, w = acts.shape
    top, top_y, top_x = peak_positions(torch.from_numpy(acts))
    peaks, py, px = top.numpy(), top_y.numpy(), top_x.numpy()
    if c > max_channels:
        # Strongest peak first; ties (ReLU6 saturates at 6) go to the higher mean activation.
        means = acts.reshape(c, -1).mean(1)
        shown = np.sort(np.lexsort((-means, -peaks))[:max_channels])
    else:
        shown = np.arange(c)
    maps = torch.from_numpy(acts[shown])
    if max(h, w) > max_side:
        f = max_side / max(h, w)
        maps = F.adaptive_avg_pool2d(maps[None], (max(1, round(h * f)), max(1, round(w * f))))[0]
    rf = layer.receptive_field
    ih, iw = rf.input_size
    boxes = np.array([rf.box(int(py[i]), int(px[i])) for i in shown], np.float32)
    boxes /= np.array([ih, iw, ih, iw], np.float32)  # fractions of the input
    out: dict[str, Any] = {
        "name": layer.block.name,
        "output": layer.block.output,
        "shape": [int(c), int(h), int(w)],
        "channels": encode_array(shown.astype(np.int32), "int32", name="channels"),
        "maps": encode_array(maps.numpy(), "uint8", name="activations"),
        "peaks": encode_array(peaks[shown], "float32", name="peaks"),
        "peak_at": encode_array(np.stack([py[shown], px[shown]], 1).astype(np.int32), "int32", name="peak_at"),
        "boxes": encode_array(boxes, "float32", name="boxes"),
        "kernel_name": layer.block.conv or "",
    }
    if layer.kernel is not None:
        kernel = layer.kernel[shown]
        if kernel.shape[1] * kernel.shape[2] * kernel.shape[3] > 4096:
            kernel = np.sqrt((kernel**2).sum(1, keepdims=True))
            out["kernel_mode"] = "summary"
        else:
            out["kernel_mode"] = "rgb" if kernel.shape[1] == 3 else "channels"
        out["kernel"] = encode_array(kernel, "float16", name="kernel")
    else:
        out["kernel_mode"] = ""
    return out


class LayerWalk(DeepVisWidget, entry="layer_walk"):
    """The activations of every convolution block of a CNN for one input, as small multiples.

    One row per block, named as the model names it (``'_blocks.3'``,
    ``'features.0'``), each channel a small map. Click a channel to enlarge it:
    the view then outlines the region of the input where it peaks (its
    effective receptive field around the peak) and shows the kernel of the
    convolution that produced it.

    Parameters
    ----------
    model
        A CNN (``nn.Module`` with ``nn.Conv2d`` layers).
    image
        The input: a model-input tensor ``(1, C, H, W)``/``(C, H, W)``, or a photo
        (``uint8`` ``(H, W, 3)``) turned into one by ``preprocess``.
    preprocess
        Callable mapping ``image`` to the model input (e.g.
        :func:`deepvis_widgets.examples.imagenet.preprocess`). Default for photos:
        ``image / 255`` as ``(1, 3, H, W)``.
    display
        What to draw as the input (a photo or ``(H, W, 3)`` floats in [0, 1]); by
        default the photo, or the input tensor min-max scaled. It is stretched
        over the model input, so pass one matching any crop ``preprocess`` makes.
    layers
        Submodule names to show instead of the automatic blocks.
    labels
        Class names, to caption the input with the top predictions.
    max_channels
        Channels per block sent to the view; wider blocks send their strongest
        (highest peak, ties broken by mean activation). Default 64.
    max_side
        Maps larger than this are average-pooled down for the thumbnails. Default 56.
    title
        Optional title.

    Example
    -------
    >>> import torch
    >>> from torch import nn
    >>> from deepvis_widgets.widgets.layer_walk import LayerWalk
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3))
    >>> w = LayerWalk(net, torch.rand(1, 1, 28, 28))
    >>> [layer["name"] for layer in w.layers]
    ['0', '3']
    """

    # --- data ---------------------------------------------------------------------
    image = t.Dict(help="The input as drawn: (H, W, 3) uint8 payload of values in [0, 1].").tag(sync=True)
    layers = t.List(
        t.Dict(),
        help="One dict per block: name, output, shape [C, H, W], channels (int32), maps (uint8 (n, h, w)), peaks, peak_at, boxes (fractions of the input), kernel_name, kernel, kernel_mode.",
    ).tag(sync=True)
    caption = t.Unicode("", help="Text under the input (e.g. the top predictions). Default ''.").tag(sync=True)

    # --- appearance -----------------------------------------------------------------
    normalize = t.Enum(
        ["layer", "channel"], default_value="layer", help="Colour range shared by a block's channels, or per channel. Default 'layer'."
    ).tag(sync=True)
    thumb_size = t.Int(36, help="Thumbnail side in CSS pixels. Default 36.").tag(sync=True)

    # --- interaction ------------------------------------------------------------------
    selected = t.Tuple(
        t.Int(), t.Int(), default_value=None, allow_none=True, help="(block index, channel index in the model) of the enlarged map, or None."
    ).tag(sync=True)

    def __init__(
        self,
        model: nn.Module,
        image: Any,
        *,
        preprocess: Callable[[Any], torch.Tensor] | None = None,
        display: Any = None,
        layers: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        max_channels: int = 64,
        max_side: int = 56,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        max_channels = _positive(max_channels, "max_channels", 1)
        max_side = _positive(max_side, "max_side", 4)
        if preprocess is not None and not callable(preprocess):
            raise TypeError(f"preprocess: expected a callable (image -> model input tensor), got {type(preprocess).__name__}")
        x = self._input(image, preprocess)
        walk = layer_walk(model, x, layers)
        shown = display_image(display if display is not None else (image if not isinstance(image, torch.Tensor) else x), "display")
        self.walk: LayerWalkData = walk
        super().__init__(
            image=encode_array(shown, "uint8", name="display"),
            layers=[_layer_payload(layer, max_channels, max_side) for layer in walk.layers],
            caption=self._caption(walk.output, labels),
            title="" if title is None else str(title),
            **kwargs,
        )

    @staticmethod
    def _input(image: Any, preprocess: Callable[[Any], torch.Tensor] | None) -> torch.Tensor:
        if preprocess is not None:
            x = preprocess(image)
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"preprocess: expected it to return a torch.Tensor, got {type(x).__name__}")
            return x
        if isinstance(image, torch.Tensor):
            return image
        arr = np.asarray(image)
        if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
            raise TypeError(
                f"image: expected a model-input tensor (1, C, H, W) or a uint8 photo (H, W, 3) (pass preprocess= for other inputs), got {arr.dtype} {arr.shape}"
            )
        t_ = torch.from_numpy(arr.astype(np.float32) / 255.0)
        return (t_[None] if t_.ndim == 2 else t_.permute(2, 0, 1))[None]

    @staticmethod
    def _caption(output: np.ndarray, labels: Sequence[str] | None) -> str:
        if labels is None:
            return ""
        if isinstance(labels, str) or output.ndim != 1 or len(output) != len(labels):
            n = output.shape[-1] if output.ndim == 1 else 0
            got = "a single string" if isinstance(labels, str) else len(labels)
            raise ValueError(f"labels: expected {n} class names (one per model output), got {got}")
        p = torch.from_numpy(output).softmax(-1).numpy()
        return " · ".join(f"{labels[i]} {p[i]:.2f}" for i in np.argsort(-p)[:3])

    @t.validate("selected")
    def _check_selected(self, proposal: t.Bunch) -> tuple[int, int] | None:
        value = proposal["value"]
        if value is None:
            return None
        b, c = value
        if not 0 <= b < len(self.layers):
            raise t.TraitError(f"selected: expected a block index in 0..{len(self.layers) - 1}, got {b}")
        channels = np.frombuffer(self.layers[b]["channels"]["buffer"], "<i4")
        if c not in channels:
            name = self.layers[b]["name"]
            raise t.TraitError(f"selected: channel {c} of block {name!r} is not shown (shown: {len(channels)} of {self.layers[b]['shape'][0]})")
        return (int(b), int(c))

    @t.validate("thumb_size")
    def _check_thumb(self, proposal: t.Bunch) -> int:
        if not 12 <= proposal["value"] <= 128:
            raise t.TraitError(f"thumb_size: expected 12..128 pixels, got {proposal['value']}")
        return int(proposal["value"])
