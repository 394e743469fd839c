"""deepvis_widgets: Jupyter widgets for looking inside PyTorch models.

Example
-------
>>> import numpy as np, deepvis_widgets as dv
>>> dv.ArrayHeatmap(np.random.randn(16, 16), title="a random matrix")  # doctest: +SKIP
"""

from ._html import save_html
from ._version import __version__
from .widgets import ArrayHeatmap, DeepVisWidget

__all__ = ["ArrayHeatmap", "DeepVisWidget", "__version__", "save_html"]
