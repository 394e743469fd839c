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
from .compute.attribution import (
    Attribution,
    MethodInfo,
    attribute,
    available_methods,
    expected_saliency,
    top_predictions,
)
from .compute.cnn import top_activating
from .compute.comparison import Comparison, compare_predictions, per_example_loss, sample_by_metric
from .compute.dynamics import track_layers
from .compute.feature_vis import feature_visualization
from .compute.generation_saliency import generation_saliency
from .compute.hidden_states import (
    CellRanking,
    GateTrace,
    HiddenStates,
    Matches,
    Selection,
    bracket_depth,
    gate_trace,
    indentation_depth,
    inside_quotes,
)
from .compute.logit_lens import logit_lens
from .compute.neuron_factors import neuron_factors
from .compute.sanity import SanityResult, label_randomization_check, sanity_check
from .compute.sanity import verdicts as sanity_verdicts
from .compute.similarity import cka, similarity_matrix, svcca
from .compute.text_attribution import TokenAttribution, attribute_text
from .widgets import (
    ArrayHeatmap,
    CellOverText,
    DeepVisWidget,
    ErrorGallery,
    FeatureVisView,
    FilterGrid,
    GateView,
    GenerationSaliency,
    HeadView,
    HiddenStateExplorer,
    ImageAttribution,
    LayerWalk,
    LogitLens,
    ModelComparison,
    ModelView,
    NeuronFactors,
    NeuronView,
    ProjectionView,
    SanityCheckView,
    SimilarityMatrix,
    TextAttribution,
    TrainingMonitor,
)

__all__ = [
    "ArrayHeatmap",
    "AttentionData",
    "Attribution",
    "CellOverText",
    "CellRanking",
    "Comparison",
    "DeepVisWidget",
    "ErrorGallery",
    "FeatureVisView",
    "FilterGrid",
    "GateTrace",
    "GateView",
    "GenerationSaliency",
    "HeadView",
    "HiddenStateExplorer",
    "HiddenStates",
    "ImageAttribution",
    "LayerWalk",
    "LogitLens",
    "Matches",
    "MethodInfo",
    "ModelComparison",
    "ModelView",
    "NeuronFactors",
    "NeuronView",
    "ProjectionView",
    "SanityCheckView",
    "SanityResult",
    "Selection",
    "SimilarityMatrix",
    "TextAttribution",
    "TokenAttribution",
    "TrainingMonitor",
    "__version__",
    "attention_from_model",
    "attention_rollout",
    "attribute",
    "attribute_text",
    "available_methods",
    "bracket_depth",
    "capture_attention",
    "cka",
    "compare_predictions",
    "expected_saliency",
    "feature_visualization",
    "gate_trace",
    "generation_saliency",
    "head_summary",
    "indentation_depth",
    "inside_quotes",
    "label_randomization_check",
    "logit_lens",
    "neuron_factors",
    "per_example_loss",
    "query_key",
    "sample_by_metric",
    "sanity_check",
    "sanity_verdicts",
    "save_html",
    "similarity_matrix",
    "svcca",
    "top_activating",
    "top_k_edges",
    "top_predictions",
    "track_layers",
]
