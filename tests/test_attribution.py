"""Attribution compute layer: known answers, axioms, Captum parity, layers, state leaks, errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import captum.attr as ca
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from deepvis_widgets.compute import attribution as attribution_module
from deepvis_widgets.compute._batching import FIXED_OVERHEAD, measure_footprint, parse_budget
from deepvis_widgets.compute._forward import ForwardWrapper, output_scores
from deepvis_widgets.compute._methods import lime_surrogate
from deepvis_widgets.compute.attribution import (
    Attribution,
    attribute,
    available_methods,
    expected_saliency,
    top_predictions,
)
from deepvis_widgets.compute.text_attribution import attribute_text

ALL_METHODS = list(available_methods())
# Small settings so that every method runs in well under a second here.
FAST = {
    "integrated_gradients": {"n_steps": 8},
    "smoothgrad": {"nt_samples": 4},
    "lime": {"n_samples": 24},
    "kernel_shap": {"n_samples": 24},
    "occlusion": {"sliding_window_shapes": (3, 4, 4), "strides": (3, 4, 4)},
}


# --- models -----------------------------------------------------------------------


class SmallCNN(nn.Module):
    """conv -> relu -> pool -> conv -> relu -> global average pool -> (dropout) -> linear."""

    def __init__(self, classes: int = 5, dropout: float = 0.0, bomb: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            Bomb() if bomb else nn.Identity(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(16, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.drop(torch.flatten(self.pool(self.features(x)), 1)))


class Boom(Exception):
    """Raised half-way through a forward pass."""


class Bomb(nn.Module):
    """Identity that raises ``error`` on its ``fuse``-th call once armed."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.fuse: int | None = None
        self.error: type[BaseException] = Boom

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        if self.fuse is not None and self.calls >= self.fuse:
            raise self.error("boom")
        return x


def plain_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )


class Block(nn.Module):
    """Residual block whose last ReLU is functional: only the block's output includes the skip."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (
            None if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class TinyResNet(nn.Module):
    def __init__(self, classes: int = 6) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = nn.Sequential(Block(8, 8, 1), Block(8, 8, 1))
        self.layer2 = nn.Sequential(Block(8, 16, 2), Block(16, 16, 1))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class ViTBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """16x16 images, 4x4 patches: a 4x4 token grid after a class token (or mean pooling)."""

    def __init__(self, dim: int = 16, classes: int = 3, cls_token: bool = True) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, 4)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.1) if cls_token else None
        self.pos = nn.Parameter(torch.randn(1, 16 + int(cls_token), dim) * 0.1)
        self.blocks = nn.Sequential(ViTBlock(dim), ViTBlock(dim))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        if self.cls is not None:
            tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1)
        tokens = self.norm(self.blocks(tokens + self.pos))
        return self.head(tokens[:, 0] if self.cls is not None else tokens.mean(1))


def linear_model() -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 3))


@pytest.fixture
def images() -> Tensor:
    torch.manual_seed(0)
    return torch.rand(2, 3, 16, 16)


def seeded(seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN()


# --- helpers: the model must come back unchanged ------------------------------------------

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def snapshot(model: nn.Module) -> dict[str, Any]:
    modules = list(model.modules())
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in modules],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grad": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "hooks": [tuple(tuple(getattr(m, d)) for d in _HOOK_DICTS) for m in modules],
        "attributes": [sorted(vars(m)) for m in modules],
        "grad_mode": torch.is_grad_enabled(),
    }


def assert_unchanged(model: nn.Module, before: dict[str, Any]) -> None:
    after = snapshot(model)
    assert after["state"].keys() == before["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), key
    for name in ("training", "requires_grad", "hooks", "attributes", "grad_mode"):
        assert after[name] == before[name], name
    for g0, g1 in zip(before["grad"], after["grad"], strict=True):
        assert (g0 is None and g1 is None) or torch.equal(g0, g1)


def lived_in_model(bomb: bool = False) -> SmallCNN:
    """Train mode with dropout, a frozen layer, stale .grad and user hooks: all must survive."""
    torch.manual_seed(1)
    model = SmallCNN(dropout=0.5, bomb=bomb).train()
    model.fc.bias.requires_grad_(False)
    model.features[0].weight.grad = torch.ones_like(model.features[0].weight)
    model.features[0].register_forward_hook(lambda m, i, o: None)
    model.register_forward_pre_hook(lambda m, a: None)
    return model


# --- exact answers and axioms ---------------------------------------------------------------


def test_integrated_gradients_on_a_linear_model_is_exact() -> None:
    torch.manual_seed(0)
    model = linear_model()
    x, x0 = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    targets = [0, 2, 1, 2]
    result = attribute(model, x, "integrated_gradients", target=targets, baselines=x0, n_steps=7)
    w = model[1].weight.detach()[targets].reshape(4, 3, 2, 2)
    torch.testing.assert_close(result.maps, (x - x0) * w, rtol=1e-5, atol=1e-6)
    assert result.target == targets and result.signed
    assert result.delta is not None and result.delta.abs().max() < 1e-5


def test_integrated_gradients_completeness_on_a_cnn(images: Tensor) -> None:
    model = seeded()
    baseline = torch.zeros_like(images)
    result = attribute(model, images, "integrated_gradients", n_steps=300, baselines=baseline)
    with torch.no_grad():
        idx = torch.tensor(result.target)
        gap = model(images)[torch.arange(2), idx] - model(baseline)[torch.arange(2), idx]
    total = result.maps.sum(dim=(1, 2, 3))
    assert ((total - gap).abs() / gap.abs()).max() < 0.01
    torch.testing.assert_close(result.delta, total - gap, atol=1e-5, rtol=1e-3)


def test_cam_equals_class_weights_times_feature_maps(images: Tensor) -> None:
    model = seeded()
    result = attribute(model, images, "cam", target=[1, 3])
    acts = model.features(images).detach()
    expected = torch.einsum("nc,nchw->nhw", model.fc.weight.detach()[[1, 3]], acts).unsqueeze(1)
    torch.testing.assert_close(result.raw, expected)
    # Grad-CAM without its ReLU is CAM divided by the number of positions on this architecture.
    gradcam = ca.LayerGradCam(model, model.features).attribute(images, target=[1, 3])
    torch.testing.assert_close(result.raw, gradcam * 64, rtol=1e-4, atol=1e-5)
    assert result.maps.shape == (2, 1, 16, 16) and result.layer == "features"


def test_expected_saliency_of_a_linear_model_is_the_mean_absolute_weight() -> None:
    torch.manual_seed(0)
    model = linear_model()
    xs, ys = torch.randn(6, 3, 2, 2), torch.tensor([0, 1, 2, 2, 1, 0])
    loader = [(xs[:4], ys[:4]), (xs[4:], ys[4:])]
    result = expected_saliency(model, loader, target="label")
    expected = model[1].weight.detach().abs()[ys].mean(0).reshape(3, 2, 2)
    torch.testing.assert_close(result, expected)
    torch.testing.assert_close(
        expected_saliency(model, [xs], target=2), model[1].weight.detach()[2].abs().reshape(3, 2, 2)
    )


# --- parity with Captum called directly --------------------------------------------------


def _captum_direct(
    name: str, model: nn.Module, x: Tensor, target: list[int], opts: dict[str, Any]
) -> Tensor:
    opts = {k: v for k, v in opts.items() if k != "interpolate_mode"}
    layer = model.features
    if name == "saliency":
        return ca.Saliency(model).attribute(x, target=target, **opts)
    if name == "input_x_gradient":
        return ca.InputXGradient(model).attribute(x, target=target, **opts)
    if name == "smoothgrad":
        return ca.NoiseTunnel(ca.Saliency(model)).attribute(x, target=target, **opts)
    if name == "integrated_gradients":
        return ca.IntegratedGradients(model).attribute(x, target=target, **opts)[0]
    if name == "guided_backprop":
        return ca.GuidedBackprop(model).attribute(x, target=target)
    if name == "gradcam":
        raw = ca.LayerGradCam(model, layer).attribute(x, target=target, **opts)
        return ca.LayerAttribution.interpolate(raw, (16, 16), interpolate_mode="bilinear")
    if name == "guided_gradcam":
        return ca.GuidedGradCam(model, layer).attribute(x, target=target)
    if name == "occlusion":
        return ca.Occlusion(model).attribute(x, target=target, **opts)
    if name == "lime":
        return ca.Lime(model, interpretable_model=lime_surrogate()).attribute(
            x, target=target, **opts
        )
    if name == "kernel_shap":
        return ca.KernelShap(model).attribute(x, target=target, **opts)
    if name == "deeplift":
        return ca.DeepLift(model).attribute(x, target=target, **opts)[0]
    raise AssertionError(name)


@pytest.mark.parametrize("name", [m for m in ALL_METHODS if m != "cam"])
def test_wrapped_methods_match_captum_called_directly(name: str, images: Tensor) -> None:
    model = seeded()
    target = [2, 4]
    torch.manual_seed(123)
    ours = attribute(model, images, name, target=target, **FAST.get(name, {}))
    torch.manual_seed(123)
    theirs = _captum_direct(name, model, images, target, dict(ours.options))
    assert ours.maps.shape == theirs.shape
    torch.testing.assert_close(ours.maps, theirs.detach(), rtol=1e-4, atol=1e-6)
    assert ours.maps.abs().sum() > 0


def test_a_captum_object_is_accepted_as_method(images: Tensor) -> None:
    model = seeded()
    ig = ca.IntegratedGradients(model)
    ours = attribute(model, images, ig, target=1, n_steps=10, internal_batch_size=20)
    torch.testing.assert_close(ours.maps, ig.attribute(images, target=1, n_steps=10))
    assert ours.method == "IntegratedGradients"
    gradcam = attribute(model, images, ca.LayerGradCam(model, model.features), target=1)
    assert gradcam.maps.shape == (2, 1, 16, 16) and gradcam.raw.shape == (2, 1, 8, 8)
    with pytest.raises(TypeError, match="needs class indices"):
        attribute(model, images, ig, target=lambda out: out[:, 0])


# --- targets -------------------------------------------------------------------------------


class DictOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = seeded()

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"logits": self.net(x), "aux": x.mean()}


class LogitsOutput:
    def __init__(self, logits: Tensor) -> None:
        self.logits = logits


class HFLikeOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = seeded()

    def forward(self, x: Tensor) -> LogitsOutput:
        return LogitsOutput(self.net(x))


def test_targets_predicted_int_per_example_and_callable(images: Tensor) -> None:
    model = seeded()
    predicted = attribute(model, images, "saliency")
    assert predicted.target == model(images).argmax(1).tolist()
    torch.testing.assert_close(predicted.probabilities.sum(1), torch.ones(2))
    explicit = attribute(model, images, "saliency", target=predicted.target)
    torch.testing.assert_close(predicted.maps, explicit.maps)
    by_function = attribute(
        model, images, "input_x_gradient", target=lambda out: out[:, 3] - out[:, 0]
    )
    assert by_function.target is None
    diff = (
        attribute(model, images, "input_x_gradient", target=3).maps
        - attribute(model, images, "input_x_gradient", target=0).maps
    )
    torch.testing.assert_close(by_function.maps, diff, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("wrapper", [DictOutput, HFLikeOutput])
def test_dict_and_logits_outputs(wrapper: Callable[[], nn.Module], images: Tensor) -> None:
    model = wrapper()
    reference = attribute(seeded(), images, "integrated_gradients", target=1, n_steps=6)
    result = attribute(model, images, "integrated_gradients", target=1, n_steps=6)
    torch.testing.assert_close(result.maps, reference.maps)
    assert attribute(model, images, "gradcam").layer == "net.features"


def test_tuple_output_with_a_callable_target(images: Tensor) -> None:
    class TupleOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = seeded()

        def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
            return self.net(x), x

    result = attribute(TupleOut(), images, "saliency", target=lambda out: out[0][:, 2], abs=False)
    torch.testing.assert_close(
        result.maps, attribute(seeded(), images, "saliency", target=2, abs=False).maps
    )
    assert result.signed


def test_top_predictions(images: Tensor) -> None:
    model = seeded()
    top = top_predictions(model, images, k=3)
    probs = torch.softmax(model(images), 1)
    torch.testing.assert_close(top.probabilities, probs.topk(3, 1).values)
    assert top.indices.tolist() == probs.topk(3, 1).indices.tolist()
    assert len(top.as_lists()[0]) == 3 and top_predictions(model, images, k=99).indices.shape == (
        2,
        5,
    )


# --- automatic layer --------------------------------------------------------------------------


def test_automatic_layer_plain_cnn(images: Tensor) -> None:
    torch.manual_seed(0)
    model = plain_cnn()
    result = attribute(model, images, "gradcam", target=0)
    assert result.layer == "3"
    direct = ca.LayerGradCam(model, model[3]).attribute(images, target=0, relu_attributions=True)
    torch.testing.assert_close(result.raw, direct)


def test_automatic_layer_resnet_with_skips(images: Tensor) -> None:
    torch.manual_seed(0)
    model = TinyResNet().eval()
    result = attribute(model, images, "gradcam", target=2)
    # The stage container, whose output includes the last skip connection (bn2 does not).
    assert result.layer == "layer2"
    direct = ca.LayerGradCam(model, model.layer2).attribute(
        images, target=2, relu_attributions=True
    )
    torch.testing.assert_close(result.raw, direct)
    by_name = attribute(model, images, "gradcam", target=2, layer="layer1")
    assert by_name.layer == "layer1" and by_name.raw.shape == (2, 1, 16, 16)


def _manual_token_gradcam(
    model: TinyViT, x: Tensor, module: nn.Module, target: int, prefix: int
) -> Tensor:
    saved: list[Tensor] = []
    handle = module.register_forward_hook(lambda m, i, o: saved.append(o))
    try:
        out = output_scores(model(x))
    finally:
        handle.remove()
    acts = saved[0]
    grads = torch.autograd.grad(out[:, target].sum(), acts)[0]
    acts, grads = acts[:, prefix:].detach(), grads[:, prefix:]
    weights = grads.mean(1, keepdim=True)
    cam = torch.relu((weights * acts).sum(-1))
    return cam.reshape(x.shape[0], 1, 4, 4)


def test_automatic_layer_tiny_vit_class_token(images: Tensor) -> None:
    torch.manual_seed(0)
    model = TinyViT().eval()
    result = attribute(model, images, "gradcam", target=1)
    # After the last attention, patch tokens reach the class-token head only through that
    # attention: the input of the last block's attention is the last useful token map.
    assert result.layer == "blocks.1.norm1"
    assert result.raw.shape == (2, 1, 4, 4) and result.maps.shape == (2, 1, 16, 16)
    expected = _manual_token_gradcam(model, images, model.blocks[1].norm1, 1, prefix=1)
    torch.testing.assert_close(result.raw, expected, rtol=1e-4, atol=1e-6)
    assert result.raw.abs().sum() > 0
    guided = attribute(model, images, "guided_gradcam", target=1)
    assert guided.maps.shape == images.shape and guided.layer == "blocks.1.norm1"


def test_automatic_layer_tiny_vit_mean_pooled(images: Tensor) -> None:
    torch.manual_seed(0)
    model = TinyViT(cls_token=False).eval()
    result = attribute(model, images, "gradcam", target=0)
    assert result.layer == "norm"
    expected = _manual_token_gradcam(model, images, model.norm, 0, prefix=0)
    torch.testing.assert_close(result.raw, expected, rtol=1e-4, atol=1e-6)


def test_automatic_layer_transformers_vit() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=4,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    model = transformers.ViTForImageClassification(config).eval()
    x = torch.rand(2, 3, 32, 32)
    result = attribute(model, x, "gradcam", target=3)
    # Not the key/value projections that follow it, though they get gradient too.
    assert result.layer == "vit.layers.1.layernorm_before"
    module = model.get_submodule(result.layer)
    torch.testing.assert_close(
        result.raw, _manual_token_gradcam(model, x, module, 3, prefix=1), rtol=1e-4, atol=1e-6
    )


def test_no_spatial_layer_lists_candidates() -> None:
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(ValueError, match=r"found no module with a spatial output.*pass layer="):
        attribute(mlp, torch.rand(2, 3, 2, 2), "gradcam", target=0)
    with pytest.raises(ValueError, match=r"no submodule named 'layer9'; did you mean .*'layer1'"):
        attribute(TinyResNet(), torch.rand(1, 3, 16, 16), "gradcam", layer="layer9")
    with pytest.raises(ValueError, match=r"layer: '6' outputs shape \(1, 4\); CAM methods need"):
        attribute(plain_cnn(), torch.rand(1, 3, 8, 8), "gradcam", layer="6")


def test_cam_needs_global_average_pooling_and_linear(images: Tensor) -> None:
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="use method='gradcam'"):
        attribute(TinyViT().eval(), images, "cam", target=0)


# --- the model comes back unchanged ---------------------------------------------------------


@pytest.mark.parametrize("name", ALL_METHODS)
def test_model_unchanged_after_every_method(name: str, images: Tensor) -> None:
    model = lived_in_model()
    before = snapshot(model)
    attribute(model, images, name, **FAST.get(name, {}))
    assert_unchanged(model, before)


def arm_last_forward(
    model: SmallCNN, run: Callable[[], Any], error: type[BaseException] = Boom
) -> int:
    """Arms the bomb to go off in the last forward pass of ``run`` (inside Captum's attribute())."""
    bomb = model.features[2]
    run()  # warms the per-model footprint cache, so the count below repeats
    bomb.calls, bomb.fuse = 0, None
    run()
    calls = bomb.calls
    bomb.calls, bomb.fuse, bomb.error = 0, calls, error
    return calls


@pytest.mark.parametrize("name", ALL_METHODS)
def test_model_unchanged_after_an_exception_half_way(name: str, images: Tensor) -> None:
    model = lived_in_model(bomb=True)
    x = images[:1]
    bomb = model.features[2]
    calls = arm_last_forward(
        model, lambda: attribute(model, x, name, target=1, **FAST.get(name, {}))
    )
    # First pass (target checks, layer search), one in the middle, the last (inside Captum).
    for fuse in sorted({1, (calls + 1) // 2, calls}):
        bomb.calls, bomb.fuse = 0, fuse
        before = snapshot(model)
        with pytest.raises(Boom):
            attribute(model, x, name, target=1, **FAST.get(name, {}))
        assert bomb.calls == fuse
        bomb.fuse = None
        assert_unchanged(model, before)
        bomb.fuse = fuse


@pytest.mark.parametrize("name", ["integrated_gradients", "occlusion", "guided_backprop"])
def test_model_unchanged_after_keyboard_interrupt(name: str, images: Tensor) -> None:
    model = lived_in_model(bomb=True)
    options = FAST.get(name, {})
    arm_last_forward(
        model, lambda: attribute(model, images, name, target=0, **options), KeyboardInterrupt
    )
    before = snapshot(model)
    with pytest.raises(KeyboardInterrupt):
        attribute(model, images, name, target=0, progress=True, **options)
    model.features[2].fuse = None
    assert_unchanged(model, before)


def test_batch_norm_statistics_untouched_in_a_train_mode_model(images: Tensor) -> None:
    torch.manual_seed(0)
    model = TinyResNet().train()
    before = snapshot(model)
    result = attribute(model, images, "integrated_gradients", target=1, n_steps=4)
    assert_unchanged(model, before)  # running_mean, running_var, num_batches_tracked
    reference = attribute(model.eval(), images, "integrated_gradients", target=1, n_steps=4)
    torch.testing.assert_close(result.maps, reference.maps)


def test_train_mode_model_runs_in_eval_mode_and_comes_back_training(images: Tensor) -> None:
    model = lived_in_model()
    first = attribute(model, images, "saliency", target=0)
    second = attribute(model, images, "saliency", target=0)
    torch.testing.assert_close(first.maps, second.maps)  # dropout was off
    model.eval()
    torch.testing.assert_close(first.maps, attribute(model, images, "saliency", target=0).maps)
    model.train()
    assert model.training and model.drop.training


# --- memory-aware batching and progress -----------------------------------------------------


def test_budget_sets_internal_batch_and_splits_examples(
    images: Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = seeded()
    x = torch.rand(4, 3, 16, 16)
    reference = attribute(
        model, x, "integrated_gradients", target=1, n_steps=12, internal_batch_size=48
    )
    forward = ForwardWrapper(model)
    per_example = measure_footprint(model, forward, x[:1]).per_example(backward=True)
    fixed = FIXED_OVERHEAD + 4 * 4 * x[0].nelement() * 4
    monkeypatch.setattr(attribution_module, "memory_in_use", lambda device: 0)
    # Room for 10 examples per pass: all four images, two steps at a time.
    roomy = attribute(
        model,
        x,
        "integrated_gradients",
        target=1,
        n_steps=12,
        memory_budget=fixed + 10.5 * per_example,
    )
    assert roomy.options["internal_batch_size"] == 8
    torch.testing.assert_close(roomy.maps, reference.maps, rtol=1e-4, atol=1e-6)
    # Room for 3: examples are split into calls of 3 and 1.
    tight = attribute(
        model,
        x,
        "integrated_gradients",
        target=1,
        n_steps=12,
        memory_budget=fixed + 3.5 * per_example,
    )
    assert tight.options["internal_batch_size"] == 3
    torch.testing.assert_close(tight.maps, reference.maps, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(tight.delta, reference.delta, rtol=1e-3, atol=1e-5)
    occlusion = attribute(model, x, "occlusion", target=1, memory_budget=fixed + 10.5 * per_example)
    assert occlusion.options["perturbations_per_eval"] >= 2
    with pytest.raises(ValueError, match=r"memory_budget: .* is too small"):
        attribute(
            model, x, "integrated_gradients", target=1, memory_budget=fixed + 0.5 * per_example
        )


def test_parse_budget() -> None:
    assert parse_budget("2GB") == 2_000_000_000 and parse_budget("1.5 GiB") == int(1.5 * 2**30)
    assert parse_budget(1e9) == 10**9 and parse_budget(None) is None
    with pytest.raises(ValueError, match="memory_budget: expected bytes or a string such as '2GB'"):
        parse_budget("two gigs")
    with pytest.raises(ValueError, match="memory_budget: expected a positive size"):
        parse_budget(0)


def test_progress_bar_on_request_and_off(
    images: Tensor, capsys: pytest.CaptureFixture[str]
) -> None:
    model = seeded()
    attribute(model, images, "integrated_gradients", target=0, n_steps=8, progress=True)
    err = capsys.readouterr().err
    assert "integrated_gradients" in err and "ex" in err
    attribute(model, images, "integrated_gradients", target=0, n_steps=8, progress=False)
    assert capsys.readouterr().err == ""


# --- bad input ---------------------------------------------------------------------------------


def test_bad_inputs_get_clear_errors(images: Tensor) -> None:
    model = seeded()
    with pytest.raises(
        TypeError, match=r"inputs: expected a floating-point tensor, got torch.int64"
    ):
        attribute(model, (images * 255).long(), "saliency")
    with pytest.raises(ValueError, match=r"inputs: expected a batch .* add a batch dimension"):
        attribute(model, torch.rand(16), "saliency")
    with pytest.raises(
        ValueError, match=r"inputs: method 'gradcam' needs images of shape \(N, C, H, W\)"
    ):
        attribute(model, images[0], "gradcam")
    with pytest.raises(
        ValueError, match=r"inputs: the model could not run on inputs of shape \(2, 1, 16, 16\)"
    ):
        attribute(model, images[:, :1], "saliency", target=0)
    with pytest.raises(ValueError, match=r"inputs: the batch is empty"):
        attribute(model, images[:0], "saliency")
    bad = images.clone()
    bad[1, 0, 3, 3] = float("nan")
    with pytest.raises(
        ValueError, match=r"inputs: contains NaN or infinite values \(examples \[1\]\)"
    ):
        attribute(model, bad, "integrated_gradients")
    with pytest.raises(TypeError, match=r"model: expected a torch.nn.Module"):
        attribute(lambda x: x, images, "saliency")


def test_bad_targets_get_clear_errors(images: Tensor) -> None:
    model = seeded()
    with pytest.raises(
        ValueError, match=r"target: class 5 is out of range for a model with 5 outputs"
    ):
        attribute(model, images, "saliency", target=5)
    with pytest.raises(ValueError, match=r"target: class 9 is out of range"):
        attribute(model, images, "occlusion", target=[0, 9])
    with pytest.raises(ValueError, match=r"target: expected one class per example \(2\), got 3"):
        attribute(model, images, "saliency", target=[0, 1, 2])
    with pytest.raises(ValueError, match=r"target: expected a class index >= 0"):
        attribute(model, images, "saliency", target=-1)
    with pytest.raises(ValueError, match=r"target: the callable must return one score per example"):
        attribute(model, images, "saliency", target=lambda out: out)
    with pytest.raises(TypeError, match=r"target: expected integer class indices"):
        attribute(model, images, "saliency", target=torch.tensor([0.5, 1.0]))


def test_bad_methods_and_options_get_clear_errors(images: Tensor) -> None:
    model = seeded()
    with pytest.raises(
        ValueError, match=r"method: unknown method 'gradcam\+\+'; expected one of saliency"
    ):
        attribute(model, images, "gradcam++")
    with pytest.raises(
        TypeError,
        match=r"n_step: not an option of method 'integrated_gradients'; accepted: .*n_steps",
    ):
        attribute(model, images, "integrated_gradients", n_step=10)
    with pytest.raises(TypeError, match=r"layer: method 'saliency' does not use a layer"):
        attribute(model, images, "saliency", layer="features")
    with pytest.raises(TypeError, match=r"baselines: method 'saliency' takes no baselines"):
        attribute(model, images, "saliency", baselines=0.0)
    with pytest.raises(ValueError, match=r"baselines: expected shape \(2, 3, 16, 16\)"):
        attribute(model, images, "integrated_gradients", baselines=torch.zeros(3, 3, 16, 16))
    with pytest.raises(TypeError, match=r"progress: expected True, False or None"):
        attribute(model, images, "saliency", progress="yes")
    with pytest.raises(ValueError, match=r"reduce: expected 'sum'"):
        attribute(model, images, "saliency", target=0).heatmap("mean")


def test_registry_describes_methods() -> None:
    methods = available_methods()
    assert set(methods) == {
        "saliency",
        "input_x_gradient",
        "smoothgrad",
        "integrated_gradients",
        "guided_backprop",
        "cam",
        "gradcam",
        "guided_gradcam",
        "occlusion",
        "lime",
        "kernel_shap",
        "deeplift",
    }
    assert not methods["saliency"].signed and methods["integrated_gradients"].signed
    assert [m for m, info in methods.items() if info.granularity == "layer"] == ["cam", "gradcam"]
    assert methods["smoothgrad"].batch_option == "nt_samples_batch_size"


def test_heatmap_and_signs(images: Tensor) -> None:
    model = seeded()
    result = attribute(model, images, "integrated_gradients", target=0, n_steps=6)
    assert isinstance(result, Attribution)
    heat = result.heatmap()
    assert heat.shape == (2, 16, 16) and heat.dtype == np.float32
    np.testing.assert_allclose(heat, result.maps.sum(1).numpy(), rtol=1e-6)
    saliency = attribute(model, images, "saliency", target=0)
    assert not saliency.signed and (saliency.maps >= 0).all()
    assert attribute(model, images, "saliency", target=0, abs=False).signed
    gradcam = attribute(model, images, "gradcam", target=0)
    assert not gradcam.signed and (gradcam.maps >= 0).all()


# --- text ----------------------------------------------------------------------------------------


def tiny_bert() -> nn.Module:
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=60,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=3,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


class GRUClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(40, 12)
        self.gru = nn.GRU(12, 16, batch_first=True)
        self.fc = nn.Linear(16, 4)

    def forward(self, ids: Tensor) -> Tensor:
        hidden, _ = self.gru(self.emb(ids))
        return self.fc(hidden[:, -1])


def test_text_integrated_gradients_on_a_transformers_classifier() -> None:
    model = tiny_bert()
    ids = torch.randint(5, 60, (2, 7))
    ids[1, 5:] = 0
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    before = snapshot(model)
    result = attribute_text(model, ids, "integrated_gradients", attention_mask=mask, n_steps=64)
    assert_unchanged(model, before)
    assert model.training  # as built from a config; it ran in eval mode and came back
    model.eval()
    assert result.layer == "bert.embeddings.word_embeddings" and result.scores.shape == (2, 7)
    logits = model(ids, attention_mask=mask).logits
    assert result.predicted == logits.argmax(1).tolist() == result.target
    torch.testing.assert_close(result.probabilities, torch.softmax(logits, 1).detach())
    assert (result.scores[1, 5:] == 0).all()
    # Completeness: the token scores add up to f(x) - f(all pad ids).
    with torch.no_grad():
        rows = torch.arange(2), torch.tensor(result.target)
        gap = logits[rows].detach() - model(torch.zeros_like(ids), attention_mask=mask).logits[rows]
    torch.testing.assert_close(result.total, gap, atol=2e-3, rtol=0.02)
    logits_of = lambda i, m: model(i, attention_mask=m).logits  # noqa: E731
    direct = ca.LayerIntegratedGradients(
        logits_of, model.bert.embeddings.word_embeddings
    ).attribute(
        ids,
        baselines=torch.zeros_like(ids),
        target=result.target,
        additional_forward_args=(mask,),
        n_steps=64,
    )
    torch.testing.assert_close(result.scores, direct.sum(-1) * mask, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "name", ["integrated_gradients", "input_x_gradient", "saliency", "occlusion"]
)
def test_text_methods_on_a_gru_classifier(name: str) -> None:
    torch.manual_seed(0)
    model = GRUClassifier().train()
    ids = torch.randint(1, 40, (3, 6))
    before = snapshot(model)
    result = attribute_text(model, ids, name, target=[0, 1, 2])
    assert_unchanged(model, before)
    assert result.scores.shape == (3, 6) and result.target == [0, 1, 2]
    assert result.layer == (None if name == "occlusion" else "emb")
    if name == "integrated_gradients":
        assert result.delta.abs().max() < 0.05 * result.total.abs().max() + 1e-4
    if name == "occlusion":
        model.eval()
        direct = ca.FeatureAblation(model).attribute(
            ids,
            baselines=torch.zeros_like(ids),
            target=[0, 1, 2],
            feature_mask=torch.arange(6).expand(3, 6),
        )
        torch.testing.assert_close(result.scores, direct.float(), rtol=1e-5, atol=1e-6)
    if name == "saliency":
        assert not result.signed and (result.scores >= 0).all()


def test_text_accepts_a_captum_layer_method() -> None:
    torch.manual_seed(0)
    model = GRUClassifier().eval()
    ids = torch.randint(1, 40, (2, 6))
    ours = attribute_text(model, ids, "integrated_gradients", target=1, n_steps=20)
    lig = ca.LayerIntegratedGradients(model, model.emb)
    theirs = attribute_text(model, ids, lig, target=1, n_steps=20, baselines=0)
    torch.testing.assert_close(theirs.scores, ours.scores, rtol=1e-4, atol=1e-6)
    assert theirs.method == "LayerIntegratedGradients"


class IdsAsFeatures(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(5, 2)

    def forward(self, ids: Tensor) -> Tensor:
        return self.fc(ids.float())


def test_text_errors() -> None:
    model = GRUClassifier()
    with pytest.raises(
        TypeError, match=r"input_ids: expected integer token ids, got torch.float32"
    ):
        attribute_text(model, torch.rand(2, 5))
    with pytest.raises(ValueError, match=r"method: unknown text method 'gradcam'"):
        attribute_text(model, torch.ones(1, 5, dtype=torch.long), "gradcam")
    with pytest.raises(ValueError, match=r"attention_mask: expected shape \(1, 5\)"):
        attribute_text(
            model,
            torch.ones(1, 5, dtype=torch.long),
            attention_mask=torch.ones(1, 4, dtype=torch.long),
        )
    with pytest.raises(ValueError, match=r"target: class 4 is out of range"):
        attribute_text(model, torch.ones(1, 5, dtype=torch.long), target=4)
    with pytest.raises(
        TypeError, match=r"steps: not an option of text method 'integrated_gradients'"
    ):
        attribute_text(model, torch.ones(1, 5, dtype=torch.long), steps=10)
    with pytest.raises(
        ValueError, match=r"embedding_layer: found no nn.Embedding that reads input_ids"
    ):
        attribute_text(IdsAsFeatures(), torch.ones(1, 5, dtype=torch.long), "saliency")


def test_math_helpers_are_consistent() -> None:
    # n_evaluations for occlusion counts windows the way Captum does.
    from deepvis_widgets.compute._methods import METHODS, fill_defaults, n_evaluations

    x = torch.rand(1, 3, 224, 224)
    attr = fill_defaults(METHODS["occlusion"], {}, x)
    assert attr["sliding_window_shapes"] == (3, 28, 28) and attr["strides"] == (3, 14, 14)
    assert n_evaluations(METHODS["occlusion"], attr, x) == (math.ceil((224 - 28) / 14) + 1) ** 2 + 1
