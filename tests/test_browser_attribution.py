"""ImageAttribution and TextAttribution in headless Chromium from save_html pages, network blocked:
pixels read back, sliders, targets switched without a kernel, click to enlarge, hostile strings."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from deepvis_widgets.widgets.image_attribution import ImageAttribution
from deepvis_widgets.widgets.text_attribution import TextAttribution

from .conftest import (
    canvas_pixel,
    distinct_colors,
    jupyter_lab,
    open_offline_page,
    wait_drawn,
    wait_for_lab_kernel,
)
from .test_attribution_views import TinyGRU, tiny_cnn

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE2 = "</script><script>alert(2)</script>"
RED, BLUE = (220, 20, 20), (20, 20, 220)


def _open(browser, tmp_path, widget, name="view.html", **kwargs):
    path = tmp_path / name
    widget.save_html(path)
    page, log = open_offline_page(browser, **kwargs)
    page.goto(path.as_uri())
    wait_drawn(page)
    return page, log


def _canvas_sum(page, selector: str) -> int:
    """Sum of all RGB bytes of a canvas: any change of the drawing changes it."""
    return page.evaluate(
        """sel => {
            const c = document.querySelector(sel);
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let s = 0;
            for (let k = 0; k < d.length; k += 4) s += d[k] + d[k + 1] + d[k + 2];
            return s;
        }""",
        selector,
    )


def _set_range(page, selector: str, value: float) -> None:
    page.eval_on_selector(selector, "(e, v) => { e.value = String(v); e.dispatchEvent(new Event('input', {bubbles: true})); }", value)


@pytest.fixture(scope="module")
def image_view() -> ImageAttribution:
    photo = np.zeros((16, 16, 3), np.uint8)
    photo[:, :8], photo[:, 8:] = RED, BLUE
    photos = np.stack([photo, photo[:, ::-1]])
    w = ImageAttribution(
        tiny_cnn(), photos, ["saliency", "integrated_gradients"], top_k=3,
        class_names=[f"{HOSTILE} {i}" for i in range(6)], image_names=[HOSTILE2, "mirror"], title=HOSTILE2,
        method_options={"integrated_gradients": {"n_steps": 8}},
    )  # fmt: skip
    w.verdicts = {"saliency": {"passed": False, "text": HOSTILE}}
    return w


TILE = '.dv-ia-tile[data-row="0"][data-col="{}"]'


def test_image_tiles_draw_photo_and_maps_and_hostile_text_stays_text(browser, tmp_path, image_view) -> None:
    page, log = _open(browser, tmp_path, image_view)
    assert len(page.query_selector_all(".dv-ia-tile")) == 2 * 3
    red = canvas_pixel(page, TILE.format(0), 0.25, 0.5)
    blue = canvas_pixel(page, TILE.format(0), 0.75, 0.5)
    assert all(abs(a - b) <= 3 for a, b in zip(red[:3], RED, strict=True)), red
    assert all(abs(a - b) <= 3 for a, b in zip(blue[:3], BLUE, strict=True)), blue
    for col in (1, 2):
        assert distinct_colors(page, TILE.format(col)) > 20, "a map is drawn, not a flat tile"
    assert page.inner_text(".dv-title") == HOSTILE2
    assert page.inner_text(".dv-ia-rowname >> nth=0") == HOSTILE2
    options = page.eval_on_selector_all(".dv-ia-target >> nth=0 >> option", "els => els.map(e => e.textContent)")
    assert len(options) == 3 and all(o.startswith(f"{HOSTILE} ") and o.endswith("%)") for o in options)
    badge = page.query_selector(".dv-ia-badge")
    assert badge.inner_text() == f"✗ {HOSTILE}" and "dv-ia-fail" in badge.get_attribute("class")
    assert page.eval_on_selector_all(".dv-ia-colname", "els => els.map(e => e.textContent)") == ["image", "Saliency", "Integrated Gradients"]
    # hover a map: the tooltip names the class (as text) and gives the value under the pointer
    box = page.query_selector(TILE.format(2)).bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.6)
    tip = page.inner_text(".dv-tooltip")
    assert HOSTILE in tip and "value" in tip and "clip" in tip
    page.wait_for_timeout(200)
    assert page.query_selector(".dv-root img") is None
    assert log.dialogs == [] and log.blocked == [] and log.errors == []
    page.context.close()


def test_opacity_and_clip_sliders_change_the_pixels(browser, tmp_path, image_view) -> None:
    page, _ = _open(browser, tmp_path, image_view)
    ig = TILE.format(2)
    _set_range(page, ".dv-ia-opacity", 0)
    # no map: the greyed photo (luminance of red on the left, of blue on the right)
    grey_red = round(0.299 * RED[0] + 0.587 * RED[1] + 0.114 * RED[2])
    left = canvas_pixel(page, ig, 0.25, 0.5)
    assert all(abs(v - grey_red) <= 2 for v in left[:3]), left
    bare = _canvas_sum(page, ig)
    _set_range(page, ".dv-ia-opacity", 1)
    full = _canvas_sum(page, ig)
    assert full != bare
    _set_range(page, ".dv-ia-clip", 100)
    clip100 = _canvas_sum(page, ig)
    _set_range(page, ".dv-ia-clip", 60)
    clip60 = _canvas_sum(page, ig)
    assert clip60 != clip100, "a lower clip saturates more pixels"
    assert page.inner_text(".dv-ia-clip-text").strip() == "60th pct"
    page.context.close()


def test_target_switch_without_a_kernel_uses_the_saved_maps(browser, tmp_path, image_view) -> None:
    w = image_view
    unsaved = next(c for c in range(6) if f"0:{c}" not in w.maps)
    saved_candidates = w.candidates
    w.candidates = [[*w.candidates[0], {"class": unsaved, "probability": 0.001}], w.candidates[1]]
    try:
        page, log = _open(browser, tmp_path, w)
    finally:
        w.candidates = saved_candidates
    ig = TILE.format(2)
    before = _canvas_sum(page, ig)
    other = str(w.candidates[0][1]["class"])
    page.select_option(".dv-ia-target >> nth=0", other)
    assert _canvas_sum(page, ig) != before
    assert page.eval_on_selector(".dv-ia-target >> nth=0", "e => e.value") == other
    assert page.inner_text(".dv-ia-note") == ""
    # a class whose maps were not saved needs a kernel: the menu goes back and says so
    page.select_option(".dv-ia-target >> nth=0", str(unsaved))
    page.wait_for_function("() => document.querySelector('.dv-ia-note').textContent.includes('live kernel')")
    assert page.eval_on_selector(".dv-ia-target >> nth=0", "e => e.value") == other
    # any other class, typed by name: a saved page has no kernel to compute it
    assert len(page.query_selector_all("datalist option")) == 6
    page.fill(".dv-ia-other >> nth=1", "no such class")
    page.press(".dv-ia-other >> nth=1", "Enter")
    assert page.inner_text(".dv-ia-note") == 'no class named "no such class"; type a class name or index'
    name = f"{HOSTILE} {unsaved}"
    page.fill(".dv-ia-other >> nth=0", name)
    page.press(".dv-ia-other >> nth=0", "Enter")
    page.wait_for_function("n => document.querySelector('.dv-ia-note').textContent.includes(n + ' need a live kernel')", arg=name)
    assert page.eval_on_selector(".dv-ia-target >> nth=0", "e => e.value") == other
    assert log.dialogs == [] and log.blocked == []
    page.context.close()


def test_click_enlarges_a_map_and_png_downloads(browser, tmp_path, image_view) -> None:
    page, _ = _open(browser, tmp_path, image_view)
    assert page.eval_on_selector(".dv-ia-detail", "e => getComputedStyle(e).display") == "none"
    page.click(TILE.format(2))
    assert page.eval_on_selector(".dv-ia-detail", "e => getComputedStyle(e).display") == "flex"
    big = page.query_selector(".dv-ia-big").bounding_box()
    tile = page.query_selector(TILE.format(2)).bounding_box()
    assert big["width"] >= 2.5 * tile["width"]
    assert distinct_colors(page, ".dv-ia-big") > 20
    text = page.inner_text(".dv-ia-detail-text")
    assert "Integrated Gradients on" in text and HOSTILE2 in text and "convergence delta" in text
    assert page.query_selector(".dv-ia-detail .dv-legend-bar") is not None
    page.click(".dv-ia-close")
    assert page.eval_on_selector(".dv-ia-detail", "e => getComputedStyle(e).display") == "none"
    with page.expect_download() as info:
        page.click(".dv-toolbar .dv-button")
    data = open(info.value.path(), "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and info.value.suggested_filename == "script-script-alert-2-script.png"
    page.context.close()


def test_from_attributions_page_draws_coarse_maps(browser, tmp_path) -> None:
    maps = np.zeros((1, 2, 2), np.float32)
    maps[0, 0, 0] = 1.0  # top-left quarter important
    photo = np.full((1, 32, 32, 3), 200, np.uint8)
    w = ImageAttribution.from_attributions(photo, {"mine": maps}, signed=False, opacity=1.0, clip=100.0)
    page, _ = _open(browser, tmp_path, w)
    hot = canvas_pixel(page, TILE.format(1), 0.1, 0.1)
    cold = canvas_pixel(page, TILE.format(1), 0.9, 0.9)
    assert tuple(hot[:3]) == (253, 231, 37), "the top of viridis where the map is 1"
    assert all(abs(v - 200) <= 1 for v in cold[:3]), "the photo where the map is 0"
    assert page.eval_on_selector(".dv-ia-target", "e => e.disabled") is True
    page.context.close()


# --- TextAttribution -------------------------------------------------------------------------
def pipe_tokenizer(text: str) -> tuple[torch.Tensor, list[str]]:
    tokens = text.split("|")
    return torch.tensor([[1 + sum(map(ord, t)) % 29 for t in tokens]]), tokens


@pytest.fixture(scope="module")
def text_view() -> TextAttribution:
    long_text = "|".join(f"word{i % 17}" for i in range(300))
    return TextAttribution.from_model(
        TinyGRU(), pipe_tokenizer, [f"the|cat|{HOSTILE}|play|##ing|{HOSTILE2}", long_text],
        method=["input_x_gradient", "occlusion"], class_names=[HOSTILE, "b", "c"], true_labels=[1, 2], top_k=3,
        title=HOSTILE2,
    )  # fmt: skip


def format_value(v: float) -> str:
    """Python twin of formatValue in js/lib/colors.ts (4 significant digits)."""
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        mantissa, exponent = f"{v:.3e}".split("e")
        return f"{mantissa}e{int(exponent):+d}"
    return f"{v:.4g}"


def _backgrounds(page, row: int = 0) -> list[str]:
    return page.eval_on_selector_all(f'.dv-ta-text[data-row="{row}"] .dv-ta-token', "els => els.map(e => e.style.background)")


def test_text_tokens_are_text_coloured_and_switch_offline(browser, tmp_path, text_view) -> None:
    page, log = _open(browser, tmp_path, text_view)
    tokens = page.eval_on_selector_all('.dv-ta-text[data-row="0"] .dv-ta-token', "els => els.map(e => e.textContent)")
    assert tokens == ["the", "cat", HOSTILE, "play", "##ing", HOSTILE2]
    first = _backgrounds(page)
    assert all(b.startswith("rgb(") for b in first) and len(set(first)) > 2
    assert page.query_selector(".dv-ta-legend-bar") is not None and "for the class explained" in page.inner_text(".dv-ta-legend")
    head = page.inner_text('.dv-ta-text[data-row="0"] .dv-ta-head')
    assert "predicted" in head and "true b" in head and "sum" in head
    assert all(o.startswith(HOSTILE) or o[0] in "bc" for o in page.eval_on_selector_all(".dv-ta-target >> nth=0 >> option", "els => els.map(e => e.textContent)"))
    # one scale for all texts: the text with the smaller largest |score| gets paler
    assert page.eval_on_selector(".dv-ta-scale", "e => e.value") == "per_text"
    both = _backgrounds(page, 0) + _backgrounds(page, 1)
    page.select_option(".dv-ta-scale", "shared")
    assert _backgrounds(page, 0) + _backgrounds(page, 1) != both and "one scale for all texts" in page.inner_text(".dv-ta-legend")
    page.select_option(".dv-ta-scale", "per_text")
    assert _backgrounds(page) == first
    # method switch
    page.select_option(".dv-ta-method", "occlusion")
    by_occlusion = _backgrounds(page)
    assert by_occlusion != first
    # target switch: the scores saved for another class, no kernel needed
    sum_before = page.inner_text('.dv-ta-text[data-row="0"] .dv-ta-sum')
    other = str(text_view.candidates[0][1]["class"])
    page.select_option(".dv-ta-target >> nth=0", other)
    assert _backgrounds(page) != by_occlusion
    assert page.inner_text('.dv-ta-text[data-row="0"] .dv-ta-sum') != sum_before
    assert page.inner_text(".dv-ta-note") == ""
    expected = text_view.scores_for(0, int(other), "occlusion")
    assert page.inner_text('.dv-ta-text[data-row="0"] .dv-ta-sum') == f"sum {format_value(float(expected.sum()))}"
    # hover a token
    page.hover('.dv-ta-text[data-row="0"] .dv-ta-token >> nth=2')
    tip = page.inner_text(".dv-tooltip")
    assert HOSTILE in tip and "attribution" in tip
    page.wait_for_timeout(200)
    assert page.query_selector(".dv-root img") is None
    assert log.dialogs == [] and log.blocked == [] and log.errors == []
    page.context.close()


def test_text_merges_pieces_and_wraps_long_texts(browser, tmp_path, text_view) -> None:
    page, _ = _open(browser, tmp_path, text_view)
    assert page.is_visible(".dv-ta-merge")
    page.check(".dv-ta-merge")
    words = page.eval_on_selector_all('.dv-ta-text[data-row="0"] .dv-ta-token', "els => els.map(e => e.textContent)")
    assert words == ["the", "cat", HOSTILE, "playing", HOSTILE2]
    s = text_view.scores_for(0, method="input_x_gradient")
    page.hover('.dv-ta-text[data-row="0"] .dv-ta-token >> nth=3')
    rows = page.eval_on_selector_all(".dv-tooltip-row", "els => els.map(e => [...e.children].map(c => c.textContent))")
    assert rows == [["word", "3: playing"], ["pieces", "2"], ["attribution", format_value(float(s[3] + s[4]))]]
    box = page.query_selector('.dv-ta-text[data-row="1"] .dv-ta-tokens').bounding_box()
    assert box["width"] <= 900 and box["height"] > 8 * 20, "300 tokens wrap onto many lines"
    page.context.close()


# --- live kernel ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab_notebook(tmp_path_factory):
    """JupyterLab serving one notebook that builds an ImageAttribution with one saved target per image."""

    import nbformat

    from .test_lab import TOKEN

    root = tmp_path_factory.mktemp("lab_attr")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import torch\n"
            "from tests.test_attribution_views import tiny_cnn\n"
            "from deepvis_widgets.widgets.image_attribution import ImageAttribution\n"
            "torch.set_num_threads(1)\n"
            "w = ImageAttribution(tiny_cnn(), torch.rand(1, 3, 12, 12), ['saliency'], top_k=1, class_names=list('abcdef'))\n"
            "w.observe(lambda ch: open('target.txt', 'w').write(repr(ch['new'])), 'target')\n"
            "w"
        )
    ]
    nbformat.write(nb, root / "live.ipynb")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with jupyter_lab(root, TOKEN, env=env) as base:
        yield {"url": f"{base}/lab/tree/live.ipynb?token={TOKEN}", "root": root}


@pytest.mark.lab
def test_another_class_is_computed_by_the_live_kernel(browser, lab_notebook) -> None:

    page, log = open_offline_page(browser)
    page.set_default_timeout(120_000)
    page.goto(lab_notebook["url"])
    page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook')")
    wait_for_lab_kernel(page)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector(".jp-OutputArea .dv-root[data-dv-drawn=true]")
    saved = page.eval_on_selector(".dv-ia-target", "e => e.value")
    other = "e" if saved != "4" else "f"
    page.fill(".dv-ia-other", other)
    page.press(".dv-ia-other", "Enter")
    wanted = str("abcdef".index(other))
    page.wait_for_function("v => document.querySelector('.dv-ia-target').value === v", arg=wanted, timeout=60_000)
    assert (Path(lab_notebook["root"]) / "target.txt").read_text() == f"[{wanted}]"
    assert len(page.query_selector_all(".dv-ia-target option")) == 2 and page.inner_text(".dv-ia-note") == ""
    assert distinct_colors(page, '.dv-ia-tile[data-col="1"]') > 5
    assert log.dialogs == []
    page.context.close()
