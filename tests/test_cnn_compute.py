"""compute/cnn.py and compute/feature_vis.py: known answers, errors, and the model left unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from deepvis_widgets.compute.cnn import (
    ReceptiveField,
    conv_filters,
    find_conv_blocks,
    layer_walk,
    receptive_field,
    resolve_conv_layer,
    resolve_layer,
    top_activating,
)
from deepvis_widgets.compute.feature_vis import (
    COLOR_CORRELATION_SVD_SQRT,
    FourierImage,
    crop_resize,
    display_image,
    evaluate_objective,
    feature_visualization,
    random_transform,
)


class Block(nn.Module):
    """A residual block of our own (two convolutions), as model code defines them."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(c, c, 3, padding=1)
        self.act = nn.ReLU()
        self.conv_b = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_b(self.act(self.conv_a(x)))


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(2)
        self.block = Block(6)
        self.head = nn.Conv2d(6, 8, 1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.block(self.pool(self.stem(x))))
        return self.fc(x.mean(dim=(2, 3)))


def small_cnn() -> SmallCNN:
    torch.manual_seed(0)
    net = SmallCNN()
    with torch.no_grad():
        net.stem[1].running_mean.uniform_(-0.1, 0.1)
        net.stem[1].running_var.uniform_(0.5, 1.5)
    return net.eval()


def snapshot(net: nn.Module) -> dict:
    return {
        "modes": [m.training for m in net.modules()],
        "flags": [p.requires_grad for p in net.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in net.parameters()],
        "state": {k: v.clone() for k, v in net.state_dict().items()},
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in net.modules()),
    }


def assert_unchanged(before: dict, after: dict) -> None:
    assert before["modes"] == after["modes"]
    assert before["flags"] == after["flags"]
    assert before["hooks"] == after["hooks"]
    for a, b in zip(before["grads"], after["grads"]):
        assert (a is None) == (b is None) and (a is None or torch.equal(a, b))
    for k, v in before["state"].items():
        assert torch.equal(v, after["state"][k]), k


def user_state(net: nn.Module) -> nn.Module:
    """A model the way a user may hand it over: training mode, a frozen layer, stale grads, a hook."""
    net.train()
    net.stem[0].weight.requires_grad_(False)
    net(torch.randn(2, 3, 16, 16)).sum().backward()
    net.fc.register_forward_hook(lambda m, i, o: None)
    return net


# --- layers and filters ---------------------------------------------------------------------------


def test_bad_layer_names_list_the_valid_ones() -> None:
    net = small_cnn()
    with pytest.raises(ValueError, match=r"layer: the model has no convolution layer named 'stem\.9'\. Did you mean 'stem\.0'\?.*Valid names \(4\): 'stem\.0', 'block\.conv_a', 'block\.conv_b', 'head'"):
        resolve_conv_layer(net, "stem.9")
    with pytest.raises(ValueError, match=r"layer: 'stem\.2' is a ReLU, not an nn\.Conv2d"):
        resolve_conv_layer(net, "stem.2")
    with pytest.raises(ValueError, match=r"no submodule named 'blok'\. Did you mean 'block'.*Convolution layers \(4\): 'stem\.0'"):
        resolve_layer(net, "blok")
    with pytest.raises(TypeError, match="layer: expected a layer name"):
        resolve_conv_layer(net, 3)
    with pytest.raises(ValueError, match="at least one nn.Conv2d"):
        resolve_conv_layer(nn.Linear(2, 2))
    assert resolve_conv_layer(net, net.head) == ("head", net.head)


def test_conv_filters_known_weights_modes_and_order() -> None:
    net = small_cnn()
    with torch.no_grad():
        w = torch.zeros(6, 3, 3, 3)
        for i in range(6):
            w[i, i % 3, 1, 1] = i + 1.0  # filter i: one centre weight of size i+1 in colour i % 3
        net.stem[0].weight.copy_(w)
    f = conv_filters(net)
    assert (f.layer, f.mode, f.weights.shape, f.kernel_size) == ("stem.0", "rgb", (6, 3, 3, 3), (3, 3))
    np.testing.assert_allclose(f.norms, np.arange(1, 7))
    assert f.order("norm").tolist() == [5, 4, 3, 2, 1, 0]
    assert f.order("index").tolist() == list(range(6))
    np.testing.assert_array_equal(f.weights, w.numpy())

    f = conv_filters(net, "head")
    assert f.mode == "channels" and f.weights.shape == (8, 6, 1, 1)
    s = conv_filters(net, "block.conv_a", mode="summary")
    expected = net.block.conv_a.weight.detach().pow(2).sum(1, keepdim=True).sqrt().numpy()
    np.testing.assert_allclose(s.weights, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="mode: 'rgb' needs kernels over 3 input channels; head has 6"):
        conv_filters(net, "head", mode="rgb")
    with pytest.raises(ValueError, match="mode: expected 'auto'"):
        conv_filters(net, mode="colour")
    # Big kernels are summarised automatically; depthwise kernels are their own channel.
    assert conv_filters(nn.Conv2d(512, 4, 3)).mode == "summary"
    dw = conv_filters(nn.Conv2d(8, 8, 5, groups=8))
    assert (dw.mode, dw.weights.shape, dw.groups) == ("channels", (8, 1, 5, 5), 8)


# --- blocks and the walk -----------------------------------------------------------------------------


def test_blocks_follow_the_model_names_and_absorb_norm_and_activation() -> None:
    net = small_cnn()
    blocks = find_conv_blocks(net, torch.randn(1, 3, 16, 16))
    got = [(b.name, b.output, b.conv, b.shape) for b in blocks]
    assert got == [
        ("stem.0", "stem.2", "stem.0", (6, 16, 16)),
        ("block", "block", "block.conv_b", (6, 8, 8)),
        ("head", "head", "head", (8, 8, 8)),
    ]


def test_walk_equals_forward_hooks_also_with_inplace_relu() -> None:
    net = small_cnn()
    x = torch.randn(1, 3, 16, 16)
    seen = {}
    handles = [
        net.stem[2].register_forward_hook(lambda m, i, o: seen.__setitem__("stem.2", o.clone())),
        net.block.register_forward_hook(lambda m, i, o: seen.__setitem__("block", o.clone())),
        net.head.register_forward_hook(lambda m, i, o: seen.__setitem__("head", o.clone())),
    ]
    with torch.no_grad():
        logits = net(x)
    for h in handles:
        h.remove()
    walk = layer_walk(net, x)
    assert walk.names() == ["stem.0", "block", "head"]
    for layer in walk.layers:
        np.testing.assert_array_equal(layer.activations, seen[layer.block.output][0].numpy())
    assert walk.layers[0].activations.min() >= 0, "the stem is read after its ReLU"
    np.testing.assert_allclose(walk.output, logits[0].numpy(), rtol=1e-6)
    np.testing.assert_array_equal(walk.layers[1].kernel, net.block.conv_b.weight.detach().numpy())
    np.testing.assert_array_equal(walk.input, x[0].numpy())
    # Explicit layers, read where the user says.
    walk = layer_walk(net, x[0], layers=["stem.0", "block.conv_a"])
    assert [layer.block.output for layer in walk.layers] == ["stem.0", "block.conv_a"]
    assert walk.layers[0].activations.min() < 0, "the conv's own output, before the ReLU"


def test_walk_bad_input_and_layers() -> None:
    net = small_cnn()
    with pytest.raises(ValueError, match=r"x: the model's first convolution expects 3 channels, got 1"):
        layer_walk(net, torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match=r"x: expected one input of shape \(1, C, H, W\)"):
        layer_walk(net, torch.zeros(2, 3, 16, 16))
    with pytest.raises(TypeError, match="x: expected a torch.Tensor"):
        layer_walk(net, np.zeros((3, 16, 16)))
    with pytest.raises(ValueError, match=r"layers: 'fc' does not output a \(N, C, H, W\) map"):
        layer_walk(net, torch.zeros(1, 3, 16, 16), layers=["fc"])
    with pytest.raises(ValueError, match="no submodule named 'nope'"):
        layer_walk(net, torch.zeros(1, 3, 16, 16), layers=["nope"])


def test_receptive_field_of_two_linear_3x3_convs_is_5x5() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1))
    nn.init.constant_(net[0].weight, 0.5)  # symmetric kernels: the gradient is centred
    nn.init.constant_(net[1].weight, 0.25)
    rf = receptive_field(net, "1", torch.randn(1, 1, 16, 16), mass=1.0)
    assert rf.radius == (2.5, 2.5) and rf.stride == (1.0, 1.0) and rf.offset == (0.0, 0.0)
    assert rf.box(8, 8) == (6.0, 6.0, 11.0, 11.0)
    assert rf.box(0, 15) == (0.0, 13.0, 3.0, 16.0), "clipped to the input"
    # Strided: each position covers 4 input pixels.
    strided = ReceptiveField((2.0, 2.0), (0.0, 0.0), (4.0, 4.0), (16, 16), (4, 4))
    assert strided.box(3, 0) == (12.0, 0.0, 16.0, 4.0)
    with pytest.raises(ValueError, match=r"mass: expected a fraction in \(0, 1\]"):
        receptive_field(net, "1", torch.randn(1, 1, 16, 16), mass=0)


def test_top_activating_finds_the_bright_spot() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.MaxPool2d(2))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].weight[1].fill_(-1.0)
    images = torch.zeros(6, 1, 16, 16)
    images[4, 0, 10:12, 4:6] = 1.0  # brightest
    images[1, 0, 2:4, 2:4] = 0.5
    calls = []
    top = top_activating(net, "1", 0, images, k=3, batch_size=4, progress=lambda d, n: calls.append((d, n)))
    assert top.indices.tolist()[:2] == [4, 1]
    assert top.values[0] == pytest.approx(4.0)
    assert tuple(top.positions[0]) in {(5, 2), (5, 1)}
    top_, left, bottom, right = top.boxes[0]
    assert top_ <= 10 and left <= 4 and bottom >= 12 and right >= 6, "the box covers the bright spot"
    assert calls == [(4, 6), (6, 6)]
    assert top.all_values.shape == (6,)
    with pytest.raises(ValueError, match=r"channel: expected an index in 0\.\.1 \(layer '1' has 2 channels\), got 2"):
        top_activating(net, "1", 2, images)
    with pytest.raises(ValueError, match=r"images: expected a tensor of model inputs \(N, C, H, W\)"):
        top_activating(net, "1", 0, images[0])
    with pytest.raises(ValueError, match="k: expected a positive int"):
        top_activating(net, "1", 0, images, k=0)


# --- feature visualization ---------------------------------------------------------------------------


def test_fourier_image_and_transforms() -> None:
    g = torch.Generator().manual_seed(0)
    img = FourierImage(3, 3, 40, 30, generator=g)
    x = img().detach()
    assert x.shape == (3, 3, 40, 30) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert float((x - 0.5).abs().max()) < 0.05, "starts near grey"
    # Colour decorrelation: the matrix's columns are scaled so the largest has norm 1.
    c = COLOR_CORRELATION_SVD_SQRT / np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0).max()
    np.testing.assert_allclose(img.color.numpy(), c, rtol=1e-6)
    # The 1/f scaling makes low frequencies dominate: neighbouring pixels correlate.
    with torch.no_grad():
        img.spectrum.normal_(0, 1.0, generator=g)
    y = img().detach()[0, 0]
    assert torch.corrcoef(torch.stack([y[:, :-1].flatten(), y[:, 1:].flatten()]))[0, 1] > 0.5
    out = random_transform(torch.rand(2, 3, 64, 64), torch.Generator().manual_seed(1))
    assert out.shape == (2, 3, 76, 76)
    gray = random_transform(torch.full((1, 1, 32, 32), 0.5), torch.Generator().manual_seed(2))
    assert torch.allclose(gray, torch.full_like(gray, 0.5), atol=1e-6), "grey padding keeps a grey image grey"


def test_feature_vis_batch_of_channels_each_excites_its_own() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
    for conv in (net[0], net[2]):
        nn.init.normal_(conv.weight, std=0.5)
    res = feature_visualization(net, "2", [0, 3], size=32, steps=40, seed=1)
    assert res.images.shape == (2, 1, 32, 32, 3) and res.history.shape == (40, 2)
    assert (res.values > res.start_values + 0.5).all(), (res.values, res.start_values)
    assert res.history[-5:].mean() > res.history[:5].mean()
    imgs = torch.from_numpy(res.images[:, 0]).permute(0, 3, 1, 2)
    on_0 = evaluate_objective(net, "2", 0, imgs)
    on_3 = evaluate_objective(net, "2", 3, imgs)
    assert on_0[0] > on_0[1] and on_3[1] > on_3[0], "each image excites its own channel more than the other's image"
    np.testing.assert_allclose([on_0[0], on_3[1]], res.values[:, 0], rtol=1e-5)
    assert res.labels == ["2 · channel 0", "2 · channel 3"] and res.device == "cpu"
    # Same seed, same images.
    again = feature_visualization(net, "2", [0, 3], size=32, steps=40, seed=1)
    np.testing.assert_array_equal(again.images, res.images)


def test_our_adam_follows_the_paper() -> None:
    from deepvis_widgets.compute.feature_vis import _Adam

    p = nn.Parameter(torch.tensor([1.0, -2.0]))
    ours = _Adam([p], 0.1)
    grads = [torch.tensor([0.5, -1.0]), torch.tensor([0.25, 3.0])]
    m = v = np.zeros(2)
    expected = np.array([1.0, -2.0])
    for t, g in enumerate(grads, 1):
        ours.step([g])
        m = 0.9 * m + 0.1 * g.numpy()
        v = 0.999 * v + 0.001 * g.numpy() ** 2
        expected = expected - 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-6)


def test_feature_vis_neuron_diversity_and_plain_pixels() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1), nn.Tanh())
    for conv in (net[0], net[2]):
        nn.init.normal_(conv.weight, std=0.5)
    res = feature_visualization(net, "3", 1, size=(24, 32), steps=30, objective="neuron", samples=3, diversity=1.0)
    assert res.images.shape == (1, 3, 24, 32, 3)
    a, b = res.images[0, 0], res.images[0, 1]
    assert np.abs(a - b).mean() > 0.01, "diversity samples differ"
    assert (res.values > res.start_values).all()
    plain = feature_visualization(net, "3", 1, size=24, steps=10, decorrelate=False, transforms=False)
    assert plain.values[0, 0] > plain.start_values[0, 0]


def test_redirected_relu_wakes_a_channel_that_is_off_at_the_start() -> None:
    # Pre-activation = R + G + B - 2: about -0.5 for the grey start, so the ReLU passes no gradient.
    net = nn.Sequential(nn.Conv2d(3, 1, 1), nn.ReLU(inplace=True))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.fill_(-2.0)
    stuck = feature_visualization(net, "1", 0, size=16, steps=50, transforms=False, redirect_relu=False)
    assert stuck.values[0, 0] == 0 and stuck.start_values[0, 0] == 0
    woken = feature_visualization(net, "1", 0, size=16, steps=50, transforms=False)
    assert woken.values[0, 0] > 0.05, "the redirected gradient switches the unit on"
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in net.modules()) == 0


def test_redirected_clamp_gradient() -> None:
    from deepvis_widgets.compute.feature_vis import _RedirectedClamp

    x = torch.tensor([[-1.0, 2.0, 7.0], [-1.0, -2.0, 8.0]], requires_grad=True)
    grad_out = torch.tensor([[-1.0, -1.0, -1.0], [-1.0, 1.0, 1.0]])
    (g,) = torch.autograd.grad(_RedirectedClamp.apply(x, 0.0, 6.0), x, grad_out)
    # Row 0 has an active unit: the plain clamp gradient. Row 1 is blocked everywhere: the gradient passes
    # where it pushes x into [0, 6] (a larger -1, a smaller 8) and stops where it pushes x further out.
    assert g.tolist() == [[0.0, -1.0, 0.0], [-1.0, 0.0, 1.0]]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"layer": "2", "channel": 9}, ValueError, r"channel: expected an index in 0\.\.3 \(layer '2' has 4 channels\), got 9"),
        ({"layer": "9", "channel": 0}, ValueError, r"layer: the model has no submodule named '9'.*Convolution layers \(2\): '0', '2'"),
        ({"layer": None, "channel": 0}, ValueError, "layer: expected a layer name for objective='channel'"),
        ({"layer": None, "channel": 7, "objective": "logit"}, ValueError, r"channel: expected an index in 0\.\.4 \(the model's output has 5 classes\), got 7"),
        ({"layer": None, "channel": "zebra", "objective": "logit", "class_names": list("abcde")}, ValueError, "channel: the model's output has no label 'zebra'"),
        ({"layer": "2", "channel": 0, "objective": "pixel"}, ValueError, "objective: expected 'channel', 'neuron' or 'logit'"),
        ({"layer": "2", "channel": 0, "size": 8}, ValueError, "size: expected at least 16 pixels"),
        ({"layer": "2", "channel": 0, "size": "big"}, TypeError, r"size: expected an int or \(height, width\)"),
        ({"layer": "2", "channel": 0, "steps": 0}, ValueError, "steps: expected a positive int"),
        ({"layer": "2", "channel": 0, "diversity": 1.0}, ValueError, "diversity: needs samples >= 2"),
        ({"layer": "2", "channel": [], "steps": 1}, ValueError, "channel: expected at least one channel index"),
        ({"layer": "2", "channel": 1.5}, TypeError, "channel: expected an int index, got float"),
        ({"layer": "2", "channel": 0, "normalize": "imagenet"}, TypeError, "normalize: expected a callable"),
    ],
)
def test_feature_vis_bad_arguments(kwargs: dict, exc: type, match: str) -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    with pytest.raises(exc, match=match):
        feature_visualization(net, **{"size": 20, "steps": 2, **kwargs})


def test_display_and_crop_helpers() -> None:
    img = display_image(torch.tensor([[[0.0, 2.0], [4.0, 8.0]]]))
    assert img.shape == (2, 2, 3) and img[1, 1, 0] == 1.0 and img[0, 0, 2] == 0.0
    np.testing.assert_allclose(display_image(np.full((2, 2, 3), 255, np.uint8)), 1.0)
    with pytest.raises(ValueError, match=r"image: expected float values in \[0, 1\]"):
        display_image(np.full((2, 2, 3), 3.0))
    with pytest.raises(ValueError, match=r"image: expected an \(H, W, 3\) or \(H, W\) image"):
        display_image(np.zeros((2, 2, 2, 2), np.uint8))
    big = np.zeros((40, 40, 3), np.float32)
    big[20:, 20:] = 1.0  # bottom-right quarter white
    crop = crop_resize(big, (10, 10, 20, 20), (20, 20), 8)  # input coords are half the display's
    assert crop.shape == (8, 8, 3) and crop.min() > 0.99


# --- the model comes back unchanged --------------------------------------------------------------------


def test_every_entry_point_leaves_the_model_unchanged() -> None:
    net = user_state(small_cnn())
    before = snapshot(net)
    x = torch.randn(1, 3, 16, 16)
    conv_filters(net, "head")
    find_conv_blocks(net, x)
    layer_walk(net, x)
    receptive_field(net, "block", x)
    top_activating(net, "block", 1, torch.randn(5, 3, 16, 16), k=2)
    feature_visualization(net, "block", [0, 1], size=16, steps=3)
    feature_visualization(net, None, 2, size=16, steps=3, objective="logit")
    evaluate_objective(net, "head", 0, torch.rand(2, 3, 16, 16))
    assert_unchanged(before, snapshot(net))
    assert net.training


def test_model_unchanged_after_an_exception_mid_optimisation() -> None:
    net = user_state(small_cnn())
    before = snapshot(net)

    def stop(step: int, total: int) -> None:
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        feature_visualization(net, "block", 0, size=16, steps=5, progress=stop)
    assert_unchanged(before, snapshot(net))
    with pytest.raises(RuntimeError, match="boom"):
        top_activating(net, "head", 0, torch.randn(4, 3, 16, 16), batch_size=2, progress=lambda d, n: (_ for _ in ()).throw(RuntimeError("boom")))
    assert_unchanged(before, snapshot(net))


# --- EfficientNet-Lite0 (the reference model) -----------------------------------------------------------


@pytest.fixture(scope="module")
def lite0():
    from deepvis_widgets.examples.imagenet import efficientnet_lite0

    return efficientnet_lite0()


def _norm(x: torch.Tensor) -> torch.Tensor:
    return (x * 255 - 127) / 128


@pytest.mark.slow
def test_lite0_class_logit_rises_far_above_noise_and_start(lite0) -> None:
    from deepvis_widgets.examples.imagenet import IMAGENET_CLASSES

    before = snapshot(lite0)
    espresso = IMAGENET_CLASSES.index("espresso")
    res = feature_visualization(lite0, None, "espresso", size=64, steps=24, objective="logit", normalize=_norm, class_names=IMAGENET_CLASSES)
    assert res.targets == [espresso] and res.labels == [f"class {espresso}: espresso"]
    noise = evaluate_objective(lite0, None, espresso, torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(0)), objective="logit", normalize=_norm)
    start = float(res.start_values[0, 0])
    final = float(res.values[0, 0])
    assert final > start + 10 and final > noise.max() + 10, (final, start, noise.max())
    img = torch.from_numpy(res.images[0]).permute(0, 3, 1, 2)
    assert int(lite0(_norm(img)).argmax()) == espresso
    assert_unchanged(before, snapshot(lite0))


@pytest.mark.slow
def test_lite0_walk_equals_hooks_and_names(lite0) -> None:
    from deepvis_widgets.examples.imagenet import preprocess, sample_photos

    x = preprocess(sample_photos()["coffee"], 128)
    walk = layer_walk(lite0, x)
    assert walk.names() == ["_conv_stem", *[f"_blocks.{i}" for i in range(16)], "_conv_head"]
    assert walk.layers[0].block.output == "_act_stem" and walk.layers[-1].block.output == "_act_head"
    modules = dict(lite0.named_modules())
    seen = {}
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.detach().clone())) for n in ("_act_stem", "_blocks.7", "_act_head")]
    with torch.no_grad():
        logits = lite0(x)
    for h in handles:
        h.remove()
    by_output = {layer.block.output: layer for layer in walk.layers}
    for name, act in seen.items():
        np.testing.assert_array_equal(by_output[name].activations, act[0].numpy())
    np.testing.assert_allclose(walk.output, logits[0].numpy(), rtol=1e-5, atol=1e-5)
    assert walk.layers[8].block.name == "_blocks.7" and walk.layers[8].block.conv == "_blocks.7._project_conv"
    # Receptive fields grow with depth and stay inside the input.
    radii = [layer.receptive_field.radius[0] for layer in walk.layers]
    assert radii[0] < radii[5] < radii[-1] and all(r <= 128 for r in radii)
    assert not math.isnan(radii[-1])


def test_peak_positions_break_ties_at_the_centre_of_the_plateau() -> None:
    from deepvis_widgets.compute.cnn import peak_positions

    m = torch.zeros(2, 5, 7)
    m[0, 1:4, 0:5] = 6.0  # a saturated plateau: first in memory order is (1, 0), its middle (2, 2)
    m[1, 4, 6] = 1.0
    values, y, x = peak_positions(m)
    assert values.tolist() == [6.0, 1.0] and y.tolist() == [2, 4] and x.tolist() == [2, 6]
    r = torch.randn(3, 4, 6, 7)
    v, y, x = peak_positions(r)
    assert torch.equal(v, r.flatten(2).max(2).values) and torch.equal(y * 7 + x, r.flatten(2).argmax(2))
