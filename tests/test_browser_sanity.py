"""SanityCheckView in headless Chromium from save_html pages with the network blocked."""

from __future__ import annotations

import numpy as np
import pytest

from deepvis_widgets._html import save_html
from deepvis_widgets.compute.sanity import METRICS, SanityResult, verdicts
from deepvis_widgets.widgets.sanity import SanityCheckView

from .conftest import canvas_pixel, distinct_colors, open_offline_page, wait_drawn

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=alert(1)>"
YELLOW = [253, 231, 37]  # viridis at 1
PURPLE = [68, 1, 84]  # viridis at 0
DARK_BLUE = [5, 48, 97]  # rdbu at -1


def _image_result() -> SanityResult:
    """Two methods x three steps x two 8x8 examples with maps whose colours are known."""
    m, s, n = 2, 3, 2
    maps = np.zeros((m, s, n, 8, 8), np.float32)
    maps[0, 0, 0] = 5.0  # constant: scaled to 1 -> viridis top
    maps[0, 0, 1] = np.linspace(0, 1, 64).reshape(8, 8) ** 4  # mostly dark, one bright corner
    maps[0, 1] = 0.0  # zero map -> viridis bottom
    maps[0, 2] = np.random.default_rng(0).random((n, 8, 8))
    maps[1, :] = -2.0  # signed, all negative -> darkest blue
    scores = np.ones((m, s, n, len(METRICS)))
    scores[0, 1:] = 0.1  # changes: passes
    scores[1, 1:] = 0.9  # barely changes: fails
    return SanityResult(
        methods=["saliency", "guided_backprop"],
        method_labels=[HOSTILE, "</script>"],
        signed=[False, True],
        mode="cascading",
        steps=["original", HOSTILE, "conv & <b>"],
        randomized=[[], [HOSTILE], [HOSTILE, "conv & <b>"]],
        maps=maps,
        scores=scores,
        target=[3, 7],
        kind="image",
        inputs=np.random.default_rng(1).random((n, 1, 8, 8)).astype(np.float32),
    )


def _text_result() -> SanityResult:
    maps = np.random.default_rng(2).normal(size=(1, 2, 1, 4)).astype(np.float32)
    scores = np.full((1, 2, 1, len(METRICS)), 0.2)
    scores[..., 0, :] = 1.0
    scores[..., METRICS.index("hog")] = np.nan
    return SanityResult(
        methods=["saliency"],
        method_labels=["Saliency (gradient norm)"],
        signed=[False],
        mode="labels",
        steps=["original", "permuted labels"],
        randomized=[[], ["(the model trained on permuted labels)"]],
        maps=maps,
        scores=scores,
        target=[1],
        kind="text",
        inputs=np.array([[5, 6, 7, 8]]),
    )


def _tile(page, row: int, col: int, n_cols: int, index: int = 0) -> tuple[float, float]:
    """Fractions (x, y) of the centre of tile (row, col) of the grid canvas."""
    w, h, n_rows = page.evaluate(
        """i => { const c = document.querySelectorAll('.dv-sanity-grid')[i];
                  return [parseFloat(c.style.width), parseFloat(c.style.height),
                          c.closest('.dv-root').querySelectorAll('.dv-sanity-rowhead').length]; }""",
        index,
    )
    tw = (w - 4 * (n_cols - 1)) / n_cols
    th = (h - 4 * (n_rows - 1)) / n_rows
    return (col * (tw + 4) + tw / 2) / w, (row * (th + 4) + th / 2) / h


def test_small_multiples_charts_and_verdicts_render_offline(browser, tmp_path) -> None:
    result = _image_result()
    view = SanityCheckView(result, title=HOSTILE)
    text_view = SanityCheckView(_text_result(), tokens=[[HOSTILE, " a", "\n", "</script>"]])
    path = save_html(tmp_path / "sanity.html", view, text_view)
    page, log = open_offline_page(browser)
    page.goto(path.as_uri())
    wait_drawn(page, 2)
    assert log.blocked == [] and log.dialogs == [] and log.errors == []
    assert page.query_selector(".dv-root img") is None
    roots = page.query_selector_all(".dv-root")
    assert roots[0].query_selector(".dv-title").inner_text() == HOSTILE

    # Labels are text: method names, step names (module names are data too).
    heads = page.eval_on_selector_all(".dv-root >> nth=0 >> .dv-sanity-rowhead", "els => els.map(e => e.textContent)")
    assert heads == [HOSTILE, "</script>"]
    cols = page.eval_on_selector_all(".dv-root >> nth=0 >> .dv-sanity-colname", "els => els.map(e => e.textContent)")
    assert cols == ["input", "original", HOSTILE, "conv & <b>"]

    # Small multiples: the input in column 0 of row 0, then the maps with their known colours.
    assert canvas_pixel(page, ".dv-sanity-grid", *_tile(page, 0, 1, 4))[:3] == YELLOW
    assert canvas_pixel(page, ".dv-sanity-grid", *_tile(page, 0, 2, 4))[:3] == PURPLE
    assert canvas_pixel(page, ".dv-sanity-grid", *_tile(page, 1, 1, 4))[:3] == DARK_BLUE
    assert canvas_pixel(page, ".dv-sanity-grid", *_tile(page, 1, 0, 4))[3] == 0  # no input in row 1
    assert distinct_colors(page, ".dv-sanity-grid") > 20  # grey input and random step-2 map

    # Verdicts: as text, one per method, in the order of the rows, with the threshold.
    expected = verdicts(result)
    items = page.query_selector_all(".dv-root >> nth=0 >> .dv-sanity-verdict")
    assert [i.get_attribute("data-passed") for i in items] == ["true", "false"]
    texts = [i.query_selector(".dv-sanity-verdict-text").text_content() for i in items]
    assert texts == [expected["saliency"]["text"], expected["guided_backprop"]["text"]]
    assert HOSTILE in texts[0] and "barely changes: it may not reflect the model" in texts[1]
    badges = page.eval_on_selector_all(".dv-root >> nth=0 >> .dv-sanity-rowbadge", "els => els.map(e => e.textContent)")
    assert badges == ["✓ changes", "✗ barely changes"]
    assert "below 0.5" in roots[0].query_selector(".dv-sanity-rule").inner_text()

    # One chart per metric, each with lines drawn.
    charts = page.eval_on_selector_all(".dv-root >> nth=0 >> .dv-sanity-chart", "els => els.map(e => e.dataset.metric)")
    assert charts == list(METRICS)
    assert all(distinct_colors(page, ".dv-sanity-chart", i) > 3 for i in range(4))

    # Choosing the other example redraws the maps (its original map is mostly dark).
    page.select_option(".dv-sanity-example", "1")
    assert canvas_pixel(page, ".dv-sanity-grid", *_tile(page, 0, 1, 4))[:3] != YELLOW

    # Hover: the tooltip names the method (as text) and the similarities of that tile.
    box = page.query_selector(".dv-sanity-grid").bounding_box()
    fx, fy = _tile(page, 0, 2, 4)
    page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    tip = page.inner_text(".dv-root >> nth=0 >> .dv-tooltip")
    assert HOSTILE in tip and "rank correlation of |map|" in tip and "0.1" in tip

    # PNG export of the whole view.
    with page.expect_download() as info:
        roots[0].query_selector(".dv-button").click()
    data = open(info.value.path(), "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000

    # The text view: tokens as text, the HOG chart replaced by a note, label-randomization wording.
    tokens = page.eval_on_selector_all(".dv-root >> nth=1 >> .dv-sanity-token", "els => els.map(e => e.textContent)")
    assert tokens == [HOSTILE, "␣a", "⏎", "</script>"]
    assert "not defined" in roots[1].query_selector(".dv-sanity-undefined").inner_text()
    assert len(roots[1].query_selector_all(".dv-sanity-chart")) == 3
    assert "permuted labels" in roots[1].query_selector(".dv-sanity-rule").inner_text()
    assert distinct_colors(page, ".dv-sanity-grid", 1) > 2
    assert log.dialogs == [] and log.errors == []
    page.context.close()


def test_dark_theme_uses_dark_colours(browser, tmp_path) -> None:
    path = tmp_path / "dark.html"
    SanityCheckView(_image_result()).save_html(path)
    page, log = open_offline_page(browser, color_scheme="dark")
    page.goto(path.as_uri())
    wait_drawn(page)
    bg = page.eval_on_selector(".dv-root", "e => getComputedStyle(e).backgroundColor")
    fg = page.eval_on_selector(".dv-sanity-rowhead", "e => getComputedStyle(e).color")
    assert bg == "rgb(17, 20, 24)" and fg.startswith("rgba(255, 255, 255")
    assert distinct_colors(page, ".dv-sanity-chart") > 3
    assert log.errors == [] and log.dialogs == []
    page.context.close()
