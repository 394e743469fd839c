"""LogitLens: rank of the next token after every layer of a causal LM (Ecco's rank view, offline).

Front end: ``js/logit_lens.ts``. Compute: ``deepvis_widgets/compute/logit_lens.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import traitlets as t

from .._arrays import encode_array
from ..compute.logit_lens import LogitLensResult, logit_lens
from ._base import DeepVisWidget, progress_bar

__all__ = ["LogitLens"]


class LogitLens(DeepVisWidget, entry="logit_lens"):
    """Positions × layers grid coloured by the rank of the next token after each layer.

    Hover a cell for the top-k candidates at that layer; click a position to plot the
    watched tokens' ranks across layers there (e.g. " Berlin" against " Paris").

    Build it with :meth:`from_model`, or from a :class:`~deepvis_widgets.compute.logit_lens.LogitLensResult`.

    Example
    -------
    >>> lens = dv.LogitLens.from_model(model, tok, "The capital of Germany is", watch=[" Berlin", " Paris"])  # doctest: +SKIP
    >>> lens  # doctest: +SKIP
    """

    # --- data ------------------------------------------------------------------
    tokens = t.List(t.Unicode(), help="Token strings of the sequence (prompt then generated).").tag(sync=True)
    n_prompt = t.Int(0, help="How many tokens are the prompt.").tag(sync=True)
    layer_names = t.List(t.Unicode(), help="Row names: 'embeddings', then one per layer.").tag(sync=True)
    target_ids = t.Dict(help="(T,) int32 id of the token ranked at each position.").tag(sync=True)
    ranks = t.Dict(help="(L+1, T) int32 rank of the target after each layer.").tag(sync=True)
    probs = t.Dict(help="(L+1, T) float32 probability of the target.").tag(sync=True)
    top_ids = t.Dict(help="(L+1, T, k) int32 top-k candidates.").tag(sync=True)
    top_probs = t.Dict(help="(L+1, T, k) float16 their probabilities.").tag(sync=True)
    vocab = t.Dict(value_trait=t.Unicode(), help="Token id (as a string key) -> token text.").tag(sync=True)
    watched = t.List(t.Dict(), help="[{token, id, ranks (L+1, T) int32}] tokens followed across layers.").tag(sync=True)

    # --- interaction --------------------------------------------------------------
    position = t.Int(None, allow_none=True, help="Position whose watched-token curves are shown.").tag(sync=True)
    color_by = t.Enum(["rank", "probability"], default_value="rank", help="What colours the grid.").tag(sync=True)

    def __init__(self, result: LogitLensResult, *, title: str | None = None, **kwargs: Any) -> None:
        if not isinstance(result, LogitLensResult):
            raise TypeError(f"result: expected a LogitLensResult (see LogitLens.from_model), got {type(result).__name__}")
        n_rows, T = result.ranks.shape
        if len(result.tokens) != T or len(result.layer_names) != n_rows:
            raise ValueError(
                f"result: {len(result.tokens)} tokens and {len(result.layer_names)} layer names "
                f"for ranks of shape {result.ranks.shape}"
            )
        self._result = result
        super().__init__(
            tokens=list(result.tokens),
            n_prompt=int(result.n_prompt),
            layer_names=list(result.layer_names),
            target_ids=encode_array(result.target_ids, "int32", name="target_ids"),
            ranks=encode_array(result.ranks, "int32", name="ranks"),
            probs=encode_array(result.probs, "float32", name="probs"),
            top_ids=encode_array(result.top_ids, "int32", name="top_ids"),
            top_probs=encode_array(result.top_probs, "float16", name="top_probs"),
            vocab={str(k): v for k, v in result.vocab.items()},
            watched=[
                {"token": tok, "id": int(wid), "ranks": encode_array(r, "int32", name="watched ranks")}
                for tok, (wid, r, _p) in result.watched.items()
            ],
            position=max(int(result.n_prompt) - 1, 0),
            title="" if title is None else str(title),
            **kwargs,
        )

    @property
    def result(self) -> LogitLensResult:
        """The computed lens (numpy arrays)."""
        return self._result

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        text: str,
        *,
        generate: int = 0,
        watch: Sequence[str] = (),
        top_k: int = 5,
        title: str | None = None,
        **options: Any,
    ) -> LogitLens:
        """Runs :func:`~deepvis_widgets.compute.logit_lens.logit_lens` and shows it.

        Parameters are those of ``logit_lens``; ``options`` go to it too (``layers=``, ``norm=``...).
        """
        with progress_bar("logit lens") as report:
            result = logit_lens(model, tokenizer, text, generate=generate, watch=watch, top_k=top_k, **{"progress": report, **options})
        return cls(result, title=title if title is not None else f"Logit lens: {text!r}")

    @t.validate("position")
    def _check_position(self, proposal: t.Bunch) -> int | None:
        p = proposal["value"]
        if p is not None and not 0 <= p < len(self.tokens or self._result.tokens):
            raise t.TraitError(f"position: expected 0 <= position < {len(self._result.tokens)}, got {p}")
        return p


