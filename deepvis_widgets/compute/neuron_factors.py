"""Non-negative matrix factorisation of MLP neuron activations (Ecco's "explaining transformers").

The activations of the neurons of one MLP layer (or of all layers) over the
tokens of some texts form a tokens × neurons matrix. NMF splits it into a few
factors: groups of neurons that fire together, each with a strength per token.
Negative activations (GELU and SwiGLU produce small ones) are set to zero first,
as NMF needs non-negative data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ._hooks import preserved_model
from .logit_lens import find_lens_modules

__all__ = ["NeuronFactorsResult", "find_mlp_outputs", "mlp_activations", "neuron_factors"]


def find_mlp_outputs(model: nn.Module) -> list[nn.Module]:
    """Per decoder layer, the MLP's output projection; its input is the neuron activations.

    Example
    -------
    >>> len(find_mlp_outputs(model)) == model.config.num_hidden_layers  # doctest: +SKIP
    True
    """
    layers, _, _ = find_lens_modules(model)
    out = []
    for i, layer in enumerate(layers):
        mlp = getattr(layer, "mlp", None)
        proj = None
        for name in ("down_proj", "c_proj", "fc_out", "dense_4h_to_h", "fc2"):
            proj = getattr(mlp, name, None) if mlp is not None else None
            if isinstance(proj, nn.Module):
                break
        if not isinstance(proj, nn.Module):
            raise ValueError(f"model: layer {i} has no MLP output projection (looked for mlp.down_proj, mlp.c_proj, ...)")
        out.append(proj)
    return out


@torch.no_grad()
def mlp_activations(
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    layer: int | str = "all",
    progress: Callable[[str, float | None], None] | None = None,
) -> tuple[np.ndarray, list[str], list[int], list[tuple[int, int]]]:
    """Neuron activations (tokens × neurons) of one MLP layer or all of them.

    Returns
    -------
    activations, tokens, doc_starts, neuron_index
        float32 (N, D); token strings; index of each text's first token; per feature its
        (layer, neuron).
    """
    if isinstance(texts, str) or not texts or not all(isinstance(x, str) and x for x in texts):
        raise ValueError("texts: expected a non-empty list of non-empty strings")
    projections = find_mlp_outputs(model)
    if layer == "all":
        chosen = list(range(len(projections)))
    elif isinstance(layer, int) and -len(projections) <= layer < len(projections):
        chosen = [layer % len(projections)]
    else:
        raise ValueError(f"layer: expected 'all' or an index below {len(projections)}, got {layer!r}")
    report = progress or (lambda m, f: None)
    rows: list[np.ndarray] = []
    tokens: list[str] = []
    doc_starts: list[int] = []
    device = next(model.parameters()).device
    with preserved_model(model) as session:
        store: dict[int, torch.Tensor] = {}
        for li in chosen:
            session.forward_pre_hook(projections[li], lambda _m, args, li=li: store.__setitem__(li, args[0].detach()))
        for ti, text in enumerate(texts):
            report(f"running text {ti + 1} of {len(texts)}", ti / len(texts))
            ids = tokenizer(text, return_tensors="pt")["input_ids"].to(device)
            model(input_ids=ids)
            doc_starts.append(len(tokens))
            tokens.extend(tokenizer.decode([i]) for i in ids[0].tolist())
            rows.append(torch.cat([store[li][0].float() for li in chosen], dim=-1).cpu().numpy())
    width = rows[0].shape[1] // len(chosen)
    neuron_index = [(li, n) for li in chosen for n in range(width)]
    return np.concatenate(rows, axis=0), tokens, doc_starts, neuron_index


@dataclass
class NeuronFactorsResult:
    """NMF of neuron activations: per-token factor strengths and per-factor neuron loadings."""

    tokens: list[str]
    doc_starts: list[int]
    factors: np.ndarray
    """(N tokens, K) float32 strength of each factor at each token."""
    components: np.ndarray
    """(K, D) float32 loading of each neuron on each factor."""
    neuron_index: list[tuple[int, int]]
    """(layer, neuron) of each of the D features."""
    reconstruction_error: float
    """Relative Frobenius error ||A - WH|| / ||A|| of the clipped activations."""

    def top_neurons(self, factor: int, n: int = 10) -> list[tuple[int, int, float]]:
        """The ``n`` neurons loading most on ``factor`` as (layer, neuron, loading)."""
        if not 0 <= factor < self.components.shape[0]:
            raise ValueError(f"factor: expected 0 <= factor < {self.components.shape[0]}, got {factor}")
        order = np.argsort(self.components[factor])[::-1][:n]
        return [(*self.neuron_index[i], float(self.components[factor, i])) for i in order]


def neuron_factors(
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    layer: int | str = "all",
    n_components: int = 8,
    seed: int = 0,
    max_iter: int = 400,
    progress: Callable[[str, float | None], None] | None = None,
) -> NeuronFactorsResult:
    """Factorises MLP activations over ``texts`` into ``n_components`` non-negative factors.

    Example
    -------
    >>> res = neuron_factors(model, tok, ["def f(x):\\n    return x"], layer="all", n_components=6)  # doctest: +SKIP
    >>> res.factors.shape[1]  # doctest: +SKIP
    6
    """
    from sklearn.decomposition import NMF

    if not 1 <= n_components <= 64:
        raise ValueError(f"n_components: expected 1..64, got {n_components}")
    acts, tokens, starts, index = mlp_activations(model, tokenizer, texts, layer, progress)
    if len(tokens) < n_components:
        raise ValueError(f"n_components: {n_components} factors need at least as many tokens; the texts have {len(tokens)}")
    clipped = np.maximum(acts, 0.0)
    if progress:
        progress(f"factorising {clipped.shape[0]} tokens × {clipped.shape[1]} neurons", None)
    nmf = NMF(n_components=n_components, init="nndsvda", random_state=seed, max_iter=max_iter)
    W = nmf.fit_transform(clipped)
    H = nmf.components_
    err = float(np.linalg.norm(clipped - W @ H) / max(np.linalg.norm(clipped), 1e-12))
    if progress:
        progress("", None)
    return NeuronFactorsResult(tokens, starts, W.astype(np.float32), H.astype(np.float32), index, err)
