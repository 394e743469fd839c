"""Attention computations for the head, model and neuron views.

Everything the attention views need, without any widget code:

- :class:`AttentionData`: float32 ``(layers, heads, q, k)`` weights of one
  stack, with query/key tokens, sentence-pair split and special-token masks;
  built from a transformers-style tuple or an array.
- :func:`attention_from_model` / :func:`attention_stacks_from_model`: run a
  transformers encoder, decoder or encoder-decoder model (eager attention for
  the call, restored afterwards).
- :func:`capture_attention` / :func:`capture_attention_stacks`: weights of every
  ``torch.nn.MultiheadAttention`` by hooks.
- :func:`head_summary`: entropy, mean distance and attention to special tokens
  per head, to sort heads; :func:`attention_rollout`; :func:`top_k_edges`.
- :func:`query_key`: query/key vectors of one head for the neuron view.

Transport: ``AttentionData.attention`` is C-contiguous float32, so one layer
goes to a view with ``deepvis_widgets._arrays.encode_array(data.layer(i),
"uint8")``. Attention lies in [0, 1], so the uint8 step is at most 1/254 and
the largest error after decoding is half a step, 1/508 (about 0.002).

Example
-------
>>> import numpy as np
>>> data = AttentionData(np.full((1, 2, 4, 4), 0.25), ["[CLS]", "hi", "you", "[SEP]"], special_mask=[1, 0, 0, 1])
>>> head_summary(data).special.tolist()
[[0.5, 0.5]]
"""

from __future__ import annotations

from ._attention_capture import (
    attention_from_model,
    attention_stacks_from_model,
    capture_attention,
    capture_attention_stacks,
    use_eager_attention,
)
from ._attention_data import AttentionData, causal_from_weights
from ._attention_stats import HeadSummary, attention_rollout, head_summary, top_k_edges
from ._qk import QueryKeyData, query_key

#: Largest absolute error of attention weights (in [0, 1]) after a uint8 round trip.
UINT8_MAX_ERROR = 1 / 508

__all__ = [
    "UINT8_MAX_ERROR",
    "AttentionData",
    "HeadSummary",
    "QueryKeyData",
    "attention_from_model",
    "attention_rollout",
    "attention_stacks_from_model",
    "capture_attention",
    "capture_attention_stacks",
    "causal_from_weights",
    "head_summary",
    "query_key",
    "top_k_edges",
    "use_eager_attention",
]
