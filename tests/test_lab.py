"""Live JupyterLab: a notebook runs, the view draws, clicks reach Python, and the sidebar works."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest

from .conftest import canvas_pixel, jupyter_lab, open_offline_page, wait_for_lab_kernel

pytestmark = [pytest.mark.browser, pytest.mark.lab]

TOKEN = "deepvis-test-token"
HOSTILE = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"



@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import numpy as np, deepvis_widgets as dv\n"
            "w = dv.ArrayHeatmap(np.array([[0.0, 1.0], [2.0, 3.0]]), scale='sequential', colormap='viridis',\n"
            f"                     title={HOSTILE!r}, row_labels=['<b>bold?</b>', 'b'])\n"
            "w.observe(lambda ch: open('selected.txt', 'w').write(repr(ch['new'])), 'selected')\n"
            "w"
        ),
        nbformat.v4.new_code_cell(
            "side = dv.ArrayHeatmap(np.array([[3.0, 0.0]]), scale='sequential', colormap='viridis', title='in the sidebar')\n"
            "sc = side.show_in_sidebar(title='deepvis sidebar')"
        ),
    ]
    nbformat.write(nb, root / "live.ipynb")
    with jupyter_lab(root, TOKEN) as base:
        yield {"base": base, "root": root}


def test_notebook_runs_draws_syncs_clicks_and_fills_the_sidebar(browser, lab) -> None:
    page, log = open_offline_page(browser)
    page.set_default_timeout(120_000)
    page.goto(f"{lab['base']}/lab/tree/live.ipynb?token={TOKEN}")
    page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook')")
    # Wait for the kernel, accepting a "Select Kernel" dialog if JupyterLab shows one.
    wait_for_lab_kernel(page)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

    view = ".jp-OutputArea .dv-root[data-dv-drawn=true]"
    page.wait_for_selector(view)
    canvas = ".jp-OutputArea .dv-heatmap-canvas"
    assert tuple(canvas_pixel(page, canvas, 0.25, 0.25)[:3]) == (68, 1, 84)
    assert tuple(canvas_pixel(page, canvas, 0.75, 0.75)[:3]) == (253, 231, 37)
    # Hostile title and labels are text in the live cell, and nothing ran.
    assert page.inner_text(".jp-OutputArea .dv-title") == HOSTILE
    assert page.query_selector(".jp-OutputArea .dv-root img, .jp-OutputArea .dv-root b") is None

    # Colours follow JupyterLab's theme variables (a theme switch changes them on body).
    bg = page.evaluate(
        "() => { document.body.style.setProperty('--jp-layout-color0', 'rgb(1, 2, 3)');"
        " const bg = getComputedStyle(document.querySelector('.jp-OutputArea .dv-root')).backgroundColor;"
        " document.body.style.removeProperty('--jp-layout-color0'); return bg; }"
    )
    assert bg == "rgb(1, 2, 3)"

    # A click in the browser reaches Python (the kernel writes selected.txt).
    box = page.query_selector(canvas).bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.25)
    sel = Path(lab["root"]) / "selected.txt"
    deadline = time.time() + 30
    while not sel.exists() or not sel.read_text():
        assert time.time() < deadline, "the click never reached the kernel"
        time.sleep(0.2)
    assert sel.read_text() == "(0, 1)"

    # The sidebar view: drawn inside JupyterLab's right panel.
    side = "#jp-right-stack .dv-root[data-dv-drawn=true]"
    page.wait_for_selector(side)
    assert page.inner_text("#jp-right-stack .dv-title") == "in the sidebar"
    assert tuple(canvas_pixel(page, "#jp-right-stack .dv-heatmap-canvas", 0.25, 0.5)[:3]) == (253, 231, 37)
    assert page.query_selector("text=deepvis sidebar") is not None
    assert log.dialogs == []
    page.context.close()
