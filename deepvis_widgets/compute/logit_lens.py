"""Logit lens: what a causal language model would predict after each layer.

Each decoder layer's output (the residual stream) is projected through the
model's own final norm and unembedding, as nostalgebraist's "logit lens" and
Ecco's rank view do. Supported: Llama-style (``model.model.layers``,
``model.model.norm``) and GPT-2-style (``model.transformer.h``,
``model.transformer.ln_f``) models from transformers, or any model when the
caller names the modules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ._hooks import preserved_model

__all__ = ["LogitLensResult", "find_lens_modules", "logit_lens"]

# (layers, final norm) attribute paths of known decoder families.
_FAMILIES = (
    ("model.layers", "model.norm"),  # Llama, Mistral, Qwen, SmolLM
    ("transformer.h", "transformer.ln_f"),  # GPT-2, GPT-J
    ("gpt_neox.layers", "gpt_neox.final_layer_norm"),  # Pythia
    ("model.decoder.layers", "model.decoder.final_layer_norm"),  # OPT
)


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def find_lens_modules(model: nn.Module) -> tuple[list[nn.Module], nn.Module, nn.Module]:
    """The decoder layers, the final norm and the unembedding of a causal LM.

    Raises
    ------
    ValueError
        When the model is not a known family; names the attribute paths tried.

    Example
    -------
    >>> layers, norm, unembed = find_lens_modules(model)  # doctest: +SKIP
    """
    get_output_embeddings = getattr(model, "get_output_embeddings", None)  # transformers models
    unembed = get_output_embeddings() if get_output_embeddings is not None else None
    for layers_path, norm_path in _FAMILIES:
        layers, norm = _get(model, layers_path), _get(model, norm_path)
        if isinstance(layers, nn.ModuleList) and isinstance(norm, nn.Module) and isinstance(unembed, nn.Module):
            return list(layers), norm, unembed
    tried = ", ".join(f"{a} + {b}" for a, b in _FAMILIES)
    raise ValueError(
        f"model: could not find decoder layers, final norm and unembedding (tried {tried} with "
        "get_output_embeddings()); pass layers=, norm= and unembed= explicitly"
    )


@dataclass
class LogitLensResult:
    """Per layer and position: the rank and probability of a target token, and the top candidates.

    Row 0 is the residual stream entering the first layer (token and position embeddings); row ``i`` (1..L) is the output of layer ``i-1``; the last row
    equals the model's own prediction.
    """

    tokens: list[str]
    """Token strings of the full sequence (prompt, then generated tokens)."""
    token_ids: np.ndarray
    """(T,) int64 ids of the sequence."""
    n_prompt: int
    """How many of ``tokens`` are the prompt; the rest were generated."""
    layer_names: list[str]
    """``'embeddings'``, then one name per layer."""
    target_ids: np.ndarray
    """(T,) id whose rank is shown at each position: the actual next token (for the last position,
    the model's own top prediction)."""
    ranks: np.ndarray
    """(L+1, T) int32 rank of the target (0 = the top prediction)."""
    probs: np.ndarray
    """(L+1, T) float32 probability of the target."""
    top_ids: np.ndarray
    """(L+1, T, k) int32 top-k token ids after each layer."""
    top_probs: np.ndarray
    """(L+1, T, k) float32 their probabilities."""
    vocab: dict[int, str] = field(default_factory=dict)
    """Token strings for every id that appears in ``top_ids``, ``target_ids`` or ``watched``."""
    watched: dict[str, tuple[int, np.ndarray, np.ndarray]] = field(default_factory=dict)
    """Watched token text -> (id, ranks (L+1, T), probs (L+1, T))."""


@torch.no_grad()
def logit_lens(
    model: nn.Module,
    tokenizer: Any,
    text: str,
    *,
    generate: int = 0,
    watch: Sequence[str] = (),
    top_k: int = 5,
    layers: Sequence[nn.Module] | None = None,
    norm: nn.Module | None = None,
    unembed: nn.Module | None = None,
    chunk: int = 256,
    progress: Callable[[str, float | None], None] | None = None,
) -> LogitLensResult:
    """Runs the logit lens over a prompt (and ``generate`` greedily generated tokens).

    Parameters
    ----------
    model, tokenizer
        A causal language model and its tokenizer (transformers).
    text
        The prompt.
    generate
        Number of tokens to generate greedily before the lens runs over the whole sequence.
    watch
        Token texts to follow across layers (e.g. ``[" Berlin", " Paris"]``); each must be one
        token of the vocabulary.
    top_k
        Candidates kept per layer and position.
    layers, norm, unembed
        The decoder layers, final norm and unembedding, for models that are not a known family.
    chunk
        Positions projected at once (bounds memory: chunk x vocabulary floats per layer).
    progress
        Called with a message and a fraction.

    Example
    -------
    >>> lens = logit_lens(model, tok, "The capital of Germany is", watch=[" Berlin", " Paris"])  # doctest: +SKIP
    >>> lens.ranks[-1, -1]  # the model's own prediction has rank 0  # doctest: +SKIP
    0
    """
    if not isinstance(text, str) or not text:
        raise ValueError("text: expected a non-empty string")
    if generate < 0:
        raise ValueError(f"generate: expected a count >= 0, got {generate}")
    if top_k < 1:
        raise ValueError(f"top_k: expected >= 1, got {top_k}")
    if layers is None or norm is None or unembed is None:
        found = find_lens_modules(model)
        layers = layers if layers is not None else found[0]
        norm = norm if norm is not None else found[1]
        unembed = unembed if unembed is not None else found[2]
    report = progress or (lambda msg, frac: None)
    device = next(model.parameters()).device
    ids = tokenizer(text, return_tensors="pt")["input_ids"].to(device)
    if ids.shape[1] == 0:
        raise ValueError("text: the tokenizer produced no tokens")
    n_prompt = int(ids.shape[1])
    watch_ids = []
    for w in watch:
        wid = tokenizer(w, add_special_tokens=False)["input_ids"]
        if len(wid) != 1:
            raise ValueError(f"watch: {w!r} is {len(wid)} tokens for this tokenizer; expected exactly one")
        watch_ids.append(int(wid[0]))

    with preserved_model(model) as session:
        for i in range(generate):
            report(f"generating token {i + 1} of {generate}", i / max(generate, 1))
            logits = model(input_ids=ids).logits[:, -1]
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
        captured: list[torch.Tensor] = []

        def keep(_m: nn.Module, _i: Any, out: Any) -> None:
            captured.append((out[0] if isinstance(out, tuple) else out).detach())

        def keep_input(_m: nn.Module, args: tuple, kwargs: dict) -> None:
            # The residual stream entering the first layer: token (+ position) embeddings.
            captured.append((args[0] if args else kwargs["hidden_states"]).detach())

        session.forward_pre_hook(layers[0], keep_input, with_kwargs=True)
        for layer in layers:
            session.forward_hook(layer, keep)
        report("running the model", None)
        final_logits = model(input_ids=ids).logits[0]

    seq = ids[0]
    T = int(seq.shape[0])
    target = torch.empty(T, dtype=torch.long, device=device)
    target[:-1] = seq[1:]
    target[-1] = final_logits[-1].argmax()
    n_rows = len(captured)
    ranks = np.zeros((n_rows, T), np.int32)
    probs = np.zeros((n_rows, T), np.float32)
    top_ids = np.zeros((n_rows, T, top_k), np.int32)
    top_probs = np.zeros((n_rows, T, top_k), np.float32)
    w_ranks = np.zeros((len(watch_ids), n_rows, T), np.int32)
    w_probs = np.zeros((len(watch_ids), n_rows, T), np.float32)
    w_index = torch.tensor(watch_ids, dtype=torch.long, device=device)
    for li, hidden in enumerate(captured):
        report(f"projecting layer {li} of {n_rows - 1}", li / n_rows)
        h = hidden[0]
        for s in range(0, T, chunk):
            e = min(T, s + chunk)
            logits = unembed(norm(h[s:e])).float()
            logp = torch.log_softmax(logits, dim=-1)
            tgt = target[s:e]
            tl = logits.gather(1, tgt[:, None])
            # Counting through float32 sums is ~2x faster than bool/int sums on CPU, exact below 2**24.
            ranks[li, s:e] = (logits > tl).float().sum(1).cpu().numpy()
            probs[li, s:e] = logp.gather(1, tgt[:, None])[:, 0].exp().cpu().numpy()
            tp, ti = logp.topk(top_k, dim=-1)
            top_ids[li, s:e] = ti.cpu().numpy()
            top_probs[li, s:e] = tp.exp().cpu().numpy()
            if watch_ids:
                wl = logits[:, w_index]  # (chunk, W)
                for wi in range(len(watch_ids)):
                    w_ranks[wi, li, s:e] = (logits > wl[:, wi : wi + 1]).float().sum(1).cpu().numpy()
                w_probs[:, li, s:e] = logp[:, w_index].exp().T.cpu().numpy()
    report("", None)
    # The last row must be the model's own prediction: a cheap end-to-end check of the lens.
    own = final_logits.float().log_softmax(-1).gather(1, target[:, None])[:, 0].exp().cpu().numpy()
    if not np.allclose(own, probs[-1], atol=1e-4):
        raise RuntimeError(
            "logit lens: projecting the last layer does not reproduce the model's output "
            f"(max diff {np.abs(own - probs[-1]).max():.2e}); pass norm= and unembed= explicitly"
        )
    all_ids = set(top_ids.ravel().tolist()) | set(target.tolist()) | set(seq.tolist()) | set(watch_ids)
    vocab = {i: tokenizer.decode([i]) for i in sorted(all_ids)}
    names = ["embeddings"] + [f"layer {i}" for i in range(n_rows - 1)]
    return LogitLensResult(
        tokens=[vocab[int(i)] for i in seq.tolist()],
        token_ids=seq.cpu().numpy().astype(np.int64),
        n_prompt=n_prompt,
        layer_names=names,
        target_ids=target.cpu().numpy().astype(np.int64),
        ranks=ranks,
        probs=probs,
        top_ids=top_ids,
        top_probs=top_probs,
        vocab=vocab,
        watched={w: (wid, w_ranks[k], w_probs[k]) for k, (w, wid) in enumerate(zip(watch, watch_ids, strict=True))},
    )
