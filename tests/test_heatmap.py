"""ArrayHeatmap's Python side: validation, state, and what save_html writes."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import traitlets

import deepvis_widgets as dv
from deepvis_widgets._arrays import decode_array
from deepvis_widgets._html import standalone_html

HOSTILE = ["<img src=x onerror=alert(1)>", "</script><script>alert(1)</script>", "&amp; \"quoted\" 'single'"]


def test_state_carries_a_binary_buffer_not_a_list() -> None:
    a = np.random.default_rng(0).normal(size=(64, 48)).astype(np.float32)
    w = dv.ArrayHeatmap(a)
    state = w.get_state()
    assert isinstance(state["data"]["buffer"], memoryview)
    np.testing.assert_array_equal(decode_array(state["data"]), a)
    assert w.selected is None and w.scale == "auto"


def test_accepts_torch_and_wire_dtypes() -> None:
    t = torch.randn(5, 7, requires_grad=True)
    w = dv.ArrayHeatmap(t, wire_dtype="float16")
    assert w.data["dtype"] == "float16" and w.data["shape"] == [5, 7]
    w = dv.ArrayHeatmap(np.eye(3, dtype=bool))
    np.testing.assert_array_equal(decode_array(w.data), np.eye(3))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"array": np.zeros((2, 3, 4))}, ValueError, r"array: expected a 2-D array \(rows, columns\), got 3-D shape \(2, 3, 4\)"),
        ({"array": np.zeros(5)}, ValueError, "array: expected a 2-D array"),
        ({"array": np.array([["a", "b"]], dtype=object)}, TypeError, "array: expected a numeric array, got dtype object"),
        ({"array": np.zeros((2, 3)), "row_labels": ["a"]}, ValueError, r"row_labels: expected 2 labels \(one per row; the array has 2 rows\), got 1"),
        ({"array": np.zeros((2, 3)), "col_labels": list("abcd")}, ValueError, "col_labels: expected 3 labels"),
        ({"array": np.zeros((2, 3)), "col_labels": "abc"}, TypeError, "col_labels: expected a sequence of 3 strings, got a single string"),
        ({"array": np.zeros((2, 3)), "colour": "red"}, TypeError, "unexpected keyword argument.*colour"),
        ({"array": np.zeros((2, 3)), "wire_dtype": "float64"}, ValueError, "dtype: expected one of"),
    ],
)
def test_bad_input_names_the_argument(kwargs: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        dv.ArrayHeatmap(**kwargs)


def test_selected_is_validated_against_the_shape() -> None:
    w = dv.ArrayHeatmap(np.zeros((2, 3)))
    w.selected = (1, 2)
    assert w.selected == (1, 2)
    with pytest.raises(traitlets.TraitError, match=r"selected: expected \(row, col\) inside the 2x3 array, got \(2, 0\)"):
        w.selected = (2, 0)
    with pytest.raises(traitlets.TraitError, match="max_size"):
        w.max_size = 3


def test_save_html_escapes_every_string_and_is_self_contained(tmp_path) -> None:
    w = dv.ArrayHeatmap(np.zeros((3, 2)), row_labels=HOSTILE, col_labels=HOSTILE[:2], title=HOSTILE[1])
    path = tmp_path / "h.html"
    w.save_html(path)
    page = path.read_text()
    # No network references, and no data-controlled markup.
    assert not re.search(r"""(src|href)=["']?https?:""", page)
    assert "<img src=x" not in page
    assert page.count("</script>") == page.count("<script")  # none injected
    state = json.loads(re.search(r'id="dv-widget-state">(.*?)</script>', page, re.S).group(1))
    model = next(m for m in state["state"].values() if m["model_name"] == "AnyModel")
    assert model["state"]["row_labels"] == HOSTILE
    assert model["state"]["_esm"].startswith(("var ", "function", "import", "const", "let", "//", "(")), "ES module travels inline"
    assert model["buffers"][0]["path"] == ["data", "buffer"]


def test_standalone_html_needs_widgets() -> None:
    with pytest.raises(ValueError, match="widgets: expected at least one widget"):
        standalone_html([])
    with pytest.raises(TypeError, match="widgets: expected ipywidgets widgets, got int"):
        standalone_html([3])  # type: ignore[list-item]
