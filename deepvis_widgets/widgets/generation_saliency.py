"""GenerationSaliency: hover a generated token to colour the text before it by its attribution.

Front end: ``js/generation_saliency.ts``. Compute: ``deepvis_widgets/compute/generation_saliency.py``.
"""

from __future__ import annotations

from typing import Any

import traitlets as t

from .._arrays import encode_array
from ..compute.generation_saliency import GenerationSaliencyResult, generation_saliency
from ._base import DeepVisWidget, progress_bar

__all__ = ["GenerationSaliency"]


class GenerationSaliency(DeepVisWidget, entry="generation_saliency"):
    """Prompt and generated tokens; the selected generated token colours everything before it.

    Example
    -------
    >>> dv.GenerationSaliency.from_model(model, tok, "The capital of Germany is", max_new_tokens=4)  # doctest: +SKIP
    """

    # --- data ------------------------------------------------------------------
    tokens = t.List(t.Unicode(), help="Prompt tokens then generated tokens.").tag(sync=True)
    n_prompt = t.Int(0, help="How many tokens are the prompt.").tag(sync=True)
    methods = t.List(t.Unicode(), help="Attribution methods computed.").tag(sync=True)
    scores = t.Dict(help="Method -> (G, T) float32 attributions (NaN after the generated token).").tag(sync=True)
    deltas = t.Dict(help="Method -> list of convergence deltas (None where not applicable).").tag(sync=True)
    probs = t.List(t.Float(), help="Probability the model gave each generated token.").tag(sync=True)

    # --- interaction --------------------------------------------------------------
    method = t.Unicode("", help="Method shown.").tag(sync=True)
    generated = t.Int(0, help="Index (0-based among generated tokens) of the token explained.").tag(sync=True)

    def __init__(self, result: GenerationSaliencyResult, *, title: str | None = None, **kwargs: Any) -> None:
        if not isinstance(result, GenerationSaliencyResult):
            raise TypeError(
                f"result: expected a GenerationSaliencyResult (see GenerationSaliency.from_model), got {type(result).__name__}"
            )
        methods = list(result.scores)
        G = len(result.tokens) - result.n_prompt
        for m, s in result.scores.items():
            if s.shape != (G, len(result.tokens)):
                raise ValueError(f"result: scores[{m!r}] has shape {s.shape}, expected {(G, len(result.tokens))}")
        self._result = result
        super().__init__(
            tokens=list(result.tokens),
            n_prompt=int(result.n_prompt),
            methods=methods,
            scores={m: encode_array(s, "float32", name=f"scores[{m!r}]") for m, s in result.scores.items()},
            deltas={m: [None if v != v else float(v) for v in d] for m, d in result.deltas.items()},
            probs=[float(p) for p in result.probs],
            method=methods[-1] if methods else "",
            title="" if title is None else str(title),
            **kwargs,
        )

    @property
    def result(self) -> GenerationSaliencyResult:
        return self._result

    @classmethod
    def from_model(
        cls, model: Any, tokenizer: Any, prompt: str, *, max_new_tokens: int = 8, title: str | None = None, **options: Any
    ) -> GenerationSaliency:
        """Runs :func:`~deepvis_widgets.compute.generation_saliency.generation_saliency` and shows it."""
        with progress_bar("generation saliency") as report:
            res = generation_saliency(model, tokenizer, prompt, max_new_tokens=max_new_tokens, **{"progress": report, **options})
        return cls(res, title=title if title is not None else f"Why these tokens? {prompt!r}")

    @t.validate("method")
    def _check_method(self, proposal: t.Bunch) -> str:
        m = proposal["value"]
        if self.methods and m not in self.methods:
            raise t.TraitError(f"method: expected one of {', '.join(self.methods)}, got {m!r}")
        return m

    @t.validate("generated")
    def _check_generated(self, proposal: t.Bunch) -> int:
        g = proposal["value"]
        G = len(self._result.tokens) - self._result.n_prompt
        if not 0 <= g < G:
            raise t.TraitError(f"generated: expected 0 <= generated < {G}, got {g}")
        return g
