"""ArrayHeatmap rendered by headless Chromium from a save_html page, network blocked."""

from __future__ import annotations

import numpy as np
import pytest

import deepvis_widgets as dv

from .conftest import canvas_pixel, open_offline_page, wait_drawn

pytestmark = pytest.mark.browser

HOSTILE_TITLE = "</script><script>alert(1)</script>"
HOSTILE_LABEL = "<img src=x onerror=alert(1)>"

# viridis control points used by js/lib/colors.ts: values 0, 1/3, 2/3 and 1 of a
# 4-value sequential range land exactly on stops 0, 3, 6 and 9.
VIRIDIS = {0: (68, 1, 84), 1: (49, 104, 142), 2: (53, 183, 121), 3: (253, 231, 37)}


def _open(browser, tmp_path, widget, name="view.html", **kwargs):
    path = tmp_path / name
    widget.save_html(path)
    page, log = open_offline_page(browser, **kwargs)
    page.goto(path.as_uri())
    wait_drawn(page)
    return page, log


def test_draws_the_right_colour_in_each_cell(browser, tmp_path) -> None:
    w = dv.ArrayHeatmap(np.array([[0.0, 1.0], [2.0, 3.0]]), scale="sequential", colormap="viridis")
    page, log = _open(browser, tmp_path, w)
    for (fx, fy), value in {(0.25, 0.25): 0, (0.75, 0.25): 1, (0.25, 0.75): 2, (0.75, 0.75): 3}.items():
        assert tuple(canvas_pixel(page, ".dv-heatmap-canvas", fx, fy)[:3]) == VIRIDIS[value]
    assert log.blocked == [] and log.errors == []
    page.context.close()


def test_hostile_title_and_labels_are_text_and_no_script_runs(browser, tmp_path) -> None:
    w = dv.ArrayHeatmap(
        np.arange(6.0).reshape(2, 3),
        row_labels=[HOSTILE_LABEL, "b"],
        col_labels=["x", HOSTILE_TITLE, "z"],
        title=HOSTILE_TITLE,
    )
    page, log = _open(browser, tmp_path, w)
    assert page.inner_text(".dv-title") == HOSTILE_TITLE
    assert page.eval_on_selector_all(".dv-heatmap-rowlabel", "els => els.map(e => e.textContent)") == [HOSTILE_LABEL, "b"]
    assert page.query_selector("img") is None
    # Hover cell (0, 1): the tooltip names both hostile labels as text.
    box = page.query_selector(".dv-heatmap-canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.25)
    tip = page.inner_text(".dv-tooltip")
    assert f"0: {HOSTILE_LABEL}" in tip and f"1: {HOSTILE_TITLE}" in tip and "value\n1" in tip.replace("\t", "\n")
    page.wait_for_timeout(300)
    assert log.dialogs == [] and log.blocked == []
    page.context.close()


def test_click_marks_the_cell(browser, tmp_path) -> None:
    w = dv.ArrayHeatmap(np.zeros((4, 4)), scale="sequential")
    page, _ = _open(browser, tmp_path, w)
    box = page.query_selector(".dv-heatmap-canvas").bounding_box()
    edge = (2 / 4 + 0.004, 1 / 4 + 0.004)  # just inside the top-left corner of cell (1, 2)
    before = canvas_pixel(page, ".dv-heatmap-canvas", *edge)
    page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.3)
    page.mouse.move(0, 0)
    after = canvas_pixel(page, ".dv-heatmap-canvas", *edge)
    assert before != after, "the selected cell gets an outline"
    page.context.close()


def test_dark_theme_follows_the_browser(browser, tmp_path) -> None:
    w = dv.ArrayHeatmap(np.eye(3), title="dark")
    page, _ = _open(browser, tmp_path, w, color_scheme="dark")
    bg = page.eval_on_selector(".dv-root", "e => getComputedStyle(e).backgroundColor")
    fg = page.eval_on_selector(".dv-title", "e => getComputedStyle(e).color")
    assert bg == "rgb(17, 20, 24)"
    assert fg.startswith("rgba(255, 255, 255")
    page.context.close()
    page, _ = _open(browser, tmp_path, w, color_scheme="light")
    assert page.eval_on_selector(".dv-root", "e => getComputedStyle(e).backgroundColor") == "rgb(255, 255, 255)"
    page.context.close()


def test_png_download(browser, tmp_path) -> None:
    w = dv.ArrayHeatmap(np.random.default_rng(0).normal(size=(10, 20)), title="weights <b>")
    page, _ = _open(browser, tmp_path, w)
    with page.expect_download() as info:
        page.click(".dv-toolbar .dv-button")
    download = info.value
    assert download.suggested_filename == "weights-b.png"
    data = open(download.path(), "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(data[16:20], "big")
    assert width > 2 * 20 * 28, "exported at twice the on-screen size"
    page.context.close()


def test_broken_payload_shows_an_error_panel_not_a_blank(browser, tmp_path) -> None:
    w = dv.ArrayHeatmap(np.zeros((2, 2)))
    w.data = {**w.data, "shape": [3, 3]}
    path = tmp_path / "broken.html"
    w.save_html(path)
    page, _ = open_offline_page(browser)
    page.goto(path.as_uri())
    page.wait_for_selector("[data-dv-state=error]")
    text = page.inner_text(".dv-error")
    assert "This view could not be drawn" in text and "16 bytes for shape [3,3] of float32 (expected 36)" in text
    page.context.close()


def test_python_error_trait_shows_a_panel(browser, tmp_path) -> None:
    w = dv.ArrayHeatmap(np.zeros((2, 2)))
    w.error = "ValueError: target: expected a class index below 10, got 12"
    path = tmp_path / "err.html"
    w.save_html(path)
    page, _ = open_offline_page(browser)
    page.goto(path.as_uri())
    page.wait_for_selector("[data-dv-state=error]")
    assert "Error in Python" in page.inner_text(".dv-error")
    assert "got 12" in page.inner_text(".dv-error-message")
    page.context.close()


def test_several_views_in_one_file(browser, tmp_path) -> None:
    path = tmp_path / "two.html"
    dv.save_html(path, dv.ArrayHeatmap(np.eye(3), title="one"), dv.ArrayHeatmap(-np.eye(4), title="two"))
    page, _ = open_offline_page(browser)
    page.goto(path.as_uri())
    wait_drawn(page, 2)
    assert page.eval_on_selector_all(".dv-title", "els => els.map(e => e.textContent)") == ["one", "two"]
    page.context.close()


def test_progress_line_says_what_is_happening(browser, tmp_path) -> None:
    w = dv.ArrayHeatmap(np.eye(3))
    w._progress("integrating gradients", 0.5)
    page, _ = _open(browser, tmp_path, w)
    assert page.inner_text(".dv-status-text") == "integrating gradients (50%)"
    assert page.eval_on_selector(".dv-status-bar", "e => e.style.width") == "50%"
    page.context.close()
