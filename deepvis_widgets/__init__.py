"""deepvis_widgets: Jupyter widgets for looking inside PyTorch models.

Example
-------
>>> import numpy as np, deepvis_widgets as dv
>>> dv.ArrayHeatmap(np.random.randn(16, 16), title="a random matrix")  # doctest: +SKIP
"""

from ._html import save_html
from ._version import __version__
from .compute.attention import (
    AttentionData,
    attention_from_model,
    attention_rollout,
    capture_attention,
    head_summary,
    query_key,
    top_k_edges,
)
from .compute.generation_saliency import generation_saliency
from .compute.logit_lens import logit_lens
from .compute.neuron_factors import neuron_factors
from .widgets import ArrayHeatmap, DeepVisWidget, GenerationSaliency, LogitLens, NeuronFactors

__all__ = [
    "ArrayHeatmap",
    "AttentionData",
    "DeepVisWidget",
    "GenerationSaliency",
    "LogitLens",
    "NeuronFactors",
    "__version__",
    "attention_from_model",
    "attention_rollout",
    "capture_attention",
    "generation_saliency",
    "head_summary",
    "logit_lens",
    "neuron_factors",
    "query_key",
    "save_html",
    "top_k_edges",
]
