"""ModelComparison and ErrorGallery in headless Chromium, network blocked, hostile strings as text."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import deepvis_widgets as dv
from deepvis_widgets._html import save_html
from deepvis_widgets.compute.comparison import CATEGORIES

from .conftest import open_offline_page, wait_drawn

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=alert(1)>"


def _open(browser, tmp_path, *widgets, color_scheme="light"):
    path = tmp_path / "view.html"
    save_html(path, *widgets)
    page, log = open_offline_page(browser, color_scheme=color_scheme)
    page.goto(path.as_uri())
    wait_drawn(page, len(widgets))
    return page, log


def _digits_comparison(**kwargs):
    from sklearn.datasets import load_digits

    d = load_digits()
    n = 500
    rng = np.random.default_rng(0)
    y = d.target[:n]
    a = np.where(rng.random(n) < 0.9, y, rng.integers(0, 10, n))
    b = np.where(rng.random(n) < 0.7, y, rng.integers(0, 10, n))
    return dv.ModelComparison(y, a, b, examples=d.images[:n], **kwargs), d.images[:n]


def test_comparison_counts_drill_down_and_sort(browser, tmp_path) -> None:
    names = [f"{HOSTILE}{k}" for k in range(10)]
    w, _ = _digits_comparison(class_names=names, model_names=("cnn", "</svg><script>alert(3)</script>"), max_per_cell=5)
    page, log = _open(browser, tmp_path, w)
    c = w.comparison
    # every count in the table is the Python count
    for cls in (-1, 0, 7):
        for k, cat in enumerate(CATEGORIES):
            text = page.text_content(f".dv-cmp-cell[data-class='{cls}'][data-category='{cat}'] text")
            want = c.counts.sum(axis=0)[k] if cls < 0 else c.counts[cls, k]
            assert text.split(" ")[0] == f"{want:,}"
    # click a cell: its examples appear, at most max_per_cell, all of that class and outcome
    page.click(".dv-cmp-cell[data-class='7'][data-category='only_a']")
    ids = [int(x) for x in page.eval_on_selector_all(".dv-cmp-grid .dv-example-card", "cs => cs.map(c => c.dataset.id)")]
    want = set(c.indices("only_a", 7).tolist())
    assert 0 < len(ids) <= 5 and set(ids) <= want
    assert f"{len(want)} examples" in page.inner_text(".dv-cmp-detailhead")
    assert page.locator(".dv-cmp-grid .dv-example-thumb").count() == len(ids)
    # clicking the same cell again clears the selection
    page.click(".dv-cmp-cell[data-class='7'][data-category='only_a']")
    assert page.locator(".dv-cmp-grid .dv-example-card").count() == 0
    # "most errors" puts the class with most double errors first
    page.click("button[data-sort='errors']")
    first = page.eval_on_selector_all(".dv-cmp-svg > g[data-class]", "gs => gs.map(g => Number(g.dataset.class))")
    assert first[0] == -1 and first[1] == int(np.argmax(c.counts[:, 3]))
    # hostile names are text: no element was injected, no dialog, no request
    assert page.locator(".dv-cmp-svg img, .dv-cmp-svg script, .dv-root script").count() == 0
    assert HOSTILE in page.text_content(".dv-cmp-svg")
    assert "</svg><script>" in page.inner_text(".dv-cmp-summary")
    assert log.dialogs == [] and log.blocked == [] and log.errors == []


def test_comparison_svg_download_is_self_contained_and_dark_theme(browser, tmp_path) -> None:
    w, _ = _digits_comparison(title="cmp")
    page, log = _open(browser, tmp_path, w, color_scheme="dark")
    bg = page.eval_on_selector(".dv-cmp-bg", "r => getComputedStyle(r).fill")
    rgb = [int(v) for v in bg[bg.index("(") + 1 : bg.index(")")].split(",")[:3]]
    assert sum(rgb) < 150, bg  # dark background follows the theme
    with page.expect_download() as info:
        page.click(".dv-toolbar button >> nth=0")
    data = open(info.value.path(), encoding="utf8").read()
    assert data.startswith("<svg") and "var(--" not in data and "both right" in data
    assert data.count("<rect") > 40
    assert log.errors == []


def test_comparison_without_examples_lists_indices(browser, tmp_path) -> None:
    y = np.array([0, 0, 1, 1, 1])
    w = dv.ModelComparison(y, [0, 1, 1, 0, 0], [1, 1, 1, 1, 0])
    page, _ = _open(browser, tmp_path, w)
    page.click(".dv-cmp-cell[data-class='-1'][data-category='both_wrong']")
    assert page.inner_text(".dv-cmp-ids") == "example indices: 1, 4"


def test_error_gallery_cards_ticks_hover_and_click(browser, tmp_path) -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(2)
    loss = rng.gamma(1.0, size=600)
    loss[11] = np.nan
    names = [f"{HOSTILE}{k}" for k in range(10)]
    g = dv.ErrorGallery(d.images[:600], loss, labels=d.target[:600], preds=(d.target[:600] + (loss > 2)) % 10, class_names=names, per_group=6, metric_name=HOSTILE)
    t = dv.ErrorGallery([f"<script>alert({i})</script>" for i in range(600)], loss, per_group=3, groups=("worst", 0.25))
    page, log = _open(browser, tmp_path, g, t)
    first = page.locator(".dv-root").nth(0)
    assert first.locator(".dv-eg-row").count() == 3
    assert first.locator(".dv-eg-row[data-group='worst'] .dv-example-thumb").count() == 6
    ids = [int(x) for x in first.locator(".dv-example-card").evaluate_all("cs => cs.map(c => c.dataset.id)")]
    assert ids == g.sample_ids
    # the thumbnails are the examples: a pixel of the first card matches the digit's brightest/darkest cell
    shown = first.locator(".dv-example-thumb").nth(0).evaluate(
        "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data).filter((_, i) => i % 4 === 0)"
    )
    img = d.images[g.sample_ids[0]]
    assert np.argmax(shown) == np.argmax(img.reshape(-1)) and np.argmin(shown) == np.argmin(img.reshape(-1))
    # wrong predictions are marked; metric name and labels are text
    wrong = first.locator(".dv-example-card.dv-eg-wrong").count()
    want_wrong = sum(1 for r in range(len(ids)) if g.sample_labels[r] != g.sample_preds[r])
    assert wrong == want_wrong > 0
    assert HOSTILE in first.locator(".dv-eg-note").inner_text()
    # hovering a card lights its tick on the histogram; clicking selects it
    card = first.locator(".dv-example-card").nth(7)
    card.hover()
    assert first.locator(".dv-eg-tick-on").get_attribute("data-row") == "7"
    card.click()
    assert "dv-eg-selected" in card.get_attribute("class")
    assert page.evaluate("() => document.querySelectorAll('.dv-root img, .dv-root script').length") == 0
    texts = page.locator(".dv-root").nth(1).locator(".dv-example-text").all_inner_texts()
    assert len(texts) == 6 and all(x.startswith("<script>alert(") for x in texts)
    assert "quantile 0.25" in page.locator(".dv-root").nth(1).inner_text()
    # PNG of the image gallery
    with page.expect_download() as info:
        first.locator(".dv-toolbar button").first.click()
    png = Image.open(io.BytesIO(open(info.value.path(), "rb").read()))
    assert png.size[0] > 6 * 72 and len(np.unique(np.asarray(png.convert("L")))) > 20
    # and of the text gallery: the texts drawn as canvas text
    with page.expect_download() as info:
        page.locator(".dv-root").nth(1).locator(".dv-toolbar button").first.click()
    sheet = np.asarray(Image.open(io.BytesIO(open(info.value.path(), "rb").read())).convert("L"))
    assert sheet.shape[1] > 3 * 120 and (sheet < 128).mean() > 0.005  # dark ink on the light page
    assert log.dialogs == [] and log.blocked == [] and log.errors == []
