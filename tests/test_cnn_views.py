"""FilterGrid, LayerWalk and FeatureVisView: Python validation, and rendering in headless Chromium
from save_html pages with the network blocked (pixels read back, clicks, hostile names)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import traitlets
from torch import nn

from deepvis_widgets._arrays import decode_array
from deepvis_widgets.compute.feature_vis import FeatureVisResult, feature_visualization
from deepvis_widgets.widgets.feature_vis import FeatureVisView
from deepvis_widgets.widgets.filters import FilterGrid
from deepvis_widgets.widgets.layer_walk import LayerWalk

from .conftest import canvas_pixel, distinct_colors, open_offline_page, wait_drawn

HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE2 = "</script><script>alert(2)</script>"
YELLOW = (255, 235, 59)


def rgb_net() -> nn.Sequential:
    """conv(3->2, 3x3): filter 0 is +1 on red, filter 1 is -2 on blue (the larger norm); then conv(2->4, 1x1)."""
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(2, 4, 1))
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].weight[0, 0] = 1.0
        net[0].weight[1, 2] = -2.0
    return net.eval()


def hostile_net() -> nn.Module:
    """A CNN whose layer names are markup (ModuleDict keys may be any string without a dot)."""
    net = nn.Module()
    body = nn.ModuleDict()
    body.add_module(HOSTILE, nn.Conv2d(1, 2, 3, padding=1))
    body.add_module(HOSTILE2, nn.Conv2d(2, 3, 3, padding=1))
    net.body = body

    def forward(x: torch.Tensor) -> torch.Tensor:
        return body[HOSTILE2](torch.relu(body[HOSTILE](x))).mean(dim=(2, 3))

    net.forward = forward  # type: ignore[method-assign]
    return net.eval()


def spot_net() -> nn.Sequential:
    """channel 0 copies the input (1x1, weight 1), channel 1 its negative: the peak is where the image is bright."""
    net = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.ReLU())
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([1.0, -1.0]).reshape(2, 1, 1, 1))
    return net.eval()


def _open(browser, tmp_path, widget, name="view.html", **kwargs):
    path = tmp_path / name
    widget.save_html(path)
    page, log = open_offline_page(browser, **kwargs)
    page.goto(path.as_uri())
    wait_drawn(page)
    return page, log


def _bbox_of_colour(page, selector: str, rgb: tuple[int, int, int], tol: int = 12) -> list[float] | None:
    """(top, left, bottom, right) as fractions of the canvas of the pixels close to ``rgb``."""
    return page.evaluate(
        """([sel, rgb, tol]) => {
            const c = document.querySelector(sel);
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let t = Infinity, l = Infinity, b = -1, r = -1;
            for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) {
                const o = (y * c.width + x) * 4;
                if (Math.abs(d[o] - rgb[0]) <= tol && Math.abs(d[o+1] - rgb[1]) <= tol && Math.abs(d[o+2] - rgb[2]) <= tol) {
                    t = Math.min(t, y); l = Math.min(l, x); b = Math.max(b, y); r = Math.max(r, x);
                }
            }
            return b < 0 ? null : [t / c.height, l / c.width, (b + 1) / c.height, (r + 1) / c.width];
        }""",
        [selector, list(rgb), tol],
    )


def _assert_png_download(page, name: str) -> None:
    with page.expect_download() as info:
        page.click(".dv-toolbar .dv-button")
    assert info.value.suggested_filename == name
    data = open(info.value.path(), "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(data[16:20], "big") > 200


# --- Python side ------------------------------------------------------------------------------


def test_filter_grid_state_and_layers() -> None:
    net = rgb_net()
    w = FilterGrid(net, sort="norm")
    assert (w.layer, w.mode, w.layers, w.in_channels) == ("0", "rgb", ["0", "2"], 3)
    assert isinstance(w.get_state()["weights"]["buffer"], memoryview)
    np.testing.assert_array_equal(decode_array(w.weights), net[0].weight.detach().numpy())
    np.testing.assert_allclose(decode_array(w.norms), [3.0, 6.0])
    w.selected = 1
    w.show_layer("2")
    assert (w.layer, w.mode, w.weights["shape"], w.selected) == ("2", "channels", [4, 2, 1, 1], None)
    reply, _ = w._load_layer({"layer": "nope"}, [])
    assert reply["ok"] is False and "Valid names (2): '0', '2'" in reply["error"]
    assert w.error.startswith("ValueError: layer:"), "the error panel shows it too"
    reply, _ = w._load_layer({"layer": "0"}, [])
    assert reply == {"ok": True, "layer": "0"} and w.error == ""


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: FilterGrid(rgb_net(), "1"), ValueError, r"layer: '1' is a ReLU, not an nn\.Conv2d\. .*Valid names \(2\): '0', '2'"),
        (lambda: FilterGrid(rgb_net(), "conv9"), ValueError, "no convolution layer named 'conv9'"),
        (lambda: FilterGrid(nn.Linear(3, 3)), ValueError, "at least one nn.Conv2d"),
        (lambda: FilterGrid(rgb_net(), colour="red"), TypeError, "unexpected keyword argument.*colour"),
        (lambda: FilterGrid(rgb_net(), "2", mode="rgb"), ValueError, "mode: 'rgb' needs kernels over 3 input channels"),
    ],
)
def test_filter_grid_bad_input(call, exc, match) -> None:
    with pytest.raises(exc, match=match):
        call()


def test_filter_grid_trait_validation() -> None:
    w = FilterGrid(rgb_net())
    with pytest.raises(traitlets.TraitError, match=r"selected: expected a filter index in 0\.\.1, got 5"):
        w.selected = 5
    with pytest.raises(traitlets.TraitError, match="tile_size: expected 0"):
        w.tile_size = 3


def test_layer_walk_payload_and_validation() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 80, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(80, 6, 3, padding=1))
    x = torch.randn(1, 3, 120, 120)
    w = LayerWalk(net, x, max_channels=16, max_side=30, labels=None)
    assert [b["name"] for b in w.layers] == ["0", "3"] and w.layers[0]["output"] == "1"
    first = w.layers[0]
    shown = decode_array(first["channels"]).astype(int)
    assert len(shown) == 16 and (np.diff(shown) > 0).all()
    peaks = net[1](net[0](x))[0].detach().flatten(1).max(1).values.numpy()
    assert set(shown) == set(np.argsort(-peaks)[:16]), "the strongest channels are the ones sent"
    maps = decode_array(first["maps"])
    assert maps.shape == (16, 30, 30) and first["shape"] == [80, 120, 120]
    pooled = torch.nn.functional.adaptive_avg_pool2d(net[1](net[0](x))[:, shown], (30, 30))[0].detach().numpy()
    np.testing.assert_allclose(maps, pooled, atol=first["maps"]["scale"])  # uint8 quantisation step
    assert decode_array(first["kernel"]).shape == (16, 3, 3, 3) and first["kernel_mode"] == "rgb"
    boxes = decode_array(first["boxes"])
    assert boxes.shape == (16, 4) and boxes.min() >= 0 and boxes.max() <= 1
    w.selected = (0, int(shown[3]))
    missing = next(c for c in range(80) if c not in shown)
    with pytest.raises(traitlets.TraitError, match=f"selected: channel {missing} of block '0' is not shown"):
        w.selected = (0, missing)
    with pytest.raises(traitlets.TraitError, match=r"selected: expected a block index in 0\.\.1"):
        w.selected = (2, 0)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"image": torch.zeros(1, 1, 8, 8)}, ValueError, "x: the model's first convolution expects 3 channels, got 1"),
        ({"image": np.zeros((8, 8, 3), np.float64)}, TypeError, r"image: expected a model-input tensor \(1, C, H, W\) or a uint8 photo"),
        ({"image": torch.zeros(1, 3, 8, 8), "labels": ["a", "b"]}, ValueError, r"labels: expected 4 class names \(one per model output\), got 2"),
        ({"image": torch.zeros(1, 3, 8, 8), "preprocess": "imagenet"}, TypeError, "preprocess: expected a callable"),
        ({"image": torch.zeros(1, 3, 8, 8), "max_channels": 0}, ValueError, "max_channels: expected an int >= 1"),
        ({"image": torch.zeros(1, 3, 8, 8), "layers": ["9"]}, ValueError, "layer: the model has no submodule named '9'"),
    ],
)
def test_layer_walk_bad_input(kwargs, exc, match) -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(exc, match=match):
        LayerWalk(net, **kwargs)


def test_layer_walk_photo_with_default_preprocess_and_caption() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    photo = np.full((10, 12, 3), 255, np.uint8)
    w = LayerWalk(net, photo, labels=["a", "b", "c", "d"])
    np.testing.assert_allclose(decode_array(w.image), 1.0)
    np.testing.assert_allclose(w.walk.input, 1.0)
    assert w.caption.count("·") == 2


def test_feature_vis_view_from_model_progress_and_examples() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 4, 3, padding=1))
    images = torch.rand(10, 3, 24, 24)
    statuses: list[dict] = []
    view = FeatureVisView(title="t")
    view.observe(lambda ch: statuses.append(ch["new"]), "_status")
    view.run(net, "2", [1, 2], images=images, image_names=[f"img {i}" for i in range(10)], k=3, size=24, steps=6, example_size=16)
    assert decode_array(view.images).shape == (2, 1, 24, 24, 3)
    assert decode_array(view.examples).shape == (2, 3, 16, 16, 3)
    assert view.labels == ["2 · channel 1", "2 · channel 2"] and len(view.example_labels[0]) == 3
    ex_values = decode_array(view.example_values)
    assert (np.diff(ex_values, axis=1) <= 0).all(), "examples strongest first"
    fractions = [s["fraction"] for s in statuses if s["message"].startswith("optimising: step")]
    assert fractions and fractions[-1] == pytest.approx(0.9) and fractions == sorted(fractions)
    assert statuses[-1] == {"message": "", "fraction": None}
    view.selected = (1, 3)  # the last example of target 1
    with pytest.raises(traitlets.TraitError, match=r"selected: expected \(target < 2, column < 4\)"):
        view.selected = (0, 4)


def test_feature_vis_view_errors_show_in_the_panel() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    view = FeatureVisView()
    with pytest.raises(ValueError, match=r"channel: expected an index in 0\.\.3"):
        view.run(net, "1", 9, size=16, steps=1)
    assert "channel: expected an index in 0..3 (layer '1' has 4 channels), got 9" in view.error
    with pytest.raises(TypeError, match="result: expected a FeatureVisResult"):
        view.show_result({"images": 1})
    res = feature_visualization(net, "1", 0, size=16, steps=1)
    with pytest.raises(ValueError, match=r"examples: expected \(1, k, h, w, 3\) images"):
        FeatureVisView(res, examples=np.zeros((2, 3, 8, 8, 3)))
    with pytest.raises(TypeError, match="run\\(\\) sets progress itself"):
        view.run(net, "1", 0, progress=print)


# --- in the browser ---------------------------------------------------------------------------------

browser_test = pytest.mark.browser


@browser_test
def test_filter_grid_draws_kernels_sorts_and_enlarges(browser, tmp_path) -> None:
    page, log = _open(browser, tmp_path, FilterGrid(rgb_net(), title="rgb filters"))
    # Tiles are 57 px (3 weights x 19) with a 2 px gap: centres at 28/116 and 87/116 of the canvas.
    first, second = (28 / 116, 0.5), (87 / 116, 0.5)
    assert tuple(canvas_pixel(page, ".dv-filters-canvas", *first)[:3]) == (255, 128, 128), "filter 0: +red, grey = 0"
    assert tuple(canvas_pixel(page, ".dv-filters-canvas", *second)[:3]) == (128, 128, 0), "filter 1: -blue"
    page.select_option("select[aria-label=sort]", "norm")
    assert tuple(canvas_pixel(page, ".dv-filters-canvas", *first)[:3]) == (128, 128, 0), "largest norm first"
    box = page.query_selector(".dv-filters-canvas").bounding_box()
    page.mouse.click(box["x"] + 10, box["y"] + 10)
    assert page.is_visible(".dv-filters-detail")
    assert "filter 1" in page.inner_text(".dv-filters-detail-text") and "rank 1 of 2" in page.inner_text(".dv-filters-detail-text")
    assert tuple(canvas_pixel(page, ".dv-filters-detail-canvas", 0.5, 0.5)[:3]) == (128, 128, 0)
    # Another layer needs a kernel: offline the menu says so and keeps the saved layer.
    page.select_option("select[aria-label=layer]", "2")
    page.wait_for_function("document.querySelector('.dv-filters-note').textContent.includes('live kernel')")
    assert page.eval_on_selector("select[aria-label=layer]", "s => s.value") == "0"
    with page.expect_download() as info:
        page.click(".dv-toolbar .dv-button")
    assert info.value.suggested_filename == "rgb-filters.png"
    assert log.blocked == [] and [e for e in log.errors if "no kernel" not in e] == []
    page.context.close()


@browser_test
def test_filter_grid_hostile_layer_names_are_text(browser, tmp_path) -> None:
    net = hostile_net()
    page, log = _open(browser, tmp_path, FilterGrid(net, f"body.{HOSTILE2}", title=HOSTILE))
    assert page.inner_text(".dv-title") == HOSTILE
    options = page.eval_on_selector_all("select[aria-label=layer] option", "os => os.map(o => o.textContent)")
    assert options == [f"body.{HOSTILE}", f"body.{HOSTILE2}"]
    assert page.inner_text(".dv-filters-info").startswith(f"body.{HOSTILE2} · 3 filters · 3×3 · 2 input channels")
    assert distinct_colors(page, ".dv-filters-canvas") > 4
    page.wait_for_timeout(200)
    assert page.query_selector("img") is None and log.dialogs == []
    page.context.close()


@browser_test
def test_layer_walk_draws_and_outlines_the_peak_on_the_input(browser, tmp_path) -> None:
    image = torch.zeros(1, 1, 32, 32)
    image[0, 0, 20:23, 4:7] = 1.0  # a bright 3x3 square: channel 0 peaks at its middle, (21, 5)
    w = LayerWalk(spot_net(), image, title="spot")
    page, log = _open(browser, tmp_path, w)
    assert page.inner_text(".dv-walk-row-head").startswith("0 → 1 · 2×32×32")
    assert tuple(canvas_pixel(page, ".dv-walk-input", 5.5 / 32, 21.5 / 32)[:3]) == (255, 255, 255), "bright square drawn"
    assert tuple(canvas_pixel(page, ".dv-walk-input", 0.8, 0.2)[:3]) == (0, 0, 0)
    assert _bbox_of_colour(page, ".dv-walk-input", YELLOW) is None, "no box before a click"
    assert distinct_colors(page, ".dv-walk-row-canvas") > 1
    box = page.query_selector(".dv-walk-row-canvas").bounding_box()
    page.mouse.click(box["x"] + 10, box["y"] + 10)  # channel 0
    text = page.inner_text(".dv-walk-detail-text")
    assert "channel 0 of 2" in text and "peak 1 at (21, 5)" in text
    top, left, bottom, right = _bbox_of_colour(page, ".dv-walk-input", YELLOW)
    # A 1x1 conv sees one pixel: the box is (21, 5)..(22, 6) of 32, give or take the 2 px stroke.
    assert abs(top - 21 / 32) < 0.04 and abs(left - 5 / 32) < 0.04 and abs(bottom - 22 / 32) < 0.04 and abs(right - 6 / 32) < 0.04
    assert page.is_visible(".dv-walk-kernel")
    assert tuple(canvas_pixel(page, ".dv-walk-kernel", 0.5, 0.5)[:3]) == (103, 0, 31), "weight +1 at full red"
    assert "kernel of 0 (1×1, 1 input channel" in page.inner_text(".dv-walk-kernel-label")
    big = distinct_colors(page, ".dv-walk-big")
    assert big > 2
    _assert_png_download(page, "spot.png")
    assert log.blocked == [] and log.errors == []
    page.context.close()


@browser_test
def test_layer_walk_hostile_block_names_and_dark_theme(browser, tmp_path) -> None:
    w = LayerWalk(hostile_net(), torch.rand(1, 1, 16, 16), title=HOSTILE2)
    page, log = _open(browser, tmp_path, w, color_scheme="dark")
    names = page.eval_on_selector_all(".dv-walk-row-name", "els => els.map(e => e.textContent)")
    assert names == [f"body.{HOSTILE}", f"body.{HOSTILE2}"]
    assert page.inner_text(".dv-title") == HOSTILE2
    assert page.eval_on_selector(".dv-root", "e => getComputedStyle(e).backgroundColor") == "rgb(17, 20, 24)"
    page.wait_for_timeout(200)
    assert page.query_selector("img") is None and log.dialogs == []
    page.context.close()


def _result(labels: list[str]) -> FeatureVisResult:
    images = np.zeros((2, 2, 20, 20, 3), np.float32)
    images[0, :, :, :, 0] = 1.0  # target 0: red
    images[1, :, :, :, 2] = 1.0  # target 1: blue
    images[1, 1, :10] = 1.0  # second sample of target 1: top half white
    return FeatureVisResult(
        images=images, values=np.array([[3.0, 2.5], [1.0, 0.5]], np.float32), start_values=np.zeros((2, 2), np.float32),
        history=np.cumsum(np.ones((5, 2), np.float32), 0), layer="", targets=[0, 1], objective="logit", labels=labels,
        seconds=0.1, device="cpu",
    )


@browser_test
def test_feature_vis_view_draws_enlarges_and_keeps_labels_as_text(browser, tmp_path) -> None:
    examples = np.zeros((2, 3, 8, 8, 3), np.float32)
    examples[:, :, :, :, 1] = 1.0  # green examples
    view = FeatureVisView(
        _result([f"class 0: {HOSTILE}", f"class 1: {HOSTILE2}"]), examples=examples,
        example_values=[[3, 2, 1], [3, 2, 1]], example_labels=[[HOSTILE] * 3, ["a", "b", "c"]], title="fv",
    )
    page, log = _open(browser, tmp_path, view)
    assert page.eval_on_selector_all(".dv-fv-label", "els => els.map(e => e.textContent)") == [f"class 0: {HOSTILE}", f"class 1: {HOSTILE2}"]
    assert tuple(canvas_pixel(page, ".dv-fv-image", 0.5, 0.5, 0)[:3]) == (255, 0, 0)
    assert tuple(canvas_pixel(page, ".dv-fv-image", 0.5, 0.5, 2)[:3]) == (0, 0, 255)
    assert tuple(canvas_pixel(page, ".dv-fv-image", 0.5, 0.2, 3)[:3]) == (255, 255, 255)
    assert tuple(canvas_pixel(page, ".dv-fv-example", 0.5, 0.5, 0)[:3]) == (0, 255, 0)
    assert page.inner_text(".dv-fv-row >> nth=0").count("3") >= 1
    assert not page.is_visible(".dv-fv-detail")
    page.click(".dv-fv-image >> nth=3")
    assert page.is_visible(".dv-fv-detail")
    assert tuple(canvas_pixel(page, ".dv-fv-big", 0.5, 0.8)[:3]) == (0, 0, 255)
    assert tuple(canvas_pixel(page, ".dv-fv-big", 0.5, 0.2)[:3]) == (255, 255, 255)
    assert page.inner_text(".dv-fv-big-text") == f"class 1: {HOSTILE2} · sample 2 · logit 0.5 (start 0)"
    page.click(".dv-fv-example >> nth=0")
    assert page.inner_text(".dv-fv-big-text").endswith(f"top-activating example 1: {HOSTILE} · 3")
    assert distinct_colors(page, ".dv-fv-spark") > 2
    _assert_png_download(page, "fv.png")
    page.wait_for_timeout(200)
    assert page.query_selector("img") is None and log.dialogs == [] and log.blocked == [] and log.errors == []
    page.context.close()


@browser_test
def test_broken_payloads_and_python_errors_show_panels(browser, tmp_path) -> None:
    view = FeatureVisView(_result(["a", "b"]))
    view.images = {**view.images, "shape": [2, 2, 20, 21, 3]}
    walk = LayerWalk(spot_net(), torch.rand(1, 1, 8, 8))
    walk.error = "ValueError: image: expected a photo"
    for widget, name, expected in [
        (view, "fv.html", "bytes for shape [2,2,20,21,3]"),
        (walk, "walk.html", "image: expected a photo"),
    ]:
        path = tmp_path / name
        widget.save_html(path)
        page, _ = open_offline_page(browser)
        page.goto(path.as_uri())
        page.wait_for_selector("[data-dv-state=error]")
        assert expected in page.inner_text(".dv-error")
        page.context.close()


# --- EfficientNet-Lite0 ---------------------------------------------------------------------------------


@pytest.mark.slow
@browser_test
def test_lite0_views_render(browser, tmp_path) -> None:
    from deepvis_widgets.examples.imagenet import (
        IMAGENET_CLASSES,
        efficientnet_lite0,
        preprocess,
        sample_photos,
    )

    model = efficientnet_lite0()
    photo = sample_photos()["coffee"]
    walk = LayerWalk(model, photo, preprocess=preprocess, labels=IMAGENET_CLASSES, title="coffee")
    assert walk.caption.startswith("espresso")
    filters = FilterGrid(model, title="stem")
    path = tmp_path / "lite0.html"
    from deepvis_widgets import save_html

    save_html(path, filters, walk)
    page, log = open_offline_page(browser)
    page.goto(path.as_uri())
    wait_drawn(page, 2)
    assert page.eval_on_selector_all(".dv-walk-row-name", "els => els.length") == 18
    assert distinct_colors(page, ".dv-filters-canvas") > 50
    assert all(distinct_colors(page, ".dv-walk-row-canvas", i) > 5 for i in (0, 8, 17))
    rows = page.query_selector_all(".dv-walk-row-canvas")
    rows[17].scroll_into_view_if_needed()
    box = rows[17].bounding_box()
    page.mouse.click(box["x"] + 5, box["y"] + 5)
    assert "_conv_head · channel" in page.inner_text(".dv-walk-detail-text")
    assert _bbox_of_colour(page, ".dv-walk-input", YELLOW) is not None
    assert log.blocked == [] and log.errors == []
    page.context.close()
