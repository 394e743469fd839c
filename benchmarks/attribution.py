"""Attribution benchmark: our wrapper next to Captum called directly, memory under a budget, occlusion batching.

Run ``.venv/bin/python benchmarks/attribution.py`` (about 15 CPU minutes on
one thread) or with ``--quick`` (about 3 CPU minutes: one image, fewer steps,
the memory runs stopped after their first passes). Wall time is longer when
other jobs share the cores.

What it measures, on a ResNet-18-shaped CNN with random weights, 224x224
images, one CPU thread:

1. Each method's CPU time as a multiple of one bare forward+backward pass of
   the same batch, through ``deepvis_widgets.compute.attribute`` and through
   Captum directly with the same options (including the internal batch sizes
   our memory planning chose), measured in pairs of alternating order in one
   process; medians (ours/captum: median of the paired ratios). Warm
   calls: the first call on a model also pays a one-example probe forward
   (memory footprint) and, for CAM methods, one for the layer search; both
   are cached per model and input shape.
2. Peak resident memory of integrated gradients with ``n_steps=200`` on 8
   images, each run in a fresh subprocess: ours with ``memory_budget``
   against Captum with ``internal_batch_size=None``. Captum's run is stopped
   by a watchdog once it passes the budget by 1.5 GB (it would need tens of
   GB; this machine is shared).
3. Occlusion with our automatic ``perturbations_per_eval`` against Captum's
   default of one perturbation per forward pass.

CPU time (``time.process_time``) is used rather than wall time because the
machine's cores are shared with other jobs; ratios come from runs interleaved
in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import captum
import captum.attr as ca
import torch
from torch import Tensor, nn

from deepvis_widgets.compute._batching import format_bytes, parse_budget
from deepvis_widgets.compute._methods import lime_surrogate
from deepvis_widgets.compute.attribution import attribute

# --- the model ----------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """ResNet basic block; separate ReLU modules so guided backprop and DeepLIFT see each one."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.downsample = (
            None
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """ResNet-18 layout (11.7M parameters), random weights."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
        for i, (cin, cout, stride) in enumerate(widths, 1):
            setattr(
                self,
                f"layer{i}",
                nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)),
            )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class DigitsSizedCNN(nn.Module):
    """A small CNN on 32x32 inputs, where a forward pass costs less than its call overhead."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.fc = nn.Linear(32 * 8 * 8, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).flatten(1))


def make_model(seed: int = 0) -> ResNet18:
    torch.manual_seed(seed)
    return ResNet18().eval()


def images(n: int, seed: int = 1) -> Tensor:
    torch.manual_seed(seed)
    return torch.rand(n, 3, 224, 224)


# --- timing -------------------------------------------------------------------------------------


def cpu_seconds(fn: Callable[[], Any]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def bare_forward_backward(model: nn.Module, x: Tensor, target: list[int]) -> None:
    xr = x.detach().clone().requires_grad_(True)
    out = model(xr)
    torch.autograd.grad(out[torch.arange(len(target)), target].sum(), xr)


def captum_direct(
    name: str, model: nn.Module, x: Tensor, target: list[int], opts: dict[str, Any]
) -> Any:
    """What a user would write with Captum alone, with the same options (CAM maps upsampled too)."""
    opts = {k: v for k, v in opts.items() if k != "interpolate_mode"}
    if name == "saliency":
        return ca.Saliency(model).attribute(x, target=target, **opts)
    if name == "input_x_gradient":
        return ca.InputXGradient(model).attribute(x, target=target)
    if name == "smoothgrad":
        return ca.NoiseTunnel(ca.Saliency(model)).attribute(x, target=target, **opts)
    if name == "integrated_gradients":
        return ca.IntegratedGradients(model).attribute(x, target=target, **opts)
    if name == "guided_backprop":
        return ca.GuidedBackprop(model).attribute(x, target=target)
    if name == "gradcam":
        raw = ca.LayerGradCam(model, model.layer4).attribute(x, target=target, **opts)
        return ca.LayerAttribution.interpolate(raw, (224, 224), interpolate_mode="bilinear")
    if name == "guided_gradcam":
        return ca.GuidedGradCam(model, model.layer4).attribute(x, target=target)
    if name == "occlusion":
        return ca.Occlusion(model).attribute(x, target=target, **opts)
    if name == "lime":
        return ca.Lime(model, interpretable_model=lime_surrogate()).attribute(
            x, target=target, **opts
        )
    if name == "kernel_shap":
        return ca.KernelShap(model).attribute(x, target=target, **opts)
    if name == "deeplift":
        return ca.DeepLift(model).attribute(x, target=target, **opts)
    raise ValueError(name)


def settings(quick: bool) -> dict[str, dict[str, Any]]:
    if quick:
        return {
            "saliency": {},
            "input_x_gradient": {},
            "smoothgrad": {"nt_samples": 8},
            "integrated_gradients": {"n_steps": 16},
            "guided_backprop": {},
            "gradcam": {},
            "guided_gradcam": {},
            "deeplift": {},
            "occlusion": {"sliding_window_shapes": (3, 112, 112), "strides": (3, 56, 56)},
            "lime": {"n_samples": 16},
            "kernel_shap": {"n_samples": 16},
        }
    return {
        "saliency": {},
        "input_x_gradient": {},
        "smoothgrad": {"nt_samples": 20},
        "integrated_gradients": {"n_steps": 50},
        "guided_backprop": {},
        "gradcam": {},
        "guided_gradcam": {},
        "deeplift": {},
        "occlusion": {"sliding_window_shapes": (3, 56, 56), "strides": (3, 28, 28)},
        "lime": {"n_samples": 50},
        "kernel_shap": {"n_samples": 50},
    }


GRADIENT_METHODS = {
    "saliency",
    "input_x_gradient",
    "smoothgrad",
    "integrated_gradients",
    "guided_backprop",
    "gradcam",
    "guided_gradcam",
    "deeplift",
}


def time_table(
    model: nn.Module, batch_sizes: list[int], quick: bool
) -> list[tuple[str, int, float]]:
    ratios: list[tuple[str, int, float]] = []
    header = f"{'method':<22}{'images':>7}{'fwd+bwd s':>11}{'ours x':>9}{'captum x':>10}{'ours/captum':>13}"
    print(header + "\n" + "-" * len(header), flush=True)
    # Warm the per-model caches (memory footprint, CAM layer) and imports (scikit-learn for LIME).
    attribute(model, images(1), "gradcam", target=0, progress=False)
    attribute(model, images(1), "lime", target=0, n_samples=2, progress=False)
    for n in batch_sizes:
        x = images(n)
        target = [(7 * i + 3) % 1000 for i in range(n)]
        fb = statistics.median(
            cpu_seconds(partial(bare_forward_backward, model, x, target)) for _ in range(5)
        )
        for name, opts in settings(quick).items():
            expensive = name not in GRADIENT_METHODS or name in (
                "smoothgrad",
                "integrated_gradients",
            )
            reps = 1 if (expensive and (n > 1 or quick)) else 2 if expensive else 3 if quick else 5
            ours_t, theirs_t = [], []
            options: dict[str, Any] = {}
            for rep in range(reps):

                def ours() -> None:
                    torch.manual_seed(0)
                    result = attribute(model, x, name, target=target, progress=False, **opts)  # noqa: B023
                    options.update(result.options)  # noqa: B023

                def theirs() -> None:
                    torch.manual_seed(0)
                    captum_direct(name, model, x, target, dict(options))  # noqa: B023

                # Alternate the order; the first run is ours, as Captum needs the options it chose.
                for fn, times in ((ours, ours_t), (theirs, theirs_t))[:: 1 if rep % 2 == 0 else -1]:
                    times.append(cpu_seconds(fn))
            # Paired runs, median ratio: robust to the other jobs on these cores.
            o, t = statistics.median(ours_t), statistics.median(theirs_t)
            ratio = statistics.median(a / b for a, b in zip(ours_t, theirs_t, strict=True))
            print(
                f"{name:<22}{n:>7}{fb:>11.3f}{o / fb:>9.2f}{t / fb:>10.2f}{ratio:>13.3f}",
                flush=True,
            )
            ratios.append((name, n, ratio))
    return ratios


# --- memory, in subprocesses ------------------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


class StopEarly(Exception):
    pass


def child(args: argparse.Namespace) -> None:
    """One integrated-gradients run; prints a JSON line with its peak RSS."""
    torch.set_num_threads(1)
    model = make_model()
    x = images(args.images)
    target = [(7 * i + 3) % 1000 for i in range(args.images)]
    forwards = [0]
    largest = [0]

    def count(module: nn.Module, inputs: Any) -> None:
        forwards[0] += 1
        largest[0] = max(largest[0], int(inputs[0].shape[0]))
        if args.max_forwards and forwards[0] > args.max_forwards:
            raise StopEarly

    model.register_forward_pre_hook(count)
    baseline = _rss()
    report: dict[str, Any] = {"baseline_rss": baseline, "status": "done"}
    kill_at = args.kill_at

    def watchdog() -> None:
        while True:
            rss = _rss()
            if kill_at and rss > kill_at:
                report.update(
                    status="stopped by watchdog",
                    peak_rss=max(rss, _peak_rss()),
                    forwards=forwards[0],
                    batch=largest[0],
                )
                print(json.dumps(report), flush=True)
                os._exit(0)
            time.sleep(0.002)

    threading.Thread(target=watchdog, daemon=True).start()
    start = time.process_time()
    try:
        if args.child == "ours":
            result = attribute(
                model,
                x,
                "integrated_gradients",
                target=target,
                n_steps=args.steps,
                memory_budget=args.budget,
                progress=False,
            )
            report["internal_batch_size"] = result.options["internal_batch_size"]
        else:
            ca.IntegratedGradients(model).attribute(
                x, target=target, n_steps=args.steps, internal_batch_size=None
            )
    except StopEarly:
        report["status"] = f"stopped after {args.max_forwards} forward passes"
    except (RuntimeError, MemoryError) as exc:
        report["status"] = f"failed: {type(exc).__name__}"
    report.update(
        peak_rss=_peak_rss(),
        forwards=forwards[0],
        batch=largest[0],
        cpu_s=time.process_time() - start,
    )
    print(json.dumps(report), flush=True)


def run_child(
    kind: str, budget: int, steps: int, n: int, max_forwards: int, kill_at: int
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--budget",
        str(budget),
        "--steps",
        str(steps),
        "--images",
        str(n),
        "--max-forwards",
        str(max_forwards),
        "--kill-at",
        str(kill_at),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {
            "status": f"crashed (exit {out.returncode}): {out.stderr.strip()[-300:]}",
            "peak_rss": 0,
            "baseline_rss": 0,
        }
    return json.loads(lines[-1])


def memory_table(budget: int, quick: bool) -> list[dict[str, Any]]:
    steps, n = 200, 8
    print(f"integrated gradients, n_steps={steps}, {n} images 224x224, each run in a fresh process")
    header = f"{'run':<46}{'peak RSS':>11}{'at start':>11}{'batch':>7}  status"
    print(header + "\n" + "-" * len(header), flush=True)
    small = int(budget * 0.3)
    runs = [
        (f"ours, memory_budget={format_bytes(budget)}", "ours", budget, 3 if quick else 0),
        (f"ours, memory_budget={format_bytes(small)}", "ours", small, 3 if quick else 20),
        ("captum, internal_batch_size=None", "captum", budget, 0),
    ]
    reports = []
    for label, kind, b, max_forwards in runs:
        report = run_child(kind, b, steps, n, max_forwards, kill_at=budget + int(1.5e9))
        peak = report.get("peak_rss", 0)
        verdict = f"{'<=' if peak <= b else '>'} {format_bytes(b)}"
        cpu = f", {report['cpu_s']:.0f} CPU s" if "cpu_s" in report else ""
        print(
            f"{label:<46}{format_bytes(peak):>11}{format_bytes(report.get('baseline_rss', 0)):>11}"
            f"{report.get('batch', '?')!s:>7}  {verdict}; {report['status']}{cpu}",
            flush=True,
        )
        reports.append({**report, "kind": kind, "budget": b})
    print(
        "(batch: the largest forward pass, in examples; captum's is all n_steps x images at once)"
    )
    return reports


# --- occlusion batching -----------------------------------------------------------------------------


def ours_occlusion(net: nn.Module, x: Tensor, target: list[int], opts: dict, options: dict) -> None:
    options.update(attribute(net, x, "occlusion", target=target, progress=False, **opts).options)


def captum_occlusion(net: nn.Module, x: Tensor, target: list[int], opts: dict) -> None:
    ca.Occlusion(net).attribute(x, target=target, perturbations_per_eval=1, **opts)


def occlusion_table(model: nn.Module, quick: bool) -> list[tuple[str, int, float]]:
    print("occlusion: ours (perturbations_per_eval chosen automatically) vs Captum's default of 1")
    header = f"{'model':<34}{'images':>7}{'windows':>8}{'ppe':>5}{'batched s':>11}{'ppe=1 s':>9}{'speed-up':>10}"
    print(header + "\n" + "-" * len(header), flush=True)
    speedups = []
    torch.manual_seed(0)
    digits = DigitsSizedCNN().eval()
    cases = [
        ("digits-sized CNN 1x32x32", digits, torch.rand(1, 1, 32, 32), (1, 4, 4), (1, 2, 2)),
        ("ResNet-18 224x224", model, images(1), (3, 56, 56), (3, 28, 28)),
    ]
    if not quick:
        cases.append(("ResNet-18 224x224", model, images(8), (3, 56, 56), (3, 28, 28)))
    for label, net, x, window, stride in cases:
        target = [3] * x.shape[0]
        opts = {"sliding_window_shapes": window, "strides": stride}
        options: dict[str, Any] = {}
        batched = min(
            cpu_seconds(partial(ours_occlusion, net, x, target, opts, options)) for _ in range(2)
        )
        one = min(cpu_seconds(partial(captum_occlusion, net, x, target, opts)) for _ in range(2))
        windows = 1
        for size, w, s in zip(x.shape[1:], window, stride, strict=True):
            windows *= (size - w + s - 1) // s + 1
        ppe = options["perturbations_per_eval"]
        print(
            f"{label:<34}{x.shape[0]:>7}{windows:>8}{ppe:>5}{batched:>11.2f}{one:>9.2f}{one / batched:>9.2f}x",
            flush=True,
        )
        speedups.append((label, x.shape[0], one / batched))
    return speedups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="one image, fewer steps, memory runs stopped early"
    )
    parser.add_argument(
        "--budget", default="2GB", help="memory budget for the integrated-gradients runs"
    )
    parser.add_argument(
        "--sections", default="time,memory,occlusion", help="comma-separated subset to run"
    )
    parser.add_argument("--child", choices=["ours", "captum"], help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=200, help=argparse.SUPPRESS)
    parser.add_argument("--images", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--max-forwards", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--kill-at", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.budget = int(args.budget)
        child(args)
        return
    torch.set_num_threads(1)
    # Captum's notices (hooks set, inputs made to require grad) from the direct calls.
    warnings.filterwarnings("ignore", category=UserWarning, module="captum")
    budget = parse_budget(args.budget)
    assert budget is not None
    model = make_model()
    print(
        f"torch {torch.__version__}, captum {captum.__version__}, "
        f"1 CPU thread, {'quick' if args.quick else 'full'} run; times are CPU seconds, "
        "x = multiple of one bare forward+backward pass of the same batch",
        flush=True,
    )
    s = settings(args.quick)
    print("settings: " + "; ".join(f"{k} {v}" for k, v in s.items() if v), flush=True)
    print(flush=True)
    started = time.time()
    sections = set(args.sections.split(","))
    ratios = (
        time_table(model, [1] if args.quick else [1, 8], args.quick) if "time" in sections else []
    )
    print(flush=True)
    reports = memory_table(budget, args.quick) if "memory" in sections else []
    print(flush=True)
    speedups = occlusion_table(model, args.quick) if "occlusion" in sections else []
    print("\ntargets")
    summarize(ratios, reports, speedups, budget)
    print(f"\n(total wall time {time.time() - started:.0f} s)")


def summarize(
    ratios: list[tuple[str, int, float]],
    reports: list[dict[str, Any]],
    speedups: list[tuple[str, int, float]],
    budget: int,
) -> None:
    if ratios:
        worst = max((r for r in ratios if r[0] in GRADIENT_METHODS), key=lambda r: r[2])
        print(
            f"  gradient methods <= 1.10x Captum-direct: worst {worst[0]} ({worst[1]} images) "
            f"{worst[2]:.3f} -> {'met' if worst[2] <= 1.10 else 'NOT met'}"
        )
    if reports:
        ours, theirs = reports[0], reports[-1]
        print(
            f"  IG peak RSS <= {format_bytes(budget)}: ours {format_bytes(ours['peak_rss'])} -> "
            f"{'met' if ours['peak_rss'] <= budget else 'NOT met'}; Captum with internal_batch_size=None "
            f"{format_bytes(theirs['peak_rss'])} ({theirs['status']}) -> "
            f"{'exceeds' if theirs['peak_rss'] > budget else 'does NOT exceed'} the budget"
        )
    for label, n, speedup in speedups:
        print(
            f"  occlusion batched >= 1.5x one forward per window, {label}, {n} image(s): "
            f"{speedup:.2f}x -> {'met' if speedup >= 1.5 else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
