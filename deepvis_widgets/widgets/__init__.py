"""Widget classes: trait schemas and thin glue over compute/ (never pixels)."""

from ._base import DeepVisWidget
from .generation_saliency import GenerationSaliency
from .heatmap import ArrayHeatmap
from .logit_lens import LogitLens
from .neuron_factors import NeuronFactors

__all__ = ["ArrayHeatmap", "DeepVisWidget", "GenerationSaliency", "LogitLens", "NeuronFactors"]
