"""A notebook executed with nbclient and exported with nbconvert renders offline, without a kernel."""

from __future__ import annotations

import json

import nbformat
import pytest

from deepvis_widgets.export import execute_notebook, export_notebook

from .conftest import canvas_pixel, open_offline_page, wait_drawn

pytestmark = pytest.mark.browser

HOSTILE_TITLE = "</script><script>alert(1)</script>"
HOSTILE_LABEL = "<img src=x onerror=alert(1)>"
BIG = 2048


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Executes a two-view notebook once (one 2048x2048 float32 view) and exports it."""
    tmp = tmp_path_factory.mktemp("nb")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import numpy as np, deepvis_widgets as dv\n"
            f"small = dv.ArrayHeatmap(np.arange(6.0).reshape(2, 3), title={HOSTILE_TITLE!r},\n"
            f"                        row_labels=[{HOSTILE_LABEL!r}, 'b'], col_labels=['x', 'y', 'z'])\n"
            "small"
        ),
        nbformat.v4.new_code_cell(
            f"big_array = np.random.default_rng(0).normal(size=({BIG}, {BIG})).astype(np.float32)\n"
            "dv.ArrayHeatmap(big_array, title='big')"
        ),
    ]
    src = tmp / "views.ipynb"
    nbformat.write(nb, src)
    executed = execute_notebook(src)
    saved = tmp / "executed.ipynb"
    nbformat.write(executed, saved)
    html = export_notebook(executed, tmp / "views.html")
    return {"source": src, "saved": saved, "html": html}


def test_saved_notebook_carries_binary_state_within_1_45x_raw(exported) -> None:
    raw = BIG * BIG * 4
    growth = exported["saved"].stat().st_size - exported["source"].stat().st_size
    assert growth <= 1.45 * raw, f"notebook grew by {growth / raw:.3f}x the raw bytes"
    nb = json.loads(exported["saved"].read_text())
    states = nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    big = [s for s in states.values() if s["state"].get("title") == "big"]
    assert len(big) == 1
    assert big[0]["state"]["data"] == {"dtype": "float32", "shape": [BIG, BIG]}, "the array is not in the JSON"
    assert big[0]["buffers"][0]["path"] == ["data", "buffer"] and big[0]["buffers"][0]["encoding"] == "base64"


def test_exported_html_renders_and_responds_without_network_or_kernel(browser, exported) -> None:
    page, log = open_offline_page(browser)
    page.goto(exported["html"].as_uri())
    wait_drawn(page, 2, timeout=60_000)
    titles = page.eval_on_selector_all(".dv-title", "els => els.map(e => e.textContent)")
    assert titles == [HOSTILE_TITLE, "big"]
    assert page.query_selector(".dv-root img") is None
    # The big view really drew the data: not a flat image.
    samples = {tuple(canvas_pixel(page, ".dv-heatmap-canvas", fx, fy, index=1)) for fx in (0.1, 0.5, 0.9) for fy in (0.1, 0.5, 0.9)}
    assert len(samples) > 3
    # Hover works with no kernel.
    box = page.query_selector_all(".dv-heatmap-canvas")[0].bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.25)
    assert f"0: {HOSTILE_LABEL}" in page.inner_text(".dv-tooltip")
    # ...and so do clicks: the clicked cell gets an outline.
    edge = (0.004, 0.5 + 0.01)  # top-left corner of cell (1, 0)
    before = canvas_pixel(page, ".dv-heatmap-canvas", *edge)
    page.mouse.click(box["x"] + box["width"] * 0.15, box["y"] + box["height"] * 0.75)
    page.mouse.move(0, 0)
    assert canvas_pixel(page, ".dv-heatmap-canvas", *edge) != before
    page.wait_for_timeout(300)
    assert log.dialogs == []
    assert log.blocked == [], f"the page asked the network for {log.blocked}"
