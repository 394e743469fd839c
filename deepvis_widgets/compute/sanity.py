"""Sanity checks for attribution maps (Adebayo et al. 2018, arXiv:1810.03292).

A saliency map that stays the same when the model's weights are destroyed
explains the input, not the model. :func:`sanity_check` re-initialises the
layers of a *copy* of the model, from the output side, and measures how much
each method's map still resembles the original one; :func:`label_randomization_check`
compares the maps of a model trained on the true labels with those of the same
architecture trained on permuted labels. Both return a :class:`SanityResult`
(metrics per method, step and example, and the maps themselves) and
:func:`verdicts` turns it into a pass/fail per method for the attribution views.

Similarity metrics (:func:`map_similarity`), all 1 for identical maps:

- ``spearman_abs``: Spearman rank correlation of the absolute maps (the paper's main figure);
- ``spearman``: Spearman rank correlation of the signed maps;
- ``ssim``: structural similarity of the absolute maps, each scaled to [0, 1] by its maximum;
- ``hog``: Pearson correlation of the HOG features of those scaled maps (2-D maps only, else NaN).

A constant map (Grad-CAM's ReLU can zero a randomized model's map) has no
ranks or gradients to share: its correlation with another map is 0, and 1
only when both maps are identical.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._hooks import ModelSession
from ._layers import resolve_layer
from ._methods import METHODS
from .attribution import attribute
from .text_attribution import TEXT_METHODS, attribute_text

__all__ = [
    "METRICS",
    "SanityResult",
    "label_randomization_check",
    "map_similarity",
    "sanity_check",
    "verdict_details",
    "verdicts",
]

METRICS: tuple[str, ...] = ("spearman_abs", "spearman", "ssim", "hog")
"""Names of the similarity metrics, in the order of :attr:`SanityResult.scores`' last axis."""

METRIC_LABELS: dict[str, str] = {
    "spearman_abs": "rank correlation of |map|",
    "spearman": "rank correlation (signed)",
    "ssim": "SSIM of |map|",
    "hog": "HOG similarity",
}

IMAGE_METHODS = ("saliency", "integrated_gradients", "guided_backprop", "gradcam", "guided_gradcam")
"""Default methods for images: the paper's gradient, IG, guided backprop, Grad-CAM, guided Grad-CAM."""
DENSE_METHODS = ("saliency", "input_x_gradient", "integrated_gradients")
"""Default methods for other float inputs and for token ids."""

_MODES = ("cascading", "independent")
_NORMS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)

Progress = Callable[[str, "float | None"], None]


# --- metrics -------------------------------------------------------------------------------
def _correlation(a: np.ndarray, b: np.ndarray, *, ranks: bool) -> float:
    a = a.ravel().astype(np.float64)
    b = b.ravel().astype(np.float64)
    if np.array_equal(a, b):
        return 1.0
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    if ranks:
        from scipy.stats import rankdata

        a, b = rankdata(a), rankdata(b)
    return float(np.clip(np.corrcoef(a, b)[0, 1], -1.0, 1.0))


def _unit(x: np.ndarray) -> np.ndarray:
    """|x| scaled to [0, 1] by its maximum (zeros stay zeros)."""
    ax = np.abs(x.astype(np.float64))
    top = ax.max() if ax.size else 0.0
    return ax / top if top > 0 else ax


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    side = min(a.shape)
    win = min(7, side if side % 2 else side - 1)
    if win < 3:
        return math.nan
    ua, ub = _unit(a), _unit(b)
    if np.array_equal(ua, ub):
        return 1.0
    return float(structural_similarity(ua, ub, data_range=1.0, win_size=win))


def _hog(a: np.ndarray, b: np.ndarray) -> float:
    if a.ndim != 2:
        return math.nan
    from skimage.feature import hog

    cell = max(2, min(a.shape) // 8)  # about 8 x 8 cells whatever the map size
    if min(a.shape) < 2 * cell:
        return math.nan
    options = {"orientations": 9, "pixels_per_cell": (cell, cell), "cells_per_block": (2, 2)}
    return _correlation(hog(_unit(a), **options), hog(_unit(b), **options), ranks=False)


def map_similarity(a: Any, b: Any) -> dict[str, float]:
    """The four similarity metrics of the sanity checks between two maps of one example.

    Parameters
    ----------
    a, b
        Maps of the same shape: 2-D (H, W) for images (channels already
        reduced) or 1-D (T,) for token scores; numpy arrays or tensors.

    Returns
    -------
    dict of str to float
        ``spearman_abs``, ``spearman``, ``ssim`` and ``hog`` (NaN for 1-D maps
        and maps too small for the metric: SSIM needs a side of 3, HOG 4).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> m = rng.random((32, 32))
    >>> map_similarity(m, m)["spearman_abs"], round(map_similarity(m, rng.random((32, 32)))["spearman"], 1)
    (1.0, 0.0)
    """
    maps = []
    for name, value in (("a", a), ("b", b)):
        if isinstance(value, Tensor):
            value = value.detach().cpu().numpy()
        value = np.asarray(value)
        if value.dtype.kind not in "fiub" or value.ndim not in (1, 2) or value.size == 0:
            raise ValueError(
                f"{name}: expected a non-empty 1-D or 2-D numeric map, got shape {value.shape} "
                f"of {value.dtype}"
            )
        if not np.isfinite(value).all():
            raise ValueError(f"{name}: contains NaN or infinite values")
        maps.append(value.astype(np.float64))
    a, b = maps
    if a.shape != b.shape:
        raise ValueError(f"b: expected the shape of a {a.shape}, got {b.shape}")
    return {
        "spearman_abs": _correlation(np.abs(a), np.abs(b), ranks=True),
        "spearman": _correlation(a, b, ranks=True),
        "ssim": _ssim(a, b),
        "hog": _hog(a, b),
    }


# --- the result ----------------------------------------------------------------------------
def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    ok = ~np.isnan(x)
    count = ok.sum(axis)
    total = np.where(ok, x, 0.0).sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


@dataclass
class SanityResult:
    """Similarity of each method's maps to the original ones, per randomization step.

    Step 0 is the original model (similarity 1 by definition); step ``k`` is
    the model after re-initialising the ``k`` blocks nearest the output
    (``mode="cascading"``), block ``k`` alone (``"independent"``), or the model
    trained on permuted labels (``"labels"``, one step).

    Example
    -------
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> result = sanity_check(net, torch.rand(2, 1, 4, 4), ["saliency"], progress=False)
    >>> result.steps, result.scores.shape
    (['original', '3', '1'], (1, 3, 2, 4))
    >>> float(result.mean("spearman_abs")[0, 0])
    1.0
    """

    methods: list[str]
    """Method names, one per row."""
    method_labels: list[str]
    """Display names of the methods."""
    signed: list[bool]
    """Whether each method's maps are signed (diverging colours)."""
    mode: str
    """``"cascading"``, ``"independent"`` or ``"labels"``."""
    steps: list[str]
    """Step labels: ``"original"``, then the block re-initialised at each step (or ``"permuted labels"``)."""
    randomized: list[list[str]]
    """Module names re-initialised in the model of each step (cumulative when cascading)."""
    maps: np.ndarray
    """(methods, steps, N, *map) float32: (H, W) per image (channels summed), (T,) per text."""
    scores: np.ndarray
    """(methods, steps, N, metrics) float64 similarity with the step-0 map; see :data:`METRICS`."""
    target: list[int] | None
    """Class explained for each example at every step (the original model's prediction by default)."""
    kind: str
    """``"image"`` (N, C, H, W) inputs, ``"text"`` token ids, or ``"dense"`` other float inputs."""
    inputs: np.ndarray
    """The inputs (float32, or int64 token ids)."""
    seed: int = 0
    metrics: tuple[str, ...] = field(default=METRICS)

    def _metric_index(self, metric: str) -> int:
        if metric not in self.metrics:
            raise ValueError(f"metric: expected one of {', '.join(self.metrics)}, got {metric!r}")
        return self.metrics.index(metric)

    def mean(self, metric: str = "spearman_abs") -> np.ndarray:
        """(methods, steps) mean of ``metric`` over the examples (NaN where it is undefined)."""
        return _nanmean(self.scores[..., self._metric_index(metric)], axis=2)

    def table(self, per_example: bool = False) -> list[dict[str, Any]]:
        """Tidy rows ``{method, step, randomized, metric, value, ...}``.

        With ``per_example=False`` one row per method, step and metric holds the
        mean over examples and its standard deviation (``std``); with ``True``
        one row per example (``example``) instead.

        Example
        -------
        >>> rows = result.table()  # doctest: +SKIP
        >>> rows[0]  # doctest: +SKIP
        {'method': 'saliency', 'step': 0, 'randomized': 'original', 'metric': 'spearman_abs', 'value': 1.0, 'std': 0.0, 'n': 2}
        """
        rows: list[dict[str, Any]] = []
        n = self.scores.shape[2]
        for i, method in enumerate(self.methods):
            for s, step in enumerate(self.steps):
                for k, metric in enumerate(self.metrics):
                    values = self.scores[i, s, :, k]
                    base = {"method": method, "step": s, "randomized": step, "metric": metric}
                    if per_example:
                        rows.extend(
                            {**base, "example": e, "value": float(values[e])} for e in range(n)
                        )
                    else:
                        ok = values[~np.isnan(values)]
                        rows.append(
                            {
                                **base,
                                "value": float(ok.mean()) if ok.size else math.nan,
                                "std": float(ok.std()) if ok.size else math.nan,
                                "n": int(ok.size),
                            }
                        )
        return rows

    def to_pandas(self, per_example: bool = False) -> Any:
        """:meth:`table` as a ``pandas.DataFrame`` (needs pandas).

        Example
        -------
        >>> result.to_pandas().pivot_table("value", ["method", "step"], "metric")  # doctest: +SKIP
        """
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                "to_pandas needs pandas (pip install pandas); table() gives the same rows as dicts"
            ) from exc
        return pd.DataFrame(self.table(per_example=per_example))

    def verdicts(
        self, threshold: float = 0.5, metric: str = "spearman_abs"
    ) -> dict[str, dict[str, Any]]:
        """Same as :func:`verdicts` (``result.verdicts()`` = ``verdicts(result)``)."""
        return verdicts(self, threshold=threshold, metric=metric)

    def __str__(self) -> str:
        """Mean |map| rank correlation per step (rows) and method (columns), as plain text."""
        means = self.mean("spearman_abs")
        names = [s if len(s) <= 40 else s[:39] + "…" for s in self.steps]
        width = max(len(n) for n in names)
        cols = [max(8, min(len(label), 20)) for label in self.method_labels]
        lines = [
            f"mean {METRIC_LABELS['spearman_abs']} with the original map ({self.mode})",
            f"{'step':>4}  {'randomized':<{width}}"
            + "".join(
                f"  {label[:w]:>{w}}" for label, w in zip(self.method_labels, cols, strict=True)
            ),
        ]
        for k, name in enumerate(names):
            lines.append(
                f"{k:>4}  {name:<{width}}"
                + "".join(f"  {v:>{w}.3f}" for v, w in zip(means[:, k], cols, strict=True))
            )
        return "\n".join(lines)


def verdict_details(
    result: SanityResult, threshold: float = 0.5, metric: str = "spearman_abs"
) -> list[dict[str, Any]]:
    """:func:`verdicts` as a list with the measured value: ``[{method, passed, text, value}]``.

    Example
    -------
    >>> [v["value"] for v in verdict_details(result)]  # doctest: +SKIP
    [0.30, 0.61]
    """
    if not isinstance(result, SanityResult):
        raise TypeError(f"result: expected a SanityResult, got {type(result).__name__}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold: expected a number, got {type(threshold).__name__}")
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold: expected a similarity between -1 and 1, got {threshold!r}")
    means = result.mean(metric)
    n_steps = len(result.steps) - 1
    change = "as the model is randomized"
    if result.mode == "cascading":
        where = f"on average over {n_steps} cascading steps, from the output block to all blocks"
        values = _nanmean(means[:, 1:], axis=1)
    elif result.mode == "independent":
        where = f"on average over {n_steps} single-block re-initialisations"
        values = _nanmean(means[:, 1:], axis=1)
    else:
        change = "when the model learns permuted labels"
        where = "for the model trained on permuted labels"
        values = means[:, -1]
    out = []
    for method, label, value in zip(result.methods, result.method_labels, values, strict=True):
        value = float(value)
        name = METRIC_LABELS[metric]
        if math.isnan(value):
            passed = False
            text = f"{label}: {name} cannot be measured for these maps, so this check says nothing."
        elif value < threshold:
            passed = True
            text = (
                f"{label}: the map changes {change} ({name} with the original "
                f"{value:.2f} {where}; passes below {threshold:g})."
            )
        else:
            passed = False
            text = (
                f"{label}: the map barely changes: it may not reflect the model ({name} with the "
                f"original still {value:.2f} {where}; passes below {threshold:g})."
            )
        out.append({"method": method, "passed": passed, "text": text, "value": value})
    return out


def verdicts(
    result: SanityResult, threshold: float = 0.5, metric: str = "spearman_abs"
) -> dict[str, dict[str, Any]]:
    """Pass/fail per method with a plain-language sentence, for the attribution views' badges.

    A method passes when its maps stop resembling the original ones: the
    ``metric`` (mean over examples) averaged over the randomization steps falls
    below ``threshold``, or, for the label check, its value for the model
    trained on permuted labels does. Averaging over the cascade asks that the
    map change as soon as the upper layers are random, not only once the first
    layer's edge detectors are gone (guided backprop fails for that reason in
    Adebayo et al.).

    Parameters
    ----------
    result
        From :func:`sanity_check` or :func:`label_randomization_check`.
    threshold
        Similarity below which a map counts as changed. Default 0.5.
    metric
        One of :data:`METRICS`. Default ``"spearman_abs"`` (the paper's main measure).

    Returns
    -------
    dict
        ``{method: {"passed": bool, "text": str}}``; the text names the value and the threshold.

    Example
    -------
    >>> verdicts(result)["saliency"]["passed"]  # doctest: +SKIP
    True
    """
    return {
        v["method"]: {"passed": v["passed"], "text": v["text"]}
        for v in verdict_details(result, threshold, metric)
    }


# --- running the methods -------------------------------------------------------------------
@dataclass
class _Run:
    maps: np.ndarray
    target: list[int] | None
    layer: str | None
    signed: bool


def _kind(inputs: Any) -> tuple[str, Tensor]:
    if isinstance(inputs, np.ndarray):
        inputs = torch.from_numpy(inputs)
    if not isinstance(inputs, Tensor):
        raise TypeError(
            f"inputs: expected a tensor of images (N, C, H, W), token ids (N, T) or other float "
            f"inputs (N, ...), got {type(inputs).__name__}"
        )
    if inputs.ndim < 2 or inputs.shape[0] == 0:
        raise ValueError(
            f"inputs: expected a non-empty batch (N, ...), got shape {tuple(inputs.shape)}; add a "
            "batch dimension with inputs.unsqueeze(0)"
        )
    if inputs.dtype == torch.bool:
        raise TypeError("inputs: expected float inputs or integer token ids, got a bool tensor")
    if not inputs.is_floating_point():
        if inputs.ndim != 2:
            raise ValueError(f"inputs: token ids must have shape (N, T), got {tuple(inputs.shape)}")
        return "text", inputs
    return ("image" if inputs.ndim == 4 else "dense"), inputs


def _check_methods(methods: Any, kind: str) -> list[str]:
    known = TEXT_METHODS if kind == "text" else METHODS
    if methods is None:
        defaults = IMAGE_METHODS if kind == "image" else DENSE_METHODS
        return [m for m in defaults if m in known]
    if isinstance(methods, str):
        methods = [methods]
    if not isinstance(methods, Sequence) or not methods:
        raise ValueError("methods: expected a non-empty list of method names")
    out = []
    for m in methods:
        if not isinstance(m, str):
            raise TypeError(
                f"methods: expected method names (a Captum object is bound to the original model, "
                f"not to the randomized copies), got {type(m).__name__}"
            )
        key = m.lower().replace("-", "_").replace(" ", "_")
        if key not in known:
            what = "text methods" if kind == "text" else "methods"
            raise ValueError(f"methods: unknown {what} {m!r}; expected some of {', '.join(known)}")
        if key in out:
            raise ValueError(f"methods: {m!r} is listed twice")
        out.append(key)
    return out


def _label(method: str, kind: str) -> str:
    return str(TEXT_METHODS[method]["label"]) if kind == "text" else METHODS[method].label


def _check_options(method_options: Any, methods: list[str]) -> dict[str, dict[str, Any]]:
    if method_options is None:
        return {}
    if not isinstance(method_options, Mapping):
        raise TypeError(
            f"method_options: expected a dict {{method: {{option: value}}}}, got "
            f"{type(method_options).__name__}"
        )
    for key, value in method_options.items():
        if key not in methods:
            raise ValueError(
                f"method_options: {key!r} is not one of the methods checked ({', '.join(methods)})"
            )
        if not isinstance(value, Mapping):
            raise TypeError(f"method_options[{key!r}]: expected a dict of options")
    return {k: dict(v) for k, v in method_options.items()}


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Runs the block with the global RNG seeded, then puts the caller's RNG state back."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _run(
    model: nn.Module,
    inputs: Tensor,
    method: str,
    kind: str,
    target: Any,
    options: dict[str, Any],
    seed: int,
) -> _Run:
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with _seeded(seed, device):
        if kind == "text":
            t = attribute_text(model, inputs, method, target=target, progress=False, **options)
            return _Run(t.scores.detach().cpu().numpy(), t.target, t.layer, t.signed)
        r = attribute(model, inputs, method, target=target, progress=False, **options)
    maps = r.heatmap("sum")
    if maps.ndim > 3:
        maps = maps.reshape(maps.shape[0], -1)
    return _Run(maps.astype(np.float32), r.target, r.layer, r.signed)


def _compare(original: np.ndarray, maps: np.ndarray) -> np.ndarray:
    out = np.empty((original.shape[0], len(METRICS)))
    for e in range(original.shape[0]):
        sims = map_similarity(original[e], maps[e])
        out[e] = [sims[m] for m in METRICS]
    return out


def _reporter(progress: Any, desc: str) -> tuple[Progress, Callable[[], None]]:
    if callable(progress):
        return progress, lambda: None
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(
            f"progress: expected None, True, False or a callable(message, fraction), got "
            f"{type(progress).__name__}"
        )
    if progress is False:
        return (lambda message, fraction: None), lambda: None
    from tqdm.auto import tqdm

    bar = tqdm(total=100, desc=desc, delay=0 if progress else 2.0, leave=False)

    def report(message: str, fraction: float | None) -> None:
        bar.set_description(message or desc, refresh=False)
        if fraction is not None:
            bar.n = round(100 * fraction)
        bar.refresh()

    return report, bar.close


# --- blocks --------------------------------------------------------------------------------
def _own_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def _record_order(session: ModelSession, model: nn.Module) -> dict[int, int]:
    """Order in which modules first run; filled by pre-hooks during the first attribution."""
    order: dict[int, int] = {}

    def seen(module: nn.Module, args: Any) -> None:
        order.setdefault(id(module), len(order))

    for module in model.modules():
        session.forward_pre_hook(module, seen)
    return order


def _default_blocks(model: nn.Module, order: dict[int, int]) -> list[list[str]]:
    """Modules with parameters of their own, in the order they run; a norm joins the layer before it."""
    found = [
        (order[id(m)], name, m)
        for name, m in model.named_modules()
        if _own_parameters(m) and id(m) in order
    ]
    blocks: list[list[str]] = []
    for _, name, module in sorted(found, key=lambda item: item[0]):
        if isinstance(module, _NORMS) and blocks:
            blocks[-1].append(name)
        else:
            blocks.append([name])
    return blocks


def _resolve_blocks(model: nn.Module, blocks: Any) -> list[list[str]]:
    if isinstance(blocks, (str, nn.Module)) or not isinstance(blocks, Sequence) or not blocks:
        raise TypeError(
            "blocks: expected a non-empty list of module names or modules (or lists of them, one "
            "list per block)"
        )
    out = []
    for block in blocks:
        members = [block] if isinstance(block, (str, nn.Module)) else block
        if not isinstance(members, Sequence) or not members:
            raise TypeError(f"blocks: expected a module, its name or a list of them, got {block!r}")
        names = []
        for member in members:
            try:
                name, module = resolve_layer(model, member)
            except (ValueError, TypeError, AttributeError) as exc:
                raise ValueError(f"blocks: {exc}") from exc
            if not any(True for _ in module.parameters()):
                raise ValueError(f"blocks: module {name!r} has no parameters to re-initialise")
            names.append(name)
        out.append(names)
    return out


def _reinitialise(model: nn.Module, names: list[str]) -> None:
    """Draws new weights for the named modules: their own ``reset_parameters()``, else a normal
    distribution with each parameter's mean and standard deviation (same scale, no structure)."""
    done: set[int] = set()
    with torch.no_grad():
        for name in names:
            for module in model.get_submodule(name).modules():
                if id(module) in done or not _own_parameters(module):
                    continue
                done.add(id(module))
                reset = getattr(module, "reset_parameters", None)
                if callable(reset):
                    reset()
                    continue
                for p in module.parameters(recurse=False):
                    flat = p.detach().float()
                    std = float(flat.std()) if p.numel() > 1 else float(flat.abs().mean())
                    p.normal_(float(flat.mean()) if p.numel() > 1 else 0.0, std or 1.0)


# --- the checks ----------------------------------------------------------------------------
def sanity_check(
    model: nn.Module,
    inputs: Any,
    methods: Sequence[str] | str | None = None,
    *,
    mode: str = "cascading",
    target: Any = None,
    seed: int = 0,
    blocks: Sequence[Any] | None = None,
    method_options: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool | Progress | None = None,
    **options: Any,
) -> SanityResult:
    """Model-randomization test: do the maps change when the model's weights are destroyed?

    The model is deep-copied once (it never changes: its weights, mode and
    hooks stay as they were; the copy keeps its hooks and, with a snapshot of
    its trained weights, costs two more sets of weights). Blocks
    are re-initialised on the copy from the output side: cumulatively
    (``"cascading"``: step k has the k blocks nearest the output random) or
    one at a time (``"independent"``: step k has only block k random). Each
    method is recomputed at every step for the same target classes and with
    the same random draws (SmoothGrad noise...), so only the weights differ.

    Parameters
    ----------
    model
        A ``torch.nn.Module``: an image classifier, or a text classifier
        reading token ids (methods then run through :func:`attribute_text`).
    inputs
        Images (N, C, H, W), other float inputs (N, ...), or token ids (N, T).
    methods
        Method names (:func:`available_methods`, or ``TEXT_METHODS`` for token
        ids). Default: saliency, integrated gradients, guided backprop,
        Grad-CAM and guided Grad-CAM for images; saliency, input × gradient and
        integrated gradients otherwise.
    mode
        ``"cascading"`` (default) or ``"independent"``.
    target
        What to explain (as in :func:`attribute`); default the original
        model's predicted class, kept for every step.
    seed
        Seeds the new weights and the methods' random draws; the caller's RNG state is kept.
    blocks
        What one step re-initialises: module names or modules (or lists of
        them), in any order: they are ordered by when they run. Default: every
        module with parameters of its own that runs in the forward pass, a
        normalization layer joined to the layer before it.
    method_options
        Options per method, e.g. ``{"integrated_gradients": {"n_steps": 32}}``.
    progress
        None: a bar appears after 2 s; True/False: always/never; or a
        callable ``(message, fraction)``.
    **options
        Keyword arguments of :func:`attribute` / :func:`attribute_text` given
        to every method (``attention_mask=``, ``baselines=``, ``memory_budget=``...).

    Returns
    -------
    SanityResult
        Scores per method, step, example and metric, with the maps.

    Example
    -------
    >>> from deepvis_widgets.examples.digits import digits_cnn, digits_data
    >>> result = sanity_check(digits_cnn(), digits_data().x_test[:4], ["saliency", "guided_backprop"])  # doctest: +SKIP
    >>> print(result)  # doctest: +SKIP
    >>> verdicts(result)["saliency"]["passed"]  # doctest: +SKIP
    True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if mode not in _MODES:
        raise ValueError(f"mode: expected 'cascading' or 'independent', got {mode!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    kind, inputs = _kind(inputs)
    method_list = _check_methods(methods, kind)
    per_method = _check_options(method_options, method_list)
    chosen = _resolve_blocks(model, blocks) if blocks is not None else None
    report, close = _reporter(progress, "sanity check")
    try:
        try:
            work = copy.deepcopy(model)
        except Exception as exc:
            raise TypeError(
                f"model: could not be deep-copied ({type(exc).__name__}: {exc}); the check "
                "randomizes a copy so that your model never changes"
            ) from exc
        work.eval()
        # The original maps; the first one also records the order in which modules run.
        originals: list[_Run] = []
        session = ModelSession(work)
        order = _record_order(session, work)
        # Runs in all: one per method and step; the block count is a guess until the modules ran.
        guess = len(chosen) if chosen is not None else sum(map(_own_parameters, work.modules()))
        try:
            for i, method in enumerate(method_list):
                report(f"original maps: {method}", i / (len(method_list) * (guess + 1)))
                method_opts = {**options, **per_method.get(method, {})}
                originals.append(_run(work, inputs, method, kind, target, method_opts, seed))
        finally:
            session.close()
        if chosen is None:
            chosen = _default_blocks(work, order)
            if not chosen:
                raise ValueError(
                    "model: has no parameters that run in the forward pass to randomize"
                )
        else:
            missing = [n for b in chosen for n in b if id(work.get_submodule(n)) not in order]
            if missing:
                raise ValueError(
                    f"blocks: {', '.join(missing)} never ran in the forward pass of the model"
                )
            chosen.sort(key=lambda b: min(order[id(work.get_submodule(n))] for n in b))
        from_output = chosen[::-1]
        pristine = {k: v.detach().clone() for k, v in work.state_dict().items()}

        steps = ["original"] + [" + ".join(b) for b in from_output]
        randomized: list[list[str]] = [[]]
        n_runs = len(method_list) * (len(from_output) + 1)
        step_maps: list[list[np.ndarray]] = [[r.maps] for r in originals]
        for k, block in enumerate(from_output, start=1):
            if mode == "independent":
                work.load_state_dict(pristine)
                randomized.append(list(block))
            else:
                randomized.append(randomized[-1] + list(block))
            with _seeded(seed * 1_000_003 + k, _device_of(pristine)):
                _reinitialise(work, block)
            for i, (method, original) in enumerate(zip(method_list, originals, strict=True)):
                done = k * len(method_list) + i
                report(f"{steps[k]} re-initialised: {method}", done / n_runs)
                step_options = {**options, **per_method.get(method, {})}
                if original.layer is not None and kind != "text" and METHODS[method].uses_layer:
                    step_options.setdefault("layer", original.layer)
                run = _run(work, inputs, method, kind, _fixed(original, target), step_options, seed)
                step_maps[i].append(run.maps)
        report("comparing maps", 1.0)
    finally:
        close()
    return _assemble(method_list, originals, step_maps, kind, mode, steps, randomized, inputs, seed)


def _device_of(state: Mapping[str, Tensor]) -> torch.device:
    """Device of a state dict's first tensor (CPU when empty)."""
    return next((v.device for v in state.values()), torch.device("cpu"))


def _fixed(original: _Run, target: Any) -> Any:
    """The original run's classes (so randomized models explain the same class), else the callable."""
    return original.target if original.target is not None else target


def _assemble(
    methods: list[str],
    originals: list[_Run],
    step_maps: list[list[np.ndarray]],
    kind: str,
    mode: str,
    steps: list[str],
    randomized: list[list[str]],
    inputs: Tensor,
    seed: int,
) -> SanityResult:
    maps = np.stack([np.stack(per_step) for per_step in step_maps]).astype(np.float32)
    scores = np.stack(
        [np.stack([_compare(m[0], s) for s in m]) for m in (maps[i] for i in range(len(methods)))]
    )
    return SanityResult(
        methods=methods,
        method_labels=[_label(m, kind) for m in methods],
        signed=[r.signed for r in originals],
        mode=mode,
        steps=steps,
        randomized=randomized,
        maps=maps,
        scores=scores,
        target=originals[0].target,
        kind=kind,
        inputs=inputs.detach().cpu().numpy(),
        seed=seed,
    )


def label_randomization_check(
    model_true: nn.Module,
    model_random_labels: nn.Module,
    inputs: Any,
    methods: Sequence[str] | str | None = None,
    *,
    target: Any = None,
    seed: int = 0,
    method_options: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool | Progress | None = None,
    **options: Any,
) -> SanityResult:
    """Data-randomization test: do the maps differ between a model trained on true labels and
    the same architecture trained on randomly permuted labels?

    Both models explain the same classes (``model_true``'s predictions by
    default) with the same random draws; neither model changes.

    Parameters
    ----------
    model_true, model_random_labels
        The two trained models (e.g. ``digits_cnn()`` and ``digits_cnn(permuted_labels=True)``).
    inputs, methods, target, seed, method_options, progress, **options
        As in :func:`sanity_check`.

    Returns
    -------
    SanityResult
        Two steps, ``"original"`` (``model_true``) and ``"permuted labels"``; ``mode="labels"``.

    Example
    -------
    >>> from deepvis_widgets.examples.digits import digits_cnn, digits_data
    >>> result = label_randomization_check(digits_cnn(), digits_cnn(permuted_labels=True),
    ...                                    digits_data().x_test[:4], ["saliency"])  # doctest: +SKIP
    >>> result.mean()[0, 1]  # doctest: +SKIP
    """
    for name, value in (("model_true", model_true), ("model_random_labels", model_random_labels)):
        if not isinstance(value, nn.Module):
            raise TypeError(f"{name}: expected a torch.nn.Module, got {type(value).__name__}")
    if model_random_labels is model_true:
        raise ValueError(
            "model_random_labels: is the same object as model_true; pass the model trained on "
            "permuted labels"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    kind, inputs = _kind(inputs)
    method_list = _check_methods(methods, kind)
    per_method = _check_options(method_options, method_list)
    report, close = _reporter(progress, "label randomization check")
    originals: list[_Run] = []
    step_maps: list[list[np.ndarray]] = []
    try:
        for i, method in enumerate(method_list):
            method_opts = {**options, **per_method.get(method, {})}
            report(f"true labels: {method}", i / len(method_list))
            original = _run(model_true, inputs, method, kind, target, method_opts, seed)
            if original.layer is not None and kind != "text" and METHODS[method].uses_layer:
                with contextlib.suppress(AttributeError):
                    model_random_labels.get_submodule(original.layer)
                    method_opts.setdefault("layer", original.layer)
            report(f"permuted labels: {method}", (i + 0.5) / len(method_list))
            other = _run(
                model_random_labels,
                inputs,
                method,
                kind,
                _fixed(original, target),
                method_opts,
                seed,
            )
            if other.maps.shape != original.maps.shape:
                raise ValueError(
                    f"model_random_labels: its {method} maps have shape {other.maps.shape[1:]}, "
                    f"model_true's {original.maps.shape[1:]}; expected the same architecture"
                )
            originals.append(original)
            step_maps.append([original.maps, other.maps])
        report("comparing maps", 1.0)
    finally:
        close()
    return _assemble(
        method_list,
        originals,
        step_maps,
        kind,
        "labels",
        ["original", "permuted labels"],
        [[], ["(the model trained on permuted labels)"]],
        inputs,
        seed,
    )
