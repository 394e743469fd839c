"""Bokeh chart views (training monitor, projection, similarity) in headless Chromium, network blocked.

Pages come from save_html and from an exported notebook; pixels are read back
from element screenshots (BokehJS draws inside shadow roots).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from deepvis_widgets._html import save_html
from deepvis_widgets.widgets.projection import ProjectionView

from .conftest import open_offline_page, wait_drawn

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE_TITLE = "</script><script>alert(2)</script>"
#: A string that occurs once in bokeh.min.js: counts copies of BokehJS in a page.
BOKEH_MARKER = "models/tools/inspectors/hover_tool"


def _open(browser, tmp_path, *widgets, name="view.html", color_scheme="light"):
    path = tmp_path / name
    save_html(path, *widgets)
    page, log = open_offline_page(browser, color_scheme=color_scheme)
    page.goto(path.as_uri())
    wait_drawn(page, len(widgets))
    return page, log, path


def _shot(locator) -> Image.Image:
    return Image.open(io.BytesIO(locator.screenshot())).convert("RGB")


def _colors(img: Image.Image) -> int:
    return len(np.unique(np.asarray(img).reshape(-1, 3), axis=0))


def _drag(page, locator, fx0, fy0, fx1, fy1) -> None:
    box = locator.bounding_box()
    page.mouse.move(box["x"] + box["width"] * fx0, box["y"] + box["height"] * fy0)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * fx1, box["y"] + box["height"] * fy1, steps=6)
    page.mouse.up()


def _digits_projection(**kwargs) -> ProjectionView:
    from sklearn.datasets import load_digits

    d = load_digits()
    n = 400
    return ProjectionView(
        d.data[:n], labels=d.target[:n], examples=d.images[:n], errors=np.arange(n) % 11 == 0, **kwargs
    )


# --- ProjectionView ------------------------------------------------------------------


def test_projection_views_share_one_bokehjs_draw_hover_and_select(browser, tmp_path) -> None:
    a = _digits_projection(title=HOSTILE_TITLE)
    b = ProjectionView(
        np.random.default_rng(0).normal(size=(200, 5)),
        labels=[HOSTILE + str(i % 3) for i in range(200)],
        examples=[f"{HOSTILE} example {i}" for i in range(200)],
        title="texts",
    )
    page, log, path = _open(browser, tmp_path, a, b)
    text = path.read_text(encoding="utf-8")
    assert text.count(BOKEH_MARKER) == 1, "BokehJS is saved once for two chart views"
    assert page.evaluate("globalThis.__deepvis_bokeh.evaluations") == 1, "and evaluated once"
    assert page.eval_on_selector_all(".dv-title", "els => els.map(e => e.textContent)") == [HOSTILE_TITLE, "texts"]
    chart = page.locator(".dv-proj-chart").first
    assert _colors(_shot(chart)) > 50, "points, axes and the error surface were drawn"
    legend = page.locator(".dv-proj-legend").nth(1).inner_text()
    assert f"{HOSTILE}0" in legend and page.query_selector(".dv-root img") is None
    # Box-select part of the digits: the selected examples are listed beside the chart.
    _drag(page, chart, 0.15, 0.15, 0.55, 0.6)
    head = page.locator(".dv-proj-selhead").first.inner_text()
    assert head.split()[1] == "selected" and int(head.split()[0]) > 5
    assert page.locator(".dv-root").first.locator(".dv-example-card canvas").count() > 5
    # Hover the text view until a point is under the cursor: its example is shown as text.
    chart2 = page.locator(".dv-proj-chart").nth(1)
    box = chart2.bounding_box()
    hover = page.locator(".dv-proj-hover").nth(1)
    for fx in np.linspace(0.15, 0.85, 60):
        page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * 0.5)
        if hover.inner_text():
            break
    assert f"{HOSTILE} example" in hover.inner_text()
    page.wait_for_timeout(200)
    assert log.dialogs == [] and log.blocked == []
    page.context.close()


def test_projection_colour_buttons_and_dark_theme(browser, tmp_path) -> None:
    v = _digits_projection(surface=False)
    page, _, _ = _open(browser, tmp_path, v, color_scheme="dark")
    chart = page.locator(".dv-proj-chart")
    by_label = _shot(chart)
    # The plot area follows the page's dark background (Bokeh themed from --dv-bg).
    assert by_label.getpixel((3, 3)) == (17, 20, 24), "border area"
    assert by_label.getpixel((int(by_label.width * 0.5), int(by_label.height * 0.02))) == (17, 20, 24)
    page.click("button[data-color-by=error]")
    page.wait_for_timeout(300)
    by_error = _shot(chart)
    assert page.get_attribute("button[data-color-by=error]", "aria-pressed") == "true"
    assert _colors(by_error) < _colors(by_label), "two colours (right, wrong) instead of ten"
    page.context.close()
