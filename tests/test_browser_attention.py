"""Attention views in headless Chromium, network blocked: save_html pages and an exported notebook.

Every check reads the page back (canvas pixels, label text, data attributes),
and every page is watched for blocked requests, script dialogs and errors.
"""

from __future__ import annotations

import hashlib

import nbformat
import numpy as np
import pytest

from deepvis_widgets._html import save_html, standalone_html
from deepvis_widgets.export import execute_notebook, export_notebook
from deepvis_widgets.widgets.attention import HeadView, ModelView
from deepvis_widgets.widgets.neuron_view import NeuronView

from .conftest import (
    ROOT,
    canvas_pixel,
    distinct_colors,
    jupyter_lab,
    open_offline_page,
    wait_drawn,
    wait_for_lab_kernel,
)
from .test_attention_views import (
    TEXT,
    TEXT_B,
    bert_tokenizer,
    gpt_tokenizer,
    own_attentions,
    tiny_bert,
    tiny_gpt2,
)

pytestmark = pytest.mark.browser

HOSTILE = ["<img src=x onerror=alert(1)>", "</script><script>alert(1)</script>", "<b>bold</b>"]
TITLE = "</script><script>alert(1)</script>"
CANVAS = ".dv-att-canvas"


@pytest.fixture(scope="module")
def bert_pair():
    return tiny_bert(), bert_tokenizer()


def _open(browser, tmp_path, *views, name="view.html", html=None):
    path = tmp_path / name
    if html is not None:
        path.write_text(html)
    else:
        save_html(path, *views)
    page, log = open_offline_page(browser)
    page.goto(path.as_uri())
    wait_drawn(page, len(views))
    return page, log


def _canvas_hash(page, selector: str = CANVAS, index: int = 0) -> str:
    data = page.evaluate(
        """([sel, i]) => { const c = document.querySelectorAll(sel)[i];
            return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data.filter((_, k) => k % 7 === 0)); }""",
        [selector, index],
    )
    return hashlib.sha1(bytes(data)).hexdigest()


def _lines(page, index: int = 0) -> int:
    return int(page.eval_on_selector_all(".dv-root", "(els, i) => els[i].dataset.dvLines", index))


def _labels(page, side: str) -> list[str]:
    return page.eval_on_selector_all(f".dv-att-{side} .dv-att-token", "els => els.sort((a, b) => a.offsetTop - b.offsetTop).map(e => e.textContent)")


def _hover_token(page, side: str, row: int, row_height: float = 20) -> None:
    box = page.query_selector(f".dv-att-{side}").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + row * row_height + row_height / 2)


def _clean(log) -> None:
    assert log.dialogs == [], f"a script ran: {log.dialogs}"
    assert log.blocked == [], f"the page asked the network for {log.blocked}"
    assert [e for e in log.errors if "deepvis" in e or "Error" in e] == []


# HeadView -------------------------------------------------------------------------------------
def test_head_view_draws_switches_layer_and_focuses_a_hovered_token(browser, tmp_path, bert_pair):
    view = HeadView.from_model(*bert_pair, TEXT, TEXT_B, title=TITLE)
    page, log = _open(browser, tmp_path, view)
    assert page.inner_text(".dv-title") == TITLE
    assert _labels(page, "left")[:3] == ["[CLS]", "the", "cat"] and len(_labels(page, "right")) == 14
    assert distinct_colors(page, CANVAS) > 20, "lines in several head colours"
    all_lines = _lines(page)
    assert all_lines == 4 * 14 * 14, "a tiny model: every weight above 0.004 is a line"
    before = _canvas_hash(page)
    page.select_option(".dv-att-layer", "1")
    assert page.get_attribute(".dv-root", "data-dv-layer-shown") == "encoder/1"
    assert _canvas_hash(page) != before, "layer 1 draws other lines"
    # Hover query 3 ("sat"): only its 4 heads x 14 keys remain, and the keys are tinted by weight.
    _hover_token(page, "left", 3)
    page.wait_for_function("() => document.querySelector('.dv-root').dataset.dvLines === '56'")
    assert "query 3 “sat”" in page.inner_text(".dv-att-status")
    tinted = page.eval_on_selector_all(".dv-att-right .dv-att-token", "els => els.filter(e => e.style.backgroundColor).length")
    assert tinted == 14
    page.mouse.move(0, 0)
    page.wait_for_function(f"() => document.querySelector('.dv-root').dataset.dvLines === '{all_lines}'")
    # Rollout is the last "layer": one line colour, no head toggles.
    page.select_option(".dv-att-layer", "2")
    assert page.query_selector(".dv-att-head") is None and "rollout" in page.inner_text(".dv-att-status")
    _clean(log)
    page.context.close()


def test_hostile_tokens_render_as_text_and_no_script_runs(browser, tmp_path):
    w = np.random.default_rng(0).dirichlet(np.ones(3), size=(1, 2, 3)).astype(np.float32)
    page, log = _open(browser, tmp_path, HeadView(w, HOSTILE, title=TITLE))
    assert _labels(page, "left") == HOSTILE and _labels(page, "right") == HOSTILE
    assert page.query_selector(".dv-root img, .dv-root b") is None
    _hover_token(page, "right", 0)
    assert HOSTILE[0] in page.inner_text(".dv-att-status")
    page.wait_for_timeout(200)
    _clean(log)
    page.context.close()


def test_head_toggles_sentence_filters_and_special_tokens(browser, tmp_path, bert_pair):
    page, log = _open(browser, tmp_path, HeadView.from_model(*bert_pair, TEXT, TEXT_B))
    full = _lines(page)
    page.click(".dv-att-head[data-head='1']")
    page.wait_for_function(f"() => Number(document.querySelector('.dv-root').dataset.dvLines) < {full}")
    assert page.get_attribute(".dv-att-head[data-head='1']", "aria-pressed") == "false"
    assert _lines(page) == 3 * 14 * 14
    page.dblclick(".dv-att-head[data-head='2']")
    page.wait_for_function("() => document.querySelector('.dv-root').dataset.dvLines === '196'")
    assert [b.get_attribute("aria-pressed") for b in page.query_selector_all(".dv-att-head")] == ["false", "false", "true", "false"]
    page.select_option("select[aria-label='sentences']", "A->B")
    assert _labels(page, "left") == ["[CLS]", "the", "cat", "sat", "on", "the", "mat", ".", "[SEP]"]
    assert _labels(page, "right") == ["it", "was", "tired", ".", "[SEP]"]
    assert _lines(page) == 9 * 5
    page.select_option("select[aria-label='sentences']", "all")
    page.select_option("select[aria-label='special tokens']", "hide")
    assert "[CLS]" not in _labels(page, "left") and len(_labels(page, "left")) == 11
    assert _lines(page) == 11 * 11
    page.select_option("select[aria-label='special tokens']", "dim")
    assert page.eval_on_selector_all(".dv-att-left .dv-att-dim", "els => els.map(e => e.textContent)") == ["[CLS]", "[SEP]", "[SEP]"]
    _clean(log)
    page.context.close()


def test_png_and_svg_downloads(browser, tmp_path, bert_pair):
    page, _ = _open(browser, tmp_path, HeadView.from_model(*bert_pair, TEXT, title="bert <heads>"))
    with page.expect_download() as info:
        page.click(".dv-toolbar .dv-button:not(.dv-att-svg)")
    png = open(info.value.path(), "rb").read()
    assert info.value.suggested_filename == "bert-heads.png" and png[:8] == b"\x89PNG\r\n\x1a\n"
    with page.expect_download() as info:
        page.click(".dv-att-svg")
    text = open(info.value.path(), encoding="utf-8").read()
    assert info.value.suggested_filename == "bert-heads.svg" and text.startswith("<svg")
    assert text.count("<line") == _lines(page) and text.count("<text") == 2 * 9
    page.context.close()


def test_a_page_saved_without_layers_says_so_instead_of_drawing_nothing(browser, tmp_path, bert_pair):
    view = HeadView.from_model(*bert_pair, TEXT, embed=False)
    page, log = _open(browser, tmp_path, view, html=standalone_html([view]))  # bypasses save_html's embedding
    assert _lines(page) > 0
    page.select_option(".dv-att-layer", "1")
    page.wait_for_selector(".dv-att-status.dv-att-warning")
    assert "layer 1 was not saved with this page (embed=False) and no kernel is running" in page.inner_text(".dv-att-status")
    _clean(log)
    page.context.close()


def test_2048_tokens_open_scroll_and_focus(browser, tmp_path):
    n = 2048
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((1, 2, n, n), dtype=np.float32) * 4
    w = np.exp(scores - scores.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    view = HeadView(w, [f"t{i}" for i in range(n)], top_k=8, rollout=False)
    page, log = _open(browser, tmp_path, view)
    assert "top 8 keys per query kept" in page.inner_text(".dv-att-status")
    assert page.evaluate("() => document.querySelectorAll('.dv-att-token').length") < 600, "labels are virtualized"
    top = _canvas_hash(page)
    page.eval_on_selector(".dv-att-scroll", "e => { e.scrollTop = 16 * 1000; }")
    page.wait_for_selector(".dv-att-left .dv-att-token[data-token='1010']")
    page.wait_for_timeout(100)
    assert _canvas_hash(page) != top, "scrolling draws the lines there"
    box = page.query_selector(".dv-att-scroll").bounding_box()
    page.mouse.move(box["x"] + 10, box["y"] + 8 * 16 + 8)
    page.wait_for_function("() => document.querySelector('.dv-att-status').textContent.includes('query 1008')")
    assert 0 < _lines(page) <= 2 * 8
    _clean(log)
    page.context.close()


# ModelView ------------------------------------------------------------------------------------
def test_model_view_thumbnails_sort_and_open_the_head_view(browser, tmp_path, bert_pair):
    view = ModelView.from_model(*bert_pair, TEXT, TEXT_B, title="model")
    page, log = _open(browser, tmp_path, view)
    assert distinct_colors(page, ".dv-mv-canvas") > 10, "thumbnails drawn (a blank canvas has 1 colour)"
    assert page.is_hidden(".dv-mv-panel")
    before = _canvas_hash(page, ".dv-mv-canvas")
    page.select_option(".dv-mv-sort", "entropy")
    assert _canvas_hash(page, ".dv-mv-canvas") != before, "sorting by entropy reorders the thumbnails"
    assert page.inner_text(".dv-mv-collabel") == "#1"
    page.select_option(".dv-mv-sort", "head")
    box = page.query_selector(".dv-mv-canvas").bounding_box()
    cell = box["width"] / 4
    page.mouse.move(box["x"] + 2.5 * cell, box["y"] + 1.5 * cell)
    assert "1, 2" in page.inner_text(".dv-tooltip")
    page.mouse.click(box["x"] + 2.5 * cell, box["y"] + 1.5 * cell)
    page.wait_for_selector(".dv-mv-panel", state="visible")
    assert page.inner_text(".dv-mv-panel-title").startswith("Layer 1, head 2")
    assert page.get_attribute(".dv-root", "data-dv-layer-shown") == "encoder/1"
    assert [b.get_attribute("aria-pressed") for b in page.query_selector_all(".dv-att-head")] == ["false", "false", "true", "false"]
    assert _lines(page) == 14 * 14 and distinct_colors(page, CANVAS) > 3
    _clean(log)
    page.context.close()


# NeuronView -----------------------------------------------------------------------------------
def test_neuron_view_shows_the_models_softmax(browser, tmp_path):
    model, tok = tiny_gpt2(), gpt_tokenizer()
    view = NeuronView.from_model(model, tok, TEXT, layers=[0, 1], heads=[1, 3], layer=1, head=3, query=5)
    own = own_attentions(model, tok, TEXT)[""]
    page, log = _open(browser, tmp_path, view)
    assert page.inner_text(".dv-nv-query") == "5: mat"
    assert distinct_colors(page, ".dv-nv-canvas") > 20
    keys = page.query_selector(".dv-nv-keys").bounding_box()
    for key in (2, 6):
        page.mouse.move(keys["x"] + 5, keys["y"] + key * 18 + 9)
        tip = page.inner_text(".dv-tooltip").split("\n")
        shown = tip[tip.index("softmax") + 1]
        if key == 6:
            assert shown == "0 (masked)", "a key after the query is masked"
        else:
            assert float(shown) == pytest.approx(own[1, 3, 5, key], abs=2e-3)
    header = _canvas_hash(page, ".dv-nv-header")
    queries = page.query_selector(".dv-nv-queries").bounding_box()
    page.mouse.move(queries["x"] + 5, queries["y"] + 1 * 18 + 9)
    page.wait_for_function("() => document.querySelector('.dv-nv-query').textContent === '1: cat'")
    assert _canvas_hash(page, ".dv-nv-header") != header, "the query vector follows the hovered token"
    assert page.eval_on_selector_all(".dv-nv-head option", "os => os.map(o => o.disabled)") == [True, False, True, False]
    page.select_option(".dv-nv-head", "1")
    assert "layer 1, head 1" in page.inner_text(".dv-att-status")
    _clean(log)
    page.context.close()


# Exported notebook ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attention_nb")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import numpy as np, torch\n"
            "torch.set_num_threads(1)\n"
            "from tests.test_attention_views import tiny_bert, bert_tokenizer, TEXT, TEXT_B\n"
            "from deepvis_widgets.widgets.attention import HeadView, ModelView\n"
            "from deepvis_widgets.widgets.neuron_view import NeuronView\n"
            "model, tok = tiny_bert(), bert_tokenizer()\n"
            f"HeadView.from_model(model, tok, TEXT, TEXT_B, title={TITLE!r})"
        ),
        nbformat.v4.new_code_cell("ModelView.from_model(model, tok, TEXT)"),
        nbformat.v4.new_code_cell("NeuronView.from_model(model, tok, TEXT, layers=[0], heads=[0, 1])"),
        nbformat.v4.new_code_cell(
            f"HeadView(np.random.default_rng(0).dirichlet(np.ones(3), size=(2, 1, 3)), {HOSTILE!r})"
        ),
    ]
    src = tmp / "attention.ipynb"
    nbformat.write(nb, src)
    executed = execute_notebook(src, cwd=ROOT, timeout=300)
    return export_notebook(executed, tmp / "attention.html")


def test_exported_notebook_is_explorable_offline(browser, exported):
    page, log = open_offline_page(browser)
    page.goto(exported.as_uri())
    wait_drawn(page, 4, timeout=60_000)
    assert page.inner_text(".dv-title") == TITLE
    before = _canvas_hash(page)
    page.select_option(".dv-att-layer >> nth=0", "1")
    assert _canvas_hash(page) != before, "layer switch without a kernel"
    _hover_token(page, "left", 2)
    page.wait_for_function("() => document.querySelector('.dv-root').dataset.dvLines === '56'")
    assert page.eval_on_selector_all(".dv-view-head_view", "els => els.length") == 2
    last = page.query_selector_all(".dv-view-head_view")[1]
    assert last.eval_on_selector_all(".dv-att-left .dv-att-token", "els => els.map(e => e.textContent)") == HOSTILE
    assert page.query_selector(".dv-root img, .dv-root b") is None
    assert distinct_colors(page, ".dv-mv-canvas") > 10 and distinct_colors(page, ".dv-nv-canvas") > 10
    assert canvas_pixel(page, ".dv-nv-header", 0.05, 0.75)[3] == 255, "the query vector is drawn"
    page.wait_for_timeout(300)
    _clean(log)
    page.context.close()


# Live kernel: layers, rows and heads fetched on demand -----------------------------------------
@pytest.fixture(scope="module")
def lab_notebook(tmp_path_factory):
    from .test_lab import TOKEN

    root = tmp_path_factory.mktemp("attention_lab")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(
            f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
            "import numpy as np, torch\n"
            "torch.set_num_threads(1)\n"
            "from tests.test_attention_views import tiny_gpt2, gpt_tokenizer, TEXT\n"
            "from deepvis_widgets.widgets.attention import HeadView\n"
            "from deepvis_widgets.widgets.neuron_view import NeuronView\n"
            "rng = np.random.default_rng(0)\n"
            "w = rng.dirichlet(np.ones(40) * 0.1, size=(3, 2, 40)).astype(np.float32)\n"
            "HeadView(w, [f't{i}' for i in range(40)], embed=False, top_k=2, title='live')"
        ),
        nbformat.v4.new_code_cell("NeuronView.from_model(tiny_gpt2(), gpt_tokenizer(), TEXT, embed=False, layer=0, head=0)"),
    ]
    nbformat.write(nb, root / "live.ipynb")
    with jupyter_lab(root, TOKEN) as base:
        yield f"{base}/lab/tree/live.ipynb?token={TOKEN}"


@pytest.mark.lab
def test_live_kernel_sends_layers_rows_and_heads_on_demand(browser, lab_notebook):
    page, log = open_offline_page(browser)
    page.set_default_timeout(120_000)
    page.goto(lab_notebook)
    page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook')")
    wait_for_lab_kernel(page)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function("document.querySelectorAll('.jp-OutputArea .dv-root[data-dv-drawn=true]').length >= 2")
    head = page.query_selector(".jp-OutputArea .dv-view-head_view")
    assert head.get_attribute("data-dv-layer-shown") == "self/0"
    # Layer 1 was not embedded: the view asks the kernel for it.
    head.query_selector(".dv-att-layer").select_option("1")
    page.wait_for_function(
        "() => document.querySelector('.jp-OutputArea .dv-view-head_view').dataset.dvLayerShown === 'self/1'"
        " && Number(document.querySelector('.jp-OutputArea .dv-view-head_view').dataset.dvLines) > 0"
    )
    assert "dv-att-warning" not in head.query_selector(".dv-att-status").get_attribute("class")
    # Hovering a token of this pruned (top-2) layer fetches its exact row: more than 2 keys per head.
    box = head.query_selector(".dv-att-left").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 5 * 20 + 10)
    page.wait_for_function(
        "() => { const r = document.querySelector('.jp-OutputArea .dv-view-head_view');"
        " return r.querySelector('.dv-att-status').textContent.includes('query 5') && Number(r.dataset.dvLines) > 4; }"
    )
    # The neuron view computes a head that was not embedded.
    neuron = page.query_selector(".jp-OutputArea .dv-view-neuron_view")
    neuron.query_selector(".dv-nv-head").select_option("2")
    page.wait_for_function(
        "() => document.querySelector('.jp-OutputArea .dv-view-neuron_view .dv-att-status').textContent.includes('layer 0, head 2 ·')"
    )
    assert log.dialogs == []
    page.context.close()
