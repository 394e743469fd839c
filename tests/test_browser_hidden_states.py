"""Hidden-state views in Chromium, from save_html pages with the network blocked (issue 10)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from deepvis_widgets.compute.hidden_states import GateTrace, HiddenStates
from deepvis_widgets.widgets.cell_text import CellOverText
from deepvis_widgets.widgets.gate_view import GateView
from deepvis_widgets.widgets.hidden_state_explorer import HiddenStateExplorer

from .conftest import (
    canvas_pixel,
    distinct_colors,
    jupyter_lab,
    open_offline_page,
    wait_drawn,
    wait_for_lab_kernel,
)
from .test_hidden_state_views import HOSTILE, QUOTED, planted, quote_states

pytestmark = pytest.mark.browser

PLOT_H, PAD, AXIS_W = 180, 6, 64  # js/hidden_state_explorer.ts
LAB_TOKEN = "deepvis-hs-token"


def _open(browser, widget, tmp_path, name="page.html", **kwargs):
    path = tmp_path / name
    widget.save_html(path)
    page, log = open_offline_page(browser, **kwargs)
    page.goto(path.as_uri())
    wait_drawn(page)
    return page, log


def _stage(page) -> tuple[int, int, int]:
    """(first token shown, tokens shown, token width in px)."""
    pos = int(page.get_attribute(".dv-hse-stage", "data-position"))
    visible = int(page.get_attribute(".dv-hse-stage", "data-visible"))
    tw = round(page.evaluate("() => document.querySelector('.dv-hse-tok').getBoundingClientRect().width"))
    return pos, visible, tw


def _brush(page, start: int, last: int, y_frac: float = 0.8) -> None:
    """Drags across the plot from token `start` to token `last` (inclusive)."""
    pos, _, tw = _stage(page)
    plot = page.query_selector(".dv-hse-plot")
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    y = box["y"] + box["height"] * y_frac
    page.mouse.move(box["x"] + AXIS_W + (start - pos + 0.5) * tw, y)
    page.mouse.down()
    page.mouse.move(box["x"] + AXIS_W + (last - pos + 0.5) * tw, y, steps=5)
    page.mouse.up()


def _matches(page) -> list[tuple[int, int]]:
    rows = page.eval_on_selector_all(".dv-hse-match", "els => els.map(e => [Number(e.dataset.start), Number(e.dataset.end)])")
    return [(s, e) for s, e in rows]


def _go_to(page, token: int) -> None:
    page.fill(".dv-hse-goto", str(token))
    page.press(".dv-hse-goto", "Enter")
    page.wait_for_function(
        "t => { const d = document.querySelector('.dv-hse-stage').dataset;"
        " return Number(d.position) <= t && t < Number(d.position) + Number(d.visible); }",
        arg=token,
    )


def test_explorer_draws_brushes_matches_and_scrolls_without_a_kernel(browser, tmp_path) -> None:
    x, tokens = planted()
    hs = HiddenStates(x, tokens, doc_starts=[0, 1000, 2000])
    w = HiddenStateExplorer(hs, title=HOSTILE, top_k=10)
    page, log = _open(browser, w, tmp_path)
    assert page.inner_text(".dv-title") == HOSTILE
    assert page.query_selector(".dv-root img") is None
    assert page.eval_on_selector_all(".dv-hse-tok", "els => els.map(e => e.textContent)")[5] == HOSTILE
    assert distinct_colors(page, ".dv-hse-plot") > 20, "16 cell lines, axis and threshold drawn"
    assert page.get_attribute(".dv-root", "data-dv-kernel") in ("unknown", "no")

    # Brush tokens 40..44: cells 3 and 7 are on there and off around it.
    _go_to(page, 40)
    _brush(page, 40, 44)
    assert page.get_attribute(".dv-hse-summary", "data-cells") == "3,7"
    assert page.inner_text(".dv-hse-summary").count("cell ") == 2
    # Without a kernel the page matches inside its saved part (here all 3,000 tokens), as Python does.
    want = hs.match([3, 7], threshold=0.3, top_k=10)
    assert _matches(page) == [(int(s), int(e)) for s, e in zip(want.starts, want.ends, strict=True)]
    assert _matches(page)[:4] == [(40, 45), (300, 305), (2500, 2505), (1200, 1205)]
    assert page.get_attribute(".dv-hse-match-head", "data-source") == "page"
    assert "saved with this page" in page.inner_text(".dv-hse-match-head")
    heat_rows = page.evaluate("() => document.querySelector('.dv-hse-heat').style.display")
    assert heat_rows == "" and distinct_colors(page, ".dv-hse-heat") > 4

    # Clicking the third match scrolls the window there and marks it.
    page.click(".dv-hse-match >> nth=2")
    pos, visible, _ = _stage(page)
    assert pos == 2500 - visible // 3
    focused = page.eval_on_selector_all(".dv-hse-tok.dv-hse-focus", "els => els.map(e => Number(e.dataset.t))")
    assert focused == [2500, 2501, 2502, 2503, 2504]

    # Dragging the threshold line up to 0.7 leaves only cell 3 (0.8; cell 7 sits at 0.6).
    lo, hi = w.y_range
    box = page.query_selector(".dv-hse-plot").bounding_box()
    y_thr = box["y"] + PAD + (1 - (0.3 - lo) / (hi - lo)) * (PLOT_H - 2 * PAD)
    y_new = box["y"] + PAD + (1 - (0.7 - lo) / (hi - lo)) * (PLOT_H - 2 * PAD)
    page.mouse.move(box["x"] + 300, y_thr)
    page.mouse.down()
    page.mouse.move(box["x"] + 300, y_new, steps=4)
    page.mouse.up()
    assert abs(float(page.input_value("input[aria-label=threshold]")) - 0.7) < 0.01
    assert page.get_attribute(".dv-hse-summary", "data-cells") == "3"
    assert _matches(page)[0] in [(40, 45), (300, 305), (1200, 1205), (2500, 2505)]

    with page.expect_download() as dl:
        page.click(".dv-toolbar .dv-button")
    assert dl.value.suggested_filename.endswith(".png")
    assert log.dialogs == [] and log.blocked == [] and log.errors == []
    page.context.close()


def test_a_selection_set_in_python_is_saved_with_its_matches(browser, tmp_path) -> None:
    x, tokens = planted(n=20_000)
    hs = HiddenStates(x, tokens)
    w = HiddenStateExplorer(hs, embed_tokens=1000, top_k=5)
    w.selection = {"start": 1200, "end": 1205, "threshold": 0.5}  # beyond the saved part
    assert w.selection["cells"] == [3, 9, 7]
    page, log = _open(browser, w, tmp_path, color_scheme="dark")
    assert page.get_attribute(".dv-hse-summary", "data-cells") == "3,9,7"
    assert _matches(page) == [(m["start"], m["end"]) for m in w.matches]
    assert page.get_attribute(".dv-hse-match-head", "data-source") == "python"
    assert "all 20,000 tokens" in page.inner_text(".dv-hse-match-head")
    # The snippets come from Python, so they show text outside the saved part too.
    snippet = page.eval_on_selector_all(".dv-hse-match >> nth=0 >> .dv-hse-stok", "els => els.map(e => e.textContent)")
    assert "".join(snippet).replace("\u23ce", "\n").replace("\u2423", " ") == "".join(hs.tokens_in(1196, 1209))
    # The view opened at the selection, which this page cannot show: it says so.
    pos, _, _ = _stage(page)
    assert pos <= 1200 < pos + 60
    assert "not saved with this page" in page.inner_text(".dv-hse-note")
    assert "first 1,000 of 20,000 tokens" in page.inner_text(".dv-hse-note")
    bg = page.evaluate("() => getComputedStyle(document.querySelector('.dv-root')).backgroundColor")
    assert bg == "rgb(17, 20, 24)", "dark theme"
    assert log.dialogs == [] and log.blocked == []
    page.context.close()


def test_scrolling_100k_tokens_draws_only_the_window(browser, tmp_path) -> None:
    rng = np.random.default_rng(1)
    n = 100_000
    x = np.cumsum(rng.normal(scale=0.05, size=(n, 16)), axis=0)
    x = np.tanh(x - x.mean(axis=0)).astype(np.float16)
    hs = HiddenStates(x, list(("for i in range(10):\n    print(i)\n" * (n // 30 + 1))[:n]))
    w = HiddenStateExplorer(hs, embed_tokens=n)
    page, log = _open(browser, w, tmp_path)
    _, visible, _ = _stage(page)
    stats = page.evaluate(
        """async () => {
            const slider = document.querySelector('.dv-hse-slider');
            const root = document.querySelector('.dv-root');
            const times = [];
            const t0 = performance.now();
            for (let i = 0; i < 60; i++) {
                slider.value = String(i * 1690);
                slider.dispatchEvent(new Event('input'));
                await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
                times.push(Number(root.dataset.dvDrawMs));
            }
            times.sort((a, b) => a - b);
            return {median: times[30], p90: times[54], frame: (performance.now() - t0) / 60,
                    pos: Number(document.querySelector('.dv-hse-stage').dataset.position),
                    nodes: document.querySelectorAll('.dv-hse-tok').length};
        }"""
    )
    assert stats["pos"] == 59 * 1690
    assert stats["nodes"] == visible < 200, "one label per visible token, not per corpus token"
    # Drawing one window costs a few ms whatever the position (measured: median ~2 ms, frame ~20-60 ms
    # headless on a shared core, where requestAnimationFrame itself paces the loop).
    assert stats["median"] < 12 and stats["p90"] < 30, stats
    assert log.errors == []
    page.context.close()


def _bg(page, selector: str) -> tuple[int, int, int]:
    rgb = page.evaluate(f"() => getComputedStyle(document.querySelector({selector!r})).backgroundColor")
    return tuple(int(float(v)) for v in rgb[rgb.index("(") + 1 : -1].split(",")[:3])


def test_cell_over_text_colours_the_text_and_switches_cells(browser, tmp_path) -> None:
    hs = quote_states()
    w = CellOverText(hs, indicator="inside_quotes", top=5, title=HOSTILE)
    page, log = _open(browser, w, tmp_path)
    assert page.inner_text(".dv-title") == HOSTILE and page.query_selector(".dv-root img") is None
    assert page.eval_on_selector_all(".dv-cot-tok", "els => els.length") == len(QUOTED)
    assert page.inner_text(".dv-cot-tok[data-i='3']") == HOSTILE
    assert page.eval_on_selector_all(".dv-cot-item", "els => els.map(e => Number(e.dataset.cell))") == [d["cell"] for d in w.ranked]
    assert page.get_attribute(".dv-cot-text", "data-cell") == "5"
    # Cell 5: red inside the quotes of 's = "v0"', blue outside.
    quote = QUOTED.index('"v0"') + 1
    r, g, b = _bg(page, f".dv-cot-tok[data-i='{quote}']")
    assert r > b + 60, (r, g, b)
    r, g, b = _bg(page, ".dv-cot-tok[data-i='0']")
    assert b > r + 60, (r, g, b)
    # Pick the indentation cell (2) from the list: the colours follow it.
    page.click(".dv-cot-item[data-cell='2']")
    assert page.get_attribute(".dv-cot-text", "data-cell") == "2"
    indented = QUOTED.index("    s =") + 5
    assert _bg(page, f".dv-cot-tok[data-i='{indented}']")[2] < _bg(page, ".dv-cot-tok[data-i='1']")[2] - 100, "deep red vs near white"
    # A cell that was not saved with the page: it says so instead of drawing stale colours.
    missing = next(c for c in range(12) if c not in w._columns)
    page.fill("input[aria-label=cell]", str(missing))
    page.press("input[aria-label=cell]", "Enter")
    assert "was not saved with this page" in page.inner_text(".dv-cot-note")
    page.select_option("select[aria-label='colour by']", "indicator")
    assert page.get_attribute(".dv-cot-text", "data-cell") == "indicator"
    page.hover(f".dv-cot-tok[data-i='{quote}']")
    assert "inside_quotes" in page.inner_text(".dv-tooltip") and "1" in page.inner_text(".dv-tooltip")
    assert log.dialogs == [] and log.blocked == [] and log.errors == []
    page.context.close()


def test_gate_view_colours_each_component_and_plots_a_unit(browser, tmp_path) -> None:
    T, H = 50, 4
    z = np.zeros((T, H), np.float32)
    z[:, 0] = 1.0  # unit 0 keeps its state: update gate fully on
    h = np.zeros((T, H), np.float32)
    h[:, 2] = -1.0
    h[:, 3] = 1.0
    arrays = {"z": z, "r": np.full((T, H), 0.5, np.float32), "n": np.zeros((T, H), np.float32), "h": h}
    trace = GateTrace("GRU", arrays, np.zeros(H, np.float32), None, 0, 0, 0.0)
    tokens = [HOSTILE] + ["ab"] * (T - 1)
    w = GateView(trace, tokens=tokens, inputs=np.linspace(-1, 2, T), input_lines=(0, 1), title=HOSTILE)
    page, log = _open(browser, w, tmp_path)
    assert page.inner_text(".dv-title") == HOSTILE and page.query_selector(".dv-root img") is None
    assert page.inner_text(".dv-gate-tok[data-step='0']") == HOSTILE
    sel = ".dv-gate-heat[data-component='{}']"
    # Rows are units 0..3 top to bottom; read the middle of each row.
    assert canvas_pixel(page, sel.format("z"), 0.5, 0.125)[:3] == [230, 85, 13], "z = 1: full update-gate hue"
    assert canvas_pixel(page, sel.format("z"), 0.5, 0.375)[:3] == [255, 255, 255], "z = 0: white"
    assert canvas_pixel(page, sel.format("h"), 0.5, 0.625)[:3] == [82, 82, 82], "h = -1: grey"
    assert canvas_pixel(page, sel.format("h"), 0.5, 0.875)[:3] == [49, 130, 189], "h = +1: state hue"
    assert distinct_colors(page, ".dv-gate-input") > 3
    box = page.query_selector(sel.format("r")).bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.9)
    tip = page.inner_text(".dv-tooltip")
    assert "unit\t3" in tip or "unit 3" in tip.replace("\n", " ").replace("\t", " ")
    page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.9)
    assert page.inner_text(".dv-gate-unit-title") == "Unit 3 over time"
    assert distinct_colors(page, ".dv-gate-unit") > 4
    assert log.dialogs == [] and log.blocked == [] and log.errors == []
    page.context.close()


# --- live JupyterLab: the kernel serves windows, selections and matches ------------------------------
LIVE_CELL = """
import json, numpy as np
from deepvis_widgets.compute.hidden_states import HiddenStates
from deepvis_widgets.widgets.hidden_state_explorer import HiddenStateExplorer
rng = np.random.default_rng(0)
x = rng.uniform(-0.25, 0.25, (20_000, 16))
for s in (40, 300, 1200, 15_000):
    x[s:s + 5, 3] = 0.8
    x[s:s + 5, 7] = 0.6
w = HiddenStateExplorer(HiddenStates(x, [chr(97 + i % 26) for i in range(20_000)]), embed_tokens=500, top_k=10)
w.observe(lambda ch: open("live.json", "w").write(json.dumps({"selection": w.selection, "matches": w.matches})),
          "_match_serial")
w.observe(lambda ch: open("position.txt", "w").write(str(w.position)), "position")
w
"""


@pytest.fixture(scope="module")
def live_lab(tmp_path_factory):
    import nbformat


    root = tmp_path_factory.mktemp("lab_hs")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(LIVE_CELL)]
    nbformat.write(nb, root / "live.ipynb")
    with jupyter_lab(root, LAB_TOKEN) as base:
        yield {"base": base, "root": root}


def _wait_file(path, check, what: str, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        if text and check(text):
            return text
        assert time.time() < deadline, f"{what}: {text!r}"
        time.sleep(0.2)


@pytest.mark.lab
def test_explorer_in_a_live_kernel_fetches_windows_and_matches_in_python(browser, live_lab) -> None:
    page, log = open_offline_page(browser)
    page.set_default_timeout(120_000)
    page.goto(f"{live_lab['base']}/lab/tree/live.ipynb?token={LAB_TOKEN}")
    page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook')")
    wait_for_lab_kernel(page)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector(".jp-OutputArea .dv-root[data-dv-drawn=true][data-dv-kernel=yes]")

    # Token 15,000 is far beyond the 500 saved tokens: the kernel serves that window.
    _go_to(page, 15_000)
    page.wait_for_function("() => document.querySelector('.dv-hse-tok[data-slot=\"0\"]').textContent !== ''")
    pos, visible, _ = _stage(page)
    texts = page.eval_on_selector_all(".dv-hse-tok", "els => els.map(e => e.textContent)")
    assert texts[:3] == [chr(97 + (pos + i) % 26) for i in range(3)]
    assert page.evaluate("() => document.querySelector('.dv-hse-note').style.display") == "none"

    # Brushing there: Python confirms the selection and matches over all 20,000 tokens.
    _brush(page, 15_000, 15_004)
    live = json.loads(_wait_file(live_lab["root"] / "live.json", lambda s: '"cells": [3, 7]' in s, "no selection in the kernel"))
    assert live["selection"]["start"] == 15_000 and live["selection"]["end"] == 15_005
    starts = [m["start"] for m in live["matches"]]
    assert starts[:4] == [40, 300, 1200, 15_000]
    page.wait_for_function("() => document.querySelector('.dv-hse-match-head').dataset.source === 'python'"
                           " && document.querySelectorAll('.dv-hse-match').length >= 4")
    assert [s for s, _ in _matches(page)][:4] == [40, 300, 1200, 15_000]
    assert "all 20,000 tokens" in page.inner_text(".dv-hse-match-head")

    # Clicking a match scrolls the view, and the position reaches the kernel.
    page.click(".dv-hse-match >> nth=1")
    pos, visible, _ = _stage(page)
    assert pos == 300 - visible // 3
    assert _wait_file(live_lab["root"] / "position.txt", lambda s: s == str(pos), "position never reached the kernel") == str(pos)
    assert log.dialogs == []
    page.context.close()
