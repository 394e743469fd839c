"""Helpers shared by the example models: weight files, seeding, cache folder.

Shipped weights are plain ``torch.save`` state dicts whose floating tensors are
stored as float16 (each file stays well under 1 MB); :func:`load_weights`
returns them as float32, ready for ``load_state_dict``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "WEIGHTS_DIR",
    "cache_dir",
    "load_weights",
    "save_weights",
    "seed_everything",
    "weights_path",
]

#: Folder inside the package that holds the weights our scripts trained.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DATA_DIR = Path(__file__).resolve().parent / "data"


def weights_path(name: str) -> Path:
    """Path of a shipped weight file, with a clear error when it is missing.

    Parameters
    ----------
    name
        File name inside ``deepvis_widgets/examples/weights``.

    Example
    -------
    >>> weights_path("digits_cnn.pt").name
    'digits_cnn.pt'
    """
    path = WEIGHTS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"weight file {name!r} is not in {WEIGHTS_DIR}; re-create it with the "
            "matching scripts/train_*.py script"
        )
    return path


def save_weights(state: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> int:
    """Saves a state dict with floating tensors as float16; returns the file size.

    Parameters
    ----------
    state
        A module's ``state_dict()``.
    path
        Destination file.

    Example
    -------
    >>> import tempfile, torch
    >>> f = tempfile.NamedTemporaryFile(suffix=".pt", delete=False).name
    >>> save_weights(torch.nn.Linear(2, 2).state_dict(), f) > 0
    True
    """
    compact = {
        k: (v.detach().to(torch.float16) if v.is_floating_point() else v.detach()).clone()
        for k, v in state.items()
    }
    torch.save(compact, path)
    return Path(path).stat().st_size


def load_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Loads a state dict written by :func:`save_weights` as float32 tensors.

    Parameters
    ----------
    path
        File written by :func:`save_weights` (or any ``torch.save``'d state dict).

    Example
    -------
    >>> import tempfile, torch
    >>> f = tempfile.NamedTemporaryFile(suffix=".pt", delete=False).name
    >>> _ = save_weights(torch.nn.Linear(2, 2).state_dict(), f)
    >>> load_weights(f)["weight"].dtype
    torch.float32
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def seed_everything(seed: int) -> torch.Generator:
    """Seeds Python, numpy and torch; returns a torch generator with that seed.

    Parameters
    ----------
    seed
        Any non-negative integer.

    Example
    -------
    >>> g = seed_everything(0)
    >>> isinstance(g, torch.Generator)
    True
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def cache_dir() -> Path:
    """Folder for converted model copies: ``$DEEPVIS_CACHE`` or ``~/.cache/deepvis_widgets``.

    Example
    -------
    >>> cache_dir().is_dir()
    True
    """
    env = os.environ.get("DEEPVIS_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "deepvis_widgets"
    base.mkdir(parents=True, exist_ok=True)
    return base
