"""CKA and SVCCA against known answers, activation capture, and the SimilarityMatrix widget."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepvis_widgets.compute.similarity import capture_activations, cka, similarity_matrix, svcca


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def _direct_hsic(k: np.ndarray, lm: np.ndarray) -> float:
    """HSIC by the textbook formula tr(K H L H) with H the centring matrix."""
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ lm @ h))


def _direct_unbiased_hsic(k: np.ndarray, lm: np.ndarray) -> float:
    """Song et al. (2012), eq. 5, written with explicit n x n matrices."""
    n = k.shape[0]
    k = k - np.diag(np.diag(k))
    lm = lm - np.diag(np.diag(lm))
    one = np.ones(n)
    return float(
        (np.trace(k @ lm) + (one @ k @ one) * (one @ lm @ one) / ((n - 1) * (n - 2)) - 2 / (n - 2) * (one @ k @ lm @ one))
        / (n * (n - 3))
    )


def _direct_cka(x: np.ndarray, y: np.ndarray, hsic=_direct_hsic) -> float:
    k, lm = x @ x.T, y @ y.T
    return hsic(k, lm) / np.sqrt(hsic(k, k) * hsic(lm, lm))


# --- CKA -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_cka_equals_the_direct_formula_on_random_data(seed: int) -> None:
    rng = _rng(seed)
    x = rng.normal(size=(60, 7))
    y = x @ rng.normal(size=(7, 5)) + rng.normal(size=(60, 5))  # related, not identical
    expected = _direct_cka(x, y)
    assert 0.2 < expected < 0.99
    assert cka(x, y) == pytest.approx(expected, rel=1e-10)


def test_unbiased_linear_cka_equals_the_direct_formula() -> None:
    rng = _rng(3)
    x = rng.normal(size=(40, 30))
    y = np.tanh(x[:, :12]) + 0.5 * rng.normal(size=(40, 12))
    expected = _direct_cka(x, y, _direct_unbiased_hsic)
    assert cka(x, y, unbiased=True) == pytest.approx(expected, rel=1e-9)
    # The biased estimator overstates similarity of unrelated data when n is small; the unbiased one does not.
    noise_a, noise_b = rng.normal(size=(40, 30)), rng.normal(size=(40, 30))
    assert cka(noise_a, noise_b) > 0.4
    assert abs(cka(noise_a, noise_b, unbiased=True)) < 0.1


def test_rbf_cka_equals_the_direct_formula() -> None:
    rng = _rng(4)
    x = rng.normal(size=(50, 6))
    y = np.sin(x @ rng.normal(size=(6, 4)))

    def gram(a: np.ndarray) -> np.ndarray:
        d2 = ((a[:, None, :] - a[None, :, :]) ** 2).sum(-1)
        med = np.median(d2[np.triu_indices(len(a), 1)])
        return np.exp(-d2 / (2 * med))

    k, lm = gram(x), gram(y)
    expected = _direct_hsic(k, lm) / np.sqrt(_direct_hsic(k, k) * _direct_hsic(lm, lm))
    assert cka(x, y, kernel="rbf") == pytest.approx(expected, rel=1e-9)
    assert cka(x, y, kernel="rbf", unbiased=True) == pytest.approx(
        _direct_unbiased_hsic(k, lm) / np.sqrt(_direct_unbiased_hsic(k, k) * _direct_unbiased_hsic(lm, lm)), rel=1e-9
    )


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("unbiased", [False, True])
def test_cka_of_x_with_itself_is_one_and_invariant_to_rotation_and_scale(kernel: str, unbiased: bool) -> None:
    rng = _rng(5)
    x = rng.normal(size=(120, 16)) @ rng.normal(size=(16, 16))
    y = np.maximum(x @ rng.normal(size=(16, 10)), 0)
    assert cka(x, x, kernel, unbiased) == pytest.approx(1.0, abs=1e-9)
    base = cka(x, y, kernel, unbiased)
    assert base < 0.95
    q = _orthogonal(16, rng)
    assert cka(x @ q, y, kernel, unbiased) == pytest.approx(base, rel=1e-8), "orthogonal transform"
    assert cka(7.5 * x, 0.01 * y, kernel, unbiased) == pytest.approx(base, rel=1e-8), "isotropic scaling"
    assert cka(x + 3.0, y - 1.0, kernel, unbiased) == pytest.approx(base, rel=1e-8), "translation"
    # Not invariant to an anisotropic scaling (it is not CCA): the test can fail.
    stretched = x * np.r_[np.full(8, 10.0), np.full(8, 0.1)]
    assert abs(cka(stretched, y, kernel, unbiased) - base) > 1e-3


def test_linear_cka_accepts_torch_higher_rank_and_float32_at_scale() -> None:
    rng = _rng(6)
    x = torch.from_numpy(rng.normal(size=(30, 2, 3, 3)).astype(np.float32))
    assert cka(x, x.flatten(1) * 2) == pytest.approx(1.0, abs=1e-6)
    # Big enough to take the float32 path: still matches float64 to ~1e-6.
    a = rng.normal(size=(3000, 800)).astype(np.float32)
    b = a[:, :400] + rng.normal(size=(3000, 400)).astype(np.float32)
    exact = _linear_cka_float64(a, b)
    assert cka(a, b) == pytest.approx(exact, rel=1e-5)


def _linear_cka_float64(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64) - a.mean(0)
    b = b.astype(np.float64) - b.mean(0)
    return float(np.linalg.norm(b.T @ a) ** 2 / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)))


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: cka(np.zeros((5, 2)), np.zeros((6, 2))), ValueError, "b: expected activations of the same 5 examples as a, got 6"),
        (lambda: cka(np.zeros(5), np.zeros(5)), ValueError, r"a: expected activations of shape \(examples, features...\)"),
        (lambda: cka(np.array([[1.0, np.nan], [0, 1]]), np.eye(2)), ValueError, "a: contains NaN"),
        (lambda: cka(np.eye(3), np.eye(3), kernel="poly"), ValueError, "kernel: expected 'linear' or 'rbf', got 'poly'"),
        (lambda: cka(np.eye(3), np.eye(3), unbiased=True), ValueError, "needs at least 4 examples"),
        (lambda: cka(np.zeros((7000, 2)), np.zeros((7000, 2)), kernel="rbf"), ValueError, "expected at most 6000 examples"),
        (lambda: cka(np.array([["a"]]), np.eye(1)), TypeError, "a: expected a numeric array"),
    ],
)
def test_cka_errors_name_the_argument(call, exc, match) -> None:
    with pytest.raises(exc, match=match):
        call()


def test_constant_representation_gives_nan_not_a_crash() -> None:
    assert np.isnan(cka(np.ones((10, 3)), _rng().normal(size=(10, 3))))


# --- SVCCA -----------------------------------------------------------------------


def test_svcca_finds_a_planted_shared_subspace() -> None:
    rng = _rng(7)
    n, shared, private = 3000, 4, 6
    z = rng.normal(size=(n, shared))
    # Orthonormal embeddings keep all 10 planted directions at equal variance.
    a = np.hstack([z, rng.normal(size=(n, private))]) @ _orthogonal(12, rng)[:10]
    b = np.hstack([z @ _orthogonal(shared, rng), rng.normal(size=(n, private))]) @ _orthogonal(15, rng)[:10]
    res = svcca(a, b)
    assert res.dims == (10, 10), "99% of the variance lives in the 10 planted directions"
    assert res.correlations[:shared].min() > 0.995
    assert res.correlations[shared:].max() < 0.15
    assert res.similarity == pytest.approx(shared / 10, abs=0.05)
    assert float(res) == res.similarity
    # Identical up to an invertible linear map: every correlation is 1.
    assert svcca(a, a @ rng.normal(size=(12, 12))).similarity == pytest.approx(1.0, abs=1e-6)
    # Independent representations: small correlations.
    assert svcca(rng.normal(size=(n, 5)), rng.normal(size=(n, 5))).similarity < 0.1


def test_svcca_keep_by_count_and_errors() -> None:
    rng = _rng(8)
    a = rng.normal(size=(500, 8))
    assert svcca(a, a, keep=3).dims == (3, 3)
    with pytest.raises(ValueError, match=r"keep: expected a variance fraction in \(0, 1\] or a positive number"):
        svcca(a, a, keep=0)
    with pytest.raises(ValueError, match="keep: expected"):
        svcca(a, a, keep=1.5)
    with pytest.raises(ValueError, match="a: the activations are constant"):
        svcca(np.ones((50, 3)), a[:50])


# --- matrices and capture ------------------------------------------------------------


def test_similarity_matrix_matches_pairwise_calls_and_is_symmetric() -> None:
    rng = _rng(9)
    x = rng.normal(size=(80, 6))
    acts = {"x": x, "relu": np.maximum(x @ rng.normal(size=(6, 9)), 0), "noise": rng.normal(size=(80, 4))}
    m, names_a, names_b = similarity_matrix(acts)
    assert names_a == names_b == ["x", "relu", "noise"]
    np.testing.assert_allclose(m, m.T)
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-12)
    assert m[0, 1] == pytest.approx(cka(acts["x"], acts["relu"]))
    other = {"a": x[:, :3], "b": x}
    m2, _, names2 = similarity_matrix(acts, other, method="svcca", keep=3)
    assert m2.shape == (3, 2) and names2 == ["a", "b"]
    assert m2[0, 1] == pytest.approx(svcca(acts["x"], x, keep=3).similarity)
    seen = []
    similarity_matrix([x, x], progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(ValueError, match="activations_b: layer 'a' has 10 examples, expected 80"):
        similarity_matrix(acts, {"a": x[:10]})
    with pytest.raises(ValueError, match="method: expected 'cka' or 'svcca'"):
        similarity_matrix(acts, method="cca")
    with pytest.raises(TypeError, match="activations_a: expected a dict"):
        similarity_matrix(x)


def test_capture_activations_leaves_the_model_unchanged() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)).train()
    x = torch.randn(50, 4)
    acts = capture_activations(net, x, batch_size=16)
    assert list(acts) == ["0", "3"], "default: leaf modules with parameters"
    assert acts["0"].shape == (50, 8) and acts["3"].shape == (50, 3)
    with torch.no_grad():
        np.testing.assert_allclose(acts["3"], net.eval()(x).numpy(), rtol=1e-5, atol=1e-6)
    net.train()
    assert net.training and all(not m._forward_hooks for m in net.modules())
    gru = nn.GRU(3, 5, batch_first=True)
    out = capture_activations(gru, torch.randn(6, 7, 3))
    assert list(out) == [""] and out[""].shape == (6, 35), "a GRU's output sequence, not its final state"
    with pytest.raises(ValueError, match=r"layers: \['nope'\] are not modules of the model"):
        capture_activations(net, x, ["nope"])
    with pytest.raises(TypeError, match="inputs: expected a torch.Tensor"):
        capture_activations(net, x.numpy())


# --- SimilarityMatrix (widget) ---------------------------------------------------------


def test_similarity_widget_state_and_validation() -> None:
    import traitlets

    from deepvis_widgets._arrays import decode_array
    from deepvis_widgets.widgets.similarity import SimilarityMatrix

    rng = _rng(10)
    x = rng.normal(size=(300, 6))
    acts = {"<b>x</b>": x, "relu": np.maximum(x @ rng.normal(size=(6, 9)), 0), "noise": rng.normal(size=(300, 4))}
    m = SimilarityMatrix(acts, labels=np.arange(300) % 3, max_points=100)
    expected, _, _ = similarity_matrix(acts)
    np.testing.assert_allclose(decode_array(m._matrix), expected, rtol=1e-6)
    assert m.names_a == m.names_b == list(acts) and m.selected == (2, 2) and m.method == "linear CKA"
    proj = decode_array(m._proj)
    assert proj.shape == (6, 100, 2), "rows then columns: the same layers twice when comparing a model with itself"
    assert isinstance(m.get_state()["_proj"]["buffer"], memoryview)
    assert decode_array(m._labels).shape == (100,)
    m.selected = (0, 1)
    with pytest.raises(traitlets.TraitError, match=r"selected: expected \(row, col\) inside the 3x3 matrix, got \(3, 0\)"):
        m.selected = (3, 0)
    s = SimilarityMatrix(acts, {"a": x[:, :2]}, method="svcca", keep=2, names=("net", "probe"))
    assert decode_array(s._matrix).shape == (3, 1) and s.model_names == ("net", "probe") and s.method == "SVCCA"
    with pytest.raises(ValueError, match=r"labels: expected 300 labels \(one per example\), got 5"):
        SimilarityMatrix(acts, labels=[0] * 5)
    with pytest.raises(ValueError, match="max_points: expected at least 10"):
        SimilarityMatrix(acts, max_points=3)
    with pytest.raises(ValueError, match="activations_b: layer 'a' has 3 examples, expected 300"):
        SimilarityMatrix(acts, {"a": x[:3]})


def test_similarity_widget_from_models_across_checkpoints() -> None:
    from deepvis_widgets._arrays import decode_array
    from deepvis_widgets.widgets.similarity import SimilarityMatrix

    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 4))
    b = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 4))
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        b[2].weight.mul_(-3.0)  # a scaled (and flipped) last layer: CKA cannot tell
    x = torch.randn(200, 5)
    m = SimilarityMatrix.from_models(a, x, b, names=("before", "after"))
    mat = decode_array(m._matrix)
    assert m.names_a == ["0", "2"] and mat.shape == (2, 2)
    np.testing.assert_allclose(np.diag(mat), 1.0, atol=1e-5)
    assert a.training and b.training and not a[0]._forward_hooks
