"""TextAttribution: tokens coloured by how much each one moved a classifier's decision.

Front end: ``js/text_attribution.ts``. Compute: ``deepvis_widgets/compute/text_attribution.py``.

Each text shows its tokens as text (never HTML), coloured by attribution on a
diverging scale (per text, or shared by all texts) with a legend, the predicted and true label with their
probabilities, the sum of the attributions and the convergence delta. Method
and target menus switch between maps computed when the view was made;
sub-word pieces (WordPiece ``##ing``, SentencePiece ``▁word``, byte-level
BPE ``Ġword``, or single characters) can be merged into words, their scores
summed.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import traitlets as t
from anywidget.experimental import command
from torch import nn

from .._arrays import as_numpy, encode_array
from ..compute.attribution import top_predictions
from ..compute.text_attribution import TEXT_METHODS, TokenAttribution, attribute_text
from ._base import DeepVisWidget, progress_bar

__all__ = ["TextAttribution", "word_groups"]

NO_CLASS = -1
"""Target key of scores given without a class."""
_SPECIAL = re.compile(r"^(\[[A-Za-z_]+\]|<\|?/?[A-Za-z_]+\|?>)$")


def word_groups(tokens: Sequence[str]) -> tuple[list[int], list[str], str]:
    """Which word each token belongs to, the words' text, and the piece scheme detected.

    Schemes: ``"wordpiece"`` (``##`` marks a continuation), ``"sentencepiece"``
    (``▁`` starts a word), ``"bpe"`` (``Ġ`` starts a word), ``"chars"`` (one
    character per token; whitespace separates words) or ``"none"`` (every
    token is a word). Special tokens such as ``[CLS]`` or ``</s>`` stay alone.

    Parameters
    ----------
    tokens
        The token strings of one text.

    Returns
    -------
    words : list of int
        Word index of each token (non-decreasing, from 0).
    text : list of str
        Each word's text with the piece markers removed.
    scheme : str
        The scheme detected.

    Example
    -------
    >>> word_groups(["[CLS]", "play", "##ing", "cards", "[SEP]"])
    ([0, 1, 1, 2, 3], ['[CLS]', 'playing', 'cards', '[SEP]'], 'wordpiece')
    """
    toks = [str(x) for x in tokens]
    special = [bool(_SPECIAL.match(x)) for x in toks]
    if any(x.startswith("##") and len(x) > 2 for x in toks):
        scheme = "wordpiece"
    elif any(x.startswith("▁") for x in toks):
        scheme = "sentencepiece"
    elif any(x.startswith("Ġ") for x in toks):
        scheme = "bpe"
    elif toks and all(len(x) <= 1 for x in toks):
        scheme = "chars"
    else:
        scheme = "none"
    words: list[int] = []
    text: list[str] = []
    for i, tok in enumerate(toks):
        if scheme == "wordpiece":
            joins = tok.startswith("##") and len(tok) > 2
            piece = tok[2:] if joins else tok
        elif scheme in ("sentencepiece", "bpe"):
            marker = "▁" if scheme == "sentencepiece" else "Ġ"
            joins = not tok.startswith(marker)
            piece = tok.replace(marker, " ").replace("Ċ", "\n") if scheme == "bpe" else tok.replace(marker, " ")
        elif scheme == "chars":
            joins = not tok.isspace() and bool(tok) and i > 0 and not toks[i - 1].isspace()
            piece = tok
        else:
            joins, piece = False, tok
        if i == 0 or not joins or special[i] or special[i - 1]:
            words.append(len(text))
            text.append(piece)
        else:
            words.append(len(text) - 1)
            text[-1] += piece
    return words, text, scheme


def _text_payload(tokens: list[str]) -> dict[str, Any]:
    words, text, scheme = word_groups(tokens)
    return {"tokens": tokens, "words": words, "word_text": text, "scheme": scheme}


def _label_index(value: Any, names: list[str], n_classes: int | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value not in names:
            raise ValueError(f"{name}: {value!r} is not among class_names ({', '.join(names) or 'none given'})")
        return names.index(value)
    if isinstance(value, bool) or not float(value).is_integer():
        raise TypeError(f"{name}: expected a class index or name, got {value!r}")
    idx = int(value)
    if idx < 0 or (n_classes is not None and idx >= n_classes):
        raise ValueError(f"{name}: expected a class index in 0..{(n_classes or 1) - 1}, got {idx}")
    return idx


def _per_text(value: Any, n: int, name: str) -> list[Any]:
    if value is None or isinstance(value, (int, str, np.integer)):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ValueError(f"{name}: expected one value per text ({n}), got {len(values)}")
    return values


class TextAttribution(DeepVisWidget, entry="text_attribution"):
    """Tokens coloured by attribution, with prediction, true label, sum and convergence delta.

    Build it from a model with :meth:`from_model`, or from scores computed
    elsewhere: ``TextAttribution(tokens, scores)``. Colours are scaled to each
    text's largest |score| by default (``scale='shared'`` puts all texts on one
    scale); hovering a token shows its value.

    Parameters
    ----------
    tokens
        One text's tokens (``list[str]``) or one list per text. Tokens are
        data: ``<script>`` is shown as text.
    attributions
        Scores: ``(T,)`` for one text, ``(N, T)`` (padded to the longest text) or
        a list of 1-D arrays; a dict ``{method: scores}`` for a method menu; or
        a :class:`~deepvis_widgets.compute.text_attribution.TokenAttribution`
        (its prediction, probabilities, target and delta are used).
    class_names
        One name per class.
    target
        The class each text's scores explain (index or name), if known.
    predicted, probabilities
        The model's predicted class per text and its class probabilities ``(N, classes)``.
    true_labels
        The correct class per text (index or name), shown beside the prediction.
    delta
        Convergence delta per text (or ``{method: deltas}``).
    signed
        Whether the scores have a sign (diverging colours); default: any negative.
    title
        Optional title.

    Example
    -------
    >>> view = TextAttribution(["[CLS]", "great", "##ly", "<b>"], [0.0, 0.8, 0.1, -0.3], class_names=["neg", "pos"], target=1)
    >>> view.texts[0]["words"], view.method
    ([0, 1, 1, 2], 'attribution')
    """

    # --- data ------------------------------------------------------------------
    texts = t.List(
        t.Dict(),
        help="Per text: tokens, words (word index per token), word_text, scheme, predicted, p_predicted, true, p_true.",
    ).tag(sync=True)
    class_names = t.List(t.Unicode(), help="One name per class, or [] to show indices. Default [].").tag(sync=True)
    methods = t.List(t.Unicode(), help="Methods computed, in menu order.").tag(sync=True)
    method_labels = t.List(t.Unicode(), help="Display name of each method.").tag(sync=True)
    signed = t.List(t.Bool(), help="Per method: True when scores are signed (diverging colours).").tag(sync=True)
    candidates = t.List(
        t.List(t.Dict()), help="Per text, the targets its menu offers: [{'class': int, 'probability': float or None}]."
    ).tag(sync=True)
    scores = t.Dict(
        help="'row:class' -> method -> {'data': (T,) float32 payload, 'total': float, 'delta': float or None}."
    ).tag(sync=True)
    live = t.Bool(False, help="True when a model is attached, so other targets can be computed in the kernel.").tag(sync=True)

    # --- interaction --------------------------------------------------------------
    method = t.Unicode("", help="Method shown.").tag(sync=True)
    target = t.List(t.Int(), help="Class explained for each text (-1: scores given without a class).").tag(sync=True)
    merge = t.Bool(False, help="Merge sub-word pieces into words (scores summed). Default False.").tag(sync=True)
    scale = t.Enum(
        ["per_text", "shared"],
        default_value="per_text",
        help="Colour scale: each text to its own largest |score| ('per_text', as Captum does) or one for all. Default 'per_text'.",
    ).tag(sync=True)

    def __init__(
        self,
        tokens: Sequence[str] | Sequence[Sequence[str]],
        attributions: Any,
        *,
        class_names: Sequence[str] | None = None,
        target: Any = None,
        predicted: Any = None,
        probabilities: Any = None,
        true_labels: Any = None,
        delta: Any = None,
        signed: bool | None = None,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        token_lists = self._token_lists(tokens)
        n = len(token_lists)
        names = self._class_names(class_names)
        if isinstance(attributions, TokenAttribution):
            res = attributions
            attributions = {res.method: res.scores}
            target = res.target if target is None else target
            predicted = res.predicted if predicted is None else predicted
            probabilities = res.probabilities if probabilities is None else probabilities
            delta = res.delta if delta is None else delta
            signed = res.signed if signed is None else signed
        by_method = dict(attributions) if isinstance(attributions, Mapping) else {"attribution": attributions}
        if not by_method:
            raise ValueError("attributions: expected scores, got an empty dict")
        probs = None
        if probabilities is not None:
            probs = as_numpy(probabilities, "probabilities").astype(np.float64)
            if probs.ndim == 1:
                probs = probs[None]
            if probs.ndim != 2 or probs.shape[0] != n:
                raise ValueError(f"probabilities: expected shape ({n}, classes), got {probs.shape}")
            if names and probs.shape[1] != len(names):
                raise ValueError(f"class_names: expected {probs.shape[1]} names (one per class of probabilities), got {len(names)}")
        n_classes = probs.shape[1] if probs is not None else (len(names) or None)
        targets = [_label_index(v, names, n_classes, "target") for v in _per_text(target, n, "target")]
        chosen = [NO_CLASS if v is None else v for v in targets]
        store: dict[tuple[int, int], dict[str, np.ndarray]] = {(r, chosen[r]): {} for r in range(n)}
        deltas: dict[tuple[int, int], dict[str, float | None]] = {(r, chosen[r]): {} for r in range(n)}
        signs: dict[str, bool] = {}
        delta_by_method = delta if isinstance(delta, Mapping) else dict.fromkeys(by_method, delta)
        for key, value in by_method.items():
            key = str(key)
            rows = self._rows(value, token_lists, f"attributions[{key!r}]" if isinstance(attributions, Mapping) else "attributions")
            d = delta_by_method.get(key)
            d_values = None if d is None else as_numpy(d, "delta").astype(np.float64).reshape(-1)
            if d_values is not None and d_values.shape[0] != n:
                raise ValueError(f"delta: expected one value per text ({n}), got {d_values.shape[0]}")
            for r in range(n):
                store[(r, chosen[r])][key] = rows[r]
                deltas[(r, chosen[r])][key] = None if d_values is None else float(d_values[r])
            signs[key] = bool(signed) if signed is not None else any(bool((x < 0).any()) for x in rows)
        preds = [_label_index(v, names, n_classes, "predicted") for v in _per_text(predicted, n, "predicted")]
        if probs is not None:
            preds = [int(probs[r].argmax()) if p is None else p for r, p in enumerate(preds)]
        trues = [_label_index(v, names, n_classes, "true_labels") for v in _per_text(true_labels, n, "true_labels")]
        self._finish(
            token_lists, names, store, deltas, signs, {k: k for k in signs}, chosen, preds, trues, probs, None, title, kwargs
        )

    # --- shared set-up -------------------------------------------------------------
    def _finish(
        self,
        token_lists: list[list[str]],
        names: list[str],
        store: dict[tuple[int, int], dict[str, np.ndarray]],
        deltas: dict[tuple[int, int], dict[str, float | None]],
        signs: dict[str, bool],
        labels: dict[str, str],
        chosen: list[int],
        predicted: list[int | None],
        true: list[int | None],
        probabilities: np.ndarray | None,
        live: dict[str, Any] | None,
        title: str | None,
        kwargs: dict[str, Any],
    ) -> None:
        self._store = store
        self._deltas = deltas
        self._probabilities = probabilities
        self._live = live
        texts = []
        for r, toks in enumerate(token_lists):
            p = probabilities[r] if probabilities is not None else None
            texts.append(
                {
                    **_text_payload(toks),
                    "predicted": predicted[r],
                    "p_predicted": None if p is None or predicted[r] is None else float(p[predicted[r]]),
                    "true": true[r],
                    "p_true": None if p is None or true[r] is None else float(p[true[r]]),
                }
            )
        candidates = self._initial_candidates(chosen)
        methods = list(signs)
        DeepVisWidget.__init__(
            self,
            texts=texts,
            class_names=names,
            methods=methods,
            method_labels=[labels[m] for m in methods],
            signed=[signs[m] for m in methods],
            candidates=candidates,
            scores=self._payload(),
            live=live is not None,
            method=methods[0],
            target=chosen,
            title="" if title is None else str(title),
            **kwargs,
        )

    def _initial_candidates(self, chosen: list[int]) -> list[list[dict[str, Any]]]:
        out: list[list[dict[str, Any]]] = [[] for _ in chosen]
        for row, cls in self._store:
            out[row].append(self._candidate(row, cls))
        if self._probabilities is not None:
            for cands in out:
                cands.sort(key=lambda c: -(c["probability"] or 0.0))
        return out

    def _candidate(self, row: int, cls: int) -> dict[str, Any]:
        p = self._probabilities
        return {"class": int(cls), "probability": None if p is None or cls == NO_CLASS else float(p[row, cls])}

    def _payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for (row, cls), by_method in self._store.items():
            out[f"{row}:{cls}"] = {
                m: {
                    "data": encode_array(s, "float32", name=f"scores[{m!r}]"),
                    "total": float(np.nansum(s)),
                    "delta": self._deltas.get((row, cls), {}).get(m),
                }
                for m, s in by_method.items()
            }
        return out

    @staticmethod
    def _token_lists(tokens: Any) -> list[list[str]]:
        if isinstance(tokens, str):
            raise TypeError("tokens: expected a list of token strings (or one list per text), got a single string")
        items = list(tokens)
        if not items:
            raise ValueError("tokens: expected at least one token, got none")
        if all(isinstance(x, str) for x in items):
            return [items]
        out = []
        for i, row in enumerate(items):
            if isinstance(row, str) or not all(isinstance(x, str) for x in row):
                raise TypeError(f"tokens[{i}]: expected a list of strings")
            if not row:
                raise ValueError(f"tokens[{i}]: expected at least one token, got none")
            out.append(list(row))
        return out

    @staticmethod
    def _class_names(class_names: Any) -> list[str]:
        if class_names is None:
            return []
        if isinstance(class_names, str):
            raise TypeError("class_names: expected a sequence of strings, got a single string")
        return [str(c) for c in class_names]

    @staticmethod
    def _rows(value: Any, token_lists: list[list[str]], name: str) -> list[np.ndarray]:
        n = len(token_lists)
        lengths = [len(x) for x in token_lists]
        if isinstance(value, (list, tuple)) and value and not np.isscalar(value[0]):
            rows = [as_numpy(v, f"{name}[{i}]").astype(np.float32).reshape(-1) for i, v in enumerate(value)]
            if len(rows) != n:
                raise ValueError(f"{name}: expected one array per text ({n}), got {len(rows)}")
            for i, (row, length) in enumerate(zip(rows, lengths, strict=True)):
                if row.shape[0] != length:
                    raise ValueError(f"{name}[{i}]: expected {length} scores (one per token), got {row.shape[0]}")
            return rows
        arr = as_numpy(value, name).astype(np.float32)
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] != max(lengths):
            raise ValueError(
                f"{name}: expected shape ({n}, {max(lengths)}) (texts, tokens of the longest text), got {tuple(arr.shape)}"
            )
        return [arr[i, :length].copy() for i, length in enumerate(lengths)]

    # --- from a model ------------------------------------------------------------------
    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        tokenizer: Any,
        texts: str | Sequence[str],
        method: str | Sequence[str] = "integrated_gradients",
        target: Any = None,
        *,
        class_names: Sequence[str] | None = None,
        true_labels: Any = None,
        top_k: int = 5,
        method_options: Mapping[str, Mapping[str, Any]] | None = None,
        title: str | None = None,
        **kwargs: Any,
    ) -> TextAttribution:
        """Attributions of a token classifier for a few texts, for its ``top_k`` classes and each method.

        Parameters
        ----------
        model
            A classifier reading token ids (a ``transformers`` sequence
            classifier, or any module ``model(ids)`` with an ``nn.Embedding``).
        tokenizer
            A ``transformers`` tokenizer, or a callable ``text -> (ids, tokens)``
            with ids ``(1, T)`` and ``T`` token strings (e.g.
            :func:`deepvis_widgets.examples.tokenize_lines`).
        texts
            One text or a list of texts; each runs alone (no padding).
        method
            A method of :data:`~deepvis_widgets.compute.text_attribution.TEXT_METHODS`
            or a list of them (a menu in the view).
        target
            Class explained first: None (the prediction), an index or name, or one per text.
        class_names
            One name per class.
        true_labels
            The correct class per text (index or name).
        top_k
            How many predicted classes each text's menu offers (all precomputed).
        method_options
            ``{method: {option: value}}`` for :func:`attribute_text` (e.g. ``n_steps``).

        Example
        -------
        >>> from deepvis_widgets.examples import text_classifier
        >>> model, labels, tokenize = text_classifier()
        >>> view = TextAttribution.from_model(model, tokenize, ["# a comment", "x = 1"], class_names=labels)  # doctest: +SKIP
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts or not all(isinstance(x, str) for x in texts):
            raise TypeError("texts: expected a string or a non-empty list of strings")
        methods = [method] if isinstance(method, str) else list(method)
        if not methods:
            raise ValueError(f"method: expected at least one of {', '.join(TEXT_METHODS)}")
        for m in methods:
            if m not in TEXT_METHODS:
                raise ValueError(f"method: unknown text method {m!r}; expected one of {', '.join(TEXT_METHODS)}")
        if len(set(methods)) != len(methods):
            raise ValueError("method: a method is listed twice")
        options = {k: dict(v) for k, v in (method_options or {}).items()}
        unknown = sorted(set(options) - set(methods))
        if unknown:
            raise ValueError(f"method_options: {', '.join(map(repr, unknown))} not among the methods ({', '.join(methods)})")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise ValueError(f"top_k: expected a positive int, got {top_k!r}")
        encode = _encoder(model, tokenizer)
        encoded = [encode(text, i) for i, text in enumerate(texts)]
        n = len(texts)
        logits = torch.cat([top_predictions(model, ids, k=1, forward_kwargs=fk).logits.float() for ids, _, fk in encoded])
        n_classes = int(logits.shape[1])
        names = cls._class_names(class_names)
        if names and len(names) != n_classes:
            raise ValueError(f"class_names: expected {n_classes} names (one per model output), got {len(names)}")
        probabilities = torch.softmax(logits, 1).numpy().astype(np.float64)
        k = min(top_k, n_classes)
        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k].tolist()
        picked = [_label_index(v, names, n_classes, "target") for v in _per_text(target, n, "target")]
        chosen = [top[r][0] if p is None else p for r, p in enumerate(picked)]
        wanted = [list(dict.fromkeys([*top[r], chosen[r]])) for r in range(n)]
        trues = [_label_index(v, names, n_classes, "true_labels") for v in _per_text(true_labels, n, "true_labels")]

        view = cls.__new__(cls)
        live = {"model": model, "encoded": encoded, "methods": methods, "options": options}
        view._store, view._deltas, view._live = {}, {}, live
        with progress_bar("text attributions") as report:
            _compute(view, [(r, c) for r in range(n) for c in wanted[r]], report, progress=None)
        store, deltas = view._store, view._deltas
        # Menus list classes most probable first, as top_k ranked them.
        ordered = {(r, c): store[(r, c)] for r in range(n) for c in wanted[r]}
        labels = {m: TEXT_METHODS[m]["label"] for m in methods}
        signs = {m: bool(TEXT_METHODS[m]["signed"]) for m in methods}
        view._finish(
            [tokens for _, tokens, _ in encoded], names, ordered, deltas, signs, labels, chosen,
            [int(probabilities[r].argmax()) for r in range(n)], trues, probabilities, live, title, kwargs,
        )  # fmt: skip
        return view

    # --- live kernel ------------------------------------------------------------------
    def show_target(self, row: int, target: int) -> None:
        """Shows text ``row``'s scores for class ``target``, computing them if needed (needs the model).

        Example
        -------
        >>> view.show_target(0, 2)  # doctest: +SKIP
        """
        n = len(self.texts)
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)) or not 0 <= int(row) < n:
            raise ValueError(f"row: expected a text index in 0..{n - 1}, got {row!r}")
        if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
            raise TypeError(f"target: expected a class index (int), got {type(target).__name__}")
        row, cls = int(row), int(target)
        if (row, cls) not in self._store:
            if self._live is None:
                raise ValueError(f"target: no scores for text {row} and class {cls}, and no model to compute them")
            assert self._probabilities is not None  # from_model keeps them with the model
            n_classes = self._probabilities.shape[1]
            if not 0 <= cls < n_classes:
                raise ValueError(f"target: expected a class index in 0..{n_classes - 1}, got {cls}")
            name = self.class_names[cls] if self.class_names else f"class {cls}"
            with self._working(f"computing attributions for {name}…"):
                _compute(self, [(row, cls)], self._progress, progress=False)
                self.scores = self._payload()
        if not any(c["class"] == cls for c in self.candidates[row]):
            candidates = [list(c) for c in self.candidates]
            candidates[row].append(self._candidate(row, cls))
            self.candidates = candidates
        chosen = list(self.target)
        chosen[row] = cls
        self.target = chosen

    def scores_for(self, row: int, target: int | None = None, method: str | None = None) -> np.ndarray:
        """Token scores (float32) of text ``row`` for ``target`` and ``method`` (default: those shown).

        Example
        -------
        >>> view.scores_for(0).shape  # doctest: +SKIP
        (12,)
        """
        cls = self.target[row] if target is None else int(target)
        m = self.method if method is None else method
        if (row, cls) not in self._store or m not in self._store[(row, cls)]:
            raise KeyError(f"no scores for text {row}, class {cls}, method {m!r}")
        return self._store[(row, cls)][m].copy()

    @command
    def _compute_target(self, msg: dict[str, Any], buffers: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
        """Front-end request (a text's target menu, live kernel only)."""
        del buffers
        try:
            self.show_target(int(msg.get("row", -1)), int(msg.get("target", -1)))
        except Exception as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}, []
        return {"ok": True}, []

    # --- validation ---------------------------------------------------------------------
    @t.validate("method")
    def _check_method(self, proposal: t.Bunch) -> str:
        m = proposal["value"]
        if self.methods and m not in self.methods:
            raise t.TraitError(f"method: expected one of {', '.join(self.methods)}, got {m!r}")
        return m

    @t.validate("target")
    def _check_target(self, proposal: t.Bunch) -> list[int]:
        value = [int(v) for v in proposal["value"]]
        if self.texts and len(value) != len(self.texts):
            raise t.TraitError(f"target: expected one class per text ({len(self.texts)}), got {len(value)}")
        store = getattr(self, "_store", {})
        missing = [(r, c) for r, c in enumerate(value) if (r, c) not in store]
        if store and missing:
            r, c = missing[0]
            raise t.TraitError(f"target: no scores for text {r} and class {c}; use show_target({r}, {c}) to compute them")
        return value


def _encoder(model: nn.Module, tokenizer: Any) -> Callable[[str, int], tuple[torch.Tensor, list[str], dict[str, Any]]]:
    """text -> (ids (1, T), tokens, model keyword arguments) for a transformers tokenizer or a callable."""
    if hasattr(tokenizer, "convert_ids_to_tokens") and callable(tokenizer):
        try:
            params = inspect.signature(model.forward).parameters
            takes_mask = "attention_mask" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        except (TypeError, ValueError):
            takes_mask = False

        def hf(text: str, i: int) -> tuple[torch.Tensor, list[str], dict[str, Any]]:
            enc = tokenizer(text, return_tensors="pt", truncation=True)
            ids = enc["input_ids"]
            tokens = [str(x) for x in tokenizer.convert_ids_to_tokens(ids[0].tolist())]
            return ids, tokens, ({"attention_mask": enc["attention_mask"]} if takes_mask and "attention_mask" in enc else {})

        return hf
    if not callable(tokenizer):
        raise TypeError(f"tokenizer: expected a transformers tokenizer or a callable text -> (ids, tokens), got {type(tokenizer).__name__}")

    def plain(text: str, i: int) -> tuple[torch.Tensor, list[str], dict[str, Any]]:
        out = tokenizer(text)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(f"tokenizer: expected a callable returning (ids, tokens), got {type(out).__name__} for texts[{i}]")
        ids, tokens = out
        ids = torch.as_tensor(ids)
        ids = ids[None] if ids.ndim == 1 else ids
        if tokens and not isinstance(tokens[0], str):
            tokens = tokens[0]
        tokens = [str(x) for x in tokens]
        if ids.ndim != 2 or ids.shape[0] != 1 or ids.shape[1] != len(tokens):
            raise ValueError(f"tokenizer: expected ids of shape (1, {len(tokens)}) for {len(tokens)} tokens, got {tuple(ids.shape)} for texts[{i}]")
        return ids, tokens, {}

    return plain


def _compute(view: TextAttribution, pairs: list[tuple[int, int]], report: Callable[[str, float | None], None], progress: bool | None) -> None:
    """Scores of every method for each (text, class) pair: per text, one attribute_text call per method."""
    live = view._live
    assert live is not None
    todo = [p for p in pairs if p not in view._store]
    rows = list(dict.fromkeys(r for r, _ in todo))
    steps = max(1, len(rows) * len(live["methods"]))
    step = 0
    for r in rows:
        ids, _, forward_kwargs = live["encoded"][r]
        classes = [c for rr, c in todo if rr == r]
        batch = ids.expand(len(classes), -1)
        extra = {k: v.expand(len(classes), -1) for k, v in forward_kwargs.items()}
        for m in live["methods"]:
            report(f"{m}: text {r + 1} of {len(live['encoded'])}", step / steps)
            res = attribute_text(
                live["model"], batch, m, target=classes, progress=progress,
                attention_mask=extra.get("attention_mask"), **live["options"].get(m, {}),
            )  # fmt: skip
            for i, c in enumerate(classes):
                view._store.setdefault((r, c), {})[m] = res.scores[i].numpy().astype(np.float32)
                view._deltas.setdefault((r, c), {})[m] = None if res.delta is None else float(res.delta[i])
            step += 1
    report("", 1.0)
