"""FeatureVisView: optimised images per channel beside the inputs that excite it most.

Front end: ``js/feature_vis.ts``. Compute:
:func:`deepvis_widgets.compute.feature_vis.feature_visualization` and
:func:`deepvis_widgets.compute.cnn.top_activating`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import traitlets as t
from torch import nn

from .._arrays import as_numpy, encode_array
from ..compute.cnn import top_activating
from ..compute.feature_vis import (
    FeatureVisResult,
    crop_resize,
    display_image,
    evaluate_objective,
    feature_visualization,
)
from ._base import DeepVisWidget

__all__ = ["FeatureVisView"]


class FeatureVisView(DeepVisWidget, entry="feature_vis"):
    """Feature visualizations: per target (channel, neuron or class), the optimised images
    with their objective values and, optionally, the top-activating examples from a dataset.

    Build it from a :class:`~deepvis_widgets.compute.feature_vis.FeatureVisResult`,
    or let :meth:`from_model` run the optimisation with a progress bar in the view.
    Click an image to enlarge it.

    Parameters
    ----------
    result
        Output of :func:`~deepvis_widgets.compute.feature_vis.feature_visualization`
        (None: an empty view to :meth:`run` later).
    examples
        Top-activating examples per target, ``(targets, k, h, w, 3)`` in [0, 1]
        (or uint8), e.g. crops around each example's peak.
    example_values
        ``(targets, k)`` the target's activation on each example.
    example_labels
        One list of ``k`` captions per target (shown as text).
    title
        Optional title.

    Example
    -------
    >>> from torch import nn
    >>> from deepvis_widgets.compute.feature_vis import feature_visualization
    >>> from deepvis_widgets.widgets.feature_vis import FeatureVisView
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
    >>> view = FeatureVisView(feature_visualization(net, "2", [0, 1], size=32, steps=8))
    >>> view.labels
    ['2 · channel 0', '2 · channel 1']
    """

    # --- data ---------------------------------------------------------------------
    images = t.Dict(help="Optimised images (targets, samples, H, W, 3), uint8 payload of values in [0, 1]; {} while none.").tag(sync=True)
    labels = t.List(t.Unicode(), help="One caption per target, e.g. 'features.3 · channel 5' or 'class 207: golden retriever'.").tag(sync=True)
    values = t.Dict(help="Objective on each final image, float32 (targets, samples).").tag(sync=True)
    start_values = t.Dict(help="Objective on each starting image, float32 (targets, samples).").tag(sync=True)
    history = t.Dict(help="Objective during optimisation, float32 (steps, targets).").tag(sync=True)
    examples = t.Dict(help="Top-activating examples (targets, k, h, w, 3), uint8 payload in [0, 1]; {} for none.").tag(sync=True)
    example_values = t.Dict(help="Activation of each example, float32 (targets, k); {} for none.").tag(sync=True)
    example_labels = t.List(t.List(t.Unicode()), help="Captions of the examples, one list per target; [] for none.").tag(sync=True)
    layer = t.Unicode("", help="Layer optimised ('' for the model's output).").tag(sync=True)
    objective = t.Unicode("", help="'channel', 'neuron' or 'logit'.").tag(sync=True)

    # --- appearance -----------------------------------------------------------------
    image_size = t.Int(128, help="Side of each optimised image in CSS pixels. Default 128.").tag(sync=True)

    # --- interaction ------------------------------------------------------------------
    selected = t.Tuple(
        t.Int(), t.Int(), default_value=None, allow_none=True,
        help="(target, column) of the enlarged image: columns 0..samples-1 are optimised images, then the examples.",
    ).tag(sync=True)

    def __init__(
        self,
        result: FeatureVisResult | None = None,
        *,
        examples: Any = None,
        example_values: Any = None,
        example_labels: Sequence[Sequence[str]] | None = None,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(title="" if title is None else str(title), **kwargs)
        if result is not None:
            self.show_result(result, examples=examples, example_values=example_values, example_labels=example_labels)
        elif examples is not None:
            raise ValueError("examples: pass them together with a result")

    # --- filling the view ------------------------------------------------------------
    def show_result(
        self,
        result: FeatureVisResult,
        *,
        examples: Any = None,
        example_values: Any = None,
        example_labels: Sequence[Sequence[str]] | None = None,
    ) -> None:
        """Shows a :class:`FeatureVisResult` (and examples), replacing what the view shows.

        Example
        -------
        >>> view.show_result(result)  # doctest: +SKIP
        """
        if not isinstance(result, FeatureVisResult):
            raise TypeError(f"result: expected a FeatureVisResult (from feature_visualization), got {type(result).__name__}")
        images = np.asarray(result.images, np.float32)
        if images.ndim != 5 or images.shape[-1] not in (1, 3):
            raise ValueError(f"result.images: expected (targets, samples, H, W, 1 or 3), got {images.shape}")
        if images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        n_targets = images.shape[0]
        payload: dict[str, Any] = {"examples": {}, "example_values": {}, "example_labels": []}
        if examples is not None:
            payload = self._examples(examples, example_values, example_labels, n_targets)
        with self.hold_sync():
            self.selected = None  # type: ignore[assignment]  # allow_none=True; traitlets types Tuple without None
            self.images = encode_array(np.clip(images, 0, 1), "uint8", name="images")
            self.labels = [str(label) for label in result.labels]
            self.values = encode_array(result.values, "float32", name="values")
            self.start_values = encode_array(result.start_values, "float32", name="start_values")
            self.history = encode_array(result.history, "float32", name="history")
            self.layer = result.layer
            self.objective = result.objective
            for key, value in payload.items():
                setattr(self, key, value)

    @staticmethod
    def _examples(examples: Any, values: Any, labels: Sequence[Sequence[str]] | None, n_targets: int) -> dict[str, Any]:
        arr = as_numpy(examples, "examples")
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
        if arr.ndim == 4:
            arr = np.repeat(arr[..., None], 3, axis=-1)
        if arr.ndim != 5 or arr.shape[0] != n_targets or arr.shape[-1] not in (1, 3):
            raise ValueError(f"examples: expected ({n_targets}, k, h, w, 3) images, one row per target, got shape {arr.shape}")
        if arr.size and (np.nanmin(arr) < 0 or np.nanmax(arr) > 1):
            raise ValueError("examples: expected values in [0, 1] (or uint8 0..255)")
        if arr.shape[-1] == 1:
            arr = np.repeat(arr, 3, axis=-1)
        k = arr.shape[1]
        out: dict[str, Any] = {"examples": encode_array(arr, "uint8", name="examples"), "example_values": {}, "example_labels": []}
        if values is not None:
            v = as_numpy(values, "example_values").astype(np.float32)
            if v.shape != (n_targets, k):
                raise ValueError(f"example_values: expected shape ({n_targets}, {k}), got {v.shape}")
            out["example_values"] = encode_array(v, "float32", name="example_values")
        if labels is not None:
            rows = [[str(x) for x in row] for row in labels]
            if len(rows) != n_targets or any(len(r) != k for r in rows):
                raise ValueError(f"example_labels: expected {n_targets} lists of {k} captions")
            out["example_labels"] = rows
        return out

    # --- computing in the view -----------------------------------------------------------
    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        layer: str | nn.Module | None,
        channel: int | str | Sequence[int | str],
        *,
        images: torch.Tensor | None = None,
        display_images: Any = None,
        image_names: Sequence[str] | None = None,
        k: int = 6,
        example_size: int = 64,
        display: bool = False,
        title: str | None = None,
        **options: Any,
    ) -> FeatureVisView:
        """Optimises images for ``channel`` of ``layer`` and finds the top-activating ``images``.

        Parameters
        ----------
        model, layer, channel
            As for :func:`~deepvis_widgets.compute.feature_vis.feature_visualization`.
        images
            ``(N, C, H, W)`` model inputs to rank (e.g. crops of photos); None for no examples.
        display_images
            What to crop the examples from: ``(N, H, W, 3)`` uint8 or floats in [0, 1] (or a
            list of photos); default ``images`` min-max scaled.
        image_names
            One name per image, captions of the examples.
        k
            Examples per target.
        example_size
            Side of each example crop in pixels.
        display
            Show the view first (IPython ``display``) so its progress bar runs live.
        title
            Optional title.
        **options
            Passed to ``feature_visualization`` (``size``, ``steps``, ``objective``,
            ``samples``, ``diversity``, ``normalize``, ``class_names``, ``seed``...).

        Example
        -------
        >>> view = FeatureVisView.from_model(model, "_blocks.10", [3, 7], images=crops, steps=64)  # doctest: +SKIP
        """
        view = cls(title=title)
        if display:
            from IPython.display import display as show

            show(view)
        view.run(model, layer, channel, images=images, display_images=display_images, image_names=image_names,
                 k=k, example_size=example_size, **options)
        return view

    def run(
        self,
        model: nn.Module,
        layer: str | nn.Module | None,
        channel: int | str | Sequence[int | str],
        *,
        images: torch.Tensor | None = None,
        display_images: Any = None,
        image_names: Sequence[str] | None = None,
        k: int = 6,
        example_size: int = 64,
        **options: Any,
    ) -> FeatureVisResult:
        """Runs the optimisation (progress in the view) and shows the result; see :meth:`from_model`.

        Example
        -------
        >>> view = FeatureVisView(); view  # doctest: +SKIP
        >>> view.run(model, "_blocks.10", [3, 7], steps=64)  # doctest: +SKIP
        """
        if "progress" in options:
            raise TypeError("run() sets progress itself (the view's progress bar); remove the progress argument")
        if images is not None and (not isinstance(images, torch.Tensor) or images.ndim != 4):
            raise ValueError(f"images: expected model inputs (N, C, H, W) as a tensor, got {getattr(images, 'shape', type(images).__name__)}")
        if image_names is not None and (images is None or len(image_names) != len(images)):
            raise ValueError(f"image_names: expected one name per image ({0 if images is None else len(images)}), got {len(image_names)}")
        share = 0.9 if images is not None else 1.0
        last = [0.0]

        def progress(step: int, steps: int) -> None:
            now = time.perf_counter()
            if step == steps or now - last[0] > 0.2:  # a comm message per step would flood the front end
                last[0] = now
                self._progress(f"optimising: step {step} of {steps}", share * step / steps)

        with self._working("optimising"):
            result = feature_visualization(model, layer, channel, progress=progress, **options)
            extra: dict[str, Any] = {}
            if images is not None:
                self._progress("ranking examples", share)
                extra = self._rank(model, result, images, display_images, image_names, k, example_size, options)
            self.show_result(result, **extra)
        return result

    @staticmethod
    def _rank(
        model: nn.Module, result: FeatureVisResult, images: torch.Tensor, display_images: Any,
        names: Sequence[str] | None, k: int, size: int, options: dict[str, Any],
    ) -> dict[str, Any]:
        if display_images is None:
            shown = [display_image(x, "images") for x in images]
        else:
            if len(display_images) != len(images):
                raise ValueError(f"display_images: expected one per image ({len(images)}), got {len(display_images)}")
            shown = [display_image(x, "display_images") for x in display_images]
        input_size = (int(images.shape[-2]), int(images.shape[-1]))
        crops, values, labels = [], [], []
        if result.layer:
            tops = top_activating(model, result.layer, result.targets, images, k=k)
            assert isinstance(tops, list)
            for top in tops:
                crops.append([crop_resize(shown[i], box, input_size, size) for i, box in zip(top.indices, top.boxes, strict=True)])
                values.append(top.values)
                labels.append([names[i] if names is not None else f"image {i}" for i in top.indices])
        else:
            for target in result.targets:
                v = evaluate_objective(model, None, target, images, objective="logit", class_names=options.get("class_names"))
                order = np.argsort(-v, kind="stable")[: min(k, len(v))]
                full = (0.0, 0.0, float(input_size[0]), float(input_size[1]))
                crops.append([crop_resize(shown[i], full, input_size, size) for i in order])
                values.append(v[order])
                labels.append([names[i] if names is not None else f"image {i}" for i in order])
        return {"examples": np.array(crops, np.float32), "example_values": np.array(values, np.float32), "example_labels": labels}

    @t.validate("image_size")
    def _check_size(self, proposal: t.Bunch) -> int:
        if not 32 <= proposal["value"] <= 512:
            raise t.TraitError(f"image_size: expected 32..512 pixels, got {proposal['value']}")
        return int(proposal["value"])

    @t.validate("selected")
    def _check_selected(self, proposal: t.Bunch) -> tuple[int, int] | None:
        value = proposal["value"]
        if value is None:
            return None
        shape = self.images.get("shape") if self.images else None
        if not shape:
            raise t.TraitError("selected: the view shows no images yet")
        n_examples = self.examples["shape"][1] if self.examples else 0
        row, col = value
        if not (0 <= row < shape[0] and 0 <= col < shape[1] + n_examples):
            raise t.TraitError(f"selected: expected (target < {shape[0]}, column < {shape[1] + n_examples}), got {value!r}")
        return (int(row), int(col))
