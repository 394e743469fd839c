"""NeuronFactors: MLP activations captured by hooks, NMF, and the view in Chromium."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepvis_widgets.compute.neuron_factors import mlp_activations, neuron_factors
from deepvis_widgets.widgets.neuron_factors import NeuronFactors

from .conftest import open_offline_page, wait_drawn
from .test_logit_lens import HOSTILE, CharTokenizer

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_llama():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return transformers.LlamaForCausalLM(cfg).eval(), CharTokenizer(128)


def test_activations_are_the_input_of_the_down_projection(tiny_llama) -> None:
    model, tok = tiny_llama
    acts, tokens, starts, index = mlp_activations(model, tok, ["abc", "de"], layer="all")
    assert acts.shape == (5, 2 * 48) and starts == [0, 3] and tokens == list("abcde")
    assert index[48] == (1, 0)
    # Recompute layer 1's SwiGLU neurons by hand from its input.
    store = {}
    h = model.model.layers[1].register_forward_pre_hook(lambda m, a: store.__setitem__("x", a[0]))
    with torch.no_grad():
        model(input_ids=torch.tensor([tok("abc")["input_ids"]]))
        mlp = model.model.layers[1].mlp
        x = model.model.layers[1].post_attention_layernorm(
            store["x"] + model.model.layers[1].self_attn(
                model.model.layers[1].input_layernorm(store["x"]),
                position_embeddings=model.model.rotary_emb(store["x"], torch.arange(3)[None]),
                attention_mask=None,
            )[0]
        )
        expected = (mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x))[0]
    h.remove()
    # The causal mask is not applied in this hand computation, so compare the first token only
    # (it attends to itself alone either way).
    np.testing.assert_allclose(acts[0, 48:], expected[0].numpy(), rtol=1e-4, atol=1e-5)


def test_nmf_reconstructs_and_leaves_the_model_alone(tiny_llama) -> None:
    model, tok = tiny_llama
    model.train()
    res = neuron_factors(model, tok, ["hello world", "def f(x): return x"], n_components=4)
    assert model.training
    model.eval()
    assert res.factors.shape == (len(res.tokens), 4) and res.components.shape[0] == 4
    assert np.all(res.factors >= 0) and np.all(res.components >= 0)
    assert 0 <= res.reconstruction_error < 1
    # The reported error is the real reconstruction error of the clipped activations.
    acts, *_ = mlp_activations(model, tok, ["hello world", "def f(x): return x"])
    clipped = np.maximum(acts, 0)
    err = np.linalg.norm(clipped - res.factors @ res.components) / np.linalg.norm(clipped)
    assert err == pytest.approx(res.reconstruction_error, rel=1e-3)
    top = res.top_neurons(0, 3)
    assert len(top) == 3 and top[0][2] >= top[1][2] >= top[2][2]


def test_bad_input(tiny_llama) -> None:
    model, tok = tiny_llama
    with pytest.raises(ValueError, match="texts: expected a non-empty list"):
        neuron_factors(model, tok, "just a string")
    with pytest.raises(ValueError, match="layer: expected 'all' or an index below 2, got 5"):
        neuron_factors(model, tok, ["abc"], layer=5)
    with pytest.raises(ValueError, match="n_components: 8 factors need at least as many tokens"):
        neuron_factors(model, tok, ["abc"], n_components=8)
    res = neuron_factors(model, tok, ["abcdef"], n_components=2)
    with pytest.raises(ValueError, match="factor: expected 0 <= factor < 2"):
        res.top_neurons(2)


@pytest.mark.browser
def test_view_colours_tokens_and_isolates_a_factor(tiny_llama, browser, tmp_path) -> None:
    model, tok = tiny_llama
    res = neuron_factors(model, tok, ["abcdefgh", "xyz"], n_components=3)
    res.tokens = [HOSTILE, *res.tokens[1:]]
    w = NeuronFactors(res, title=HOSTILE)
    path = tmp_path / "nmf.html"
    w.save_html(path)
    page, log = open_offline_page(browser)
    page.goto(path.as_uri())
    wait_drawn(page)
    assert page.inner_text(".dv-title") == HOSTILE
    assert page.inner_text(".dv-nmf-token >> nth=0") == HOSTILE
    assert page.query_selector(".dv-root img") is None
    dominant = page.eval_on_selector_all(".dv-nmf-token", "els => els.map(e => Number(e.dataset.factor))")
    assert dominant == res.factors.argmax(1).tolist()
    page.click(".dv-nmf-factor >> nth=2")
    assert page.eval_on_selector_all(".dv-nmf-token", "els => els.map(e => Number(e.dataset.factor))") == [2] * len(res.tokens)
    page.hover(".dv-nmf-token >> nth=1")
    assert "factor 2" in page.inner_text(".dv-tooltip")
    assert log.dialogs == [] and log.blocked == []
    page.context.close()
