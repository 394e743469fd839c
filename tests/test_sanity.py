"""Sanity checks (Adebayo et al. 2018): metrics with known answers, randomization on real and
weight-independent models, the model left alone, text models, errors, and the widget."""

from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest
import torch
import traitlets
from torch import nn
from torch.nn import functional as F

from deepvis_widgets._arrays import decode_array
from deepvis_widgets.compute.sanity import (
    METRICS,
    SanityResult,
    _reinitialise,
    label_randomization_check,
    map_similarity,
    sanity_check,
    verdict_details,
    verdicts,
)
from deepvis_widgets.examples.digits import digits_cnn, digits_data
from deepvis_widgets.widgets.sanity import SanityCheckView, _shrink


@pytest.fixture(scope="module")
def digits() -> tuple[nn.Module, torch.Tensor]:
    return digits_cnn(), digits_data().x_test[:4]


class EdgeEnergy(nn.Module):
    """Scores are a fixed function of the input (Sobel edge energy); the weights only add 0 * (...).

    Its gradient maps cannot depend on its weights, whatever they are: the check must fail it.
    """

    def __init__(self) -> None:
        super().__init__()
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        self.register_buffer("kernel", torch.stack([sobel, sobel.T]).unsqueeze(1))
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        energy = F.conv2d(x, self.kernel, padding=1).pow(2).sum((1, 2, 3))
        learned = self.fc(torch.relu(self.conv(x)).mean((2, 3)))
        return energy[:, None] * torch.tensor([1.0, 0.5, 2.0]) + 0 * learned


class TokenNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(40, 12)
        self.norm = nn.LayerNorm(12)
        self.hidden = nn.Linear(12, 12)
        self.out = nn.Linear(12, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.hidden(self.norm(self.emb(ids)))).mean(1))


# --- metrics -------------------------------------------------------------------------------
def test_metrics_identical_maps_are_1_and_independent_random_maps_about_0() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(48, 48))
    assert map_similarity(a, a) == {"spearman_abs": 1.0, "spearman": 1.0, "ssim": 1.0, "hog": 1.0}
    values = np.array(
        [[map_similarity(rng.random((48, 48)), rng.random((48, 48)))[m] for m in METRICS] for _ in range(5)]
    )
    # Rank correlations and SSIM centre on 0; HOG features share some structure even for noise.
    assert np.all(np.abs(values.mean(0)[:3]) < 0.05) and abs(values.mean(0)[3]) < 0.15, values.mean(0)
    # A sign flip keeps the absolute ranks and reverses the signed ones.
    flipped = map_similarity(a, -a)
    assert flipped["spearman_abs"] == 1.0 and flipped["spearman"] == pytest.approx(-1.0)
    assert flipped["ssim"] == 1.0 and flipped["hog"] == 1.0
    # A map scaled by a positive factor is the same map for every metric.
    assert all(v == pytest.approx(1.0) for v in map_similarity(a, 3 * a).values())


def test_metrics_known_rank_correlation_constant_maps_and_1d_maps() -> None:
    a = np.arange(16.0).reshape(4, 4)
    b = a.copy()
    b.flat[[0, 1]] = b.flat[[1, 0]]  # one swap of neighbours: rho = 1 - 6 * 2 / (16 * 255)
    assert map_similarity(a, b)["spearman"] == pytest.approx(1 - 12 / (16 * 255))
    zero = np.zeros((16, 16))
    sims = map_similarity(zero, np.random.default_rng(1).random((16, 16)))
    assert sims["spearman"] == 0.0 and sims["spearman_abs"] == 0.0 and sims["hog"] == 0.0
    assert map_similarity(zero, zero)["spearman"] == 1.0
    tokens = map_similarity(np.arange(10.0), np.arange(10.0)[::-1])
    assert tokens["spearman"] == pytest.approx(-1.0) and np.isnan(tokens["hog"]) and not np.isnan(tokens["ssim"])
    tiny = map_similarity(np.ones((2, 2)), np.eye(2))
    assert np.isnan(tiny["ssim"]) and np.isnan(tiny["hog"])


def test_metric_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="b: expected the shape of a"):
        map_similarity(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="a: contains NaN"):
        map_similarity(np.full((4, 4), np.nan), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="a: expected a non-empty 1-D or 2-D"):
        map_similarity(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))


# --- model randomization -------------------------------------------------------------------
def test_a_model_whose_maps_ignore_its_weights_fails() -> None:
    torch.manual_seed(0)
    x = torch.rand(3, 1, 16, 16)
    result = sanity_check(EdgeEnergy(), x, ["saliency", "input_x_gradient"], progress=False)
    assert result.steps == ["original", "fc", "conv"]
    assert result.randomized == [[], ["fc"], ["fc", "conv"]]
    np.testing.assert_array_equal(result.maps[:, 1:], np.repeat(result.maps[:, :1], 2, axis=1))
    assert np.all(result.scores[..., :3] == 1.0)
    judged = verdicts(result)
    assert set(judged) == {"saliency", "input_x_gradient"}
    assert all(set(v) == {"passed", "text"} for v in judged.values())
    assert not judged["saliency"]["passed"]
    assert "barely changes: it may not reflect the model" in judged["saliency"]["text"]
    assert "1.00" in judged["saliency"]["text"] and "0.5" in judged["saliency"]["text"]


def test_the_digits_cnn_gradient_decorrelates_under_cascading_randomization(digits) -> None:
    model, x = digits
    result = sanity_check(model, x, ["saliency", "gradcam"], progress=False)
    assert result.steps == ["original", "fc", "features.8", "features.6", "features.3", "features.0"]
    means = result.mean("spearman_abs")
    assert np.all(means[:, 0] == 1.0)
    assert means[0, -1] < 0.4, means[0]
    assert means[0, -1] < means[0, 0] - 0.6
    assert result.mean("ssim")[0, -1] < 0.4
    assert verdicts(result)["saliency"]["passed"]
    # Every step explained the class the trained model predicted.
    with torch.no_grad():
        assert result.target == model(x).argmax(1).tolist()
    # Tighter threshold than the measured value fails the method; the text says so.
    value = verdict_details(result)[0]["value"]
    strict = verdicts(result, threshold=value - 0.01)["saliency"]
    assert not strict["passed"] and f"{value - 0.01:g}" in strict["text"]


def test_independent_mode_randomizes_one_block_at_a_time(digits) -> None:
    model, x = digits
    cascade = sanity_check(model, x[:2], ["saliency"], progress=False)
    alone = sanity_check(model, x[:2], ["saliency"], mode="independent", progress=False)
    assert alone.randomized == [[], ["fc"], ["features.8"], ["features.6"], ["features.3"], ["features.0"]]
    assert alone.mode == "independent" and "single-block" in verdicts(alone)["saliency"]["text"]
    # Step 1 re-initialises the output block alone in both modes, with the same seed.
    np.testing.assert_array_equal(cascade.maps[0, 1], alone.maps[0, 1])
    # Later steps differ: the cascade keeps the blocks randomized before.
    assert not np.array_equal(cascade.maps[0, 3], alone.maps[0, 3])


def test_the_model_is_left_alone_and_seeds_reproduce(digits) -> None:
    model, x = digits
    model = copy.deepcopy(model).train()
    model.features[0].weight.requires_grad_(False)
    model.fc.weight.grad = torch.ones_like(model.fc.weight)
    calls = []
    model.fc.register_forward_hook(lambda m, i, o: calls.append(1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    first = sanity_check(model, x[:2], ["saliency", "smoothgrad"], seed=3, progress=False)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.features[0].weight.requires_grad and model.features[1 - 1].bias.requires_grad
    assert torch.equal(model.fc.weight.grad, torch.ones_like(model.fc.weight))
    assert len(model.fc._forward_hooks) == 1 and calls  # the copy keeps the model's own hooks
    assert torch.equal(torch.get_rng_state(), rng)
    again = sanity_check(model, x[:2], ["saliency", "smoothgrad"], seed=3, progress=False)
    np.testing.assert_array_equal(first.scores, again.scores)
    other = sanity_check(model, x[:2], ["saliency"], seed=4, progress=False)
    assert not np.array_equal(first.maps[0, 1:], other.maps[0, 1:])
    np.testing.assert_array_equal(first.maps[0, 0], other.maps[0, 0])


def test_blocks_given_by_name_are_ordered_by_the_forward_pass() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
    ).eval()
    x = torch.rand(2, 1, 8, 8)
    default = sanity_check(net, x, ["saliency"], progress=False)
    assert default.steps == ["original", "4", "0 + 1"]  # the batch norm joins its convolution
    given = sanity_check(net, x, ["saliency"], blocks=["0", net[4]], progress=False)
    assert given.steps == ["original", "4", "0"]
    with pytest.raises(ValueError, match="blocks: module '2' has no parameters"):
        sanity_check(net, x, ["saliency"], blocks=["2"], progress=False)
    with pytest.raises(ValueError, match="blocks: "):
        sanity_check(net, x, ["saliency"], blocks=["nope"], progress=False)


def test_modules_without_reset_parameters_get_weights_of_the_same_scale() -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.linspace(1.0, 3.0, 1000))

    net = nn.Sequential(Scaled())
    old = net[0].w.detach().clone()
    torch.manual_seed(0)
    _reinitialise(net, ["0"])
    new = net[0].w.detach()
    assert not torch.equal(old, new)
    assert abs(float(new.mean()) - float(old.mean())) < 0.1
    assert abs(float(new.std()) - float(old.std())) < 0.1
    assert torch.corrcoef(torch.stack([old, new]))[0, 1].abs() < 0.1


def test_text_models_use_token_attributions() -> None:
    torch.manual_seed(0)
    ids = torch.randint(1, 40, (3, 9))
    result = sanity_check(TokenNet(), ids, progress=False)
    assert result.kind == "text" and result.methods == ["saliency", "input_x_gradient", "integrated_gradients"]
    assert result.steps == ["original", "out", "hidden", "emb + norm"]
    assert result.maps.shape == (3, 4, 3, 9)
    assert np.all(np.isnan(result.scores[..., METRICS.index("hog")]))
    assert not np.any(np.isnan(result.scores[..., METRICS.index("spearman")]))
    assert result.mean()[:, 0].tolist() == [1.0, 1.0, 1.0]
    assert result.mean()[:, -1].max() < 0.9
    with pytest.raises(ValueError, match="unknown text methods 'gradcam'"):
        sanity_check(TokenNet(), ids, ["gradcam"], progress=False)
    hog = verdicts(result, metric="hog")["saliency"]
    assert not hog["passed"] and "cannot be measured" in hog["text"]


# --- label randomization -------------------------------------------------------------------
def test_label_randomization_on_the_digits_twins(digits) -> None:
    model, x = digits
    result = label_randomization_check(
        model, digits_cnn(permuted_labels=True), x, ["saliency", "gradcam"], progress=False
    )
    assert result.mode == "labels" and result.steps == ["original", "permuted labels"]
    means = result.mean("spearman_abs")
    assert np.all(means[:, 0] == 1.0) and means[0, 1] < 0.6, means
    assert "permuted labels" in verdicts(result)["saliency"]["text"]
    # The same weights under another object: nothing changes, the check fails every method.
    same = label_randomization_check(model, copy.deepcopy(model), x, ["saliency"], progress=False)
    assert np.all(same.scores[..., :3] == 1.0) and not verdicts(same)["saliency"]["passed"]


# --- results -------------------------------------------------------------------------------
def test_table_rows_and_pandas() -> None:
    x = torch.rand(2, 1, 16, 16)
    result = sanity_check(EdgeEnergy(), x, ["saliency"], progress=False)
    rows = result.table()
    assert len(rows) == 1 * 3 * len(METRICS)
    assert rows[0] == {"method": "saliency", "step": 0, "randomized": "original", "metric": "spearman_abs",
                       "value": 1.0, "std": 0.0, "n": 2}
    per = result.table(per_example=True)
    assert len(per) == 3 * 2 * len(METRICS) and {"example", "value"} <= set(per[0])
    assert "Saliency" in str(result)
    if importlib.util.find_spec("pandas") is None:
        with pytest.raises(ImportError, match="to_pandas needs pandas"):
            result.to_pandas()
    else:
        assert result.to_pandas().shape[0] == len(rows)


def test_bad_input_errors_name_the_argument(digits) -> None:
    model, x = digits
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        sanity_check("net", x)
    with pytest.raises(TypeError, match="inputs: expected a tensor"):
        sanity_check(model, [[1.0]])
    with pytest.raises(ValueError, match="inputs: expected a non-empty batch"):
        sanity_check(model, torch.zeros(0, 1, 32, 32))
    with pytest.raises(ValueError, match="mode: expected 'cascading' or 'independent'"):
        sanity_check(model, x, mode="layers")
    with pytest.raises(ValueError, match="methods: unknown methods 'magic'"):
        sanity_check(model, x, ["magic"])
    with pytest.raises(ValueError, match="methods: 'saliency' is listed twice"):
        sanity_check(model, x, ["saliency", "saliency"])
    with pytest.raises(TypeError, match="methods: expected method names"):
        import captum.attr as ca

        sanity_check(model, x, [ca.Saliency(model)])
    with pytest.raises(ValueError, match="method_options: 'gradcam' is not one of the methods"):
        sanity_check(model, x, ["saliency"], method_options={"gradcam": {}})
    with pytest.raises(TypeError, match="seed: expected an int"):
        sanity_check(model, x, seed=True)
    with pytest.raises(TypeError, match="progress: expected None, True, False or a callable"):
        sanity_check(model, x, ["saliency"], progress="yes")
    with pytest.raises(ValueError, match="model_random_labels: is the same object as model_true"):
        label_randomization_check(model, model, x)
    result = sanity_check(EdgeEnergy(), torch.rand(1, 1, 8, 8), ["saliency"], progress=False)
    with pytest.raises(ValueError, match="threshold: expected a similarity between -1 and 1"):
        verdicts(result, threshold=2)
    with pytest.raises(ValueError, match="metric: expected one of"):
        verdicts(result, metric="pearson")
    with pytest.raises(TypeError, match="result: expected a SanityResult"):
        verdicts({"saliency": 1})


# --- the widget ----------------------------------------------------------------------------
def test_view_traits_follow_the_result_and_the_threshold(digits) -> None:
    model, x = digits
    result = sanity_check(model, x[:2], ["saliency", "guided_backprop"], progress=False)
    view = SanityCheckView(result)
    assert view.title == "Sanity check: cascading model randomization"
    assert view.steps == result.steps and view.method_labels == ["Saliency", "Guided Backprop"]
    maps = decode_array(view.maps)
    assert maps.shape == (2, 6, 2, 32, 32) and np.abs(maps).max() <= 1.0 + 1e-6
    assert np.allclose(np.abs(maps).reshape(2, 6, 2, -1).max(-1), 1.0, atol=0.01)
    assert decode_array(view.inputs).shape == (2, 32, 32)
    assert decode_array(view.scores).shape == (2, 6, 2, 4)
    assert [v["passed"] for v in view.verdicts] == [v["passed"] for v in verdicts(result).values()]
    view.threshold = -1.0
    assert not any(v["passed"] for v in view.verdicts) and "below -1" in view.verdicts[0]["text"]
    with pytest.raises(traitlets.TraitError, match="example: expected 0 <= example < 2"):
        view.example = 2
    with pytest.raises(traitlets.TraitError, match="threshold: expected a similarity"):
        view.threshold = 3.0
    with pytest.raises(TypeError, match="result: expected a SanityResult"):
        SanityCheckView({"maps": 1})
    with pytest.raises(TypeError, match="tokens: only text results"):
        SanityCheckView(result, tokens=[["a"]])
    with pytest.raises(TypeError, match="unexpected keyword"):
        SanityCheckView(result, colour="red")


def test_view_tokens_and_large_maps_are_shrunk() -> None:
    torch.manual_seed(0)
    ids = torch.randint(1, 40, (2, 5))
    result = sanity_check(TokenNet(), ids, ["saliency"], progress=False)
    view = SanityCheckView(result, tokens=[list("abcde"), ["<b>", "x", "y", "z", "w"]])
    assert view.tokens[1][0] == "<b>" and view.inputs == {} and view.kind == "text"
    assert SanityCheckView(result).tokens[0][0] == f"#{int(ids[0, 0])}"
    with pytest.raises(ValueError, match="tokens: expected 2 lists of 5 strings"):
        SanityCheckView(result, tokens=[list("abc"), list("abcde")])
    big = np.random.default_rng(0).random((1, 2, 1, 224, 224))
    small = _shrink(big)
    assert small.shape == (1, 2, 1, 75, 75) and small.mean() == pytest.approx(big.mean(), abs=0.01)


def test_from_model_constructors(digits) -> None:
    model, x = digits
    view = SanityCheckView.from_model(model, x[:1], ["saliency"], mode="independent")
    assert view.mode == "independent" and isinstance(view.result, SanityResult)
    labels = SanityCheckView.from_label_randomization(
        model, digits_cnn(permuted_labels=True), x[:1], ["saliency"], title="labels"
    )
    assert labels.mode == "labels" and labels.title == "labels" and labels.steps[1] == "permuted labels"
