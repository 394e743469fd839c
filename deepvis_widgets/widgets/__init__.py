"""Widget classes: trait schemas and thin glue over compute/ (never pixels)."""

from ._base import DeepVisWidget
from .heatmap import ArrayHeatmap

__all__ = ["ArrayHeatmap", "DeepVisWidget"]
