"""Feature visualization: time per optimisation step on EfficientNet-Lite0.

Each row runs ``feature_visualization`` for a few steps and times every step
from its progress callback (one step = Fourier image -> random transforms ->
forward to the objective's layer -> backward -> Adam update); the first
``--warmup`` steps are dropped and the median is reported, as wall time and as
this process's CPU time (on a shared machine the wall time includes waiting
for the core; the CPU time does not).

Rows: a channel of a middle block (``_blocks.10``, the forward stops there), a
class logit (the whole network), at 128² and 224², one image and a batch of
8 channels (one image each, optimised together).

Usage: python benchmarks/feature_vis.py [--steps 8] [--warmup 2] [--sizes 128 224]
                                        [--threads 1] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepvis_widgets.compute.feature_vis import feature_visualization
from deepvis_widgets.examples.imagenet import efficientnet_lite0


def normalize(x: torch.Tensor) -> torch.Tensor:
    return (x * 255 - 127) / 128


def time_steps(
    model: torch.nn.Module, layer: str | None, channels: list[int], size: int, steps: int, warmup: int, objective: str
) -> tuple[list[float], list[float]]:
    """Wall-clock and process-CPU seconds of each step after the warm-up."""
    stamps: list[tuple[float, float]] = []
    device = next(model.parameters()).device

    def progress(step: int, total: int) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append((time.perf_counter(), time.process_time()))

    start = (time.perf_counter(), time.process_time())
    feature_visualization(model, layer, channels, size=size, steps=steps + warmup, objective=objective, normalize=normalize, progress=progress)
    pairs = list(zip([start, *stamps[:-1]], stamps, strict=True))[warmup:]
    return [b[0] - a[0] for a, b in pairs], [b[1] - a[1] for a, b in pairs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: see shared/DATA.md)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = efficientnet_lite0().to(args.device)
    rows = []
    for size in args.sizes:
        for label, layer, objective in (("_blocks.10 channel", "_blocks.10", "channel"), ("class logit", None, "logit")):
            for batch in (1, 8):
                channels = list(range(3, 3 + batch)) if layer else list(range(281, 281 + batch))
                wall, cpu = time_steps(model, layer, channels, size, args.steps, args.warmup, objective)
                med = statistics.median(wall)
                rows.append((size, label, batch, med * 1e3, med * 1e3 / batch, statistics.median(cpu) * 1e3))
                print(f"  {size}² {label:<18} batch {batch}: {med * 1e3:8.1f} ms/step", file=sys.stderr, flush=True)
    print(f"\nEfficientNet-Lite0 feature visualization, {args.device}, torch {torch.__version__}, "
          f"{args.threads} thread(s), {platform.processor() or platform.machine()}; "
          f"median of {args.steps} steps after {args.warmup} warm-up; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print(f"| {'size':>5} | {'objective':<18} | {'batch':>5} | {'ms / step':>9} | {'ms / image-step':>15} | {'CPU ms / step':>13} |")
    print(f"|{'-' * 7}|{'-' * 20}|{'-' * 7}|{'-' * 11}|{'-' * 17}|{'-' * 15}|")
    for size, label, batch, med, per_image, cpu in rows:
        print(f"| {f'{size}²':>5} | {label:<18} | {batch:>5} | {med:9.1f} | {per_image:15.1f} | {cpu:13.1f} |")
    print("\nms / step: wall clock. CPU ms / step: this process's CPU time (with 1 thread, what a step costs when the core is not shared).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
