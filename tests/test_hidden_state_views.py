"""Hidden-state views (issue 10): validation, Python-side selection/matches sync, payloads.

Browser tests of the same views are in test_browser_hidden_states.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import traitlets as t

from deepvis_widgets._arrays import decode_array
from deepvis_widgets.compute.hidden_states import HiddenStates
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
