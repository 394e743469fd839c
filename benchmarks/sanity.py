"""Cascading sanity check (Adebayo et al. 2018): wall and CPU time for 5 methods on one image.

Two models, side by side in one run: the gallery's digits CNN on one 32x32 digit, and a
ResNet-18-shaped net with random weights (benchmarks/attribution.py) on one 224x224 image.
Each row also gives the cost as a multiple of one bare forward+backward pass of that model, so
the figure carries over to other machines.

Usage: python benchmarks/sanity.py [--methods saliency integrated_gradients ...] [--n-steps 16]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.attribution import bare_forward_backward, cpu_seconds, images, make_model
from deepvis_widgets.compute.sanity import sanity_check
from deepvis_widgets.examples.digits import digits_cnn, digits_data

METHODS = ["saliency", "smoothgrad", "integrated_gradients", "gradcam", "guided_backprop"]


def run(name: str, model: torch.nn.Module, x: torch.Tensor, methods: list[str], n_steps: int) -> tuple:
    target = [int(model(x).argmax(1)[0])]
    one = min(cpu_seconds(lambda: bare_forward_backward(model, x, target)) for _ in range(3))
    options = {"integrated_gradients": {"n_steps": n_steps}, "smoothgrad": {"nt_samples": 8}}
    out = {}
    t0 = time.perf_counter()
    cpu = cpu_seconds(
        lambda: out.setdefault("res", sanity_check(model, x, methods, mode="cascading", method_options=options, progress=False))
    )
    wall = time.perf_counter() - t0
    return name, tuple(x.shape), len(out["res"].steps) - 1, wall, cpu, one


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--n-steps", type=int, default=16, help="integrated-gradients steps")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = [
        run("digits CNN (trained)", digits_cnn(), digits_data().x_test[:1], args.methods, args.n_steps),
        run("ResNet-18-shaped (random)", make_model().eval(), images(1), args.methods, args.n_steps),
    ]
    print(f"\nCascading sanity check, {len(args.methods)} methods ({', '.join(args.methods)}), IG n_steps={args.n_steps},"
          " SmoothGrad 8 samples, one image, 1 torch thread")
    print(f"{'model':<27} {'input':<18} {'steps':>5} | {'wall s':>7} {'CPU s':>7} | {'fwd+bwd ms':>10} {'x fwd+bwd':>9}")
    for name, shape, steps, wall, cpu, one in rows:
        print(f"{name:<27} {shape!s:<18} {steps:>5} | {wall:7.1f} {cpu:7.1f} | {one * 1e3:10.1f} {cpu / one:9.0f}")


if __name__ == "__main__":
    main()
