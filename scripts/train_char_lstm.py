"""Trains the character-level LSTM on standard-library source and writes its weights.

Writes ``char_lstm.pt`` into ``deepvis_widgets/examples/weights``.
Deterministic on CPU with one thread.

Usage::

    python scripts/train_char_lstm.py
    python scripts/train_char_lstm.py --steps 100 --out /tmp/w
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from deepvis_widgets.examples.charlstm import WEIGHTS, CharLSTM, save_char_lstm, train_char_lstm

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "deepvis_widgets" / "examples" / "weights"
DEFAULT_STEPS = 2500


def train(
    steps: int = DEFAULT_STEPS, seed: int = 0, **kwargs: Any
) -> tuple[CharLSTM, dict[str, Any]]:
    """Trains the LSTM; see ``deepvis_widgets.examples.charlstm.train_char_lstm``.

    Example
    -------
    >>> model, metrics = train(steps=20)  # doctest: +SKIP
    """
    return train_char_lstm(steps, seed, **kwargs)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; returns the metrics it printed.

    Example
    -------
    >>> main(["--steps", "20", "--out", "/tmp/w"])  # doctest: +SKIP
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    def progress(step: int, loss: float) -> None:
        if step % 100 == 0:
            print(f"step {step:5d}  loss {loss:.4f}", flush=True)

    model, metrics = train(args.steps, args.seed, progress=progress)
    args.out.mkdir(parents=True, exist_ok=True)
    size = save_char_lstm(model, args.out / WEIGHTS)
    summary = {k: v for k, v in metrics.items() if k != "losses"}
    print(f"{summary}; wrote {args.out / WEIGHTS} ({size} bytes)")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
