"""GenerationSaliency: attributions per generated token, through the attribution engine, and the view."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepvis_widgets.compute.generation_saliency import generation_saliency
from deepvis_widgets.compute.text_attribution import attribute_text
from deepvis_widgets.widgets.generation_saliency import GenerationSaliency

from .conftest import open_offline_page, wait_drawn
from .test_logit_lens import HOSTILE, CharTokenizer

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_gpt2():
    torch.manual_seed(1)
    cfg = transformers.GPT2Config(vocab_size=128, n_embd=32, n_layer=2, n_head=4, n_positions=64)
    return transformers.GPT2LMHeadModel(cfg).eval(), CharTokenizer(128)


def test_rows_match_the_engine_and_mask_later_positions(tiny_gpt2) -> None:
    model, tok = tiny_gpt2
    res = generation_saliency(model, tok, "abcd", max_new_tokens=3, methods=["input_x_gradient", "integrated_gradients"], n_steps=16)
    assert res.n_prompt == 4 and len(res.tokens) == 7 and res.probs.shape == (3,)
    ids = torch.tensor([[ord(c) % 128 for c in "abcd"]])
    with torch.no_grad():
        for _ in range(3):
            ids = torch.cat([ids, model(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)], 1)
    for g in range(3):
        p = 4 + g
        s = res.scores["input_x_gradient"][g]
        assert np.all(np.isnan(s[p:])) and np.all(np.isfinite(s[:p]))
        direct = attribute_text(model, ids[:, :p], "input_x_gradient",
                                target=lambda out, t=int(ids[0, p]): out.logits[:, -1].log_softmax(-1)[:, t], progress=False)
        np.testing.assert_allclose(s[:p], direct.scores[0].numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(res.deltas["integrated_gradients"])) and np.all(np.isnan(res.deltas["input_x_gradient"]))


def test_model_unchanged_and_bad_input(tiny_gpt2) -> None:
    model, tok = tiny_gpt2
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    generation_saliency(model, tok, "ab", max_new_tokens=1, methods=["saliency"])
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    with pytest.raises(ValueError, match="prompt: expected a non-empty string"):
        generation_saliency(model, tok, "")
    with pytest.raises(ValueError, match="max_new_tokens: expected 1..256, got 0"):
        generation_saliency(model, tok, "ab", max_new_tokens=0)
    with pytest.raises(ValueError, match="methods: expected a non-empty list"):
        generation_saliency(model, tok, "ab", methods="saliency")


@pytest.mark.browser
def test_view_colours_the_text_before_the_chosen_token(tiny_gpt2, browser, tmp_path) -> None:
    model, tok = tiny_gpt2
    res = generation_saliency(model, tok, "abcd", max_new_tokens=2, methods=["input_x_gradient"])
    res.tokens[0] = HOSTILE
    w = GenerationSaliency(res, title=HOSTILE)
    path = tmp_path / "gs.html"
    w.save_html(path)
    page, log = open_offline_page(browser)
    page.goto(path.as_uri())
    wait_drawn(page)
    assert page.inner_text(".dv-gs-token >> nth=0") == HOSTILE and page.query_selector(".dv-root img") is None
    colored = lambda: page.eval_on_selector_all(".dv-gs-token", "els => els.map(e => e.style.background !== '')")  # noqa: E731
    assert colored() == [True] * 4 + [False, False]
    assert page.get_attribute(".dv-gs-target", "data-i") == "4"
    page.hover(".dv-gs-token >> nth=5")
    assert page.get_attribute(".dv-gs-target", "data-i") == "5"
    assert colored() == [True] * 5 + [False]
    assert "explaining" in page.inner_text(".dv-gs-info")
    assert log.dialogs == [] and log.blocked == []
    page.context.close()
