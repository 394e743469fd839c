"""Trains the counting-crossings GRU and writes its shipped files.

Writes ``crossings_gru.pt`` (final weights), ``crossings_checkpoints.pt``
(weights at a few steps) and ``crossings_log.npz`` (per-example losses of 512
tracked walks every 20 steps) into ``deepvis_widgets/examples/weights``.
Deterministic on CPU with one thread: same seed, same files.

Usage::

    python scripts/train_crossings.py            # published run: 3,000 steps, ~12 min
    python scripts/train_crossings.py --steps 200 --out /tmp/w
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from deepvis_widgets.examples.crossings import CrossingsGRU, save_crossings, train_crossings

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "deepvis_widgets" / "examples" / "weights"


def train(steps: int = 3000, seed: int = 0, **kwargs: Any) -> tuple[CrossingsGRU, dict[str, Any]]:
    """Trains the GRU; see ``deepvis_widgets.examples.crossings.train_crossings``.

    Example
    -------
    >>> model, metrics = train(steps=50)  # doctest: +SKIP
    """
    return train_crossings(steps=steps, seed=seed, **kwargs)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; returns the metrics it printed.

    Example
    -------
    >>> main(["--steps", "50", "--out", "/tmp/w"])  # doctest: +SKIP
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    def progress(step: int, loss: float) -> None:
        if step % 100 == 0:
            print(f"step {step:5d}  loss {loss:.4f}", flush=True)

    model, metrics = train(args.steps, args.seed, progress=progress)
    sizes = save_crossings(model, metrics, args.out)
    summary = {k: v for k, v in metrics.items() if k not in ("log", "checkpoints")}
    print(f"held-out: {summary}")
    print(f"wrote {sizes} to {args.out}")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
