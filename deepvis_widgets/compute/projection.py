"""2-D projections of representations and a smoothed error-rate surface under them.

:func:`project` maps ``(n, features)`` activations to ``(n, 2)`` with PCA
(numpy SVD, deterministic signs), UMAP (``umap-learn``, optional) or t-SNE
(scikit-learn). :func:`error_rate_surface` estimates, on a grid over the
projection, the local error rate by Nadaraya-Watson kernel smoothing: the
Gaussian-weighted fraction of nearby examples that the model gets wrong.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["ErrorSurface", "Projection", "error_rate_surface", "project", "umap_available"]

Method = Literal["pca", "umap", "tsne"]


@dataclass(frozen=True)
class Projection:
    """A 2-D projection.

    Attributes
    ----------
    coords
        ``(n, 2)`` float32.
    method
        The method actually used (``'pca'`` when UMAP was asked for but is missing).
    explained
        PCA only: fraction of the variance each of the two axes explains.
    note
        Human-readable remark (e.g. why the method fell back), or ``''``.
    """

    coords: np.ndarray
    method: str
    explained: tuple[float, float] | None = None
    note: str = ""

    @property
    def axis_labels(self) -> tuple[str, str]:
        """Axis titles, with the explained variance for PCA."""
        if self.method == "pca" and self.explained is not None:
            return (f"PC1 ({self.explained[0]:.0%} of variance)", f"PC2 ({self.explained[1]:.0%} of variance)")
        name = {"umap": "UMAP", "tsne": "t-SNE"}.get(self.method, self.method)
        return (f"{name} 1", f"{name} 2")


def umap_available() -> bool:
    """Whether ``umap-learn`` is installed (``method='umap'`` falls back to PCA without it).

    Example
    -------
    >>> isinstance(umap_available(), bool)
    True
    """
    return importlib.util.find_spec("umap") is not None


def _features(x: Any, name: str = "features") -> np.ndarray:
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().float().numpy()
    arr = np.asarray(x)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array (examples, features), got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(f"{name}: expected shape (examples, features...), got {arr.shape}")
    arr = arr.reshape(arr.shape[0], -1).astype(np.float64, copy=False)
    if arr.shape[0] < 3:
        raise ValueError(f"{name}: expected at least 3 examples to project, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        bad = int((~np.isfinite(arr)).any(1).sum())
        raise ValueError(f"{name}: {bad} example(s) contain NaN or infinity")
    return arr


def _pca(x: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    x = x - x.mean(0, keepdims=True)
    if x.shape[1] == 1:
        x = np.hstack([x, np.zeros_like(x)])
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    # Deterministic signs: the largest loading of each axis is positive.
    signs = np.sign(vt[np.arange(2), np.abs(vt[:2]).argmax(1)])
    signs[signs == 0] = 1
    coords = u[:, :2] * s[:2] * signs
    var = s**2
    total = var.sum()
    explained = (float(var[0] / total), float(var[1] / total)) if total > 0 else (0.0, 0.0)
    return coords, explained


def project(features: Any, method: Method = "pca", *, seed: int = 0, **options: Any) -> Projection:
    """Projects ``(n, features)`` activations to 2-D.

    Parameters
    ----------
    features
        ``(n, ...)`` numpy array or torch tensor; flattened per example.
    method
        ``'pca'`` (exact, deterministic), ``'umap'`` (needs ``umap-learn``;
        without it PCA is used and a warning says so) or ``'tsne'``
        (scikit-learn; seconds for a few thousand points).
    seed
        Random seed for UMAP and t-SNE.
    **options
        Passed to ``umap.UMAP`` or ``sklearn.manifold.TSNE``.

    Returns
    -------
    Projection

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> p = project(rng.normal(size=(100, 5)) * [5, 2, 1, 1, 1])
    >>> p.coords.shape, p.method, p.explained[0] > p.explained[1]
    ((100, 2), 'pca', True)
    """
    x = _features(features)
    if method not in ("pca", "umap", "tsne"):
        raise ValueError(f"method: expected 'pca', 'umap' or 'tsne', got {method!r}")
    if options and method == "pca":
        raise TypeError(f"options {sorted(options)} only apply to method='umap' or 'tsne'")
    if method == "umap":
        if not umap_available():
            note = "UMAP is not installed (pip install umap-learn): showing PCA instead."
            warnings.warn(note, UserWarning, stacklevel=2)
            coords, explained = _pca(x)
            return Projection(coords.astype(np.float32), "pca", explained, note)
        import umap

        reducer = umap.UMAP(n_components=2, random_state=seed, **options)
        with warnings.catch_warnings():
            # a seed makes UMAP single-threaded, which is what we want; its notice says so on every call
            warnings.filterwarnings("ignore", message="n_jobs value .* overridden", category=UserWarning)
            coords = reducer.fit_transform(x)
        return Projection(np.asarray(coords, dtype=np.float32), "umap")
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = options.pop("perplexity", min(30.0, (x.shape[0] - 1) / 3))
        tsne = TSNE(n_components=2, random_state=seed, init="pca", perplexity=perplexity, **options)
        return Projection(np.asarray(tsne.fit_transform(x), dtype=np.float32), "tsne")
    coords, explained = _pca(x)
    return Projection(coords.astype(np.float32), "pca", explained)


@dataclass(frozen=True)
class ErrorSurface:
    """Kernel-smoothed error rate on a regular grid over a projection.

    Attributes
    ----------
    rate
        ``(grid, grid)`` float32: row ``i`` is ``y = y_range[0] + (i + 0.5) * dy``;
        NaN where no example is near (total kernel weight below ``min_weight``).
    x_range, y_range
        The area the grid covers.
    bandwidth
        Gaussian kernel width in projection units.
    """

    rate: np.ndarray
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    bandwidth: float


def error_rate_surface(
    coords: Any,
    errors: Any,
    *,
    grid: int = 64,
    bandwidth: float | None = None,
    min_weight: float = 0.5,
    margin: float = 0.05,
) -> ErrorSurface:
    """Nadaraya-Watson estimate of the error rate over a 2-D projection.

    ``rate(p) = sum_i K(p - x_i) e_i / sum_i K(p - x_i)`` with a Gaussian
    ``K``; cells whose total weight is below ``min_weight`` (no example
    within about a bandwidth) are NaN, so empty space is not painted.

    Parameters
    ----------
    coords
        ``(n, 2)`` projected points.
    errors
        ``(n,)`` 0/1 (or booleans, or per-example error probabilities in [0, 1]).
    grid
        Cells per side (8 to 512).
    bandwidth
        Kernel width; default Scott's rule on the mean standard deviation of the two axes.
    min_weight
        Minimum total kernel weight for a cell to get a value.
    margin
        Fraction of the data's extent added around it.

    Returns
    -------
    ErrorSurface

    Example
    -------
    >>> xy = np.array([[0.0, 0], [0.1, 0], [5, 5], [5.1, 5]])
    >>> s = error_rate_surface(xy, [0, 0, 1, 1], grid=16, bandwidth=0.5)
    >>> float(np.nanmin(s.rate)) < 0.01, float(np.nanmax(s.rate)) > 0.99
    (True, True)
    """
    xy = np.asarray(coords, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"coords: expected shape (n, 2), got {xy.shape}")
    e = np.asarray(errors, dtype=np.float64).reshape(-1)
    if e.shape[0] != xy.shape[0]:
        raise ValueError(f"errors: expected {xy.shape[0]} values (one per point), got {e.shape[0]}")
    if not np.all(np.isfinite(e)) or e.min(initial=0) < 0 or e.max(initial=0) > 1:
        raise ValueError("errors: expected values in [0, 1] (1 = wrong), without NaN")
    if not 8 <= grid <= 512:
        raise ValueError(f"grid: expected 8 to 512 cells per side, got {grid}")
    lo = xy.min(0)
    hi = xy.max(0)
    span = np.maximum(hi - lo, 1e-9)
    lo = lo - margin * span
    hi = hi + margin * span
    if bandwidth is None:
        sd = float(xy.std(0).mean()) or 1.0
        bandwidth = sd * xy.shape[0] ** (-1.0 / 6.0)  # Scott's rule in 2-D
    if not bandwidth > 0:
        raise ValueError(f"bandwidth: expected a positive width or None, got {bandwidth!r}")
    gx = lo[0] + (np.arange(grid) + 0.5) * (hi[0] - lo[0]) / grid
    gy = lo[1] + (np.arange(grid) + 0.5) * (hi[1] - lo[1]) / grid
    # Separable Gaussian: weights (grid, n) per axis, then a product summed over n.
    wx = np.exp(-0.5 * ((gx[:, None] - xy[None, :, 0]) / bandwidth) ** 2)
    wy = np.exp(-0.5 * ((gy[:, None] - xy[None, :, 1]) / bandwidth) ** 2)
    weight = wy @ wx.T
    hits = (wy * e[None, :]) @ wx.T
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(weight >= min_weight, hits / weight, np.nan)
    return ErrorSurface(rate.astype(np.float32), (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1])), float(bandwidth))
