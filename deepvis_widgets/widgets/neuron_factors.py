"""NeuronFactors: text coloured by NMF factors of MLP neuron activations (Ecco-style).

Front end: ``js/neuron_factors.ts``. Compute: ``deepvis_widgets/compute/neuron_factors.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import traitlets as t

from .._arrays import encode_array
from ..compute.neuron_factors import NeuronFactorsResult, neuron_factors
from ._base import DeepVisWidget, progress_bar

__all__ = ["NeuronFactors"]


class NeuronFactors(DeepVisWidget, entry="neuron_factors"):
    """Tokens coloured by their dominant factor, with one sparkline per factor.

    Click a factor to colour the text by that factor alone; hover a token for all
    factor strengths.

    Example
    -------
    >>> dv.NeuronFactors.from_model(model, tok, texts, layer="all", n_components=8)  # doctest: +SKIP
    """

    # --- data ------------------------------------------------------------------
    tokens = t.List(t.Unicode(), help="Token strings of all texts, concatenated.").tag(sync=True)
    doc_starts = t.List(t.Int(), help="Index of each text's first token.").tag(sync=True)
    factors = t.Dict(help="(N tokens, K) float32 factor strength per token.").tag(sync=True)
    factor_neurons = t.List(t.List(t.Unicode()), help="Per factor, its top neurons as 'layer L neuron N'.").tag(sync=True)
    reconstruction_error = t.Float(0.0, help="Relative error of the factorisation.").tag(sync=True)

    # --- interaction --------------------------------------------------------------
    factor = t.Int(None, allow_none=True, help="Factor shown alone, or None for the dominant factor per token.").tag(sync=True)

    def __init__(self, result: NeuronFactorsResult, *, title: str | None = None, **kwargs: Any) -> None:
        if not isinstance(result, NeuronFactorsResult):
            raise TypeError(f"result: expected a NeuronFactorsResult (see NeuronFactors.from_model), got {type(result).__name__}")
        if result.factors.shape[0] != len(result.tokens):
            raise ValueError(f"result: {result.factors.shape[0]} factor rows for {len(result.tokens)} tokens")
        self._result = result
        k = result.factors.shape[1]
        super().__init__(
            tokens=list(result.tokens),
            doc_starts=list(result.doc_starts),
            factors=encode_array(result.factors, "float32", name="factors"),
            factor_neurons=[[f"layer {li} neuron {n}" for li, n, _ in result.top_neurons(f, 5)] for f in range(k)],
            reconstruction_error=result.reconstruction_error,
            title="" if title is None else str(title),
            **kwargs,
        )

    @property
    def result(self) -> NeuronFactorsResult:
        """The factorisation (numpy arrays)."""
        return self._result

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        texts: Sequence[str],
        *,
        layer: int | str = "all",
        n_components: int = 8,
        title: str | None = None,
        **options: Any,
    ) -> NeuronFactors:
        """Runs :func:`~deepvis_widgets.compute.neuron_factors.neuron_factors` and shows it."""
        with progress_bar("neuron factors") as report:
            res = neuron_factors(model, tokenizer, texts, layer=layer, n_components=n_components, **{"progress": report, **options})
        what = "all layers" if layer == "all" else f"layer {layer}"
        return cls(res, title=title if title is not None else f"{n_components} NMF factors of MLP neurons ({what})")

    @t.validate("factor")
    def _check_factor(self, proposal: t.Bunch) -> int | None:
        f = proposal["value"]
        k = self._result.factors.shape[1]
        if f is not None and not 0 <= f < k:
            raise t.TraitError(f"factor: expected None or 0 <= factor < {k}, got {f}")
        return f
