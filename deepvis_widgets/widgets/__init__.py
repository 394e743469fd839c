"""Widget classes: trait schemas and thin glue over compute/ (never pixels)."""

from ._base import DeepVisWidget
from .attention import HeadView, ModelView
from .feature_vis import FeatureVisView
from .filters import FilterGrid
from .generation_saliency import GenerationSaliency
from .heatmap import ArrayHeatmap
from .layer_walk import LayerWalk
from .logit_lens import LogitLens
from .neuron_factors import NeuronFactors
from .neuron_view import NeuronView
from .projection import ProjectionView
from .sanity import SanityCheckView
from .similarity import SimilarityMatrix
from .training import TrainingMonitor

__all__ = [
    "ArrayHeatmap",
    "DeepVisWidget",
    "FeatureVisView",
    "FilterGrid",
    "GenerationSaliency",
    "HeadView",
    "LayerWalk",
    "LogitLens",
    "ModelView",
    "NeuronFactors",
    "NeuronView",
    "ProjectionView",
    "SanityCheckView",
    "SimilarityMatrix",
    "TrainingMonitor",
]
