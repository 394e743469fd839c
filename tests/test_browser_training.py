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
from deepvis_widgets.widgets.training import TrainingMonitor

from .conftest import (
    distinct_colors,
    jupyter_lab,
    open_offline_page,
    wait_drawn,
    wait_for_lab_kernel,
)

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
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    page.mouse.move(box["x"] + box["width"] * fx0, box["y"] + box["height"] * fy0)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * fx1, box["y"] + box["height"] * fy1, steps=6)
    page.mouse.up()


def _selection_head(page, scope: str = "") -> str:
    """The monitor's selection line once it reports a selection (the cards follow a brush by a frame)."""
    sel = f"{scope} .dv-train-selhead".strip()
    page.wait_for_function("s => document.querySelector(s).textContent.includes('selected')", arg=sel)
    return page.inner_text(sel)


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


# --- TrainingMonitor ---------------------------------------------------------------------


def _synthetic_monitor(n: int = 300, steps: int = 30, *, title: str = HOSTILE_TITLE, examples=True) -> TrainingMonitor:
    """A monitor fed like a training loop: most examples learned at various speeds, 10% never."""
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(0)
    hard = np.arange(n) % 10 == 0
    speed = rng.uniform(0.12, 0.3, n)
    mon = TrainingMonitor(
        examples=d.images[:n] if examples else None,
        example_ids=None if examples else np.arange(n),
        labels=d.target[:n],
        class_names=[f"{HOSTILE}{k}" for k in range(10)],
        title=title,
        max_updates_per_second=1000,
    )
    for k in range(steps):
        step = 10 * k
        loss = np.where(hard, 2.0 + 0.1 * rng.normal(size=n), 2.3 * np.exp(-speed * k) * np.exp(0.1 * rng.normal(size=n)))
        mon.log(step, split="train", loss=float(loss.mean()))
        mon.log(step, split=HOSTILE, loss=float(loss.mean() * 1.1))
        mon.log_examples(step, np.arange(n), loss, preds=np.where(loss < 0.7, d.target[:n], 0))
    mon.flush()
    return mon


def _accent_pixels(page, selector: str = ".dv-traj-canvas") -> int:
    """Pixels of the trajectory canvas close to the light theme's accent (#1976d2)."""
    return page.evaluate(
        """sel => { const c = document.querySelector(sel); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let k = 0; for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - 25) < 40 && Math.abs(d[i+1] - 118) < 40 && d[i+2] > 150) k++; return k; }""",
        selector,
    )


def test_monitor_draws_and_brushing_links_the_panels_both_ways(browser, tmp_path) -> None:
    mon = _synthetic_monitor()
    page, log, _ = _open(browser, tmp_path, mon)
    assert page.inner_text(".dv-title") == HOSTILE_TITLE
    assert distinct_colors(page, ".dv-traj-canvas") > 20, "trajectories drawn"
    assert _colors(_shot(page.locator(".dv-train-curves"))) > 20, "curves drawn"
    scatter = page.locator(".dv-train-scatter")
    before = _shot(scatter)
    assert _accent_pixels(page) == 0
    # Brush the trajectories where only never-learned examples remain (high loss, late steps).
    _drag(page, page.locator(".dv-traj-canvas"), 0.8, 0.03, 0.98, 0.2)
    head = _selection_head(page)
    assert head.startswith("30 selected"), head  # exactly the 10% planted as never learned
    assert _accent_pixels(page) > 100, "the brushed trajectories are highlighted"
    assert np.abs(np.asarray(_shot(scatter), dtype=int) - np.asarray(before, dtype=int)).sum() > 0, "the scatter shows the selection"
    cards = page.locator(".dv-train-cards .dv-example-card")
    assert cards.count() == 30 and cards.locator("canvas.dv-example-thumb").count() == 30
    assert f"label {HOSTILE}" in cards.first.inner_text() and page.query_selector(".dv-root img") is None
    # The other way: box-select the well-learned corner of the scatter; the trajectory overlay follows.
    page.click("text=clear selection")
    page.wait_for_function("() => !document.querySelector('.dv-train-selhead').textContent.includes('selected')")
    assert _accent_pixels(page) == 0
    _drag(page, scatter, 0.2, 0.75, 0.75, 0.95)
    head = _selection_head(page)
    assert int(head.split()[0]) > 5
    assert _accent_pixels(page) > 100
    page.wait_for_timeout(200)
    assert log.dialogs == [] and log.blocked == [] and log.errors == []
    page.context.close()


def test_monitor_png_export_and_layers_panel(browser, tmp_path) -> None:
    import torch

    mon = _synthetic_monitor(n=100, steps=10, title="export me")
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    with mon.track_layers(net, every=1):
        for _ in range(6):
            net(torch.randn(16, 4)).pow(2).mean().backward()
    mon.flush()
    page, _, _ = _open(browser, tmp_path, mon)
    page.wait_for_selector(".dv-train-layers-section >> visible=true")
    layers = page.locator(".dv-train-layers")
    by_grad = _shot(layers)
    page.click("button[data-metric=dead_fraction]")
    page.wait_for_timeout(300)
    assert np.abs(np.asarray(_shot(layers), dtype=int) - np.asarray(by_grad, dtype=int)).sum() > 0
    with page.expect_download() as info:
        page.click(".dv-toolbar .dv-button")
    data = open(info.value.path(), "rb").read()
    assert info.value.suggested_filename == "export-me.png" and data[:8] == b"\x89PNG\r\n\x1a\n"
    height = int.from_bytes(data[20:24], "big")
    assert height >= 220 + 320 + 320 + 150, "curves, scatter, trajectories and layers stacked"
    page.context.close()


def test_bokehjs_is_saved_and_evaluated_once_for_many_views(browser, tmp_path) -> None:
    from deepvis_widgets.widgets.similarity import SimilarityMatrix

    x = np.random.default_rng(1).normal(size=(120, 6))
    one = _synthetic_monitor(n=50, steps=5, title="one")
    views = [
        one,
        ProjectionView(x, title="p"),
        SimilarityMatrix({"a": x, "b": np.tanh(x), f"{HOSTILE}": x[:, :2]}, title="s"),
        _synthetic_monitor(n=50, steps=5, title="two"),
        ProjectionView(x[:, :3], title="q"),
    ]
    single = tmp_path / "one.html"
    save_html(single, one)
    page, log, path = _open(browser, tmp_path, *views, name="five.html")
    text = path.read_text(encoding="utf-8")
    assert text.count(BOKEH_MARKER) == 1 and single.read_text(encoding="utf-8").count(BOKEH_MARKER) == 1
    growth = path.stat().st_size - single.stat().st_size
    print(f"save_html: 1 view {single.stat().st_size / 1e6:.2f} MB, 5 views {path.stat().st_size / 1e6:.2f} MB")
    assert growth < 1_000_000, "four more chart views add far less than another copy of BokehJS (1.4 MB)"
    assert page.evaluate("globalThis.__deepvis_bokeh.evaluations") == 1
    assert page.locator(".dv-root[data-dv-drawn=true]").count() == 5
    assert f"A {HOSTILE} × A {HOSTILE}" in page.inner_text(".dv-sim-readout"), "the default pair is the last layers"
    assert page.query_selector(".dv-root img") is None and log.dialogs == []
    page.context.close()


def test_similarity_click_shows_the_pair(browser, tmp_path) -> None:
    from deepvis_widgets.widgets.similarity import SimilarityMatrix

    rng = np.random.default_rng(2)
    x = rng.normal(size=(150, 5))
    m = SimilarityMatrix({"x": x, HOSTILE: np.maximum(x, 0), "noise": rng.normal(size=(150, 3))}, labels=np.arange(150) % 3)
    page, log, _ = _open(browser, tmp_path, m)
    readout = page.locator(".dv-sim-readout")
    assert readout.inner_text().startswith("A noise × A noise: linear CKA 1")
    chart = page.locator(".dv-sim-chart")
    before = _shot(chart)
    # Click around the top left of the heatmap (rows x, relu; columns x, relu) until another cell is picked.
    for fx, fy in [(0.17, 0.35), (0.2, 0.4), (0.25, 0.45), (0.15, 0.3)]:
        box = chart.bounding_box()
        page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
        if "noise × A noise" not in readout.inner_text():
            break
    page.mouse.move(0, 0)
    text = readout.inner_text()
    assert "noise × A noise" not in text and "linear CKA" in text, text
    assert np.abs(np.asarray(_shot(chart), dtype=int) - np.asarray(before, dtype=int)).sum() > 0
    assert log.dialogs == [] and page.query_selector(".dv-root img") is None
    page.context.close()


# --- exported notebook ---------------------------------------------------------------------

_NB_SETUP = f"""
import numpy as np
from deepvis_widgets.widgets.training import TrainingMonitor
from deepvis_widgets.widgets.projection import ProjectionView
from deepvis_widgets.widgets.similarity import SimilarityMatrix
rng = np.random.default_rng(0)
n = 200
hard = np.arange(n) % 10 == 0
mon = TrainingMonitor(example_ids=np.arange(n), labels=np.arange(n) % 4, class_names=[{HOSTILE!r}] * 4, title="live")
mon
"""

_NB_LOOP = """
for step in range(50):
    loss = np.where(hard, 2.0, 2.3 * np.exp(-0.15 * step)) * np.exp(0.05 * rng.normal(size=n))
    mon.log(step, loss=float(loss.mean()))
    mon.log_examples(step, np.arange(n), loss)
"""

_NB_OTHERS = """
x = rng.normal(size=(150, 6))
ProjectionView(x, labels=np.arange(150) % 3, title="projection")
"""

_NB_SIM = """
SimilarityMatrix({"x": x, "tanh": np.tanh(x)}, title="similarity")
"""


@pytest.fixture(scope="module")
def exported_notebook(tmp_path_factory):
    import nbformat

    from deepvis_widgets.export import execute_notebook, export_notebook

    tmp = tmp_path_factory.mktemp("nb")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (_NB_SETUP, _NB_LOOP, _NB_OTHERS, _NB_SIM)]
    src = tmp / "training.ipynb"
    nbformat.write(nb, src)
    executed = execute_notebook(src)
    saved = tmp / "executed.ipynb"
    nbformat.write(executed, saved)
    return {"saved": saved, "html": export_notebook(executed, tmp / "training.html")}


def test_exported_notebook_keeps_the_loop_data_and_one_bokehjs(exported_notebook) -> None:
    import base64
    import json
    import re

    nb = json.loads(exported_notebook["saved"].read_text())
    states = nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    loaders = [s for s in states.values() if "_bokeh_js" in s["state"]]
    assert len(loaders) == 1, "one BokehLoader for three chart views"
    (mon,) = [s for s in states.values() if s["state"].get("title") == "live"]
    steps = [b for b in mon["buffers"] if b["path"] == ["_scalars", "steps", "buffer"]]
    last = np.frombuffer(base64.b64decode(steps[0]["data"]), dtype="<f4")[-1]
    assert last == 49, "the loop ran in a later cell; its last step reached the saved state"
    html = exported_notebook["html"].read_text(encoding="utf-8")
    assert len(re.findall(r"models\\?/tools\\?/inspectors\\?/hover_tool", html)) == 1


def test_exported_notebook_renders_and_brushes_offline(browser, exported_notebook) -> None:
    page, log = open_offline_page(browser)
    page.goto(exported_notebook["html"].as_uri())
    wait_drawn(page, 3, timeout=60_000)
    assert page.evaluate("globalThis.__deepvis_bokeh.evaluations") == 1
    assert distinct_colors(page, ".dv-traj-canvas") > 10
    _drag(page, page.locator(".dv-traj-canvas"), 0.7, 0.02, 0.99, 0.25)
    assert _selection_head(page).startswith("20 selected")
    assert f"label {HOSTILE}" in page.locator(".dv-train-cards").inner_text()
    assert page.query_selector(".dv-root img") is None and log.dialogs == []
    assert log.blocked == [], f"the page asked the network for {log.blocked}"
    page.context.close()


# --- live JupyterLab ------------------------------------------------------------------------

_LAB_TOKEN = "deepvis-training-token"

_LAB_DISPLAY = """
import time, numpy as np
from deepvis_widgets.widgets.training import TrainingMonitor
n = 300
hard = np.arange(n) % 10 == 0
mon = TrainingMonitor(example_ids=np.arange(n), title="live loop")
mon.observe(lambda ch: open("selected.txt", "w").write(repr(ch["new"])), "selected_ids")
mon
"""

_LAB_LOOP = """
rng = np.random.default_rng(0)
for step in range(150):
    loss = np.where(hard, 2.0, 2.3 * np.exp(-0.05 * step)) * np.exp(0.05 * rng.normal(size=n))
    mon.log(step, loss=float(loss.mean()))
    mon.log_examples(step, np.arange(n), loss)
    time.sleep(0.05)
open("loop_done.txt", "w").write(str(mon.updates_sent))
"""


@pytest.fixture(scope="module")
def training_lab(tmp_path_factory):
    import nbformat

    root = tmp_path_factory.mktemp("lab")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(_LAB_DISPLAY), nbformat.v4.new_code_cell(_LAB_LOOP)]
    nbformat.write(nb, root / "training.ipynb")
    with jupyter_lab(root, _LAB_TOKEN) as base:
        yield {"base": base, "root": root}


@pytest.mark.lab
def test_live_loop_updates_the_view_and_brushing_reaches_python(browser, training_lab) -> None:
    import time
    from pathlib import Path

    page, log = open_offline_page(browser)
    page.set_default_timeout(120_000)
    page.goto(f"{training_lab['base']}/lab/tree/training.ipynb?token={_LAB_TOKEN}")
    page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook')")
    wait_for_lab_kernel(page)
    # Not awaited: the command's promise resolves only when every cell has run.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    root = ".jp-OutputArea .dv-root"
    # While the loop runs (7.5+ s), the view keeps receiving updates (throttled, so not one per step).
    done = Path(training_lab["root"]) / "loop_done.txt"
    seen = []
    deadline = time.time() + 120
    while not done.exists():
        el = page.query_selector(root)
        value = el.get_attribute("data-dv-updates") if el else None
        if value is not None and (not seen or seen[-1] != value):
            seen.append(value)
        assert time.time() < deadline, "the loop never finished"
        page.wait_for_timeout(100)
    assert len(seen) >= 3, f"the view updated during the loop: {seen}; console: {log.errors[:8]}"
    sent = int(done.read_text())
    assert sent <= 10 * 7.5 * 3, f"{sent} updates for 150 steps: throttled"
    # After the loop: the trajectories are drawn and brushing reaches the kernel.
    page.wait_for_function("document.querySelector('.jp-OutputArea .dv-train-examples').style.display !== 'none'")
    assert distinct_colors(page, ".jp-OutputArea .dv-traj-canvas") > 10
    page.wait_for_timeout(500)
    _drag(page, page.locator(".jp-OutputArea .dv-traj-canvas"), 0.75, 0.02, 0.99, 0.25)
    sel = Path(training_lab["root"]) / "selected.txt"
    deadline = time.time() + 30
    while not sel.exists() or not sel.read_text():
        assert time.time() < deadline, "the brush never reached the kernel"
        time.sleep(0.2)
    ids = eval(sel.read_text())
    assert ids == list(range(0, 300, 10)), f"exactly the never-learned examples, got {ids}"
    assert log.dialogs == []
    page.context.close()


def test_scatter_points_are_drawn_where_bokeh_maps_them(browser, tmp_path) -> None:
    # The points are our layer over Bokeh's frame (js/lib/scatter_layer.ts): each must sit where
    # Bokeh's own scales put (early loss, latest loss), in its label colour, and a selection dims the rest.
    mon = TrainingMonitor(example_ids=[0, 1, 2], labels=[0, 1, 2], class_names=["a", "b", "c"])
    mon.log_examples(0, [0, 1, 2], [0.5, 1.0, 2.0])
    mon.log_examples(1, [0, 1, 2], [0.1, 1.0, 3.0])
    mon.flush()
    page, log, _ = _open(browser, tmp_path, mon)
    probe = """([early, latest]) => {
      const layer = document.querySelector('.dv-scatter-layer');
      const view = Object.values(window.Bokeh.index).find(v => v.frame && v.el.closest?.('.dv-train-scatter'))
        ?? Object.values(window.Bokeh.index).find(v => v.frame && v.model.type === 'Figure' && v.el.getRootNode().host?.closest?.('.dv-train-scatter'));
      const f = view.frame;
      const k = layer.width / f.bbox.width;
      const x = Math.round((f.x_scale.compute(early) - f.bbox.left) * k);
      const y = Math.round((f.y_scale.compute(latest) - f.bbox.top) * k);
      return Array.from(layer.getContext('2d').getImageData(x, y, 1, 1).data);
    }"""
    page.wait_for_function("() => document.querySelector('.dv-scatter-layer')?.width > 0")
    page.wait_for_timeout(200)  # the ranges settle in Bokeh's first paint; the layer follows in the next frame
    colors = {"#4c78a8": (0.5, 0.1), "#f58518": (1.0, 1.0), "#54a24b": (2.0, 3.0)}
    for hex_color, point in colors.items():
        r, g, b, a = page.evaluate(probe, list(point))
        want = [int(hex_color[i : i + 2], 16) for i in (1, 3, 5)]
        assert a > 150 and max(abs(r - want[0]), abs(g - want[1]), abs(b - want[2])) <= 2, (hex_color, [r, g, b, a])
    corner = page.evaluate("() => Array.from(document.querySelector('.dv-scatter-layer').getContext('2d').getImageData(1, 1, 1, 1).data)")
    assert corner[3] == 0
    # selecting example 1 from Python: it stays opaque, the others fade to the unselected alpha
    mon.selected_ids = [1]
    page2, _, _ = _open(browser, tmp_path, mon, name="selected.html")
    page2.wait_for_function("() => document.querySelector('.dv-scatter-layer')?.width > 0")
    page2.wait_for_timeout(200)
    assert page2.evaluate(probe, [1.0, 1.0])[3] > 240
    assert page2.evaluate(probe, [0.5, 0.1])[3] < 60
    assert log.errors == []


def test_broken_figure_or_payload_shows_an_error_panel_not_a_blank(browser, tmp_path) -> None:
    p = ProjectionView(np.random.default_rng(0).normal(size=(20, 3)), title="broken figure")
    p._item = "{not json"
    mon = _synthetic_monitor(n=20, steps=3, title="broken data", examples=False)
    mon._ex = {**mon._ex, "loss": {**mon._ex["loss"], "shape": [21, 3]}}
    path = tmp_path / "broken.html"
    save_html(path, p, mon)
    page, _ = open_offline_page(browser)
    page.goto(path.as_uri())
    page.wait_for_function("document.querySelectorAll('[data-dv-state=error]').length === 2")
    texts = page.eval_on_selector_all(".dv-error", "els => els.map(e => e.innerText)")
    assert "This view could not be drawn" in texts[0] and "JSON" in texts[0]
    assert "for shape [21,3] of float32" in texts[1]
    page.context.close()
