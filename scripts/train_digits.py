"""Trains the digits CNNs (true and permuted labels) and writes their weights.

Writes ``digits_cnn.pt`` and ``digits_cnn_permuted.pt`` into
``deepvis_widgets/examples/weights``. Deterministic on CPU with one thread.

Usage::

    python scripts/train_digits.py
    python scripts/train_digits.py --epochs 5 --out /tmp/w
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from deepvis_widgets.examples.digits import (
    WEIGHTS,
    WEIGHTS_PERMUTED,
    DigitsCNN,
    save_digits,
    train_digits,
)

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "deepvis_widgets" / "examples" / "weights"
DEFAULT_EPOCHS = 30
# Random labels are far harder to fit: at lr 1e-2 the permuted copy collapses to
# a constant output (zero input gradients, useless as a sanity-check control);
# a gentler, longer run stays alive and memorizes part of its labels.
PERMUTED_EPOCHS = 100
PERMUTED_LR = 2e-3


def train(
    epochs: int = DEFAULT_EPOCHS, seed: int = 0, permuted_labels: bool = False, lr: float = 1e-2
) -> tuple[DigitsCNN, dict[str, Any]]:
    """Trains one digits CNN; see ``deepvis_widgets.examples.digits.train_digits``.

    Example
    -------
    >>> model, metrics = train(epochs=1)  # doctest: +SKIP
    """
    return train_digits(epochs, seed, permuted_labels=permuted_labels, lr=lr)


def main(argv: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Command-line entry point; returns the metrics of both models.

    Example
    -------
    >>> main(["--epochs", "1", "--out", "/tmp/w"])  # doctest: +SKIP
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--permuted-epochs", type=int, default=PERMUTED_EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--only-true", action="store_true", help="skip the permuted-label copy")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for permuted, name in ((False, WEIGHTS), (True, WEIGHTS_PERMUTED)):
        if permuted and args.only_true:
            continue
        if permuted:
            model, metrics = train(args.permuted_epochs, args.seed, True, PERMUTED_LR)
        else:
            model, metrics = train(args.epochs, args.seed, False)
        size = save_digits(model, args.out / name)
        print(f"{name}: {metrics}, {size} bytes", flush=True)
        results[name] = metrics
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
