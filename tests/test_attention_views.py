"""HeadView, ModelView and NeuronView, Python side: what the front end receives, and validation.

Tiny random transformers models built from configs (no downloads) and word-level
tokenizers built with the ``tokenizers`` library. "Received" means decoded from
the widget state exactly as ``js/lib/codec.ts`` and ``js/lib/attention.ts`` read it.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import traitlets

transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from deepvis_widgets._arrays import decode_array  # noqa: E402
from deepvis_widgets.compute.attention import (  # noqa: E402
    UINT8_MAX_ERROR,
    AttentionData,
    attention_rollout,
    head_summary,
    query_key,
    top_k_edges,
)
from deepvis_widgets.widgets import attention as attention_module  # noqa: E402
from deepvis_widgets.widgets.attention import HeadView, ModelView  # noqa: E402
from deepvis_widgets.widgets.neuron_view import NeuronView  # noqa: E402

HOSTILE = "<img src=x onerror=alert(1)>"
WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far", "away", "it", "was", "tired", ".", HOSTILE, "</script>"]
TEXT = "the cat sat on the mat ."
TEXT_B = "it was tired ."
# Weights in [0, 1] quantized to 254 levels between each layer's min and max.
STEP = UINT8_MAX_ERROR + 1e-6


# Tiny models and tokenizers (also used by tests/test_browser_attention.py) ----------------
def word_tokenizer(specials: list[str], single: str | None, pair: str | None, **named: str):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token=named["unk_token"]))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if single is not None:
        used = [s for s in specials if s in single or (pair and s in pair)]
        tk.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=[(s, vocab[s]) for s in used])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tk, **named)


def bert_tokenizer():
    return word_tokenizer(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]"], "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1",
        unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
    )  # fmt: skip


def gpt_tokenizer():
    return word_tokenizer(["<|endoftext|>", "<unk>"], None, None, unk_token="<unk>", eos_token="<|endoftext|>")


def seq_tokenizer():
    return word_tokenizer(
        ["<s>", "<pad>", "</s>", "<unk>"], "<s> $A </s>", "<s> $A </s> </s> $B:1 </s>:1",
        unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>",
    )  # fmt: skip


def tiny_bert():
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=32, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    return transformers.BertModel(cfg).eval()


def tiny_gpt2():
    torch.manual_seed(1)
    cfg = transformers.GPT2Config(vocab_size=32, n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(cfg).eval()


def tiny_bart():
    torch.manual_seed(2)
    cfg = transformers.BartConfig(
        vocab_size=32, d_model=32, encoder_layers=2, decoder_layers=3, encoder_attention_heads=4,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None,
    )  # fmt: skip
    return transformers.BartModel(cfg).eval()


def own_attentions(model, tok, text, text_b=None, decoder_text=None) -> dict[str, np.ndarray]:
    """The model's attentions computed here, eager attention set (and reset) by hand: (layers, heads, q, k)."""
    configs = {id(m.config): m.config for m in model.modules() if hasattr(m, "config")}
    old = {k: c._attn_implementation_internal for k, c in configs.items()}
    for c in configs.values():
        c._attn_implementation_internal = "eager"
    try:
        enc = tok(text, text_b, return_tensors="pt")
        kwargs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        if "token_type_ids" in enc and "token_type_ids" in model.forward.__code__.co_varnames:
            kwargs["token_type_ids"] = enc["token_type_ids"]
        if decoder_text is not None:
            kwargs["decoder_input_ids"] = tok(text_target=decoder_text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model(**kwargs, output_attentions=True)
    finally:
        for k, c in configs.items():
            c._attn_implementation_internal = old[k]
    stack = lambda layers: torch.stack([t[0] for t in layers]).numpy()  # noqa: E731
    if decoder_text is not None:
        return {"encoder": stack(out.encoder_attentions), "decoder": stack(out.decoder_attentions), "cross": stack(out.cross_attentions)}
    return {"": stack(out.attentions)}


@pytest.fixture(scope="module")
def bert():
    return tiny_bert()


@pytest.fixture(scope="module")
def bert_tok():
    return bert_tokenizer()


@pytest.fixture(scope="module")
def gpt2():
    return tiny_gpt2()


@pytest.fixture(scope="module")
def gpt_tok():
    return gpt_tokenizer()


@pytest.fixture(scope="module")
def bart():
    return tiny_bart()


@pytest.fixture(scope="module")
def seq_tok():
    return seq_tokenizer()


def received_layers(view, stack: str) -> list[np.ndarray]:
    """Each layer as the front end decodes it (dense payloads)."""
    return [decode_array(p["dense"]) for p in view._attention[stack]]


def softmax_from_received(payload: dict, query: int) -> np.ndarray:
    """Scores and softmax recomputed from the float16 vectors, as js/neuron_view.ts does."""
    q = decode_array(payload["query"]).astype(np.float64)
    k = decode_array(payload["key"]).astype(np.float64)
    s = k @ q[query] * payload["scaling"]
    if payload["causal"]:
        s[query + 1 + (k.shape[0] - q.shape[0]) :] = -np.inf
    e = np.exp(s - s.max())
    return e / e.sum()


# HeadView: what the view receives ----------------------------------------------------------
def test_bert_head_view_receives_the_models_attentions_within_one_quantization_step(bert, bert_tok):
    view = HeadView.from_model(bert, bert_tok, TEXT, TEXT_B)
    own = own_attentions(bert, bert_tok, TEXT, TEXT_B)[""]
    got = received_layers(view, "encoder")
    assert len(got) == own.shape[0] + 1, "every layer plus rollout is embedded"
    err = np.abs(np.stack(got[:-1]) - own).max()
    assert err <= STEP, f"largest error {err} exceeds the uint8 step"
    assert err > 0, "uint8 transport is lossy: an exact match means the test did not look at the payload"
    np.testing.assert_allclose(got[-1][0], attention_rollout(own[:, :, :, :]), atol=STEP)
    np.testing.assert_allclose(view.received(), own, atol=STEP)
    meta = view.stacks[0]
    assert meta["name"] == "encoder" and meta["mode"] == "dense" and meta["heads"] == 4
    assert meta["tokens"] == ["[CLS]", *TEXT.split(), "[SEP]", *TEXT_B.split(), "[SEP]"]
    assert meta["tokens"][meta["sentence_b"]] == "it"
    assert [i for i, s in enumerate(meta["special"]) if s] == [0, 8, 13]
    assert meta["layer_names"] == ["0", "1", "rollout"] and meta["rollout"]
    assert view.heads == [0, 1, 2, 3] and view.stack == "encoder" and view.layer == 0
    assert bert.config._attn_implementation == "sdpa", "the model's attention implementation is given back"


def test_gpt2_head_view_is_causal_and_receives_its_attentions(gpt2, gpt_tok):
    view = HeadView.from_model(gpt2, gpt_tok, TEXT, top_k=3)
    own = own_attentions(gpt2, gpt_tok, TEXT)[""]
    meta = view.stacks[0]
    assert meta["name"] == "decoder" and meta["causal"] and meta["mode"] == "top_k" and meta["top_k"] == 3
    for layer, payload in enumerate(view._attention["decoder"][:-1]):
        index = decode_array(payload["index"]).astype(int)
        value = decode_array(payload["value"])
        _, want_value = top_k_edges(own[layer], 3)
        np.testing.assert_allclose(value, want_value, atol=STEP)
        # Ties may swap places: compare the weights found at the sent positions instead.
        np.testing.assert_allclose(np.take_along_axis(own[layer], index, -1), want_value, atol=1e-6)
        future = index > np.arange(own.shape[2])[None, :, None]
        assert future.any() and (value[future] == 0).all(), "keys after the query only fill rows with zero weights"
    dense = HeadView.from_model(gpt2, gpt_tok, TEXT)
    np.testing.assert_allclose(dense.received(), own, atol=STEP)


def test_encoder_decoder_head_view_has_three_selectable_stacks(bart, seq_tok):
    dec_text = "a dog ran far away"
    view = HeadView.from_model(bart, seq_tok, TEXT, decoder_text=dec_text)
    own = own_attentions(bart, seq_tok, TEXT, decoder_text=dec_text)
    assert [s["name"] for s in view.stacks] == ["encoder", "decoder", "cross"]
    assert view.stack == "encoder"
    for name in ("encoder", "decoder", "cross"):
        np.testing.assert_allclose(view.received(name), own[name], atol=STEP)
    cross = view.stacks[2]
    assert cross["cross"] and not cross["rollout"] and cross["layer_names"] == ["0", "1", "2"]
    assert cross["tokens"] == view.stacks[1]["tokens"] and cross["tokens_k"] == view.stacks[0]["tokens"]
    assert view.stacks[1]["causal"] and view.stacks[1]["heads"] == 2
    view.stack = "cross"
    with pytest.raises(traitlets.TraitError, match=r"stack: expected one of 'encoder', 'decoder', 'cross', got 'middle'"):
        view.stack = "middle"
    only = HeadView.from_model(bart, seq_tok, TEXT, decoder_text=dec_text, stacks=["cross"])
    assert [s["name"] for s in only.stacks] == ["cross"] and only.stack == "cross"


def test_arrays_tuples_and_sentence_pairs_are_accepted():
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(5), size=(2, 3, 5)).astype(np.float32)
    as_tuple = tuple(torch.from_numpy(layer[None]) for layer in w)  # transformers-style (batch, heads, q, k)
    a = HeadView(w, ["[CLS]", "a", "b"], ["c", "[SEP]"])
    b = HeadView(as_tuple, ["[CLS]", "a", "b", "c", "[SEP]"], tokens_b=3)
    assert a.stacks[0]["tokens"] == b.stacks[0]["tokens"] == ["[CLS]", "a", "b", "c", "[SEP]"]
    assert a.stacks[0]["sentence_b"] == b.stacks[0]["sentence_b"] == 3
    assert a.stacks[0]["special"] == [1, 0, 0, 0, 1], "common special tokens are recognised"
    np.testing.assert_allclose(a.received(), w, atol=STEP)
    np.testing.assert_array_equal(a.received(), b.received())
    cross = HeadView(rng.dirichlet(np.ones(3), size=(1, 2, 4)), ["w", "x", "y", "z"], tokens_k=["<s>", "p", "q"], rollout=True)
    assert cross.stacks[0]["cross"] and cross.stacks[0]["special_k"] == [1, 0, 0] and not cross.stacks[0]["rollout"]


def test_long_inputs_are_pruned_to_top_k_and_stay_within_60_mb(monkeypatch):
    # BERT-base at 512 tokens stays dense (uint8: 37.7 MB raw, ~50 MB base64); 2048 tokens are pruned.
    assert 12 * 12 * 512 * 512 <= attention_module.DENSE_BUDGET < 12 * 12 * 1024 * 1024
    rng = np.random.default_rng(1)
    w = rng.dirichlet(np.ones(40) * 0.2, size=(2, 2, 40)).astype(np.float32)
    monkeypatch.setattr(attention_module, "DENSE_BUDGET", 1000)
    view = HeadView(w)
    meta = view.stacks[0]
    assert meta["mode"] == "top_k" and meta["top_k"] == attention_module.DEFAULT_TOP_K
    payload = view._attention["self"][0]
    assert payload["index"]["dtype"] == "int32" and payload["index"]["shape"] == [2, 40, 16]
    assert payload["value"]["buffer"].nbytes == 2 * 40 * 16
    with pytest.raises(ValueError, match=r"received\(\) needs a dense stack"):
        view.received()
    assert HeadView(w, top_k=40).stacks[0]["mode"] == "dense", "keeping every key is dense"


def test_embed_false_embeds_one_layer_and_the_kernel_sends_the_rest(bert, bert_tok, tmp_path):
    view = HeadView.from_model(bert, bert_tok, TEXT, embed=False, layer=1)
    layers = view._attention["encoder"]
    assert [p is not None for p in layers] == [False, True, False]
    reply, buffers = view._attention_layer({"stack": "encoder", "layer": 0}, [])
    assert reply["dense"]["buffer"] == {"$buffer": 0} and len(buffers) == 1
    sent = decode_array({**reply["dense"], "buffer": buffers[0]})
    np.testing.assert_allclose(sent, own_attentions(bert, bert_tok, TEXT)[""][0], atol=STEP)
    reply, buffers = view._attention_row({"stack": "encoder", "layer": 1, "side": "key", "index": 2}, [])
    column = decode_array({**reply["row"], "buffer": buffers[0]})
    assert reply["row"]["dtype"] == "float16" and column.shape == (4, 9)
    np.testing.assert_allclose(column, view.data["encoder"].attention[1][:, :, 2], atol=5e-4)
    with pytest.raises(IndexError, match=r"layer: expected an index below 3 for stack 'encoder', got 7"):
        view._attention_layer({"stack": "encoder", "layer": 7}, [])
    with pytest.raises(ValueError, match=r"side: expected 'query' or 'key', got 'up'"):
        view._attention_row({"stack": "encoder", "layer": 0, "side": "up", "index": 0}, [])
    assert view._attention_ping({}, []) == ({"ok": True}, [])
    # save_html embeds everything, and leaves the live widget as it was.
    path = tmp_path / "all.html"
    view.save_html(path)
    state = json.loads(re.search(r'id="dv-widget-state">(.*?)</script>', path.read_text(), re.S).group(1))
    ours = next(m for m in state["state"].values() if m["state"].get("_attention") is not None)
    assert sorted(tuple(b["path"][:3]) for b in ours["buffers"]) == [("_attention", "encoder", i) for i in range(3)]
    assert [p is not None for p in view._attention["encoder"]] == [False, True, False]


def test_hostile_tokens_travel_as_strings_and_cannot_close_the_script(tmp_path):
    toks = [HOSTILE, "</script><script>alert(1)</script>", "&amp;"]
    view = HeadView(np.full((1, 1, 3, 3), 1 / 3), toks, title="</script>")
    assert view.stacks[0]["tokens"] == toks
    path = tmp_path / "hostile.html"
    view.save_html(path)
    text = path.read_text()
    assert "<img src=x" not in text and text.count("</script>") == 2, "only the page's own two scripts close"


# ModelView ----------------------------------------------------------------------------------
def test_model_view_thumbnails_and_summaries(bert, bert_tok):
    view = ModelView.from_model(bert, bert_tok, TEXT, TEXT_B, sort_by="entropy")
    data = view.data["encoder"]
    thumbs = decode_array(view._thumbnails["encoder"])
    assert thumbs.shape == (2, 4, 14, 14)
    peak = data.attention.max(axis=(-2, -1))
    np.testing.assert_allclose(thumbs, data.attention / peak[..., None, None], atol=STEP)
    np.testing.assert_allclose(decode_array(view.summary["encoder"]["peak"]), peak, rtol=1e-6)
    want = head_summary(data)
    for key in ("entropy", "distance", "special"):
        np.testing.assert_allclose(decode_array(view.summary["encoder"][key]), getattr(want, key), rtol=1e-6)
    assert view.sort_by == "entropy" and view.selected is None
    view.selected = (1, 3)
    with pytest.raises(traitlets.TraitError, match=r"selected: expected \(layer, head\) inside 2 layers x 4 heads"):
        view.selected = (2, 0)
    with pytest.raises(traitlets.TraitError, match=r"sort_by"):
        view.sort_by = "size"


def test_model_view_pools_long_inputs_to_64_by_64():
    w = np.zeros((1, 1, 130, 130), dtype=np.float32)
    w[0, 0, np.arange(130), np.arange(130)] = 1.0  # a diagonal survives mean pooling
    view = ModelView(w, top_k=4)
    thumbs = decode_array(view._thumbnails["self"])
    assert thumbs.shape == (1, 1, 64, 64)
    assert np.allclose(np.diag(thumbs[0, 0]), 1, atol=0.35) and thumbs[0, 0, 0, 40] == 0
    edges = np.linspace(0, 130, 65).astype(int)
    block = w[0, 0, edges[0] : edges[1], edges[0] : edges[1]].mean()
    assert decode_array(view.summary["self"]["peak"])[0, 0] == pytest.approx(block)


# NeuronView -----------------------------------------------------------------------------------
def test_neuron_view_vectors_reproduce_bert_attention(bert, bert_tok):
    view = NeuronView.from_model(bert, bert_tok, TEXT, TEXT_B, layers=[1], heads=[0, 2], query=3)
    own = own_attentions(bert, bert_tok, TEXT, TEXT_B)[""]
    assert view.available == [[1, 0], [1, 2]] and (view.layer, view.head, view.query) == (1, 0, 3)
    assert view.n_layers == 2 and view.n_heads == 4 and view.stack_name == "encoder"
    for head in (0, 2):
        payload = view._heads[f"1:{head}"]
        assert payload["query"]["dtype"] == "float16" and payload["query"]["shape"] == [14, 8]
        assert payload["mask"] is None and not payload["causal"] and payload["max_error"] < 1e-5
        for query in range(14):
            np.testing.assert_allclose(softmax_from_received(payload, query), own[1, head, query], atol=2e-3)
    with pytest.raises(traitlets.TraitError, match=r"query: expected a token index below 14, got 14"):
        view.query = 14


def test_neuron_view_on_gpt2_applies_the_causal_mask_and_computes_heads_on_demand(gpt2, gpt_tok):
    view = NeuronView.from_model(gpt2, gpt_tok, TEXT, embed=False, layer=1, head=3)
    assert list(view._heads) == ["1:3"] and len(view.available) == 8
    payload = view._heads["1:3"]
    assert payload["causal"] and payload["mask"] is None
    own = own_attentions(gpt2, gpt_tok, TEXT)[""]
    for query in range(7):
        np.testing.assert_allclose(softmax_from_received(payload, query), own[1, 3, query], atol=2e-3)
    reply, buffers = view._neuron_head({"layer": 0, "head": 1}, [])
    computed = {k: (decode_array({**v, "buffer": buffers[v["buffer"]["$buffer"]]}) if isinstance(v, dict) and "buffer" in v else v) for k, v in reply.items()}
    want = query_key(gpt2, gpt_tok, TEXT, 0, 1)
    np.testing.assert_allclose(computed["key"], want.key, rtol=2e-3, atol=2e-3)
    with pytest.raises(ValueError, match=r"layer, head: \(5, 0\) was not computed"):
        view.head_data(5, 0)


def test_neuron_view_validates_its_data(bert, bert_tok):
    qk = query_key(bert, bert_tok, TEXT, 0, 0)
    other = query_key(bert, bert_tok, "a dog ran", 0, 1)
    with pytest.raises(TypeError, match=r"data: expected a QueryKeyData or a non-empty sequence"):
        NeuronView([])
    with pytest.raises(TypeError, match=r"data\[1\]: expected a QueryKeyData, got str"):
        NeuronView([qk, "x"])
    with pytest.raises(ValueError, match=r"data\[1\]: tokens differ from data\[0\]'s"):
        NeuronView([qk, other])
    with pytest.raises(ValueError, match=r"layers: expected indices below 2, got 2"):
        NeuronView.from_model(bert, bert_tok, TEXT, layers=[2])
    with pytest.raises(TypeError, match=r"unexpected keyword argument.*colour"):
        NeuronView(qk, colour="red")
    assert NeuronView(qk).tokens == qk.tokens


# Validation -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((np.zeros((1, 1, 3, 3)), ["a", "b"]), {}, ValueError, r"tokens: attention has 3 query positions but 2 tokens were given"),
        ((np.zeros((1, 1, 3, 3)), ["a"], ["b"]), {}, ValueError, r"tokens, tokens_b: attention has 3 query positions but tokens \(1\) \+ tokens_b \(1\) = 2"),
        ((np.zeros((2, 3, 3)),), {}, ValueError, r"attention: expected an array of shape \(layers, heads, q, k\)"),
        ((np.zeros((1, 1, 2, 3)), ["a", "b"]), {}, ValueError, r"tokens_k: attention has 2 query and 3 key positions"),
        ((np.zeros((1, 1, 2, 3)), ["a", "b"]), {"tokens_k": ["x"]}, ValueError, r"tokens_k: attention has 3 key positions but 1"),
        ((np.zeros((1, 1, 3, 3)), "abc"), {}, TypeError, r"tokens: expected a sequence of token strings, got one string"),
        ((np.zeros((1, 1, 3, 3)), None, ["b"]), {}, ValueError, r"tokens_b: sentence B's tokens need sentence A's tokens"),
        ((np.zeros((1, 1, 3, 3)),), {"top_k": 0}, ValueError, r"top_k: expected 'auto' or a positive int"),
        ((np.zeros((1, 1, 3, 3)),), {"embed": "yes"}, TypeError, r"embed: expected True or False"),
        ((np.zeros((1, 1, 3, 3)),), {"layer": 5}, traitlets.TraitError, r"layer: expected an index between 0 and 1, got 5"),
        ((np.zeros((1, 2, 3, 3)),), {"heads": [0, 2]}, traitlets.TraitError, r"heads: expected head indices below 2, got \[2\]"),
        ((np.zeros((1, 1, 3, 3)),), {"stack": "cross"}, ValueError, r"stack: expected one of 'self', got 'cross'"),
        ((np.zeros((1, 1, 3, 3)),), {"colour": "red"}, TypeError, r"unexpected keyword argument.*colour"),
        ((np.zeros((1, 1, 3, 3)),), {"special_mask": [1, 0]}, ValueError, r"special_mask: expected 3 flags"),
        (({"encoder": np.zeros((1, 1, 2, 2))},), {}, TypeError, r"attention\['encoder'\]: expected an AttentionData, got ndarray"),
        (({},), {}, ValueError, r"attention: expected at least one stack"),
        ((AttentionData(np.zeros((1, 1, 2, 2))), ["a", "b"]), {}, TypeError, r"tokens: an AttentionData already carries its tokens"),
        ((AttentionData(np.eye(2)[None, None]).with_rollout(),), {}, ValueError, r"pass the data without with_rollout\(\)"),
    ],
)  # fmt: skip
def test_bad_inputs_name_the_argument(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        HeadView(*args, **kwargs)
    with pytest.raises(error, match=match):
        ModelView(*args, **kwargs)


def test_from_model_rejects_unknown_stacks(bart, seq_tok, bert, bert_tok):
    with pytest.raises(ValueError, match=r"stacks: this model has 'encoder', 'decoder', 'cross', got \['middle'\]"):
        HeadView.from_model(bart, seq_tok, TEXT, stacks=["middle"])
    with pytest.raises(TypeError, match=r"text: expected a str, got list"):
        ModelView.from_model(bert, bert_tok, ["the cat"])
