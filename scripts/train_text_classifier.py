"""Trains the code / comment / docstring line classifier and writes its weights.

Writes ``text_classifier.pt`` into ``deepvis_widgets/examples/weights``.
Deterministic on CPU with one thread.

Usage::

    python scripts/train_text_classifier.py
    python scripts/train_text_classifier.py --epochs 1 --out /tmp/w
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from deepvis_widgets.examples.textclf import (
    WEIGHTS,
    LineClassifier,
    save_text_classifier,
    train_text_classifier,
)

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "deepvis_widgets" / "examples" / "weights"
DEFAULT_EPOCHS = 6


def train(
    epochs: int = DEFAULT_EPOCHS, seed: int = 0, **kwargs: Any
) -> tuple[LineClassifier, dict[str, Any]]:
    """Trains the classifier; see ``deepvis_widgets.examples.textclf.train_text_classifier``.

    Example
    -------
    >>> model, metrics = train(epochs=1)  # doctest: +SKIP
    """
    return train_text_classifier(epochs, seed, **kwargs)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; returns the metrics it printed.

    Example
    -------
    >>> main(["--epochs", "1", "--out", "/tmp/w"])  # doctest: +SKIP
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-class", type=int, default=5000, help="training lines per class")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, metrics = train(args.epochs, args.seed, per_class=args.per_class)
    args.out.mkdir(parents=True, exist_ok=True)
    size = save_text_classifier(model, args.out / WEIGHTS)
    print(f"{metrics}; wrote {args.out / WEIGHTS} ({size} bytes)")
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
