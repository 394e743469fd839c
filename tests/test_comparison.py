"""Model comparison and the error gallery: counts, sampling, per-example loss, widget state and validation."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import traitlets
from scipy.stats import binomtest

import deepvis_widgets as dv
from deepvis_widgets.compute.comparison import (
    CATEGORIES,
    compare_predictions,
    per_example_loss,
    sample_by_metric,
)


def _random_preds(n=500, k=7, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    a = np.where(rng.random(n) < 0.8, y, rng.integers(0, k, n))
    b = np.where(rng.random(n) < 0.6, y, rng.integers(0, k, n))
    return y, a, b


# --- compare_predictions -----------------------------------------------------------------


def test_counts_equal_a_brute_force_tally_and_scores_are_argmaxed() -> None:
    y, a, b = _random_preds()
    expected = np.zeros((7, 4), dtype=int)
    for yi, ai, bi in zip(y, a, b):
        col = {(True, True): 0, (True, False): 1, (False, True): 2, (False, False): 3}[(ai == yi, bi == yi)]
        expected[yi, col] += 1
    c = compare_predictions(y, a, b)
    np.testing.assert_array_equal(c.counts, expected)
    # (n, classes) scores, numpy and torch, give the same split
    scores_a = np.eye(7)[a] * 3.0 + 0.01
    c2 = compare_predictions(torch.as_tensor(y), scores_a, torch.as_tensor(np.eye(7)[b]))
    np.testing.assert_array_equal(c2.counts, expected)
    assert c.accuracy_a == pytest.approx(np.mean(a == y))
    assert c.accuracy_b == pytest.approx(np.mean(b == y))
    for cat in CATEGORIES:
        for cls in (None, 3):
            idx = c.indices(cat, cls)
            assert idx.size == (expected[:, CATEGORIES.index(cat)].sum() if cls is None else expected[cls, CATEGORIES.index(cat)])
    rows = c.table()
    assert [r["class"] for r in rows] == [str(k) for k in range(7)]
    assert [rows[3][cat] for cat in CATEGORIES] == expected[3].tolist() and rows[3]["support"] == (y == 3).sum()
    assert rows[2]["accuracy_a"] == pytest.approx(np.mean(a[y == 2] == 2))
    if importlib.util.find_spec("pandas") is None:
        with pytest.raises(ImportError, match="to_pandas needs pandas"):
            c.to_pandas()
    else:
        assert c.to_pandas().shape == (7, 7)


@pytest.mark.parametrize(("b", "c"), [(0, 0), (1, 0), (15, 4), (40, 41), (3, 30), (700, 640)])
def test_mcnemar_exact_p_equals_a_two_sided_binomial_test(b: int, c: int) -> None:
    y = np.zeros(b + c + 5, dtype=int)
    a = np.r_[np.zeros(b), np.ones(c), np.zeros(5)].astype(int)  # A right on the first b (and the last 5)
    bb = np.r_[np.ones(b), np.zeros(c), np.zeros(5)].astype(int)  # B right on the next c
    p = compare_predictions(y, a, bb, class_names=["x", "y"]).mcnemar_p
    want = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
    assert p == pytest.approx(want, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(
    ("args", "exc", "match"),
    [
        (([0, 1, 2], [0, 1], [0, 1, 2]), ValueError, "preds_a: expected 3 predictions"),
        (([0, 1, 2], [0, 1, 2], [0, 1, -1]), ValueError, "preds_b: class indices must be >= 0"),
        (([0, 1.5, 2], [0, 1, 2], [0, 1, 2]), ValueError, "y_true: expected integer class indices"),
        (([0, 1, 2], np.zeros((3, 1)), [0, 1, 2]), ValueError, "preds_a: scores need at least 2 classes"),
        (([0, 1, 2], [0, 1, 2], np.full((3, 4), np.nan)), ValueError, "preds_b: scores contain NaN"),
        (("012", [0, 1, 2], [0, 1, 2]), TypeError, "y_true"),
        (([[[0]]], [0], [0]), ValueError, "y_true: expected class indices"),
    ],
)
def test_compare_errors_name_the_argument(args, exc, match) -> None:
    with pytest.raises(exc, match=match):
        compare_predictions(*args)


def test_class_names_must_cover_every_class() -> None:
    with pytest.raises(ValueError, match="class_names: expected at least 3 names"):
        compare_predictions([0, 1, 2], [0, 1, 2], [0, 1, 2], class_names=["a", "b"])
    with pytest.raises(ValueError, match="category: expected one of"):
        compare_predictions([0, 1], [0, 1], [0, 1]).indices("right")


# --- sample_by_metric ----------------------------------------------------------------------


def test_sampling_picks_the_extremes_and_the_middle_and_never_nan() -> None:
    rng = np.random.default_rng(1)
    m = rng.normal(size=1001)
    m[[5, 500, 900]] = np.nan
    s = sample_by_metric(m, per_group=6)
    finite = np.sort(m[np.isfinite(m)])
    np.testing.assert_array_equal(np.sort(m[s["worst"]]), finite[-6:])
    np.testing.assert_array_equal(np.sort(m[s["best"]]), finite[:6])
    assert np.all(np.diff(m[s["worst"]]) <= 0) and np.all(np.diff(m[s["best"]]) <= 0)  # worst first
    mid = np.searchsorted(finite, m[s["median"]])
    assert abs(mid.mean() - (finite.size - 1) / 2) <= 1.0
    assert not set(np.r_[s["worst"], s["median"], s["best"]]) & {5, 500, 900}
    # lower is worse (accuracy-like): the ends swap
    flipped = sample_by_metric(m, per_group=6, higher_is_worse=False)
    np.testing.assert_array_equal(np.sort(flipped["worst"]), np.sort(s["best"]))
    q = sample_by_metric(m, per_group=3, groups=(0.9,))
    assert set(q) == {"q0.9"} and np.all(np.abs(np.searchsorted(finite, m[q["q0.9"]]) - 0.9 * (finite.size - 1)) <= 2)
    # fewer examples than per_group: each group holds them all
    assert sample_by_metric([3.0, 1.0], per_group=5)["worst"].tolist() == [0, 1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metric": np.zeros((3, 2))}, "metric: expected one value per example"),
        ({"metric": [np.nan, np.inf]}, "metric: every value is NaN"),
        ({"metric": [1.0], "per_group": 0}, "per_group: expected a positive integer"),
        ({"metric": [1.0], "groups": ("worst", "typical")}, "groups: expected 'worst'"),
        ({"metric": [1.0], "groups": (1.5,)}, "groups: quantiles must lie in"),
        ({"metric": [1.0], "groups": "worst"}, "groups: expected a non-empty sequence"),
    ],
)
def test_sampling_errors_name_the_argument(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        sample_by_metric(**kwargs)


# --- per_example_loss ----------------------------------------------------------------------


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 3))

    def forward(self, x):
        return self.body(x)


def test_per_example_loss_equals_cross_entropy_and_leaves_the_model_alone() -> None:
    torch.manual_seed(0)
    net = _Net().train()
    net.body[1].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = torch.randn(37, 4, 4), torch.randint(0, 3, (37,))
    losses, preds = per_example_loss(net, x, y, batch_size=8)
    net.eval()
    with torch.no_grad():
        want = torch.nn.functional.cross_entropy(net(x), y, reduction="none").numpy()
        want_pred = net(x).argmax(1).numpy()
    net.train()
    np.testing.assert_allclose(losses, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(preds, want_pred)
    assert net.training and net.body[2].training
    assert not net.body[1].weight.requires_grad and net.body[3].weight.requires_grad
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    # a target out of range in the second batch: a clear error, and the model still comes back unchanged
    y_bad = y.clone()
    y_bad[20] = 9
    with pytest.raises(ValueError, match="targets: class index 9 is out of range for 3 classes"):
        per_example_loss(net, x, y_bad, batch_size=8)
    assert net.training and all(not m._forward_hooks for m in net.modules())
    with pytest.raises(TypeError, match="inputs: expected a torch.Tensor"):
        per_example_loss(net, x.numpy(), y)
    with pytest.raises(ValueError, match="targets: expected 37 predictions"):
        per_example_loss(net, x, y[:5])


# --- widgets ---------------------------------------------------------------------------------


def test_model_comparison_state_selection_and_embedded_examples() -> None:
    y, a, b = _random_preds(n=900, k=5)
    images = np.random.default_rng(0).random((900, 8, 8))
    w = dv.ModelComparison(y, a, b, examples=images, class_names=list("abcde"), model_names=("big", "small"), max_per_cell=10)
    assert isinstance(w._y_true["buffer"], memoryview) and w._y_true["shape"] == [900]
    index = np.frombuffer(w._example_index["buffer"], dtype=np.int32)
    embedded = np.flatnonzero(index >= 0)
    assert w._examples["images"]["shape"][0] == embedded.size
    np.testing.assert_array_equal(index[embedded], np.arange(embedded.size))
    # at most 10 embedded per (class, category) cell, and every non-empty cell has some
    c = w.comparison
    for cls in range(5):
        for cat in CATEGORIES:
            idx = c.indices(cat, cls)
            shown = np.isin(idx, embedded).sum()
            assert shown == min(10, idx.size)
    w.selected = (2, "only_b")
    assert w.selected_ids == c.indices("only_b", 2).tolist()
    w.selected = (-1, "both_wrong")
    assert w.selected_ids == c.indices("both_wrong").tolist()
    w.selected = None
    assert w.selected_ids == []
    with pytest.raises(traitlets.TraitError, match="selected: expected a class index in -1..4"):
        w.selected = (5, "only_a")
    with pytest.raises(traitlets.TraitError, match="selected: expected a category"):
        w.selected = (1, "right")
    assert w.p_value == pytest.approx(c.mcnemar_p)
    # no examples: only the outcome arrays travel
    bare = dv.ModelComparison(y, a, b)
    assert bare._examples == {"kind": "none"} and not (np.frombuffer(bare._example_index["buffer"], np.int32) >= 0).any()


def test_model_comparison_validation() -> None:
    y, a, b = _random_preds(n=20)
    with pytest.raises(ValueError, match="model_names: expected two names"):
        dv.ModelComparison(y, a, b, model_names=("only one",))
    with pytest.raises(ValueError, match="examples: expected 20 examples"):
        dv.ModelComparison(y, a, b, examples=np.zeros((19, 4, 4)))
    with pytest.raises(ValueError, match="max_per_cell"):
        dv.ModelComparison(y, a, b, max_per_cell=-1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        dv.ModelComparison(y, a, b, colour="red")


def test_error_gallery_embeds_only_the_sample() -> None:
    rng = np.random.default_rng(3)
    loss = rng.gamma(1.0, size=2000)
    loss[7] = np.nan
    images = rng.random((2000, 3, 16, 16))
    labels = rng.integers(0, 4, 2000)
    g = dv.ErrorGallery(images, loss, labels=labels, preds=np.eye(4)[labels], class_names=["w", "x", "y", "<z>"], per_group=5)
    s = sample_by_metric(loss, 5)
    assert g.sample_ids == [int(i) for i in np.r_[s["worst"], s["median"], s["best"]]]
    assert [grp["name"] for grp in g.groups] == ["worst", "median", "best"]
    assert g._examples["images"]["shape"] == [15, 16, 16, 3]
    assert g.sample_values == pytest.approx(loss[g.sample_ids].tolist())
    assert g.sample_labels == [["w", "x", "y", "<z>"][labels[i]] for i in g.sample_ids] == g.sample_preds
    assert g.n_nonfinite == 1 and sum(g._hist["counts"]) == 1999
    g.selected = g.sample_ids[0]
    with pytest.raises(traitlets.TraitError, match="selected: expected an example index in 0..1999"):
        g.selected = 2000
    texts = dv.ErrorGallery([f"t{i}" for i in range(30)], np.arange(30.0), per_group=2, higher_is_worse=False)
    assert texts._examples == {"kind": "text", "texts": ["t0", "t1", "t14", "t15", "t28", "t29"]}


def test_error_gallery_from_model_and_validation() -> None:
    torch.manual_seed(0)
    net = _Net()
    x, y = torch.randn(40, 4, 4), torch.randint(0, 3, (40,))
    g = dv.ErrorGallery.from_model(net, x, y, class_names=["a", "b", "c"], per_group=3)
    losses, preds = per_example_loss(net, x, y)
    assert g.sample_values == pytest.approx(losses[g.sample_ids].tolist())
    assert g.sample_preds == [["a", "b", "c"][p] for p in preds[g.sample_ids]]
    assert net.training
    with pytest.raises(TypeError, match="examples: expected n images or strings"):
        dv.ErrorGallery(None, np.zeros(3))
    with pytest.raises(ValueError, match="labels: expected 3 predictions"):
        dv.ErrorGallery(["a", "b", "c"], np.zeros(3), labels=[0, 1])
    with pytest.raises(ValueError, match="class_names: expected at least 3 names"):
        dv.ErrorGallery(["a", "b", "c"], np.zeros(3), labels=[0, 1, 2], class_names=["x"])
    with pytest.raises(ValueError, match="examples: expected 3 examples"):
        dv.ErrorGallery(["a", "b"], np.zeros(3))
    with pytest.raises(traitlets.TraitError, match="thumb_size"):
        dv.ErrorGallery(["a", "b", "c"], np.zeros(3), thumb_size=4)
