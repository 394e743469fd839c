"""Hidden states (issue 10): storage, LSTMVis select/match against brute force, gates, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepvis_widgets.compute import _bitindex as bx
from deepvis_widgets.compute.hidden_states import (
    HiddenStates,
    Selection,
    bracket_depth,
    gate_trace,
    indentation_depth,
    inside_quotes,
)

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------
# Oracles: written from the rules in the docstrings, sharing no code with the package.
# ---------------------------------------------------------------------------------------
def brute_select(x: np.ndarray, start: int, end: int, thr: float) -> list[int]:
    x = x.astype(np.float64)
    out = []
    for c in range(x.shape[1]):
        inside = all(x[t, c] >= thr for t in range(start, end))
        left_off = start == 0 or x[start - 1, c] < thr
        right_off = end == len(x) or x[end, c] < thr
        if inside and left_off and right_off:
            out.append((-(x[start:end, c].mean() - thr), c))
    return [c for _, c in sorted(out)]


def brute_match(x, cells, thr, top_k=50, length=None, min_length=2, left=False, right=False):
    """LSTMVis match by enumeration: every level, every maximal run, every cell."""
    on = x.astype(np.float64) >= thr
    n = len(x)
    cells = sorted(set(int(c) for c in cells))
    count = on[:, cells].sum(axis=1)
    candidates = set()
    for k in range(1, len(cells) + 1):
        t = 0
        while t < n:
            if count[t] >= k:
                s = t
                while t < n and count[t] >= k:
                    t += 1
                if (length is None and t - s >= min_length) or (length is not None and t - s == length):
                    candidates.add((s, t))
            else:
                t += 1
    rows = []
    for s, e in candidates:
        active = on[s:e].all(axis=0)
        if left and s > 0:
            active &= ~on[s - 1]
        if right and e < n:
            active &= ~on[e]
        inter = int(active[cells].sum())
        union = int(active.sum()) + len(cells) - inter
        rows.append((-inter, union, -(e - s), s, inter))
    rows.sort()
    if top_k is not None:
        rows = rows[:top_k]
    return [(r[3], -r[2], r[4], r[1]) for r in rows]


def as_rows(m) -> list[tuple[int, int, int, int]]:
    return list(zip(m.starts.tolist(), m.lengths.tolist(), m.intersection.tolist(), m.union.tolist(), strict=True))


def random_states(rng, n, c, smooth):
    v = rng.normal(size=(n, c))
    if smooth:  # long on/off runs, like LSTM cells
        v = np.cumsum(v, axis=0) * 0.3
    return v


# ---------------------------------------------------------------------------------------
# Construction, storage, token access
# ---------------------------------------------------------------------------------------
def test_stores_float16_and_compact_tokens():
    x = np.arange(12, dtype=np.float64).reshape(6, 2) / 10
    hs = HiddenStates(torch.tensor(x), ["a", "bb", "a", "<script>", "bb", "a"], doc_starts=[0, 4])
    assert hs.values.dtype == np.float16
    assert hs.token_ids.dtype == np.int32
    assert hs.vocab == ("a", "bb", "<script>")
    assert hs.token_ids.tolist() == [0, 1, 0, 2, 1, 0]
    assert hs.tokens_in(2, 5) == ["a", "<script>", "bb"]
    assert hs.token(3) == "<script>"
    np.testing.assert_array_equal(hs.window(1, 3), x[1:3].astype(np.float16).astype(np.float32))
    assert hs.window(1, 3).dtype == np.float32
    np.testing.assert_array_equal(hs.window(0, 2, cells=[1]).ravel(), np.float32([0.1, 0.3]).astype(np.float16))
    assert hs.doc_bounds(3) == (0, 4) and hs.doc_bounds(4) == (4, 6)
    assert not hs.values.flags.writeable


def test_ids_with_vocab_and_float16_memmap_used_without_copy(tmp_path):
    path = tmp_path / "raw.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(5, 3))
    mm[:] = 0.5
    mm.flush()
    arr = np.load(path, mmap_mode="r")
    hs = HiddenStates(arr, np.array([2, 0, 1, 1, 0]), vocab=["x", "y", "z"])
    assert isinstance(hs.values, np.memmap) and np.shares_memory(hs.values, arr)
    assert hs.tokens_in(0, 5) == ["z", "x", "y", "y", "x"]


def test_save_open_round_trip_is_memory_mapped(tmp_path):
    rng = np.random.default_rng(0)
    x = random_states(rng, 400, 24, smooth=True)
    tokens = [chr(97 + i % 26) for i in range(400)]
    hs = HiddenStates(x, tokens, doc_starts=[0, 100, 250], cell_labels=[f"h{i}" for i in range(24)])
    folder = hs.save(tmp_path / "corpus")
    back = HiddenStates.open(folder)
    assert isinstance(back.values, np.memmap) or isinstance(back.values.base, np.memmap)
    np.testing.assert_array_equal(np.asarray(back.values), np.asarray(hs.values))
    assert back.tokens_in(0, 400) == tokens
    assert back.doc_starts.tolist() == [0, 100, 250]
    assert back.cell_labels == tuple(f"h{i}" for i in range(24))
    assert back.path == folder
    cells = [1, 5, 7]
    assert as_rows(back.match(cells, threshold=0.2)) == as_rows(hs.match(cells, threshold=0.2))
    with pytest.raises(FileExistsError, match="exists and is not an empty folder"):
        hs.save(folder)
    with pytest.raises(ValueError, match="memory-mapped from"):
        back.save(folder, overwrite=True)
    copy = back.save(tmp_path / "copy")
    np.testing.assert_array_equal(np.asarray(HiddenStates.open(copy).values), np.asarray(hs.values))
    with pytest.raises(FileNotFoundError, match="has no meta.json"):
        HiddenStates.open(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"states": np.zeros(5), "tokens": list("abcde")}, ValueError, r"states: expected a 2-D \(n_tokens, n_cells\)"),
        ({"states": np.zeros((5, 0)), "tokens": list("abcde")}, ValueError, "states: expected a 2-D"),
        ({"states": np.zeros((5, 2)), "tokens": list("abcd")}, ValueError, "tokens: expected 5 tokens"),
        ({"states": np.zeros((2, 2)), "tokens": "ab"}, TypeError, "tokens: expected a sequence of str"),
        ({"states": np.zeros((2, 2)), "tokens": ["a", 3]}, TypeError, "tokens: expected str tokens"),
        ({"states": np.zeros((2, 2)), "tokens": [0, 5], "vocab": ["a"]}, ValueError, r"tokens: ids must be in \[0, 1\)"),
        ({"states": np.full((2, 2), 1e5), "tokens": ["a", "b"]}, ValueError, "overflows float16"),
        ({"states": np.zeros((4, 2)), "tokens": list("abcd"), "doc_starts": [1, 2]}, ValueError, "doc_starts: expected strictly increasing"),
        ({"states": np.zeros((4, 2)), "tokens": list("abcd"), "doc_starts": [0, 2, 2]}, ValueError, "doc_starts"),
        ({"states": np.zeros((4, 2)), "tokens": list("abcd"), "cell_labels": ["x"]}, ValueError, "cell_labels: expected 2 labels"),
        ({"states": np.array([["a"]]), "tokens": ["a"]}, TypeError, "states: expected a numeric array"),
    ],
)
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        HiddenStates(**kwargs)


def test_range_and_argument_errors():
    hs = HiddenStates(np.zeros((10, 3)), list("abcdefghij"))
    with pytest.raises(ValueError, match=r"start, end: expected start < end, got start=4, end=4"):
        hs.select(4, 4, 0.5)
    with pytest.raises(ValueError, match=r"start, end: expected start < end"):
        hs.window(5, 2)
    with pytest.raises(ValueError, match=r"end: 11 is out of range for 10 tokens \(expected 1..10\)"):
        hs.select(3, 11, 0.5)
    with pytest.raises(ValueError, match=r"start: -1 is out of range"):
        hs.tokens_in(-1, 3)
    with pytest.raises(ValueError, match=r"i: 10 is out of range for 10 tokens"):
        hs.token(10)
    with pytest.raises(TypeError, match="start: expected an int"):
        hs.select(1.5, 3, 0.5)
    with pytest.raises(ValueError, match="threshold: expected a number, got nan"):
        hs.select(1, 3, float("nan"))
    with pytest.raises(ValueError, match=r"cells: cell 3 is out of range for 3 cells \(expected 0..2\)"):
        hs.match([0, 3])
    with pytest.raises(ValueError, match="cells: the selection is empty; select at least one cell"):
        hs.match([])
    with pytest.raises(ValueError, match="top_k: expected a positive int or None"):
        hs.match([0], top_k=0)
    with pytest.raises(ValueError, match="method: expected 'index' or 'scan'"):
        hs.match([0], method="fast")
    with pytest.raises(ValueError, match="length: expected a positive int"):
        hs.match([0], length=0)


# ---------------------------------------------------------------------------------------
# Threshold semantics and the bit index
# ---------------------------------------------------------------------------------------
ALL_F16 = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)


@pytest.mark.parametrize("thr", [0.3, 0.0, -0.0, -0.3, 1e-8, -1e-8, 65504.0, 7e4, -7e4, -np.inf, np.inf, 0.2998046875])
def test_on_mask_equals_float_comparison_for_every_float16(thr):
    with np.errstate(invalid="ignore"):
        expected = ALL_F16.astype(np.float64) >= thr
    got = bx.on_mask(ALL_F16, bx.f16_threshold(thr))
    assert np.array_equal(got, expected)


def test_select_uses_the_exact_threshold_not_its_float16_rounding():
    # 0.30005 rounds to the float16 0.300048828125, which is below it: a state
    # stored as that float16 is off at threshold 0.30005.
    thr = 0.30005
    stored = float(np.float16(thr))
    assert stored < thr
    x = np.array([[0.0], [stored], [0.31], [0.0]])
    hs = HiddenStates(x, list("abcd"))
    assert hs.select(2, 3, thr).cells.tolist() == [0]
    assert hs.select(1, 3, thr).cells.tolist() == []
    assert hs.select(1, 3, stored).cells.tolist() == [0]


def test_pack_time_major_matches_packbits_of_transpose():
    rng = np.random.default_rng(3)
    on = rng.random((64, 21)) < 0.4
    expected = np.packbits(on.T, axis=1, bitorder="little")
    assert np.array_equal(bx.pack_time_major(on), expected)


def test_run_tables_and_bounds_bracket_the_exact_count():
    rng = np.random.default_rng(4)
    x = random_states(rng, 700, 70, smooth=True)
    hs = HiddenStates(x, ["t"] * 700)
    index = hs._bits(bx.f16_threshold(0.1))
    on = np.asarray(hs.values, dtype=np.float64) >= 0.1
    for i, d in enumerate(bx.WINDOWS[:8]):
        want = [on[t : t + d].all(axis=0).sum() if t + d <= 700 else 0 for t in range(700)]
        assert index.runs[:700, i].tolist() == want
    starts = rng.integers(0, 690, 300)
    ends = np.minimum(starts + rng.integers(1, 300, 300), 700)
    exact = np.array([on[s:e].all(axis=0).sum() for s, e in zip(starts, ends, strict=True)])
    lower, upper = bx.bounds(index, starts, ends, False, False)
    assert np.all(lower <= exact) and np.all(exact <= upper)
    tabled = np.isin(ends - starts, bx.WINDOWS)
    assert tabled.any() and np.array_equal(lower[tabled], exact[tabled])
    assert np.array_equal(bx.count_on_throughout(index, starts, ends, False, False), exact)


# ---------------------------------------------------------------------------------------
# Select and match against brute force
# ---------------------------------------------------------------------------------------
def test_select_equals_brute_force_on_random_data():
    rng = np.random.default_rng(5)
    for trial in range(60):
        n, c = int(rng.integers(2, 60)), int(rng.integers(1, 40))
        x = random_states(rng, n, c, smooth=trial % 2 == 0)
        hs = HiddenStates(x, ["w"] * n)
        start = int(rng.integers(0, n - 1))
        end = int(rng.integers(start + 1, n + 1))
        thr = float(rng.normal() * 0.5)
        sel = hs.select(start, end, thr)
        assert sel.cells.tolist() == brute_select(np.asarray(hs.values), start, end, thr)
        if len(sel):
            inside = np.asarray(hs.values, dtype=np.float64)[start:end, sel.cells].mean(axis=0) - thr
            np.testing.assert_allclose(sel.scores, inside, rtol=1e-6, atol=1e-6)


def test_select_worked_example():
    x = np.array(
        [
            [0.0, 0.9, 0.9, 0.0],
            [0.8, 0.9, 0.6, 0.9],
            [0.9, 0.9, 0.7, 0.9],
            [0.0, 0.0, 0.0, 0.9],
        ]
    )
    hs = HiddenStates(x, list("abcd"))
    sel = hs.select(1, 3, 0.5)
    # cell 0: on inside, off at 0 and 3; cell 1/2: on at 0 (not off just before); cell 3: on at 3
    assert sel.cells.tolist() == [0]
    assert isinstance(sel, Selection) and sel.to_dict()["cells"] == [0]
    assert hs.select(0, 3, 0.5).cells.tolist() == [1, 2]  # no token before 0, ranked by margin
    assert hs.select(1, 4, 0.5).cells.tolist() == [3]  # no token after the end


@pytest.mark.parametrize("method", ["index", "scan"])
def test_match_equals_brute_force_on_random_data(method):
    rng = np.random.default_rng(6)
    for trial in range(120):
        n, c = int(rng.integers(1, 260)), int(rng.integers(1, 90))
        x = random_states(rng, n, c, smooth=trial % 3 != 0)
        hs = HiddenStates(x, ["w"] * n)
        cells = rng.choice(c, int(rng.integers(1, min(c, 12) + 1)), replace=False)
        thr = float(rng.normal() * 0.5)
        top_k = [None, 1, 3, 50][trial % 4]
        length = None if trial % 5 else int(rng.integers(1, 6))
        left, right = bool(trial % 7 == 1), bool(trial % 6 == 2)
        got = hs.match(cells, length=length, top_k=top_k, threshold=thr, constrain_left=left, constrain_right=right, method=method)
        want = brute_match(np.asarray(hs.values), cells, thr, top_k, length, 2, left, right)
        assert as_rows(got) == want, (trial, n, c, thr, top_k, length, left, right)


def test_match_worked_example_and_selection_threshold():
    st = np.zeros((8, 2))
    st[1:4, 0] = 1
    st[2:4, 1] = 1
    st[5:7] = 1
    hs = HiddenStates(st, list("abcdefgh"))
    m = hs.match([0, 1], threshold=0.5)
    # runs: both cells on over [2,4) and [5,7) (intersection 2, union 2), cell 0 alone over [1,4)
    assert as_rows(m) == [(2, 2, 2, 2), (5, 2, 2, 2), (1, 3, 1, 2)]  # ties: earlier start first
    assert m.to_records()[1] == {"start": 5, "end": 7, "length": 2, "intersection": 2, "union": 2}
    np.testing.assert_allclose(m.jaccard, [1.0, 1.0, 0.5])
    sel = hs.select(5, 7, threshold=0.5)
    assert sel.cells.tolist() == [0, 1]
    assert as_rows(hs.match(sel)) == as_rows(m)  # the selection's threshold is used
    empty = hs.select(0, 2, threshold=0.5)
    assert len(empty) == 0
    with pytest.raises(ValueError, match=r"cells: the selection is empty \(no cell is on across \[0, 2\)"):
        hs.match(empty)


def test_match_index_is_cached_per_threshold_and_bounded():
    rng = np.random.default_rng(7)
    hs = HiddenStates(random_states(rng, 300, 10, True), ["w"] * 300)
    info = hs.build_index(0.2)
    assert info["nbytes"] > 0 and info["seconds"] >= 0
    hs.match([1, 2], threshold=0.2)
    hs.match([1, 2], threshold=0.4)
    hs.match([1, 2], threshold=0.6)
    assert len(hs._indexes) == hs.max_indexes == 2
    assert sorted(hs._indexes) == sorted([float(bx.f16_threshold(0.4)), float(bx.f16_threshold(0.6))])


# ---------------------------------------------------------------------------------------
# A small character model trained here
# ---------------------------------------------------------------------------------------
TEXT = "".join(
    f'def f{i}(a, b):\n    s = "v{i % 7}" + (a * [b, {i}])\n    if s:\n        return {{"k": s}}\n'
    for i in range(60)
)


class CharModel(nn.Module):
    def __init__(self, vocab: int, cell: type[nn.RNNBase] = nn.LSTM) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, 12)
        self.rnn = cell(12, 24, batch_first=True)
        self.head = nn.Linear(24, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.emb(ids))
        return self.head(out)


@pytest.fixture(scope="module")
def char_model():
    torch.manual_seed(0)
    chars = sorted(set(TEXT))
    ids = torch.tensor([chars.index(ch) for ch in TEXT])
    model = CharModel(len(chars))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(120):
        starts = torch.randint(0, len(ids) - 65, (16,), generator=gen)
        batch = torch.stack([ids[s : s + 65] for s in starts.tolist()])
        loss = nn.functional.cross_entropy(model(batch[:, :-1]).reshape(-1, len(chars)), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, chars, ids, loss.item()


def test_match_equals_brute_force_on_a_trained_char_lstm(char_model):
    model, chars, ids, loss = char_model
    assert loss < 2.0  # it learned something
    seqs = [ids[i : i + 300] for i in range(0, 2400, 300)]
    hs = HiddenStates.from_model(model, seqs, tokens=chars)
    assert hs.shape == (2400, 24) and hs.n_docs == 8
    assert "".join(hs.tokens_in(0, 40)) == TEXT[:40]
    values = np.asarray(hs.values)
    tried = 0
    for start in range(5, 2300, 37):
        sel = hs.select(start, start + 3, 0.3)
        if not len(sel):
            continue
        tried += 1
        for kwargs in ({}, {"length": 3}, {"constrain_left": True, "constrain_right": True}, {"top_k": None}):
            got = hs.match(sel, **kwargs)
            want = brute_match(
                values, sel.cells, 0.3, kwargs.get("top_k", 50), kwargs.get("length"), 2,
                kwargs.get("constrain_left", False), kwargs.get("constrain_right", False),
            )
            assert as_rows(got) == want
        if tried == 6:
            break
    assert tried == 6


def test_rank_cells_finds_a_planted_cell_and_equals_corrcoef():
    rng = np.random.default_rng(8)
    text = TEXT[:1500]
    quotes = inside_quotes(text)
    x = rng.normal(size=(1500, 12))
    x[:, 7] = quotes * 0.8 + rng.normal(scale=0.2, size=1500)
    x[:, 3] = 1.0  # constant cell: r = 0
    hs = HiddenStates(x, list(text))
    ranking = hs.rank_cells(quotes)
    assert ranking.cells[0] == 7 and ranking.r[0] > 0.7
    vals = np.asarray(hs.values, dtype=np.float64)
    expected = [np.corrcoef(vals[:, c], quotes)[0, 1] if c != 3 else 0.0 for c in range(12)]
    np.testing.assert_allclose(dict(zip(ranking.cells.tolist(), ranking.r, strict=True))[5], expected[5], atol=1e-9)
    np.testing.assert_allclose(sorted(np.abs(ranking.r))[::-1], sorted(np.abs(expected))[::-1], atol=1e-9)
    sub = hs.rank_cells(quotes[100:600], start=100, end=600)
    assert sub.cells[0] == 7
    with pytest.raises(ValueError, match=r"indicator: expected 1500 values"):
        hs.rank_cells(quotes[:10])
    with pytest.raises(ValueError, match="indicator: is constant"):
        hs.rank_cells(np.ones(1500))


def test_char_lstm_has_cells_tracking_text_structure(char_model):
    model, chars, ids, _ = char_model
    hs = HiddenStates.from_model(model, [ids[:2000]], tokens=chars, kind="c")
    text = TEXT[:2000]
    best = max(abs(hs.rank_cells(ind(text)).r[0]) for ind in (inside_quotes, bracket_depth, indentation_depth))
    assert best > 0.5


def test_text_indicators():
    assert inside_quotes('a "b\\"c" d').tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 0, 0]
    assert inside_quotes("x='a\"b' y").tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0]
    assert inside_quotes(["x", '"ab', 'c"', "d"]).tolist() == [0, 1, 1, 0]
    assert bracket_depth("f(a[1])").tolist() == [0, 1, 1, 2, 2, 2, 1]
    assert bracket_depth(")(").tolist() == [0, 1]
    assert indentation_depth("a\n  b\n\tc").tolist() == [0, 0, 2, 2, 2, 2, 4, 4]
    assert indentation_depth("  x", tab_size=8).tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="tab_size: expected a positive int"):
        indentation_depth("x", tab_size=0)
    with pytest.raises(ValueError, match="pairs: expected two-character strings"):
        bracket_depth("x", pairs=["("])


# ---------------------------------------------------------------------------------------
# Recurrent states and gates equal the module's own outputs
# ---------------------------------------------------------------------------------------
def _single_layer_copy(module: nn.RNNBase, layer: int, input_size: int) -> nn.RNNBase:
    """A one-layer module holding layer ``layer``'s weights (PyTorch then computes its outputs)."""
    kwargs = {"bias": module.bias, "batch_first": True, "bidirectional": module.bidirectional}
    if isinstance(module, nn.LSTM):
        kwargs["proj_size"] = module.proj_size
    if isinstance(module, nn.RNN):
        kwargs["nonlinearity"] = module.nonlinearity
    one = type(module)(input_size, module.hidden_size, **kwargs)
    with torch.no_grad():
        for name, p in one.named_parameters():
            p.copy_(getattr(module, name.replace("_l0", f"_l{layer}")))
    return one


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported:UserWarning")
@pytest.mark.parametrize(
    ("cell", "layers", "bidir", "batch_first", "extra"),
    [
        (nn.GRU, 1, False, True, {}),
        (nn.GRU, 2, True, False, {}),
        (nn.LSTM, 1, False, True, {}),
        (nn.LSTM, 3, True, True, {}),
        (nn.LSTM, 2, False, False, {"proj_size": 5}),
        (nn.RNN, 2, True, True, {"nonlinearity": "relu"}),
        (nn.GRU, 1, False, True, {"bias": False}),
    ],
)
def test_unrolled_states_equal_module_outputs_per_layer(cell, layers, bidir, batch_first, extra):
    torch.manual_seed(1)
    rnn = cell(6, 7, num_layers=layers, bidirectional=bidir, batch_first=batch_first, **extra)
    x = torch.randn(3, 11, 6)
    h0 = None
    dirs = 2 if bidir else 1
    if cell is not nn.LSTM:
        h0 = torch.randn(layers * dirs, 3, 7)
    model = nn.Sequential()
    model.add_module("rnn", rnn)
    feed = x if batch_first else x.transpose(0, 1)

    def fwd(m, _batch):
        return m.rnn(feed, h0) if h0 is not None else m.rnn(feed)

    # per layer: compare with a one-layer module holding the same weights, run by PyTorch
    layer_in = x
    for layer in range(layers):
        hs = HiddenStates.from_model(model, torch.zeros(3, 11, dtype=torch.long), layer="rnn", rnn_layer=layer, forward_fn=fwd)
        one = _single_layer_copy(rnn, layer, layer_in.shape[-1])
        h_init = None if h0 is None else h0[layer * dirs : layer * dirs + dirs]
        with torch.no_grad():
            ref, _ = one(layer_in) if h_init is None else one(layer_in, h_init)
        got = torch.from_numpy(np.asarray(hs.values, dtype=np.float32)).reshape(3, 11, -1)
        assert torch.allclose(got, ref.to(torch.float16).float(), atol=2e-3)  # stored as float16
        layer_in = ref
    # and the unrolled float32 values themselves, before float16 storage
    from deepvis_widgets.compute._recurrent import capture_calls, unroll

    calls = capture_calls(model, rnn, lambda: fwd(model, None))
    un = unroll(rnn, *calls[0], upto=layers - 1)
    assert un.max_error < 1e-5
    layer_in = x
    for layer in range(layers):
        one = _single_layer_copy(rnn, layer, layer_in.shape[-1])
        h_init = None if h0 is None else h0[layer * dirs : layer * dirs + dirs]
        with torch.no_grad():
            ref, _ = one(layer_in) if h_init is None else one(layer_in, h_init)
        ours = torch.cat([tr["h"] for tr in un.traces[layer]], dim=-1)
        assert (ours - ref).abs().max() < 1e-5
        layer_in = ref


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
def test_gates_equal_step_by_step_cell_and_recompose_h(cell):
    torch.manual_seed(2)
    rnn = cell(5, 6)
    x = torch.randn(9, 5)
    tr = gate_trace(rnn, x)
    step = (nn.GRUCell if cell is nn.GRU else nn.LSTMCell)(5, 6)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(step, name).copy_(getattr(rnn, name + "_l0"))
        h = torch.zeros(1, 6)
        c = torch.zeros(1, 6)
        hs, cs = [], []
        for t in range(9):
            if cell is nn.GRU:
                h = step(x[t : t + 1], h)
            else:
                h, c = step(x[t : t + 1], (h, c))
            hs.append(h[0].numpy())
            cs.append(c[0].numpy())
    np.testing.assert_allclose(tr["h"], np.stack(hs), atol=1e-5)
    h_prev = np.vstack([tr.h0[None], tr["h"][:-1]])
    if cell is nn.GRU:
        assert tr.names == ("z", "r", "n", "h")
        np.testing.assert_allclose(tr["h"], (1 - tr["z"]) * tr["n"] + tr["z"] * h_prev, atol=1e-6)
        # the reset gate enters n: recompute n from r with the module's weights
        w_in, w_hn = rnn.weight_ih_l0[12:].detach().numpy(), rnn.weight_hh_l0[12:].detach().numpy()
        b_in, b_hn = rnn.bias_ih_l0[12:].detach().numpy(), rnn.bias_hh_l0[12:].detach().numpy()
        n = np.tanh(x.numpy() @ w_in.T + b_in + tr["r"] * (h_prev @ w_hn.T + b_hn))
        np.testing.assert_allclose(tr["n"], n, atol=1e-5)
    else:
        assert tr.names == ("i", "f", "g", "o", "c", "h")
        np.testing.assert_allclose(tr["c"], np.stack(cs), atol=1e-5)
        c_prev = np.vstack([tr.c0[None], tr["c"][:-1]])
        np.testing.assert_allclose(tr["c"], tr["f"] * c_prev + tr["i"] * tr["g"], atol=1e-6)
        np.testing.assert_allclose(tr["h"], tr["o"] * np.tanh(tr["c"]), atol=1e-6)
    gates = [g for g in tr.names if g in ("z", "r", "i", "f", "o")]
    assert all(((tr[g] > 0) & (tr[g] < 1)).all() for g in gates)
    assert tr.max_error < 1e-5


def test_gate_trace_in_a_model_and_from_model_gates_agree(char_model):
    model, chars, ids, _ = char_model
    seq = ids[:50]
    tr = gate_trace(model, seq, layer="rnn")
    hs = HiddenStates.from_model(model, [seq], kind="gates", tokens=chars)
    assert hs.cell_labels[:2] == ("i0", "i1") and hs.cell_labels[24] == "f0"
    vals = np.asarray(hs.values, dtype=np.float32)
    stacked = np.concatenate([tr["i"], tr["f"], tr["g"], tr["o"]], axis=1)
    np.testing.assert_allclose(vals, stacked.astype(np.float16), atol=1e-3)
    with torch.no_grad():
        out, _ = model.rnn(model.emb(seq[None]))
    np.testing.assert_allclose(tr["h"], out[0].numpy(), atol=1e-5)
    hc = HiddenStates.from_model(model, [seq], kind="c", tokens=chars)
    np.testing.assert_allclose(np.asarray(hc.values, np.float32), tr["c"].astype(np.float16), atol=1e-3)


def test_bidirectional_gru_gate_trace_backward_direction():
    torch.manual_seed(3)
    gru = nn.GRU(4, 5, num_layers=2, bidirectional=True)
    x = torch.randn(7, 4)
    with torch.no_grad():
        out, _ = gru(x)
    back = gate_trace(gru, x, direction=1)  # last layer by default
    np.testing.assert_allclose(back["h"], out[:, 5:].numpy(), atol=1e-5)
    fwd0 = gate_trace(gru, x, rnn_layer=0, direction=0)
    one = _single_layer_copy(gru, 0, 4)
    with torch.no_grad():
        ref, _ = one(x[None])
    np.testing.assert_allclose(fwd0["h"], ref[0, :, :5].numpy(), atol=1e-5)


def test_bidirectional_labels_and_all_layers():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Embedding(9, 3), nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True))
    hs = HiddenStates.from_model(net, torch.randint(0, 9, (2, 6)), rnn_layer="all", kind="h")
    assert hs.shape == (12, 16)
    assert hs.cell_labels[0] == "l0.fwd.h0" and hs.cell_labels[4] == "l0.bwd.h0" and hs.cell_labels[-1] == "l1.bwd.h3"
    g = HiddenStates.from_model(net, torch.randint(0, 9, (2, 6)), kind="gates")
    assert g.shape == (12, 32) and g.cell_labels[16] == "l1.bwd.i0"
    assert g.vocab == tuple(str(i) for i in range(max(int(t) for t in g.vocab) + 1))


def test_from_model_with_module_object_and_float_inputs():
    torch.manual_seed(6)

    class Counter(nn.Module):  # float inputs per step, like the counting-crossings GRU
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Linear(1, 4)
            self.gru = nn.GRU(4, 6, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.gru(self.inp(x))[0]

    model = Counter()
    walks = torch.randn(3, 9, 1)
    by_name = HiddenStates.from_model(model, walks, layer="gru")
    by_module = HiddenStates.from_model(model, walks, layer=model.gru)
    np.testing.assert_array_equal(np.asarray(by_name.values), np.asarray(by_module.values))
    with torch.no_grad():
        ref = model(walks).reshape(27, 6)
    np.testing.assert_allclose(np.asarray(by_name.values, np.float32), ref.half().float().numpy(), atol=1e-3)
    assert by_name.tokens_in(8, 11) == ["8", "0", "1"]  # step index within each sequence
    labelled = HiddenStates.from_model(model, list(walks), tokens=[f"x{i}" for i in range(27)])
    assert labelled.token(26) == "x26" and labelled.doc_starts.tolist() == [0, 9, 18]
    with pytest.raises(ValueError, match="layer: the module given is not part of the model"):
        HiddenStates.from_model(model, walks, layer=nn.GRU(4, 6))


# ---------------------------------------------------------------------------------------
# Transformer layers
# ---------------------------------------------------------------------------------------
class Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        x = x + self.attn(x, x, x, need_weights=False)[0]
        return x + self.mlp(x), None  # a tuple, like many transformer layers


class TinyTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.blocks = nn.ModuleList([Block(8), Block(8)])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids)
        for b in self.blocks:
            x = b(x)[0]
        return x


def test_transformer_layer_states_and_mlp_neurons():
    torch.manual_seed(5)
    model = TinyTransformer()
    seqs = [torch.randint(0, 20, (7,)), torch.randint(0, 20, (4,)), torch.randint(0, 20, (7,))]
    hs = HiddenStates.from_model(model, seqs, layer="blocks.0", tokens=[f"w{i}" for i in range(20)])
    neurons = HiddenStates.from_model(model, seqs, layer="blocks.1.mlp.2", kind="input")
    with torch.no_grad():
        refs, mlps = [], []
        for s in seqs:
            x0 = model.blocks[0](model.emb(s[None]))[0]
            refs.append(x0[0])
            x1 = x0 + model.blocks[1].attn(x0, x0, x0, need_weights=False)[0]
            mlps.append(model.blocks[1].mlp[1](model.blocks[1].mlp[0](x1))[0])
    np.testing.assert_allclose(np.asarray(hs.values, np.float32), torch.cat(refs).half().float().numpy(), atol=1e-3)
    assert neurons.shape == (18, 32)
    np.testing.assert_allclose(np.asarray(neurons.values, np.float32), torch.cat(mlps).half().float().numpy(), atol=1e-3)
    assert hs.doc_starts.tolist() == [0, 7, 11] and hs.tokens_in(0, 2) == [f"w{int(seqs[0][0])}", f"w{int(seqs[0][1])}"]
    with pytest.raises(ValueError, match=r"kind: expected one of 'h', 'input' for 'blocks.0' \(Block, not a recurrent module\)"):
        HiddenStates.from_model(model, seqs, layer="blocks.0", kind="gates")


# ---------------------------------------------------------------------------------------
# Model lookup errors and restoration
# ---------------------------------------------------------------------------------------
def test_layer_lookup_errors():
    net = nn.Sequential()
    net.add_module("emb", nn.Embedding(5, 3))
    net.add_module("rnn", nn.GRU(3, 4, batch_first=True))
    seqs = [torch.tensor([1, 2, 3])]
    with pytest.raises(ValueError, match=r"layer: no module named 'rn' in Sequential\. Did you mean 'rnn'.*Recurrent modules: 'rnn'"):
        HiddenStates.from_model(net, seqs, layer="rn")
    with pytest.raises(ValueError, match=r"kind: expected one of 'h', 'gates' for a GRU, got 'c'"):
        HiddenStates.from_model(net, seqs, kind="c")
    with pytest.raises(ValueError, match=r"rnn_layer: 1 is out of range for a 1-layer GRU"):
        HiddenStates.from_model(net, seqs, rnn_layer=1)
    with pytest.raises(ValueError, match="layer: no nn.RNN/nn.LSTM/nn.GRU in Sequential"):
        HiddenStates.from_model(nn.Sequential(nn.Embedding(5, 3)), seqs)
    with pytest.raises(ValueError, match="'rnn' is an nn.RNN, which has no gates"):
        gate_trace(_rnn_model(), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"sequences: sequence 1 has shape \(0,\)"):
        HiddenStates.from_model(net, [torch.tensor([1]), torch.tensor([], dtype=torch.long)])
    with pytest.raises(ValueError, match="sequence: expected a float tensor of shape"):
        gate_trace(nn.GRU(3, 4), torch.randn(5, 2))
    with pytest.raises(ValueError, match="direction: expected 0 for this module"):
        gate_trace(nn.GRU(3, 4), torch.randn(5, 3), direction=1)


def _rnn_model() -> nn.Module:
    m = nn.Sequential()
    m.add_module("emb", nn.Embedding(5, 3))
    m.add_module("rnn", nn.RNN(3, 3, batch_first=True))
    return m


def _snapshot(model: nn.Module):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()),
    )


def _assert_same(model, snap):
    state, modes, flags, hooks = _snapshot(model)
    assert all(torch.equal(state[k], snap[0][k]) for k in state)
    assert modes == snap[1] and flags == snap[2] and hooks == snap[3] == 0


def test_model_restored_after_success_and_after_exception(char_model):
    model, chars, ids, _ = char_model
    model.train()
    model.head.weight.requires_grad_(False)
    snap = _snapshot(model)
    HiddenStates.from_model(model, [ids[:20]], kind="gates", tokens=chars)
    _assert_same(model, snap)
    seen = []

    def failing(m, batch):
        seen.append((m.training, len(m.rnn._forward_hooks)))
        m(batch)
        raise RuntimeError("boom inside the forward")

    with pytest.raises(RuntimeError, match="boom inside the forward"):
        HiddenStates.from_model(model, [ids[:20]], forward_fn=failing)
    assert seen == [(False, 1)]  # eval mode and our hook while running
    _assert_same(model, snap)
    with pytest.raises(RuntimeError, match="boom"):
        gate_trace(model, ids[:20], forward_fn=failing)
    _assert_same(model, snap)
    model.head.weight.requires_grad_(True)
    model.eval()
