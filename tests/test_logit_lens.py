"""Logit lens: compute against a brute-force projection, the widget, and the view in Chromium."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepvis_widgets.compute.logit_lens import LogitLensResult, logit_lens
from deepvis_widgets.widgets.logit_lens import LogitLens

from .conftest import open_offline_page, wait_drawn

transformers = pytest.importorskip("transformers")

HOSTILE = "<img src=x onerror=alert(1)>"


class CharTokenizer:
    """A transformers-like tokenizer over single characters (no download)."""

    def __init__(self, vocab_size: int) -> None:
        self.n = vocab_size

    def __call__(self, text, return_tensors=None, add_special_tokens=True):
        ids = [ord(ch) % self.n for ch in text]
        return {"input_ids": torch.tensor([ids]) if return_tensors == "pt" else ids}

    def decode(self, ids):
        return "".join(chr(i) if 32 <= i < 127 else f"<{i}>" for i in ids)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def tiny_lm(request):
    torch.manual_seed(0)
    if request.param == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=128, n_embd=32, n_layer=3, n_head=4, n_positions=64)
        model = transformers.GPT2LMHeadModel(cfg)
    else:
        cfg = transformers.LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
        model = transformers.LlamaForCausalLM(cfg)
    return model.eval(), CharTokenizer(128), request.param


def _brute_force(model, ids, kind):
    """Rank of the next token after each block, projecting hidden states by hand."""
    out = model(input_ids=ids, output_hidden_states=True)
    hs = out.hidden_states  # embeddings, block 0..L-2 outputs, then the LAST block output after the final norm
    norm = model.transformer.ln_f if kind == "gpt2" else model.model.norm
    head = model.get_output_embeddings()
    rows = [head(norm(h[0])) for h in hs[:-1]] + [out.logits[0]]
    target = torch.cat([ids[0, 1:], out.logits[0, -1:].argmax(-1)])
    return np.stack([(r > r.gather(1, target[:, None])).sum(1).numpy() for r in rows]), target


def test_ranks_equal_a_brute_force_projection(tiny_lm) -> None:
    model, tok, kind = tiny_lm
    res = logit_lens(model, tok, "hello world", watch=["o", "l"], top_k=3)
    ids = torch.tensor([tok("hello world")["input_ids"]])
    with torch.no_grad():
        expected, target = _brute_force(model, ids, kind)
    assert res.ranks.shape == (4, 11) and res.layer_names == ["embeddings", "layer 0", "layer 1", "layer 2"]
    np.testing.assert_array_equal(res.target_ids, target.numpy())
    np.testing.assert_array_equal(res.ranks, expected)
    assert (res.ranks[-1, -1] == 0) and np.all(res.top_ids[:, :, 0] >= 0)
    # A watched token's rank equals the rank it gets in the full top-k ordering when it is on top.
    wid, w_ranks, _ = res.watched["o"]
    hit = res.top_ids[:, :, 0] == wid
    assert np.all(w_ranks[hit] == 0)
    assert np.allclose(res.top_probs.sum(-1) <= 1.0 + 1e-5, True)


def test_generation_appends_greedy_tokens_and_leaves_the_model_alone(tiny_lm) -> None:
    model, tok, _ = tiny_lm
    def hooks():  # transformers 5 installs its own output-capturing hooks on first use: count ours only
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())

    model(input_ids=torch.tensor([[1, 2]]))
    n_hooks = hooks()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = logit_lens(model, tok, "abc", generate=2)
    assert model.training, "train mode restored"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert hooks() == n_hooks, "no hooks of ours left"
    model.eval()
    assert res.n_prompt == 3 and len(res.tokens) == 5
    with torch.no_grad():
        nxt = model(input_ids=torch.tensor([res.token_ids[:3].tolist()])).logits[0, -1].argmax().item()
    assert res.token_ids[3] == nxt


def test_bad_input(tiny_lm) -> None:
    model, tok, _ = tiny_lm
    with pytest.raises(ValueError, match="text: expected a non-empty string"):
        logit_lens(model, tok, "")
    with pytest.raises(ValueError, match="watch: 'ab' is 2 tokens"):
        logit_lens(model, tok, "abc", watch=["ab"])
    with pytest.raises(ValueError, match="generate: expected a count >= 0"):
        logit_lens(model, tok, "abc", generate=-1)
    with pytest.raises(ValueError, match="could not find decoder layers"):
        logit_lens(torch.nn.Linear(2, 2), tok, "abc")
    with pytest.raises(TypeError, match="result: expected a LogitLensResult"):
        LogitLens({"ranks": 1})


def _hostile_result() -> LogitLensResult:
    L, T, k = 3, 4, 2
    rng = np.random.default_rng(0)
    return LogitLensResult(
        tokens=[HOSTILE, "</script>", " b", "\n"],
        token_ids=np.arange(T),
        n_prompt=3,
        layer_names=["embeddings", "layer 0", "layer 1"],
        target_ids=np.array([1, 2, 3, 0]),
        ranks=np.array([[500, 40, 3, 9], [20, 4, 1, 2], [0, 0, 0, 0]], np.int32),
        probs=rng.uniform(size=(L, T)).astype(np.float32),
        top_ids=np.zeros((L, T, k), np.int32),
        top_probs=np.full((L, T, k), 0.5, np.float32),
        vocab={0: HOSTILE, 1: "</script>", 2: " b", 3: "\n"},
        watched={HOSTILE: (0, np.array([[9, 9, 9, 9], [3, 3, 3, 3], [0, 0, 0, 0]], np.int32), np.zeros((L, T)))},
    )


@pytest.mark.browser
def test_view_draws_hover_lists_candidates_and_click_moves_the_watch(browser, tmp_path) -> None:
    w = LogitLens(_hostile_result(), title=HOSTILE)
    path = tmp_path / "lens.html"
    w.save_html(path)
    page, log = open_offline_page(browser)
    page.goto(path.as_uri())
    wait_drawn(page)
    assert page.inner_text(".dv-title") == HOSTILE
    assert page.query_selector(".dv-root img") is None
    assert page.eval_on_selector_all(".dv-lens-header .dv-lens-tok", "els => els.map(e => e.textContent)")[:2] == [HOSTILE, "</script>"]
    # Rank 0 (last row) is drawn bright yellow, rank 500 dark.
    px_top = page.evaluate("() => { const c = document.querySelector('.dv-lens-canvas'); return Array.from(c.getContext('2d').getImageData(3, 3, 1, 1).data); }")
    px_bottom = page.evaluate("() => { const c = document.querySelector('.dv-lens-canvas'); return Array.from(c.getContext('2d').getImageData(3, c.height - 4, 1, 1).data); }")
    assert px_bottom[:3] == [253, 231, 37] and sum(px_top[:3]) < 300
    box = page.query_selector(".dv-lens-canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.2)
    tip = page.inner_text(".dv-tooltip")
    assert f"top 1\n{HOSTILE}" in tip.replace("\t", "\n") or f"top 1 {HOSTILE}" in tip
    assert "rank\n500" in tip.replace("\t", "\n") or "rank 500" in tip
    assert "position 2" in page.inner_text(".dv-lens-watch-title")
    page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
    assert "position 2" in page.inner_text(".dv-lens-watch-title")
    page.mouse.click(box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.5)
    assert "position 3" in page.inner_text(".dv-lens-watch-title")
    assert log.dialogs == [] and log.blocked == []
    page.context.close()


@pytest.mark.slow
def test_smollm2_berlin_rises_to_the_top() -> None:
    pytest.importorskip("gguf")
    from deepvis_widgets.examples.language import smollm2

    model, tok = smollm2()
    res = logit_lens(model, tok, "The capital of Germany is", watch=[" Berlin", " Paris"])
    _, berlin, _ = res.watched[" Berlin"]
    assert berlin[-1, -1] == 0, "the model's answer is Berlin"
    assert berlin[1, -1] > 1000, "after the first layer Berlin is far down the list"
    assert res.vocab[int(res.top_ids[-1, -1, 0])] == " Berlin"
    # The last row equals the model's own output ranks exactly, at every position.
    ids = tok("The capital of Germany is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    own = (logits > logits.gather(1, torch.as_tensor(res.target_ids)[:, None])).sum(1).numpy()
    np.testing.assert_array_equal(res.ranks[-1], own)


def test_model_restored_after_an_exception_half_way(tiny_lm) -> None:
    model, tok, kind = tiny_lm

    class Boom(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom in the norm")

    model(input_ids=torch.tensor([[1, 2]]))
    n_hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    model.train()
    layers = model.transformer.h if kind == "gpt2" else model.model.layers

    def failing_layer_hook(*_):
        raise RuntimeError("boom in a layer")

    handle = layers[1].register_forward_hook(failing_layer_hook)
    try:
        with pytest.raises(RuntimeError, match="boom in a layer"):
            logit_lens(model, tok, "abc")
    finally:
        handle.remove()
    with pytest.raises(RuntimeError, match="boom in the norm"):
        logit_lens(model, tok, "abc", norm=Boom())
    assert model.training
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == n_hooks
    model.eval()


def test_from_model_builds_the_widget(tiny_lm) -> None:
    model, tok, _ = tiny_lm
    w = LogitLens.from_model(model, tok, "abc", generate=1, watch=["a"])
    assert w.tokens == w.result.tokens and len(w.tokens) == 4 and w.position == 2
    assert w.ranks["shape"] == [4, 4] and w.watched[0]["token"] == "a"
    with pytest.raises(Exception, match="position: expected 0 <= position < 4"):
        w.position = 4
