"""ImageAttribution: several attribution methods side by side, overlaid on the images they explain.

Front end: ``js/image_attribution.ts``. Compute: ``deepvis_widgets/compute/attribution.py``.

Rows are images, columns the input and then one map per method. Each image
offers its ``top_k`` most probable classes as targets; the maps for all of them
are computed when the view is created, so an exported page (no kernel) can
still switch targets. With a live kernel, :meth:`ImageAttribution.show_target`
(also reached from the view) computes the maps for any other class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import traitlets as t
from anywidget.experimental import command
from torch import nn

from .._arrays import as_numpy, encode_array
from ..compute.attribution import Attribution, attribute, available_methods, top_predictions
from ..compute.feature_vis import display_image
from ._base import DeepVisWidget, progress_bar

__all__ = ["ImageAttribution"]

Report = Callable[[str, "float | None"], None]
NO_CLASS = -1
"""Target key of maps given without a class (``from_attributions`` without ``targets``)."""


def _encode_map(values: np.ndarray, name: str) -> dict[str, Any]:
    """A map as float16 of ``values / scale`` (full float16 precision whatever the magnitude)."""
    values = np.asarray(values, dtype=np.float32)
    finite = values[np.isfinite(values)]
    scale = float(np.abs(finite).max()) if finite.size else 0.0
    scale = scale if scale > 0 else 1.0
    return {"data": encode_array(values / scale, "float16", name=name), "scale": scale}


def _names(values: Sequence[str] | None, n: int, name: str, what: str) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        raise TypeError(f"{name}: expected a sequence of {n} strings, got a single string")
    out = [str(v) for v in values]
    if len(out) != n:
        raise ValueError(f"{name}: expected {n} names (one per {what}), got {len(out)}")
    return out


def _resize_rgb(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, 3) floats in [0, 1] resized to (height, width, 3) (the model sees the photo squeezed too)."""
    if image.shape[:2] == (height, width):
        return image
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    x = torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return x[0].permute(1, 2, 0).clamp(0, 1).numpy()


def _display_stack(images: Sequence[Any], height: int, width: int, name: str) -> np.ndarray:
    return np.stack([_resize_rgb(display_image(img, f"{name}[{i}]"), height, width) for i, img in enumerate(images)])


def _as_list(images: Any) -> list[Any]:
    if isinstance(images, torch.Tensor):
        return list(images) if images.ndim == 4 else [images]
    if isinstance(images, np.ndarray):
        return list(images) if images.ndim == 4 else [images]
    return list(images)


def _methods(methods: Sequence[Any] | Mapping[str, Any]) -> dict[str, Any]:
    """Column key -> method (a registry name or a captum.attr.Attribution)."""
    import captum.attr as ca

    known = available_methods()
    if isinstance(methods, str):
        methods = [methods]
    named = isinstance(methods, Mapping)
    items = list(methods.items()) if isinstance(methods, Mapping) else [(m, m) for m in methods]
    if not items:
        raise ValueError(f"methods: expected at least one method; known: {', '.join(known)}")
    out: dict[str, Any] = {}
    for key, method in items:
        if isinstance(method, str):
            canonical = method.lower().replace("-", "_").replace(" ", "_")
            if canonical not in known:
                raise ValueError(f"methods: unknown method {method!r}; expected one of {', '.join(known)}")
            method = canonical
            key = key if named else canonical
        elif not named:
            raise TypeError(
                f"methods: expected method names (or a dict {{column name: captum.attr.Attribution}}), got {type(method).__name__}"
            )
        elif not isinstance(method, ca.Attribution):
            raise TypeError(f"methods: expected method names or captum.attr.Attribution objects, got {type(method).__name__}")
        key = str(key)
        if key in out:
            raise ValueError(f"methods: {key!r} is listed twice")
        out[key] = method
    return out


class ImageAttribution(DeepVisWidget, entry="image_attribution"):
    """Attribution maps of several methods for a few images, side by side.

    Rows are images; the first column is the image, then one column per
    method, each map overlaid on the (greyed) image: colour where the method
    puts evidence, the image where it puts none. Signed methods (integrated
    gradients, occlusion...) use diverging colours, blue against and red for
    the class; absolute ones (saliency, Grad-CAM) a sequential scale. Each map
    is scaled to a percentile of its magnitude (the *clip* slider; larger
    values saturate); the *opacity* slider sets how strongly maps cover the
    image. Each row's menu lists the image's ``top_k`` predicted classes with
    their probabilities; their maps are all computed when the view is made,
    so switching works in exported HTML too; with a live kernel, typing any
    other class name (or index) under a row's menu computes its maps in the
    kernel (:meth:`show_target`), with progress in the view. Hover a map for
    its value, click it to enlarge it with its legend.

    Parameters
    ----------
    model
        A ``torch.nn.Module`` classifier; it comes back unchanged.
    images
        Model inputs ``(N, C, H, W)`` (a tensor), or a list of photos
        (``uint8`` ``(H, W, 3)``) turned into inputs by ``preprocess`` (default
        ``photo / 255``).
    methods
        Method names from :func:`~deepvis_widgets.compute.attribution.available_methods`
        (one column each), or a mapping ``{column name: name or captum.attr.Attribution}``.
    target
        Class shown first: None (each image's prediction), a class index, or
        one index per image. A class outside the top ``top_k`` is added to that
        image's menu.
    class_names
        One name per model output (shown as text, never HTML).
    preprocess
        Callable photo -> model input ``(1, C, H, W)``, used when ``images`` are photos.
    display_images
        What to draw under the maps (photos or floats in [0, 1]); default the
        photos, or the input tensors min-max scaled. Resized to the input size.
    image_names
        One label per image.
    top_k
        How many predicted classes each menu offers (all precomputed). Default 5.
    method_options
        ``{method: {option: value}}`` passed to :func:`~deepvis_widgets.compute.attribution.attribute`
        (e.g. ``{"integrated_gradients": {"n_steps": 16}}``).
    title
        Optional title.

    Example
    -------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    >>> view = ImageAttribution(net, torch.rand(2, 3, 16, 16), ["saliency", "gradcam"], top_k=2, class_names=["a", "b", "c"])
    >>> len(view.candidates[0]), sorted(view.maps_for(0))
    (2, ['gradcam', 'saliency'])
    """

    # --- data ------------------------------------------------------------------
    images = t.Dict(help="The images as drawn: (N, H, W, 3) uint8 payload of values in [0, 1].").tag(sync=True)
    image_names = t.List(t.Unicode(), help="One label per image, or [] for none. Default [].").tag(sync=True)
    methods = t.List(t.Unicode(), help="Column keys, one per method, in order.").tag(sync=True)
    method_labels = t.List(t.Unicode(), help="Column titles, one per method.").tag(sync=True)
    signed = t.List(t.Bool(), help="Per method: True for signed maps (diverging colours), False for absolute ones.").tag(sync=True)
    class_names = t.List(t.Unicode(), help="One name per class, or [] to show indices. Default [].").tag(sync=True)
    candidates = t.List(
        t.List(t.Dict()),
        help="Per image, the targets its menu offers: [{'class': int, 'probability': float or None}].",
    ).tag(sync=True)
    maps = t.Dict(
        help="'row:class' -> method -> {'data': (H, W) float16 payload of map / scale, 'scale': float, 'delta': float or None}."
    ).tag(sync=True)
    live = t.Bool(False, help="True when a model is attached, so other targets can be computed in the kernel.").tag(sync=True)
    verdicts = t.Dict(
        help="Sanity-check badges: method -> {'passed': bool, 'text': str}, shown in the column header. Default {}."
    ).tag(sync=True)

    # --- interaction --------------------------------------------------------------
    target = t.List(t.Int(), help="Class shown for each image (-1: maps given without a class).").tag(sync=True)
    opacity = t.Float(0.7, help="How strongly maps cover the image, 0..1. Default 0.7.").tag(sync=True)
    clip = t.Float(99.0, help="Percentile of |map| at which colours saturate, 50..100. Default 99.").tag(sync=True)
    selected = t.Tuple(
        t.Int(), t.Int(), default_value=None, allow_none=True, help="(row, column) of the enlarged tile (column 0 = image), or None."
    ).tag(sync=True)
    tile_size = t.Int(160, help="Side of one tile in CSS pixels. Default 160.").tag(sync=True)

    def __init__(
        self,
        model: nn.Module,
        images: Any,
        methods: Sequence[Any] | Mapping[str, Any] = ("saliency", "integrated_gradients", "gradcam"),
        target: int | Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
        *,
        preprocess: Callable[[Any], torch.Tensor] | None = None,
        display_images: Any = None,
        image_names: Sequence[str] | None = None,
        top_k: int = 5,
        method_options: Mapping[str, Mapping[str, Any]] | None = None,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        specs = _methods(methods)
        options = self._method_options(method_options, specs)
        x, source = self._inputs(images, preprocess)
        n, height, width = x.shape[0], x.shape[-2], x.shape[-1]
        if display_images is not None:
            shown = _display_stack(_as_list(display_images), height, width, "display_images")
        else:
            shown = _display_stack(_as_list(source), height, width, "images")
        if shown.shape[0] != n:
            raise ValueError(f"display_images: expected {n} images (one per input), got {shown.shape[0]}")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise ValueError(f"top_k: expected a positive int, got {top_k!r}")

        preds = top_predictions(model, x, k=1)
        n_classes = int(preds.logits.shape[1])
        names = _names(class_names, n_classes, "class_names", "model output")
        probabilities = torch.softmax(preds.logits.float(), dim=1)
        k = min(top_k, n_classes)
        top = probabilities.topk(k, dim=1).indices.tolist()
        first = self._targets(target, n, n_classes, [row[0] for row in top])
        wanted = [list(dict.fromkeys([*row, first[i]])) for i, row in enumerate(top)]

        self._model: nn.Module | None = model  # None in views made by from_attributions
        self._x: torch.Tensor | None = x
        self._specs = specs
        self._options = options
        self._probabilities: torch.Tensor | None = probabilities
        self._store: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        self._deltas: dict[tuple[int, int], dict[str, float | None]] = {}
        self._signed: dict[str, bool] = {}
        pairs = [(r, c) for r, row in enumerate(wanted) for c in row]
        with progress_bar("attributions") as report:
            self._compute(pairs, report, progress=None)
        super().__init__(
            images=encode_array(shown, "uint8", name="images"),
            image_names=_names(image_names, n, "image_names", "image"),
            methods=list(specs),
            method_labels=[self._label(key, m) for key, m in specs.items()],
            signed=[self._signed[key] for key in specs],
            class_names=names,
            candidates=[[self._candidate(r, c) for c in row] for r, row in enumerate(wanted)],
            maps=self._payload(),
            live=True,
            target=first,
            title="" if title is None else str(title),
            **kwargs,
        )

    # --- construction helpers -----------------------------------------------------
    @staticmethod
    def _inputs(images: Any, preprocess: Callable[[Any], torch.Tensor] | None) -> tuple[torch.Tensor, Any]:
        """The model inputs, and what to draw by default (the photos, else the inputs)."""
        if isinstance(images, np.ndarray) and images.dtype.kind == "f" and preprocess is None:
            images = torch.from_numpy(images)
        source = images
        if preprocess is not None:
            if not callable(preprocess):
                raise TypeError(f"preprocess: expected a callable (photo -> model input tensor), got {type(preprocess).__name__}")
            parts = []
            for i, img in enumerate(_as_list(images)):
                out = preprocess(img)
                if not isinstance(out, torch.Tensor):
                    raise TypeError(f"preprocess: expected it to return a torch.Tensor, got {type(out).__name__} for images[{i}]")
                parts.append(out if out.ndim == 4 else out[None])
            if not parts:
                raise ValueError("images: expected at least one image, got none")
            x = torch.cat(parts)
        elif isinstance(images, torch.Tensor):
            x = images
            source = images.detach() if images.ndim == 4 else images
        else:
            photos = _as_list(images)
            if not photos:
                raise ValueError("images: expected at least one image, got none")
            arrays = [np.asarray(p) for p in photos]
            if any(a.dtype != np.uint8 or a.ndim not in (2, 3) for a in arrays):
                bad = next(a for a in arrays if a.dtype != np.uint8 or a.ndim not in (2, 3))
                raise TypeError(
                    "images: expected a model-input tensor (N, C, H, W) or uint8 photos (H, W, 3) "
                    f"(pass preprocess= for other inputs), got {bad.dtype} of shape {bad.shape}"
                )
            if len({a.shape for a in arrays}) != 1:
                raise ValueError("images: photos of different sizes need preprocess= to bring them to one input size")
            x = torch.stack([torch.from_numpy(a.astype(np.float32) / 255.0) for a in arrays])
            x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
        if x.ndim != 4:
            raise ValueError(f"images: expected inputs of shape (N, C, H, W), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("images: the batch is empty")
        if not x.is_floating_point():
            raise TypeError(f"images: expected a floating-point tensor, got {x.dtype}")
        return x.detach(), source

    @staticmethod
    def _method_options(options: Mapping[str, Mapping[str, Any]] | None, specs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        if options is None:
            return {}
        if not isinstance(options, Mapping):
            raise TypeError(f"method_options: expected a dict {{method: {{option: value}}}}, got {type(options).__name__}")
        unknown = sorted(set(options) - set(specs))
        if unknown:
            raise ValueError(f"method_options: {', '.join(map(repr, unknown))} not among the methods shown ({', '.join(specs)})")
        return {k: dict(v) for k, v in options.items()}

    @staticmethod
    def _targets(target: Any, n: int, n_classes: int, predicted: list[int]) -> list[int]:
        if target is None:
            return list(predicted)
        if isinstance(target, bool):
            raise TypeError("target: expected None, a class index or one index per image, got bool")
        values = [target] * n if isinstance(target, (int, np.integer)) else list(as_numpy(target, "target").reshape(-1))
        if len(values) != n:
            raise ValueError(f"target: expected one class per image ({n}), got {len(values)}")
        out = []
        for v in values:
            if not float(v).is_integer() or not 0 <= int(v) < n_classes:
                raise ValueError(f"target: expected class indices in 0..{n_classes - 1}, got {v.item() if isinstance(v, np.generic) else v!r}")
            out.append(int(v))
        return out

    def _label(self, key: str, method: Any) -> str:
        info = available_methods().get(method) if isinstance(method, str) else None
        return info.label if info is not None and key == method else key

    def _candidate(self, row: int, cls: int) -> dict[str, Any]:
        probs = getattr(self, "_probabilities", None)
        p = None if probs is None or cls == NO_CLASS else float(probs[row, cls])
        return {"class": int(cls), "probability": p}

    # --- compute ---------------------------------------------------------------------
    def _compute(self, pairs: list[tuple[int, int]], report: Report, progress: bool | None = False) -> None:
        """Maps of every method for each (image, class) pair, in one attribute() call per method."""
        pairs = [p for p in pairs if p not in self._store]
        if not pairs:
            return
        model, images = self._model, self._x
        assert model is not None and images is not None  # callers check for a model first
        rows = torch.tensor([r for r, _ in pairs])
        classes = [c for _, c in pairs]
        x = images[rows]
        m = len(self._specs)
        found: dict[tuple[int, int], dict[str, np.ndarray]] = {p: {} for p in pairs}
        deltas: dict[tuple[int, int], dict[str, float | None]] = {p: {} for p in pairs}
        for j, (key, method) in enumerate(self._specs.items()):
            report(f"{key}: {len(pairs)} map{'s' if len(pairs) > 1 else ''}", j / m)
            result: Attribution = attribute(
                model, x, method, target=classes, progress=progress, **self._options.get(key, {})
            )
            heat = result.heatmap("sum")
            self._signed[key] = bool(result.signed)
            for i, pair in enumerate(pairs):
                found[pair][key] = np.ascontiguousarray(heat[i], dtype=np.float32)
                deltas[pair][key] = None if result.delta is None else float(result.delta[i])
        report("", 1.0)
        self._store.update(found)
        self._deltas.update(deltas)

    def _payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for (row, cls), maps in self._store.items():
            out[f"{row}:{cls}"] = {
                key: {**_encode_map(m, f"maps[{key!r}]"), "delta": self._deltas.get((row, cls), {}).get(key)}
                for key, m in maps.items()
            }
        return out

    # --- public API ------------------------------------------------------------------
    def maps_for(self, row: int, target: int | None = None) -> dict[str, np.ndarray]:
        """The maps (float32, full precision) of image ``row`` for class ``target`` (default: the one shown).

        Example
        -------
        >>> view.maps_for(0)["gradcam"].shape  # doctest: +SKIP
        (224, 224)
        """
        row = self._row(row)
        cls = self.target[row] if target is None else int(target)
        if (row, cls) not in self._store:
            raise KeyError(f"target: no maps for image {row} and class {cls}; compute them with show_target({row}, {cls})")
        return dict(self._store[(row, cls)])

    def show_target(self, row: int, target: int) -> None:
        """Shows the maps of image ``row`` for class ``target``, computing them if needed (needs the model).

        Example
        -------
        >>> view.show_target(0, 282)  # doctest: +SKIP
        """
        row = self._row(row)
        if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
            raise TypeError(f"target: expected a class index (int), got {type(target).__name__}")
        cls = int(target)
        if (row, cls) not in self._store:
            model = getattr(self, "_model", None)
            if model is None:
                raise ValueError(f"target: no maps for image {row} and class {cls}, and no model to compute them (from_attributions)")
            assert self._probabilities is not None  # kept with the model
            n_classes = self._probabilities.shape[1]
            if not 0 <= cls < n_classes:
                raise ValueError(f"target: expected a class index in 0..{n_classes - 1}, got {cls}")
            name = self.class_names[cls] if self.class_names else f"class {cls}"
            with self._working(f"computing maps for {name}…"):
                self._compute([(row, cls)], self._progress)
                self.maps = self._payload()
        if not any(c["class"] == cls for c in self.candidates[row]):
            candidates = [list(c) for c in self.candidates]
            candidates[row].append(self._candidate(row, cls))
            self.candidates = candidates
        chosen = list(self.target)
        chosen[row] = cls
        self.target = chosen

    @command
    def _compute_target(self, msg: dict[str, Any], buffers: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
        """Front-end request (a row's target menu, live kernel only)."""
        del buffers
        try:
            self.show_target(int(msg.get("row", -1)), int(msg.get("target", -1)))
        except Exception as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}, []
        return {"ok": True}, []

    def _row(self, row: int) -> int:
        n = len(self.target)
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)) or not 0 <= int(row) < n:
            raise ValueError(f"row: expected an image index in 0..{n - 1}, got {row!r}")
        return int(row)

    # --- maps computed elsewhere -----------------------------------------------------------
    @classmethod
    def from_attributions(
        cls,
        images: Any,
        attributions: Mapping[str, Any],
        *,
        signed: bool | Mapping[str, bool] | None = None,
        targets: int | Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
        image_names: Sequence[str] | None = None,
        title: str | None = None,
        **kwargs: Any,
    ) -> ImageAttribution:
        """Shows maps computed elsewhere, e.g. by a Captum method the user ran.

        Parameters
        ----------
        images
            What to draw: ``uint8`` photos ``(N, H, W, 3)`` (array or list), floats
            in [0, 1], or model-input tensors ``(N, C, H, W)`` (min-max scaled).
        attributions
            ``{column name: maps}``; maps are ``(N, H, W)`` or ``(N, C, H, W)``
            (channels summed) arrays or tensors, or an
            :class:`~deepvis_widgets.compute.attribution.Attribution`. A map
            coarser than the image is stretched over it.
        signed
            Diverging (True) or sequential (False) colours, for all methods or
            per method; default True where a map has negative values.
        targets
            The class each image's maps explain (shown with ``class_names``).

        Example
        -------
        >>> from captum.attr import Saliency  # doctest: +SKIP
        >>> maps = Saliency(model).attribute(x, target=3)  # doctest: +SKIP
        >>> ImageAttribution.from_attributions(x, {"my saliency": maps})  # doctest: +SKIP
        """
        if not isinstance(attributions, Mapping) or not attributions:
            raise TypeError("attributions: expected a non-empty dict {column name: maps}")
        photos = _as_list(images)
        n = len(photos)
        if n == 0:
            raise ValueError("images: expected at least one image, got none")
        first = display_image(photos[0], "images[0]")
        shown = _display_stack(photos, first.shape[0], first.shape[1], "images")
        heat: dict[str, np.ndarray] = {}
        is_signed: dict[str, bool] = {}
        deltas: dict[str, Any] = {}
        for key, value in attributions.items():
            key = str(key)
            if isinstance(value, Attribution):
                arr, is_signed[key], deltas[key] = value.heatmap("sum"), value.signed, value.delta
            else:
                arr = as_numpy(value, f"attributions[{key!r}]").astype(np.float32)
                if arr.ndim == 4:
                    arr = arr.sum(1)
                is_signed[key] = bool((arr < 0).any())
            if arr.ndim != 3 or arr.shape[0] != n:
                raise ValueError(
                    f"attributions[{key!r}]: expected maps of shape ({n}, H, W) or ({n}, C, H, W), one per image, got {tuple(arr.shape)}"
                )
            heat[key] = arr
        if isinstance(signed, bool):
            is_signed = dict.fromkeys(heat, signed)
        elif signed is not None:
            unknown = sorted(set(signed) - set(heat))
            if unknown:
                raise ValueError(f"signed: {', '.join(map(repr, unknown))} not among the attributions ({', '.join(heat)})")
            is_signed.update({k: bool(v) for k, v in signed.items()})
        names = [str(c) for c in class_names] if class_names is not None else []
        if isinstance(class_names, str):
            raise TypeError("class_names: expected a sequence of strings, got a single string")
        if targets is None:
            chosen = [NO_CLASS] * n
        else:
            chosen = cls._targets(targets, n, len(names) if names else 2**31 - 1, [NO_CLASS] * n)
        view = cls.__new__(cls)
        view._model = None
        view._x = None
        view._specs = {k: k for k in heat}
        view._options = {}
        view._probabilities = None
        view._signed = is_signed
        view._store = {(r, chosen[r]): {k: np.ascontiguousarray(m[r]) for k, m in heat.items()} for r in range(n)}
        view._deltas = {
            (r, chosen[r]): {k: (None if deltas.get(k) is None else float(deltas[k][r])) for k in heat} for r in range(n)
        }
        DeepVisWidget.__init__(
            view,
            images=encode_array(shown, "uint8", name="images"),
            image_names=_names(image_names, n, "image_names", "image"),
            methods=list(heat),
            method_labels=list(heat),
            signed=[is_signed[k] for k in heat],
            class_names=names,
            candidates=[[{"class": c, "probability": None}] for c in chosen],
            maps=view._payload(),
            live=False,
            target=chosen,
            title="" if title is None else str(title),
            **kwargs,
        )
        return view

    # --- validation ---------------------------------------------------------------------------
    @t.validate("target")
    def _check_target(self, proposal: t.Bunch) -> list[int]:
        value = [int(v) for v in proposal["value"]]
        store = getattr(self, "_store", {})
        if self.candidates and len(value) != len(self.candidates):
            raise t.TraitError(f"target: expected one class per image ({len(self.candidates)}), got {len(value)}")
        missing = [(r, c) for r, c in enumerate(value) if (r, c) not in store]
        if store and missing:
            r, c = missing[0]
            raise t.TraitError(f"target: no maps for image {r} and class {c}; use show_target({r}, {c}) to compute them")
        return value

    @t.validate("opacity")
    def _check_opacity(self, proposal: t.Bunch) -> float:
        v = float(proposal["value"])
        if not 0.0 <= v <= 1.0:
            raise t.TraitError(f"opacity: expected a value in [0, 1], got {v}")
        return v

    @t.validate("clip")
    def _check_clip(self, proposal: t.Bunch) -> float:
        v = float(proposal["value"])
        if not 50.0 <= v <= 100.0:
            raise t.TraitError(f"clip: expected a percentile in [50, 100], got {v}")
        return v

    @t.validate("tile_size")
    def _check_tile_size(self, proposal: t.Bunch) -> int:
        v = int(proposal["value"])
        if not 32 <= v <= 1024:
            raise t.TraitError(f"tile_size: expected 32..1024 pixels, got {v}")
        return v

    @t.validate("selected")
    def _check_selected(self, proposal: t.Bunch) -> tuple[int, int] | None:
        value = proposal["value"]
        if value is None:
            return None
        r, c = (int(v) for v in value)
        rows, cols = len(self.target), len(self.methods) + 1
        if not (0 <= r < rows and 0 <= c < cols):
            raise t.TraitError(f"selected: expected (row, column) inside {rows} images x {cols} columns, got {value!r}")
        return (r, c)

    @t.validate("verdicts")
    def _check_verdicts(self, proposal: t.Bunch) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for method, verdict in dict(proposal["value"]).items():
            if method not in self.methods:
                raise t.TraitError(f"verdicts: {method!r} is not a method of this view ({', '.join(self.methods)})")
            if not isinstance(verdict, Mapping) or not isinstance(verdict.get("passed"), bool):
                raise t.TraitError(f"verdicts[{method!r}]: expected {{'passed': bool, 'text': str}}, got {verdict!r}")
            out[method] = {"passed": verdict["passed"], "text": str(verdict.get("text", ""))}
        return out
