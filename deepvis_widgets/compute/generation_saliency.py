"""Saliency for generated tokens: which earlier tokens made a causal LM produce each token.

The model generates greedily; then, for every generated token, the attribution
engine (:func:`~deepvis_widgets.compute.text_attribution.attribute_text`, Captum on
the embedding layer) attributes its log-probability to all the tokens before it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ._hooks import preserved_model
from .text_attribution import attribute_text

__all__ = ["GenerationSaliencyResult", "generation_saliency"]


@dataclass
class GenerationSaliencyResult:
    """Attribution of each generated token to the tokens before it."""

    tokens: list[str]
    """Prompt tokens then generated tokens."""
    n_prompt: int
    scores: dict[str, np.ndarray]
    """Method -> (G, T) float32: row g attributes generated token ``n_prompt + g`` to tokens
    ``0 .. n_prompt + g - 1``; later positions are NaN."""
    deltas: dict[str, np.ndarray]
    """Method -> (G,) convergence delta (integrated gradients; NaN for other methods)."""
    probs: np.ndarray
    """(G,) probability the model gave each generated token."""


def generation_saliency(
    model: nn.Module,
    tokenizer: Any,
    prompt: str,
    *,
    max_new_tokens: int = 8,
    methods: Sequence[str] = ("input_x_gradient", "integrated_gradients"),
    n_steps: int = 32,
    progress: Callable[[str, float | None], None] | None = None,
) -> GenerationSaliencyResult:
    """Generates greedily, then attributes every generated token with each method.

    Parameters
    ----------
    model, tokenizer
        A causal language model (output with ``.logits``) and its tokenizer.
    prompt
        The prompt text.
    max_new_tokens
        Tokens to generate (greedy).
    methods
        Methods of :func:`attribute_text` (``"input_x_gradient"``, ``"integrated_gradients"``,
        ``"saliency"``, ``"occlusion"``).
    n_steps
        Integration steps for integrated gradients.

    Example
    -------
    >>> res = generation_saliency(model, tok, "The capital of Germany is", max_new_tokens=3)  # doctest: +SKIP
    >>> res.scores["integrated_gradients"].shape  # doctest: +SKIP
    (3, 8)
    """
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt: expected a non-empty string")
    if not 1 <= max_new_tokens <= 256:
        raise ValueError(f"max_new_tokens: expected 1..256, got {max_new_tokens}")
    if isinstance(methods, str) or not methods:
        raise ValueError("methods: expected a non-empty list of method names")
    report = progress or (lambda m, f: None)
    device = next(model.parameters()).device
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(device)
    n_prompt = int(ids.shape[1])
    probs = []
    with preserved_model(model), torch.no_grad():
        for i in range(max_new_tokens):
            report(f"generating token {i + 1} of {max_new_tokens}", i / max_new_tokens)
            logp = model(input_ids=ids).logits[0, -1].float().log_softmax(-1)
            nxt = int(logp.argmax())
            probs.append(float(logp[nxt].exp()))
            ids = torch.cat([ids, torch.tensor([[nxt]], device=device)], dim=1)
    T = int(ids.shape[1])
    G = T - n_prompt
    scores = {m: np.full((G, T), np.nan, np.float32) for m in methods}
    deltas = {m: np.full(G, np.nan, np.float32) for m in methods}
    steps = G * len(methods)
    for mi, method in enumerate(methods):
        for g in range(G):
            p = n_prompt + g
            token = int(ids[0, p])
            report(f"{method}: token {g + 1} of {G}", (mi * G + g) / steps)

            def target(out: Any, token: int = token) -> torch.Tensor:
                logits = out.logits if hasattr(out, "logits") else out[0]
                return logits[:, -1].float().log_softmax(-1)[:, token]

            opts: dict[str, Any] = {"n_steps": n_steps} if method == "integrated_gradients" else {}
            res = attribute_text(model, ids[:, :p], method, target=target, progress=False, **opts)
            scores[method][g, :p] = res.scores[0].detach().float().cpu().numpy()
            if res.delta is not None:
                deltas[method][g] = float(res.delta[0])
    report("", None)
    tokens = [tokenizer.decode([i]) for i in ids[0].tolist()]
    return GenerationSaliencyResult(tokens, n_prompt, scores, deltas, np.asarray(probs, np.float32))
