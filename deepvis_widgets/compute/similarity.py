"""Representation similarity: CKA (linear and RBF, biased and unbiased) and SVCCA.

Both compare two sets of activations recorded on the SAME ``n`` examples,
``a`` of shape ``(n, p)`` and ``b`` of shape ``(n, q)`` (higher-rank
activations are flattened per example). They answer "do these two layers
(or models, or checkpoints) represent the examples alike?", independently of
a rotation or rescaling of either representation.

- CKA (Kornblith et al., 2019, "Similarity of Neural Network Representations
  Revisited"): ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with ``K``, ``L``
  Gram matrices of ``a`` and ``b``. Linear CKA is computed in feature space
  (``||b^T a||_F^2`` after centring), so 10,000 x 1,024 activations cost three
  ``p x q`` products and no ``n x n`` matrix. The unbiased HSIC estimator
  (Song et al., 2012) is available for both kernels.
- SVCCA (Raghu et al., 2017): keep the top singular directions of each
  representation (99% of the variance by default), then the mean canonical
  correlation between the two reduced representations.

Nothing here touches a model except :func:`capture_activations`, which runs
inside :func:`~deepvis_widgets.compute._hooks.preserved_model`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = [
    "SVCCAResult",
    "capture_activations",
    "cka",
    "similarity_matrix",
    "svcca",
]

Kernel = Literal["linear", "rbf"]
#: Above this many examples the n x n Gram matrices of RBF CKA get too big (800 MB at 10k).
MAX_RBF_EXAMPLES = 6000


def _as_2d(x: Any, name: str) -> np.ndarray:
    """(n, ...) activations as a finite float64 (n, features) array."""
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().float().numpy()
    arr = np.asarray(x)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array of activations, got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(f"{name}: expected activations of shape (examples, features...), got shape {arr.shape}")
    arr = arr.reshape(arr.shape[0], -1)
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise ValueError(f"{name}: expected at least 2 examples and 1 feature, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinity")
    return arr


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    x = _as_2d(a, "a")
    y = _as_2d(b, "b")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"b: expected activations of the same {x.shape[0]} examples as a, got {y.shape[0]} "
            "(both must be recorded on the same inputs, in the same order)"
        )
    return x, y


def _work_dtype(x: np.ndarray, y: np.ndarray) -> type:
    # float64 unless that would make the products slow; CKA in float32 is good to ~1e-6.
    return np.float32 if x.size + y.size > 4_000_000 else np.float64


@dataclass
class _LinearPrep:
    """One representation's terms of linear CKA, reused across every pair it is in."""

    x: np.ndarray  # centred (biased) or raw (unbiased) activations
    self_hsic: float
    diag: np.ndarray | None = None  # unbiased only: row norms squared, and K~ 1
    k1: np.ndarray | None = None


def _linear_prep(x: np.ndarray, unbiased: bool, dt: type) -> _LinearPrep:
    x = np.asarray(x, dtype=dt)
    if not unbiased:
        x = x - x.mean(0, keepdims=True)
        return _LinearPrep(x, float(np.square(x.T @ x, dtype=np.float64).sum()))
    n = x.shape[0]
    if n < 4:
        raise ValueError(f"a: the unbiased estimator needs at least 4 examples, got {n}")
    # Unbiased HSIC (Song et al. 2012) for K = x x^T with a zeroed diagonal,
    # written in feature space: no n x n matrix is formed.
    d = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    k1 = x.astype(np.float64) @ x.sum(0, dtype=np.float64) - d  # K~ 1
    prep = _LinearPrep(x, 0.0, d, k1)
    prep.self_hsic = _unbiased_hsic(float(np.square(x.T @ x, dtype=np.float64).sum()), prep, prep)
    return prep


def _unbiased_hsic(tr_kl: float, p: _LinearPrep, q: _LinearPrep) -> float:
    assert p.diag is not None and q.diag is not None and p.k1 is not None and q.k1 is not None
    n = p.x.shape[0]
    tr = tr_kl - float(p.diag @ q.diag)
    s = p.k1.sum() * q.k1.sum() / ((n - 1) * (n - 2))
    return float((tr + s - 2.0 / (n - 2) * float(p.k1 @ q.k1)) / (n * (n - 3)))


def _linear_cross(p: _LinearPrep, q: _LinearPrep, unbiased: bool) -> float:
    cross = float(np.square(q.x.T @ p.x, dtype=np.float64).sum())
    xy = _unbiased_hsic(cross, p, q) if unbiased else cross
    denom = np.sqrt(p.self_hsic * q.self_hsic) if p.self_hsic > 0 and q.self_hsic > 0 else 0.0
    return float(xy / denom) if denom > 0 else float("nan")


def _linear_cka(x: np.ndarray, y: np.ndarray, unbiased: bool) -> float:
    dt = _work_dtype(x, y)
    return _linear_cross(_linear_prep(x, unbiased, dt), _linear_prep(y, unbiased, dt), unbiased)


def _rbf_gram(x: np.ndarray, sigma: float | None) -> np.ndarray:
    sq = np.einsum("ij,ij->i", x, x)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    if sigma is None:
        # Median heuristic of Kornblith et al.: bandwidth = median distance.
        med = float(np.median(d2[np.triu_indices_from(d2, k=1)]))
        scale = 2.0 * med if med > 0 else 1.0
    else:
        scale = 2.0 * sigma * sigma
    return np.exp(-d2 / scale)


def _hsic_gram(k: np.ndarray, lm: np.ndarray, unbiased: bool) -> float:
    n = k.shape[0]
    if not unbiased:
        kc = k - k.mean(0, keepdims=True)
        kc = kc - kc.mean(1, keepdims=True)
        lc = lm - lm.mean(0, keepdims=True)
        lc = lc - lc.mean(1, keepdims=True)
        return float((kc * lc).sum())
    k = k.copy()
    lm = lm.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(lm, 0.0)
    k1 = k.sum(1)
    l1 = lm.sum(1)
    tr = float((k * lm).sum())
    return (tr + k1.sum() * l1.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(k1 @ l1)) / (n * (n - 3))


def cka(
    a: Any,
    b: Any,
    kernel: Kernel = "linear",
    unbiased: bool = False,
    *,
    sigma: float | None = None,
) -> float:
    """Centered kernel alignment between two representations of the same examples.

    Parameters
    ----------
    a, b
        Activations ``(n, ...)`` of the same ``n`` examples (numpy or torch);
        each is flattened to ``(n, features)``. Feature counts may differ.
    kernel
        ``'linear'`` (feature-space formula, fast for large ``n``) or ``'rbf'``
        (Gaussian kernel; builds ``n x n`` matrices, so ``n`` is limited to
        6,000).
    unbiased
        Use the unbiased HSIC estimator (Song et al., 2012), which removes the
        upward bias of CKA when ``n`` is small compared with the feature count.
    sigma
        RBF bandwidth; default the median pairwise distance of each representation.

    Returns
    -------
    float
        In [0, 1] for the biased estimator (1 = the same representation up to
        rotation and isotropic scaling); the unbiased one can dip below 0.
        NaN when a representation is constant.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(500, 32))
    >>> round(cka(x, 3.0 * x @ np.linalg.qr(rng.normal(size=(32, 32)))[0]), 6)
    1.0
    """
    x, y = _pair(a, b)
    if kernel == "linear":
        return _linear_cka(x, y, unbiased)
    if kernel != "rbf":
        raise ValueError(f"kernel: expected 'linear' or 'rbf', got {kernel!r}")
    n = x.shape[0]
    if n > MAX_RBF_EXAMPLES:
        raise ValueError(
            f"a: RBF CKA builds {n} x {n} Gram matrices; expected at most {MAX_RBF_EXAMPLES} examples "
            "(subsample them, or use kernel='linear')"
        )
    if unbiased and n < 4:
        raise ValueError(f"a: the unbiased estimator needs at least 4 examples, got {n}")
    if sigma is not None and not sigma > 0:
        raise ValueError(f"sigma: expected a positive bandwidth or None, got {sigma!r}")
    k = _rbf_gram(x, sigma)
    lm = _rbf_gram(y, sigma)
    xy = _hsic_gram(k, lm, unbiased)
    xx = _hsic_gram(k, k, unbiased)
    yy = _hsic_gram(lm, lm, unbiased)
    denom = np.sqrt(xx * yy) if xx > 0 and yy > 0 else 0.0
    return float(xy / denom) if denom > 0 else float("nan")


@dataclass(frozen=True)
class SVCCAResult:
    """What :func:`svcca` found.

    Attributes
    ----------
    similarity
        Mean canonical correlation (the SVCCA similarity), in [0, 1].
    correlations
        All canonical correlations, largest first (``min(ka, kb)`` of them).
    dims
        ``(ka, kb)``: singular directions kept from ``a`` and ``b``.
    """

    similarity: float
    correlations: np.ndarray
    dims: tuple[int, int]

    def __float__(self) -> float:
        return self.similarity


def _top_directions(x: np.ndarray, keep: float | int, name: str) -> np.ndarray:
    x = x - x.mean(0, keepdims=True)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    var = s**2
    total = var.sum()
    if total <= 0:
        raise ValueError(f"{name}: the activations are constant across examples")
    rank = int((s > s[0] * 1e-10).sum())
    if isinstance(keep, (int, np.integer)) and not isinstance(keep, bool):
        if keep < 1:
            raise ValueError(f"keep: expected a variance fraction in (0, 1] or a positive number of directions, got {keep!r}")
        k = min(int(keep), rank)
    else:
        if not 0 < float(keep) <= 1:
            raise ValueError(f"keep: expected a variance fraction in (0, 1] or a positive number of directions, got {keep!r}")
        k = int(np.searchsorted(np.cumsum(var) / total, float(keep) - 1e-12) + 1)
        k = min(k, rank)
    return u[:, :k] * s[:k]


def svcca(a: Any, b: Any, keep: float | int = 0.99) -> SVCCAResult:
    """SVCCA similarity of two representations of the same examples.

    Parameters
    ----------
    a, b
        Activations ``(n, ...)`` of the same ``n`` examples; flattened per example.
    keep
        Singular directions kept before CCA: a fraction of the variance (default
        0.99, a float) or a fixed number of directions (an int: ``1`` keeps one
        direction, ``1.0`` all the variance).

    Returns
    -------
    SVCCAResult
        ``similarity`` (mean canonical correlation), all ``correlations`` and
        the kept ``dims``; ``float(result)`` is the similarity.

    Notes
    -----
    Canonical correlations are inflated when ``n`` is not much larger than the
    kept dimensions (with ``n <= ka + kb`` they are all 1): use many more
    examples than directions.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(2000, 3))
    >>> a = np.hstack([z, rng.normal(size=(2000, 5))]) @ rng.normal(size=(8, 8))
    >>> b = np.hstack([z, rng.normal(size=(2000, 5))]) @ rng.normal(size=(8, 8))
    >>> res = svcca(a, b, keep=8)
    >>> bool(res.correlations[:3].min() > 0.99), bool(res.correlations[3:].max() < 0.2)
    (True, True)
    """
    x, y = _pair(a, b)
    ra = _top_directions(x, keep, "a")
    rb = _top_directions(y, keep, "b")
    qa, _ = np.linalg.qr(ra)
    qb, _ = np.linalg.qr(rb)
    rho = np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), 0.0, 1.0)
    return SVCCAResult(float(rho.mean()), rho, (ra.shape[1], rb.shape[1]))


def similarity_matrix(
    activations_a: Mapping[str, Any] | Sequence[Any],
    activations_b: Mapping[str, Any] | Sequence[Any] | None = None,
    *,
    method: Literal["cka", "svcca"] = "cka",
    kernel: Kernel = "linear",
    unbiased: bool = False,
    keep: float | int = 0.99,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, list[str], list[str]]:
    """Similarity of every layer of ``activations_a`` with every layer of ``activations_b``.

    Parameters
    ----------
    activations_a
        ``{layer name: (n, ...) activations}`` (or a sequence, named ``0, 1, ...``).
    activations_b
        The same for a second model or checkpoint, recorded on the same ``n``
        examples; ``None`` compares ``activations_a`` with itself (symmetric,
        computed once per pair).
    method
        ``'cka'`` or ``'svcca'``.
    kernel, unbiased
        Passed to :func:`cka`.
    keep
        Passed to :func:`svcca`.
    progress
        Optional ``callback(done, total)`` after each pair.

    Returns
    -------
    matrix : numpy.ndarray
        ``(len(a), len(b))`` float64.
    names_a, names_b : list of str

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 10))
    >>> m, names, _ = similarity_matrix({"x": x, "2x": 2 * x, "noise": rng.normal(size=(200, 10))})
    >>> names, round(float(m[0, 1]), 6), bool(m[0, 2] < 0.3)
    (['x', '2x', 'noise'], 1.0, True)
    """
    if method not in ("cka", "svcca"):
        raise ValueError(f"method: expected 'cka' or 'svcca', got {method!r}")
    names_a, list_a = _named(activations_a, "activations_a")
    same = activations_b is None
    names_b, list_b = (names_a, list_a) if activations_b is None else _named(activations_b, "activations_b")
    n = list_a[0].shape[0]
    for name, acts in zip(names_b, list_b, strict=True):
        if acts.shape[0] != n:
            raise ValueError(
                f"activations_b: layer {name!r} has {acts.shape[0]} examples, expected {n} like activations_a"
            )

    linear = method == "cka" and kernel == "linear"
    if linear:  # each layer's own terms once, not once per pair
        dt = np.float32 if max(x.size for x in list_a + list_b) > 2_000_000 else np.float64
        prep_a = [_linear_prep(x, unbiased, dt) for x in list_a]
        prep_b = prep_a if same else [_linear_prep(y, unbiased, dt) for y in list_b]

    def pair(i: int, j: int) -> float:
        if linear:
            return _linear_cross(prep_a[i], prep_b[j], unbiased)
        if method == "cka":
            return cka(list_a[i], list_b[j], kernel, unbiased)
        return svcca(list_a[i], list_b[j], keep).similarity

    out = np.full((len(list_a), len(list_b)), np.nan)
    total = len(list_a) * (len(list_a) + 1) // 2 if same else out.size
    done = 0
    for i in range(len(list_a)):
        for j in range(len(list_b)):
            if same and j < i:
                out[i, j] = out[j, i]
                continue
            out[i, j] = pair(i, j)
            done += 1
            if progress is not None:
                progress(done, total)
    return out, names_a, names_b


def _named(acts: Mapping[str, Any] | Sequence[Any], name: str) -> tuple[list[str], list[np.ndarray]]:
    if isinstance(acts, Mapping):
        items = [(str(k), v) for k, v in acts.items()]
    elif isinstance(acts, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(acts)]
    else:
        raise TypeError(f"{name}: expected a dict {{layer name: activations}} or a list of arrays, got {type(acts).__name__}")
    if not items:
        raise ValueError(f"{name}: expected at least one layer")
    names = [k for k, _ in items]
    arrays = [_as_2d(v, f"{name}[{k!r}]") for k, v in items]
    n = arrays[0].shape[0]
    for k, arr in zip(names, arrays, strict=True):
        if arr.shape[0] != n:
            raise ValueError(f"{name}: layer {k!r} has {arr.shape[0]} examples, expected {n} like layer {names[0]!r}")
    return names, arrays


def capture_activations(
    model: Any,
    inputs: Any,
    layers: Sequence[str] | None = None,
    *,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """Runs ``model`` on ``inputs`` and returns each named layer's output, flattened per example.

    The model is put in eval mode and given back unchanged (mode, hooks,
    gradients) by :func:`~deepvis_widgets.compute._hooks.preserved_model`.

    Parameters
    ----------
    model
        A ``torch.nn.Module`` called as ``model(batch)``.
    inputs
        A tensor whose first dimension is the example dimension.
    layers
        Names from ``model.named_modules()``; default every leaf module that
        has parameters (``''`` for a model that is itself one layer). A module returning a tuple (e.g. a GRU) contributes its
        first element.
    batch_size
        Examples per forward pass.

    Returns
    -------
    dict
        ``{layer name: float32 array (n, features)}`` in the order of ``layers``.

    Example
    -------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> acts = capture_activations(net, torch.randn(10, 4), ["0", "2"])
    >>> {k: v.shape for k, v in acts.items()}
    {'0': (10, 8), '2': (10, 2)}
    """
    import torch

    from ._hooks import preserved_model

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs: expected a torch.Tensor of examples, got {type(inputs).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    modules = dict(model.named_modules())
    if layers is None:
        layers = [n for n, m in modules.items() if not list(m.children()) and any(True for _ in m.parameters(recurse=False))]
    layers = list(layers)
    missing = [n for n in layers if n not in modules]
    if missing:
        raise ValueError(f"layers: {missing} are not modules of the model; some names it has: {list(modules)[1:12]}")
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in layers}

    def hook_for(name: str) -> Callable[..., None]:
        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            out = output[0] if isinstance(output, (tuple, list)) else output
            chunks[name].append(out.detach().float().reshape(out.shape[0], -1).cpu().numpy())

        return hook

    with preserved_model(model) as session, torch.no_grad():
        for n in layers:
            session.forward_hook(modules[n], hook_for(n))
        for batch in inputs.split(batch_size):
            model(batch)
    return {n: np.concatenate(chunks[n]) for n in layers}
