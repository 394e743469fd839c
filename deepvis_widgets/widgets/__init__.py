"""Widget classes: trait schemas and thin glue over compute/ (never pixels)."""

from ._base import DeepVisWidget
from .attention import HeadView, ModelView
from .cell_text import CellOverText
from .comparison import ModelComparison
from .error_gallery import ErrorGallery
from .feature_vis import FeatureVisView
from .filters import FilterGrid
from .gate_view import GateView
from .generation_saliency import GenerationSaliency
from .heatmap import ArrayHeatmap
from .hidden_state_explorer import HiddenStateExplorer
from .image_attribution import ImageAttribution
from .layer_walk import LayerWalk
from .logit_lens import LogitLens
from .neuron_factors import NeuronFactors
from .neuron_view import NeuronView
from .projection import ProjectionView
from .sanity import SanityCheckView
from .similarity import SimilarityMatrix
from .text_attribution import TextAttribution
from .training import TrainingMonitor

__all__ = [
    "ArrayHeatmap",
    "CellOverText",
    "DeepVisWidget",
    "ErrorGallery",
    "FeatureVisView",
    "FilterGrid",
    "GateView",
    "GenerationSaliency",
    "HeadView",
    "HiddenStateExplorer",
    "ImageAttribution",
    "LayerWalk",
    "LogitLens",
    "ModelComparison",
    "ModelView",
    "NeuronFactors",
    "NeuronView",
    "ProjectionView",
    "SanityCheckView",
    "SimilarityMatrix",
    "TextAttribution",
    "TrainingMonitor",
]
