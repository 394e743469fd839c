"""ImageAttribution and TextAttribution in Python: precomputed targets equal the engine's
answers, validation at the door, targets computed on demand, and sub-word merging."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import traitlets
from torch import nn

from deepvis_widgets._arrays import decode_array
from deepvis_widgets.compute.attribution import attribute
from deepvis_widgets.compute.text_attribution import attribute_text
from deepvis_widgets.widgets.image_attribution import ImageAttribution
from deepvis_widgets.widgets.text_attribution import TextAttribution, word_groups

HOSTILE = "<img src=x onerror=alert(1)>"
IG_FAST = {"integrated_gradients": {"n_steps": 8}}


def tiny_cnn(classes: int = 6, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes),
    ).eval()  # fmt: skip


class TinyGRU(nn.Module):
    """Embedding + GRU + linear: a token classifier with 3 classes."""

    def __init__(self, vocab: int = 30, classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.embedding = nn.Embedding(vocab, 8)
        self.gru = nn.GRU(8, 12, batch_first=True)
        self.head = nn.Linear(12, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.embedding(ids))
        return self.head(out[:, -1])


def word_tokenizer(text: str) -> tuple[torch.Tensor, list[str]]:
    """Whitespace tokens; ids from the characters (1..29)."""
    tokens = text.split()
    return torch.tensor([[1 + sum(map(ord, tok)) % 29 for tok in tokens]]), tokens


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def view(images: torch.Tensor) -> ImageAttribution:
    return ImageAttribution(
        tiny_cnn(), images, ["saliency", "integrated_gradients", "gradcam", "occlusion"], top_k=3,
        class_names=[f"c{i}" for i in range(6)], image_names=["a", "b"], method_options=IG_FAST,
    )  # fmt: skip


# --- ImageAttribution ------------------------------------------------------------------
def test_precomputed_targets_equal_attribute_called_directly(view: ImageAttribution, images: torch.Tensor) -> None:
    net = view._model
    with torch.no_grad():
        probs = torch.softmax(net(images), 1)
    for row in range(2):
        top = probs[row].topk(3)
        assert [c["class"] for c in view.candidates[row]] == top.indices.tolist()
        np.testing.assert_allclose([c["probability"] for c in view.candidates[row]], top.values.tolist(), rtol=1e-5)
        assert view.target[row] == top.indices[0]
        for cls in top.indices.tolist():
            maps = view.maps_for(row, cls)
            for method in view.methods:
                direct = attribute(net, images[row : row + 1], method, target=cls, progress=False, **IG_FAST.get(method, {}))
                np.testing.assert_allclose(maps[method], direct.heatmap()[0], rtol=1e-4, atol=1e-4 * np.abs(maps[method]).max())
                # what travels to the page: float16 of map / scale
                entry = view.maps[f"{row}:{cls}"][method]
                np.testing.assert_allclose(decode_array(entry["data"]) * entry["scale"], maps[method], atol=1e-3 * entry["scale"])
        assert view.maps[f"{row}:{view.target[row]}"]["integrated_gradients"]["delta"] is not None
    assert view.signed == [False, True, False, True]
    assert view.method_labels == ["Saliency", "Integrated Gradients", "Grad-CAM", "Occlusion"]
    # distinct targets give distinct maps (the precomputation is not one map copied)
    c0, c1 = view.candidates[0][0]["class"], view.candidates[0][1]["class"]
    assert not np.allclose(view.maps_for(0, c0)["integrated_gradients"], view.maps_for(0, c1)["integrated_gradients"])


def test_images_are_drawn_as_given(images: torch.Tensor) -> None:
    photos = [np.full((20, 30, 3), (200, 10, 10), np.uint8), np.full((20, 30, 3), (10, 10, 200), np.uint8)]
    w = ImageAttribution(tiny_cnn(), photos, ["saliency"], preprocess=lambda p: torch.rand(1, 3, 12, 12), top_k=1)
    shown = decode_array(w.images)
    assert shown.shape == (2, 12, 12, 3)
    np.testing.assert_allclose(shown[0, 5, 5], [200 / 255, 10 / 255, 10 / 255], atol=0.01)
    np.testing.assert_allclose(shown[1, 5, 5], [10 / 255, 10 / 255, 200 / 255], atol=0.01)
    # a tensor batch is drawn min-max scaled
    w2 = ImageAttribution(tiny_cnn(), images * 4 - 2, ["saliency"], top_k=1)
    np.testing.assert_allclose(decode_array(w2.images)[0], images[0].permute(1, 2, 0).numpy(), atol=0.01)


def test_explicit_target_outside_the_top_k_joins_the_menu(images: torch.Tensor) -> None:
    net = tiny_cnn()
    with torch.no_grad():
        last = int(torch.softmax(net(images[:1]), 1)[0].argmin())
    w = ImageAttribution(net, images[:1], ["saliency"], target=last, top_k=2)
    assert w.target == [last] and [c["class"] for c in w.candidates[0]][-1] == last and len(w.candidates[0]) == 3
    direct = attribute(net, images[:1], "saliency", target=last, progress=False).heatmap()[0]
    np.testing.assert_allclose(w.maps_for(0)["saliency"], direct, rtol=1e-5)


def test_show_target_computes_a_new_class_and_leaves_the_model_unchanged(images: torch.Tensor) -> None:
    net = tiny_cnn()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    w = ImageAttribution(net, images, ["saliency", "gradcam"], top_k=1)
    other = (w.target[1] + 1) % 6
    assert f"1:{other}" not in w.maps
    status = []
    w.observe(lambda ch: status.append(ch["new"]["message"]), "_status")
    reply, buffers = w._compute_target({"row": 1, "target": other}, [])
    assert reply == {"ok": True} and buffers == []
    assert w.target[1] == other and f"1:{other}" in w.maps and w.candidates[1][-1]["class"] == other
    assert any(m.startswith("computing maps for class") for m in status) and status[-1] == ""
    direct = attribute(net, images[1:2], "gradcam", target=other, progress=False).heatmap()[0]
    np.testing.assert_allclose(w.maps_for(1)["gradcam"], direct, rtol=1e-5, atol=1e-7)
    assert net.training and all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())
    bad, _ = w._compute_target({"row": 7, "target": 0}, [])
    assert bad["ok"] is False and "row: expected an image index in 0..1, got 7" in bad["error"]
    bad, _ = w._compute_target({"row": 0, "target": 99}, [])
    assert bad["ok"] is False and "target: expected a class index in 0..5, got 99" in bad["error"]
    with pytest.raises(traitlets.TraitError, match="no maps for image 0 and class"):
        w.target = [next(c for c in range(6) if f"0:{c}" not in w.maps), w.target[1]]


def test_the_front_end_command_reaches_show_target(images: torch.Tensor) -> None:
    """The message ctx.invoke sends (anywidget's command protocol) computes the class and answers."""
    w = ImageAttribution(tiny_cnn(), images[:1], ["saliency"], top_k=1)
    other = (w.target[0] + 2) % 6
    sent = []
    w.send = lambda content, buffers=None: sent.append(content)  # type: ignore[method-assign]
    msg = {"kind": "anywidget-command", "name": "_compute_target", "id": "7", "msg": {"row": 0, "target": other}}
    w._handle_custom_msg(msg, [])
    assert sent == [{"id": "7", "kind": "anywidget-command-response", "response": {"ok": True}}]
    assert w.target == [other] and f"0:{other}" in w.maps


def test_image_validation(images: torch.Tensor) -> None:
    net = tiny_cnn()
    with pytest.raises(ValueError, match="class_names: expected 6 names \\(one per model output\\), got 5"):
        ImageAttribution(net, images, ["saliency"], class_names=list("abcde"))
    with pytest.raises(ValueError, match="methods: unknown method 'salincy'; expected one of saliency"):
        ImageAttribution(net, images, ["salincy"])
    with pytest.raises(ValueError, match="methods: 'saliency' is listed twice"):
        ImageAttribution(net, images, ["saliency", "Saliency"])
    with pytest.raises(ValueError, match="methods: expected at least one method"):
        ImageAttribution(net, images, [])
    with pytest.raises(ValueError, match=r"images: expected inputs of shape \(N, C, H, W\), got \(3, 12, 12\)"):
        ImageAttribution(net, images[0], ["saliency"])
    with pytest.raises(TypeError, match="images: expected a floating-point tensor"):
        ImageAttribution(net, (images * 10).long(), ["saliency"])
    with pytest.raises(ValueError, match="photos of different sizes need preprocess="):
        ImageAttribution(net, [np.zeros((12, 12, 3), np.uint8), np.zeros((10, 12, 3), np.uint8)], ["saliency"])
    with pytest.raises(ValueError, match="display_images: expected 2 images \\(one per input\\), got 1"):
        ImageAttribution(net, images, ["saliency"], display_images=[np.zeros((12, 12, 3), np.uint8)])
    with pytest.raises(ValueError, match="top_k: expected a positive int, got 0"):
        ImageAttribution(net, images, ["saliency"], top_k=0)
    with pytest.raises(ValueError, match="method_options: 'gradcam' not among the methods shown"):
        ImageAttribution(net, images, ["saliency"], method_options={"gradcam": {}})
    with pytest.raises(ValueError, match="target: expected class indices in 0..5, got 9"):
        ImageAttribution(net, images, ["saliency"], target=[0, 9])
    with pytest.raises(ValueError, match=r"target: expected one class per image \(2\), got 3"):
        ImageAttribution(net, images, ["saliency"], target=[0, 1, 2])
    with pytest.raises(ValueError, match="image_names: expected 2 names \\(one per image\\), got 1"):
        ImageAttribution(net, images, ["saliency"], image_names=["x"])
    with pytest.raises(ValueError, match="contains NaN"):
        ImageAttribution(net, images.clone().fill_(float("nan")), ["saliency"])
    with pytest.raises(TypeError, match="unexpected keyword argument\\(s\\): colour"):
        ImageAttribution(net, images, ["saliency"], colour="red")
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module, got str"):
        ImageAttribution("resnet", images, ["saliency"])


def test_image_trait_validation(view: ImageAttribution) -> None:
    with pytest.raises(traitlets.TraitError, match=r"opacity: expected a value in \[0, 1\], got 1.5"):
        view.opacity = 1.5
    with pytest.raises(traitlets.TraitError, match=r"clip: expected a percentile in \[50, 100\], got 20.0"):
        view.clip = 20
    with pytest.raises(traitlets.TraitError, match="selected: expected \\(row, column\\) inside 2 images x 5 columns"):
        view.selected = (0, 5)
    with pytest.raises(traitlets.TraitError, match="verdicts: 'lime' is not a method of this view"):
        view.verdicts = {"lime": {"passed": True, "text": ""}}
    with pytest.raises(traitlets.TraitError, match=r"verdicts\['saliency'\]: expected \{'passed': bool, 'text': str\}"):
        view.verdicts = {"saliency": {"passed": "yes"}}
    view.verdicts = {"saliency": {"passed": False, "text": 123}}
    assert view.verdicts == {"saliency": {"passed": False, "text": "123"}}
    view.selected = (1, 4)
    assert view.selected == (1, 4)


def test_from_attributions_shows_maps_computed_elsewhere(images: torch.Tensor) -> None:
    import captum.attr as ca

    net = tiny_cnn()
    ig = ca.IntegratedGradients(net).attribute(images, target=2, n_steps=8)  # a user's own Captum run
    ours = attribute(net, images, "saliency", target=2, progress=False)
    coarse = torch.rand(2, 3, 3).abs()
    w = ImageAttribution.from_attributions(
        images, {"captum IG": ig, "saliency": ours, HOSTILE: coarse}, targets=2, class_names=[HOSTILE, *"abcde"]
    )
    assert w.methods == ["captum IG", "saliency", HOSTILE] and w.live is False
    assert w.signed == [True, False, False] and w.target == [2, 2]
    np.testing.assert_allclose(w.maps_for(0)["captum IG"], ig[0].sum(0).numpy(), rtol=1e-6)
    assert w.maps_for(1)[HOSTILE].shape == (3, 3)
    assert w.candidates == [[{"class": 2, "probability": None}]] * 2
    with pytest.raises(ValueError, match="no model to compute them"):
        w.show_target(0, 3)
    plain = ImageAttribution.from_attributions(np.zeros((1, 5, 5, 3), np.uint8), {"m": np.ones((1, 5, 5))}, signed=True)
    assert plain.target == [-1] and plain.signed == [True] and plain.class_names == []
    with pytest.raises(ValueError, match=r"attributions\['m'\]: expected maps of shape \(2, H, W\) or \(2, C, H, W\)"):
        ImageAttribution.from_attributions(images, {"m": np.ones((3, 12, 12))})
    with pytest.raises(TypeError, match="attributions: expected a non-empty dict"):
        ImageAttribution.from_attributions(images, {})
    with pytest.raises(ValueError, match="signed: 'x' not among the attributions"):
        ImageAttribution.from_attributions(images, {"m": np.ones((2, 12, 12))}, signed={"x": True})


# --- TextAttribution ---------------------------------------------------------------------
def test_word_groups_merge_pieces_of_each_scheme() -> None:
    assert word_groups(["[CLS]", "play", "##ing", "cards", "[SEP]"]) == (
        [0, 1, 1, 2, 3], ["[CLS]", "playing", "cards", "[SEP]"], "wordpiece",
    )  # fmt: skip
    words, text, scheme = word_groups(["<s>", "▁Hel", "lo", "▁world", ",", "</s>"])
    assert (words, text, scheme) == ([0, 1, 1, 2, 2, 3], ["<s>", " Hello", " world,", "</s>"], "sentencepiece")
    assert word_groups(["The", "Ġcat", "Ġsa", "t"])[:2] == ([0, 1, 2, 2], ["The", " cat", " sat"])
    assert word_groups(list("# ab c")) == ([0, 1, 2, 2, 3, 4], ["#", " ", "ab", " ", "c"], "chars")
    assert word_groups(["hello", HOSTILE, "world"]) == ([0, 1, 2], ["hello", HOSTILE, "world"], "none")


@pytest.fixture(scope="module")
def text_view() -> TextAttribution:
    return TextAttribution.from_model(
        TinyGRU(), word_tokenizer, ["the cat sat", "a dog ran far away"],
        method=["integrated_gradients", "input_x_gradient", "occlusion"], class_names=["x", HOSTILE, "z"],
        true_labels=[HOSTILE, 0], method_options={"integrated_gradients": {"n_steps": 16}}, top_k=2,
    )  # fmt: skip


def test_text_from_model_equals_attribute_text(text_view: TextAttribution) -> None:
    model = text_view._live["model"]
    for row, text in enumerate(["the cat sat", "a dog ran far away"]):
        ids, tokens = word_tokenizer(text)
        with torch.no_grad():
            probs = torch.softmax(model(ids), 1)[0]
        info = text_view.texts[row]
        assert info["tokens"] == tokens and info["predicted"] == int(probs.argmax())
        assert info["p_predicted"] == pytest.approx(float(probs.max()), rel=1e-5)
        assert [c["class"] for c in text_view.candidates[row]] == probs.topk(2).indices.tolist()
        for cand in text_view.candidates[row]:
            for method in text_view.methods:
                opts = {"n_steps": 16} if method == "integrated_gradients" else {}
                direct = attribute_text(model, ids, method, target=cand["class"], progress=False, **opts)
                got = text_view.scores_for(row, cand["class"], method)
                np.testing.assert_allclose(got, direct.scores[0].numpy(), rtol=1e-4, atol=1e-6)
                entry = text_view.scores[f"{row}:{cand['class']}"][method]
                assert entry["total"] == pytest.approx(float(direct.scores[0].sum()), rel=1e-4, abs=1e-6)
                if method == "integrated_gradients":
                    assert entry["delta"] == pytest.approx(float(direct.delta[0]), abs=1e-4)
                else:
                    assert entry["delta"] is None
    assert text_view.texts[0]["true"] == 1 and text_view.texts[1]["true"] == 0
    assert text_view.method_labels == ["Integrated Gradients", "Input × Gradient", "Occlusion (token ablation)"]
    assert text_view.live is True and text_view.method == "integrated_gradients"


def test_text_show_target_computes_on_demand(text_view: TextAttribution) -> None:
    missing = next(c for c in range(3) if f"0:{c}" not in text_view.scores)
    sent = []
    text_view.send = lambda content, buffers=None: sent.append(content)  # type: ignore[method-assign]
    msg = {"kind": "anywidget-command", "name": "_compute_target", "id": "3", "msg": {"row": 0, "target": missing}}
    text_view._handle_custom_msg(msg, [])
    assert sent == [{"id": "3", "kind": "anywidget-command-response", "response": {"ok": True}}]
    assert text_view.target[0] == missing and f"0:{missing}" in text_view.scores
    ids, _ = word_tokenizer("the cat sat")
    direct = attribute_text(text_view._live["model"], ids, "occlusion", target=missing, progress=False)
    np.testing.assert_allclose(text_view.scores_for(0, method="occlusion"), direct.scores[0].numpy(), rtol=1e-5)
    bad, _ = text_view._compute_target({"row": 0, "target": 3}, [])
    assert bad["ok"] is False and "target: expected a class index in 0..2, got 3" in bad["error"]
    with pytest.raises(traitlets.TraitError, match="method: expected one of integrated_gradients"):
        text_view.method = "lime"
    with pytest.raises(traitlets.TraitError, match="'scale' trait of a TextAttribution instance expected any of"):
        text_view.scale = "global"


def test_text_from_model_with_a_transformers_style_tokenizer() -> None:
    class MaskedNet(TinyGRU):
        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
            assert attention_mask is not None and attention_mask.shape == input_ids.shape
            return super().forward(input_ids)

    class FakeTokenizer:
        def __call__(self, text: str, return_tensors: str, truncation: bool) -> dict[str, torch.Tensor]:
            ids = [2] + [3 + len(w) for w in text.split()] + [1]
            return {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}

        def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
            return ["[CLS]" if i == 2 else "[SEP]" if i == 1 else f"##w{i}" if i % 2 else f"w{i}" for i in ids]

    w = TextAttribution.from_model(MaskedNet(), FakeTokenizer(), "ab abc abcd", method="input_x_gradient")
    assert w.texts[0]["tokens"] == ["[CLS]", "##w5", "w6", "##w7", "[SEP]"] and w.texts[0]["scheme"] == "wordpiece"
    assert w.texts[0]["words"] == [0, 1, 2, 2, 3] and len(w.scores_for(0)) == 5


def test_text_direct_constructor_and_token_attribution() -> None:
    one = TextAttribution(["[CLS]", "great", "##ly", HOSTILE], [0.0, 0.8, 0.1, -0.3], class_names=["neg", "pos"], target="pos")
    assert one.target == [1] and one.signed == [True] and one.texts[0]["words"] == [0, 1, 1, 2]
    np.testing.assert_allclose(decode_array(one.scores["0:1"]["attribution"]["data"]), [0.0, 0.8, 0.1, -0.3])
    assert one.scores["0:1"]["attribution"]["total"] == pytest.approx(0.6)
    padded = TextAttribution(
        [["a", "b"], ["c", "d", "e"]], {"ig": np.array([[1.0, 2.0, 0.0], [3.0, 4.0, 5.0]]), "occ": [[1, 1], [2, 2, 2]]},
        probabilities=[[0.2, 0.8], [0.9, 0.1]], true_labels=[1, 1], delta={"ig": [0.01, 0.02]},
    )  # fmt: skip
    assert padded.methods == ["ig", "occ"] and padded.signed == [False, False]
    assert [t["predicted"] for t in padded.texts] == [1, 0] and padded.texts[1]["p_true"] == pytest.approx(0.1)
    assert padded.scores["1:-1"]["ig"]["delta"] == pytest.approx(0.02) and padded.scores["1:-1"]["occ"]["delta"] is None
    model = TinyGRU()
    ids, tokens = word_tokenizer("one two three")
    result = attribute_text(model, ids, "integrated_gradients", n_steps=8, progress=False)
    from_result = TextAttribution(tokens, result, class_names=list("abc"))
    assert from_result.methods == ["integrated_gradients"] and from_result.target == result.target
    assert from_result.texts[0]["predicted"] == result.predicted[0]
    assert from_result.scores[f"0:{result.target[0]}"]["integrated_gradients"]["delta"] == pytest.approx(float(result.delta[0]))


def test_text_validation() -> None:
    with pytest.raises(TypeError, match="tokens: expected a list of token strings"):
        TextAttribution("a b", [1.0, 2.0])
    with pytest.raises(ValueError, match="tokens: expected at least one token"):
        TextAttribution([], [])
    with pytest.raises(ValueError, match=r"attributions: expected shape \(1, 3\) \(texts, tokens of the longest text\), got \(1, 2\)"):
        TextAttribution(["a", "b", "c"], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"attributions\[1\]: expected 3 scores \(one per token\), got 2"):
        TextAttribution([["a"], ["b", "c", "d"]], [[1.0], [1.0, 2.0]])
    with pytest.raises(ValueError, match="class_names: expected 2 names \\(one per class of probabilities\\), got 3"):
        TextAttribution(["a"], [1.0], probabilities=[[0.5, 0.5]], class_names=list("xyz"))
    with pytest.raises(ValueError, match="true_labels: 'w' is not among class_names \\(x, y\\)"):
        TextAttribution(["a"], [1.0], class_names=["x", "y"], true_labels="w")
    with pytest.raises(ValueError, match="target: expected a class index in 0..1, got 4"):
        TextAttribution(["a"], [1.0], class_names=["x", "y"], target=4)
    model = TinyGRU()
    with pytest.raises(ValueError, match="method: unknown text method 'lime'"):
        TextAttribution.from_model(model, word_tokenizer, "a b", method="lime")
    with pytest.raises(ValueError, match="class_names: expected 3 names \\(one per model output\\), got 2"):
        TextAttribution.from_model(model, word_tokenizer, "a b", method="saliency", class_names=["x", "y"])
    with pytest.raises(TypeError, match="texts: expected a string or a non-empty list of strings"):
        TextAttribution.from_model(model, word_tokenizer, [], method="saliency")
    with pytest.raises(TypeError, match="tokenizer: expected a callable returning \\(ids, tokens\\)"):
        TextAttribution.from_model(model, lambda s: [1, 2], "a b", method="saliency")
    with pytest.raises(ValueError, match=r"tokenizer: expected ids of shape \(1, 2\) for 2 tokens, got \(1, 3\)"):
        TextAttribution.from_model(model, lambda s: (torch.tensor([[1, 2, 3]]), ["a", "b"]), "a b", method="saliency")
    with pytest.raises(ValueError, match="method_options: 'occlusion' not among the methods"):
        TextAttribution.from_model(model, word_tokenizer, "a b", method="saliency", method_options={"occlusion": {}})
