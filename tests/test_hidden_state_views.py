"""Hidden-state views (issue 10): validation, Python-side selection/matches sync, payloads.

Browser tests of the same views are in test_browser_hidden_states.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import traitlets as t
from torch import nn

from deepvis_widgets._arrays import decode_array
from deepvis_widgets.compute.hidden_states import (
    GateTrace,
    HiddenStates,
    gate_trace,
    indentation_depth,
    inside_quotes,
)
from deepvis_widgets.widgets.cell_text import MAX_TOKENS, CellOverText
from deepvis_widgets.widgets.gate_view import GateView
from deepvis_widgets.widgets.hidden_state_explorer import MAX_WINDOW, HiddenStateExplorer

HOSTILE = "<img src=x onerror=alert(1)>"


def planted(n: int = 3000, c: int = 16, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Noise below 0.25, with cells 3 and 7 on together at four places (and cell 9 at one of them)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.25, 0.25, (n, c))
    for s in (40, 300, 1200, 2500):
        if s + 5 <= n:
            x[s : s + 5, 3] = 0.8
            x[s : s + 5, 7] = 0.6
    if n > 1205:
        x[1200:1205, 9] = 0.7
    text = ("def f(x):\n    return x + 1\n" * (n // 20 + 1))[:n]
    tokens = list(text)
    tokens[5] = HOSTILE
    return x, tokens


@pytest.fixture
def hs() -> HiddenStates:
    x, tokens = planted()
    return HiddenStates(x, tokens, doc_starts=[0, 1000, 2000])


# --- HiddenStateExplorer: construction and validation ------------------------------------------
def test_explorer_embeds_a_bounded_first_part_as_float16(hs) -> None:
    w = HiddenStateExplorer(hs)
    assert (w.n_tokens, w.n_cells, w.embed_tokens) == (3000, 16, 3000)
    emb = w._embedded
    assert emb["values"]["dtype"] == "float16" and emb["values"]["shape"] == [3000, 16]
    np.testing.assert_array_equal(decode_array(emb["values"]), hs.window(0, 3000))
    assert emb["tokens"][5] == HOSTILE and emb["docs"] == [0, 1000, 2000]
    assert w.y_range[0] <= -0.2 and w.y_range[1] >= 0.79  # the planted values are not clipped
    assert w.token_width == 24  # one long token among characters: wider columns
    big = HiddenStates(np.zeros((50_000, 512), np.float16), ["a"] * 50_000)
    wb = HiddenStateExplorer(big)
    assert wb.embed_tokens == 1953 and wb.token_width == 12  # 1,000,000 values / 512 cells
    assert HiddenStateExplorer(big, embed_tokens=10)._embedded["values"]["shape"] == [10, 512]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"embed_tokens": 0}, ValueError, r"embed_tokens: expected 1..3000"),
        ({"embed_tokens": 3001}, ValueError, r"embed_tokens: expected 1..3000"),
        ({"embed_tokens": 2.5}, TypeError, r"embed_tokens: expected an int"),
        ({"y_range": (1, 0)}, ValueError, r"y_range: expected finite low < high"),
        ({"y_range": "ab"}, ValueError, r"y_range: expected"),
        ({"token_width": 3}, t.TraitError, r"token_width: expected 6..200"),
        ({"top_k": 0}, t.TraitError, r"top_k: expected 1..500"),
        ({"match_length": 0}, t.TraitError, r"match_length: expected None or a positive int"),
        ({"threshold": float("nan")}, t.TraitError, r"threshold: expected a finite number"),
        ({"position": 3000}, t.TraitError, r"position: expected 0 <= position < 3000"),
        ({"selection": {"start": 5, "end": 5}}, t.TraitError, r"expected start < end"),
        ({"bogus": 1}, TypeError, r"unexpected keyword argument\(s\): bogus"),
    ],
)
def test_explorer_rejects_bad_arguments(hs, kwargs, exc, match) -> None:
    with pytest.raises(exc, match=match):
        HiddenStateExplorer(hs, **kwargs)


def test_explorer_needs_hidden_states() -> None:
    with pytest.raises(TypeError, match="states: expected a HiddenStates"):
        HiddenStateExplorer(np.zeros((4, 2)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"start": 10, "end": 4}, r"selection: start, end: expected start < end, got start=10, end=4"),
        ({"start": -1, "end": 4}, r"selection: start: -1 is out of range for 3000 tokens"),
        ({"start": 2990, "end": 3001}, r"selection: end: 3001 is out of range for 3000 tokens"),
        ({"start": 1}, r"selection: missing end"),
        ({"start": 1, "end": 3, "threshold": "high"}, r"selection threshold: expected a finite number"),
        ({"start": 1.5, "end": 3}, r"selection start: expected an int"),
        ([1, 3], r"selection: expected None, a Selection or a dict"),
    ],
)
def test_selection_errors_name_what_was_expected(hs, value, match) -> None:
    w = HiddenStateExplorer(hs)
    with pytest.raises(t.TraitError, match=match):
        w.selection = value
    assert w.selection is None and w.matches == []


def test_matches_errors(hs) -> None:
    w = HiddenStateExplorer(hs)
    with pytest.raises(t.TraitError, match=r"matches\[1\]: expected 0 <= start < end <= 3000, got start=10, end=3005"):
        w.matches = [{"start": 1, "end": 3}, {"start": 10, "end": 3005}]
    with pytest.raises(t.TraitError, match=r"matches\[0\]: expected a dict with start and end"):
        w.matches = [{"end": 3}]
    with pytest.raises(t.TraitError, match="expected a list"):
        w.matches = 5  # type: ignore[assignment]


# --- selection and matches sync ------------------------------------------------------------------
def test_setting_a_selection_recomputes_cells_and_matches(hs) -> None:
    w = HiddenStateExplorer(hs, top_k=5)
    serial = w._match_serial
    w.selection = {"start": 40, "end": 45, "threshold": 0.3}
    assert w.selection == hs.select(40, 45, 0.3).to_dict()
    assert w.selection["cells"] == [3, 7]
    expected = hs.match([3, 7], top_k=5, threshold=0.3).to_records()
    assert w.matches == expected
    assert [m["start"] for m in w.matches] == [40, 300, 2500, 1200]
    assert w._match_serial == serial + 1 and w._match_note == ""
    # Snippets: the selection's cells, values equal to the states around each match.
    data = w._match_data
    assert data["cells"] == [3, 7] and len(data["items"]) == 4
    item = data["items"][3]
    assert (item["lo"], item["hi"]) == (1196, 1209) and item["tokens"] == hs.tokens_in(1196, 1209)
    values = decode_array(data["values"])
    offset = sum(it["hi"] - it["lo"] for it in data["items"][:3])
    np.testing.assert_array_equal(values[offset : offset + 13], hs.window(1196, 1209, cells=[3, 7]))


def test_front_end_cells_are_replaced_by_the_python_rule(hs) -> None:
    w = HiddenStateExplorer(hs, top_k=3)
    # What the view sends after a brush (its own cells, here deliberately wrong), as ipywidgets delivers it.
    w.set_state({"selection": {"start": 1200, "end": 1205, "threshold": 0.5, "cells": [0, 1], "scores": [1.0, 1.0]}})
    assert w.selection["cells"] == [3, 9, 7]  # ranked by mean margin over the threshold: 0.8, 0.7, 0.6
    assert w.threshold == 0.5
    assert w.matches == hs.match([3, 7, 9], top_k=3, threshold=0.5).to_records()
    assert w.matches[0] == {"start": 1200, "end": 1205, "length": 5, "intersection": 3, "union": 3}


def test_threshold_top_k_and_length_recompute(hs) -> None:
    w = HiddenStateExplorer(hs, selection={"start": 1200, "end": 1205}, top_k=10)
    assert w.selection["cells"] == [3, 9, 7] and len(w.matches) == 4
    w.threshold = 0.65  # cell 7 (0.6) drops out
    assert w.selection["cells"] == [3, 9] and w.selection["threshold"] == 0.65
    assert w.matches == hs.match([3, 9], top_k=10, threshold=0.65).to_records()
    w.top_k = 1
    assert len(w.matches) == 1
    w.match_length = 3
    assert w.matches == []  # every run of these cells is 5 tokens long
    assert "exactly 3 tokens" in w._match_note


def test_empty_selection_is_shown_not_matched(hs) -> None:
    w = HiddenStateExplorer(hs, selection={"start": 40, "end": 45})
    assert len(w.matches) == 4
    w.selection = {"start": 40, "end": 46}  # token 45 is off for both cells
    assert w.selection["cells"] == [] and w.matches == [] and w._match_data["items"] == []
    assert "No cell is on (>= 0.3) at every token of [40, 46)" in w._match_note
    with pytest.raises(ValueError, match="cells: the selection is empty"):
        hs.match(hs.select(40, 46, 0.3))  # what the widget avoids calling
    w.selection = None
    assert w.matches == [] and w._match_note == ""


def test_selection_and_matches_objects_are_accepted(hs) -> None:
    w = HiddenStateExplorer(hs)
    w.selection = hs.select(300, 305, 0.3)
    assert w.selection["cells"] == [3, 7] and w.selection["start"] == 300
    m = hs.match([9], threshold=0.5, top_k=2)
    w.matches = m
    assert w.matches == m.to_records() and w._match_data["cells"] == [9]
    w.matches = [{"start": 10, "length": 4}]
    assert w.matches == [{"start": 10, "end": 14, "length": 4, "intersection": None, "union": None}]
    assert w._match_data["cells"] == [3, 7]  # plain records: the selection's cells


def test_python_errors_show_the_panel(hs, monkeypatch) -> None:
    w = HiddenStateExplorer(hs)

    def boom(*args, **kwargs):
        raise MemoryError("index too large")

    monkeypatch.setattr(hs, "match", boom)
    serial = w._match_serial
    with pytest.raises(MemoryError):
        w.selection = {"start": 40, "end": 45}
    assert w.error == "MemoryError: index too large" and w._match_serial == serial + 1
    assert w._status["message"] == ""


def test_window_command_serves_any_part_of_the_corpus() -> None:
    x, tokens = planted(n=20_000)
    hs = HiddenStates(x, tokens, doc_starts=[0, 300, 12_345])
    w = HiddenStateExplorer(hs, embed_tokens=100)
    reply, buffers = w._hs_window({"start": 12_288, "end": 12_544}, [])
    assert reply["start"] == 12_288 and reply["end"] == 12_544 and reply["docs"] == [12_345]
    assert reply["tokens"] == hs.tokens_in(12_288, 12_544) and reply["values"]["buffer"] == {"$buffer": 0}
    got = np.frombuffer(buffers[0], dtype="<f2").reshape(256, 16)
    np.testing.assert_array_equal(got.astype(np.float32), hs.window(12_288, 12_544))
    assert w._hs_window({"start": 19_990, "end": 20_100}, [])[0]["end"] == 20_000  # clipped at the end
    with pytest.raises(ValueError, match="start, end: expected 0 <= start < end <= 20000"):
        w._hs_window({"start": 20_000, "end": 20_100}, [])
    with pytest.raises(ValueError, match=f"end: at most {MAX_WINDOW} tokens per request"):
        w._hs_window({"start": 0, "end": 10_000}, [])
    with pytest.raises(ValueError, match="start: expected an int"):
        w._hs_window({"start": "0", "end": 10}, [])
    assert w._hs_ping({}, []) == ({"ok": True}, [])
    w.scroll_to(25_000)
    assert w.position == 19_999


# --- CellOverText ------------------------------------------------------------------------------
QUOTED = "".join(f'def f{i}(a):\n    s = "v{i}" + a\n    return s\n' for i in range(40))


def quote_states(seed: int = 0) -> HiddenStates:
    """12 noise cells; cell 5 is high inside quotes and low outside, cell 2 follows indentation."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=0.3, size=(len(QUOTED), 12))
    x[:, 5] = np.where(inside_quotes(QUOTED) > 0, 0.9, -0.6) + rng.normal(scale=0.1, size=len(QUOTED))
    x[:, 2] = indentation_depth(QUOTED) / 4 + rng.normal(scale=0.05, size=len(QUOTED))
    tokens = list(QUOTED)
    tokens[3] = HOSTILE
    return HiddenStates(x, tokens)


def test_cell_over_text_ranks_cells_by_an_indicator() -> None:
    hs = quote_states()
    w = CellOverText(hs, indicator="inside_quotes", top=4)
    assert w.ranked[0]["cell"] == 5 and w.ranked[0]["score"] > 0.9 and w.score_name == "r"
    assert w.cell == 5 and w.indicator_name == "inside_quotes" and w.tokens[3] == HOSTILE
    ranking = hs.rank_cells(inside_quotes(hs.tokens_in(0, len(QUOTED))))
    assert [(d["cell"], d["score"]) for d in w.ranked] == ranking.top(4)
    np.testing.assert_array_equal(decode_array(w.indicator), inside_quotes(w.tokens))
    assert w._columns == [d["cell"] for d in w.ranked]
    np.testing.assert_array_equal(decode_array(w._values), hs.window(0, len(QUOTED), cells=w._columns))
    # A function of the tokens works too, and finds the indentation cell.
    assert CellOverText(hs, indicator=indentation_depth).ranked[0]["cell"] == 2
    # Without an indicator: cells by standard deviation.
    plain = CellOverText(hs, top=3)
    std = hs.window(0, len(QUOTED)).std(axis=0)
    assert plain.score_name == "std" and [d["cell"] for d in plain.ranked] == list(np.argsort(-std)[:3])
    assert plain.indicator == {} and plain.indicator_name == ""


def test_cell_over_text_shows_a_range_and_ranks_over_the_corpus() -> None:
    hs = quote_states()
    n = hs.n_tokens
    full = inside_quotes(hs.tokens_in(0, n))
    w = CellOverText(hs, indicator=full, start=100, end=400, indicator_name="quotes")
    assert w.start == 100 and len(w.tokens) == 300 and w.ranked_over == f"tokens [0, {n})"
    assert w.ranked[0]["score"] == pytest.approx(hs.rank_cells(full).r[0])
    np.testing.assert_array_equal(decode_array(w.indicator), full[100:400])
    assert w.indicator_name == "quotes"
    local = CellOverText(hs, indicator=full[100:400], start=100, end=400)
    assert local.ranked_over == "tokens [100, 400)"


def test_choosing_a_cell_outside_the_list_adds_its_values() -> None:
    hs = quote_states()
    w = CellOverText(hs, indicator="inside_quotes", top=3)
    missing = next(c for c in range(12) if c not in w._columns)
    w.cell = missing
    assert w._columns[-1] == missing and len(w._columns) == 4
    np.testing.assert_array_equal(decode_array(w._values)[:, -1], hs.window(0, hs.n_tokens, cells=[missing])[:, 0])
    with pytest.raises(t.TraitError, match=r"cell: 12 is out of range for 12 cells \(expected 0..11\)"):
        w.cell = 12
    with pytest.raises(t.TraitError, match="color_by"):
        w.color_by = "bogus"


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"indicator": "bogus"}, ValueError, r"indicator: unknown name 'bogus'; expected one of inside_quotes, indentation_depth, bracket_depth"),
        ({"indicator": [1.0, 2.0]}, ValueError, r"indicator: expected 1700 values \(one per shown token\) or 1700"),
        ({"indicator": lambda toks: [0.0]}, ValueError, r"indicator: the function returned shape \(1,\); expected \(1700,\)"),
        ({"indicator": np.zeros(1700)}, ValueError, r"indicator: is constant"),
        ({"indicator": object()}, TypeError, r"indicator: expected None, a name, a function or numbers"),
        ({"start": 10, "end": 10}, ValueError, r"start, end: expected start < end"),
        ({"start": 0, "end": 5000}, ValueError, r"end: 5000 is out of range for 1700 tokens"),
        ({"top": 0}, ValueError, r"top: expected a positive int"),
        ({"cell": 99}, t.TraitError, r"cell: 99 is out of range for 12 cells"),
    ],
)
def test_cell_over_text_rejects_bad_arguments(kwargs, exc, match) -> None:
    hs = quote_states()
    assert hs.n_tokens == 1700
    with pytest.raises(exc, match=match):
        CellOverText(hs, **kwargs)


def test_cell_over_text_bounds_the_text() -> None:
    hs = HiddenStates(np.zeros((MAX_TOKENS + 10, 2), np.float16), ["a"] * (MAX_TOKENS + 10))
    with pytest.raises(ValueError, match=f"end: at most {MAX_TOKENS} tokens can be shown at once"):
        CellOverText(hs, end=MAX_TOKENS + 1)
    assert len(CellOverText(hs).tokens) == 4000
    with pytest.raises(TypeError, match="states: expected a HiddenStates"):
        CellOverText(np.zeros((3, 2)))  # type: ignore[arg-type]


# --- GateView ------------------------------------------------------------------------------------
def test_gate_view_from_a_gru_and_an_lstm() -> None:
    torch.manual_seed(0)
    gru = nn.GRU(2, 6)
    x = torch.randn(40, 2)
    tr = gate_trace(gru, x)
    w = GateView(tr, inputs=x[:, 0], input_lines=(0,), units=[5, 0, 2], unit=0, tokens=[HOSTILE] + ["a"] * 39)
    assert w.components == ["z", "r", "n", "h"] and w.cell_type == "GRU" and w.units == [5, 0, 2]
    assert (w.n_steps, w.n_units, w.unit) == (40, 6, 0) and w.tokens[0] == HOSTILE
    for name in w.components:
        got = decode_array(w._arrays[name])
        assert got.shape == (40, 3)
        np.testing.assert_allclose(got, tr[name][:, [5, 0, 2]], atol=1e-3)  # float16 on the wire
    np.testing.assert_allclose(decode_array(w.inputs), x[:, 0].numpy())
    assert w.kinds["z"] == "gate" and w.kinds["h"] == "state" and "(1 − z_t)" in w.equation
    assert "reproduce the module's outputs" in w.caption
    lstm = GateView(gate_trace(nn.LSTM(2, 4, num_layers=2), x, rnn_layer=0))
    assert lstm.components == ["i", "f", "g", "o", "c", "h"] and lstm.units == [0, 1, 2, 3] and lstm.unit is None
    assert lstm.caption.startswith("LSTM layer 0")


class WalkModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(1, 5, batch_first=True)
        self.head = nn.Linear(5, 3)

    def forward(self, walks: torch.Tensor) -> torch.Tensor:
        return self.head(self.gru(walks.unsqueeze(-1))[0])


def test_gate_view_from_model_leaves_the_model_unchanged() -> None:
    torch.manual_seed(1)
    model = WalkModel().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    walk = torch.randn(30)
    w = GateView.from_model(model, walk, inputs=walk, title="walk")
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert w.n_steps == 30 and w.n_units == 5 and w.title == "walk"
    with torch.no_grad():
        h = model.gru(walk[None, :, None])[0][0].numpy()
    np.testing.assert_allclose(decode_array(w._arrays["h"]), h, atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tokens": ["a"] * 3}, r"tokens: expected 10 labels \(one per step\), got 3"),
        ({"inputs": np.zeros(9)}, r"inputs: expected 10 numbers \(one per step\), got shape \(9,\)"),
        ({"units": [0, 9]}, r"units: 9 is out of range for 4 units \(expected 0..3\)"),
        ({"units": [1, 1]}, r"units: expected each unit at most once"),
        ({"units": []}, r"units: expected a non-empty 1-D sequence"),
        ({"input_lines": [float("inf")]}, r"input_lines: expected finite numbers"),
    ],
)
def test_gate_view_rejects_bad_arguments(kwargs, match) -> None:
    tr = gate_trace(nn.GRU(1, 4), torch.randn(10, 1))
    with pytest.raises(ValueError, match=match):
        GateView(tr, **kwargs)


def test_gate_view_errors_for_traces_and_units() -> None:
    with pytest.raises(TypeError, match="trace: expected a GateTrace"):
        GateView({"z": np.zeros((3, 2))})  # type: ignore[arg-type]
    w = GateView(gate_trace(nn.GRU(1, 4), torch.randn(10, 1)), units=[2, 3])
    with pytest.raises(t.TraitError, match=r"unit: expected None or one of the shown units"):
        w.unit = 0
    w.unit = 3
    assert w.unit == 3
    with pytest.raises(ValueError, match="trace: 3000 steps x 512 units x 4 components is more than 4,000,000"):
        GateView(GateTrace("GRU", {k: np.zeros((3000, 512), np.float32) for k in "zrnh"}, np.zeros(512), None, 0, 0, 0.0))
