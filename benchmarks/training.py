"""TrainingMonitor: logging overhead in a training loop, and the trajectory view at 10,000 x 100.

1. overhead  A small CNN (the digits CNN of deepvis_widgets/examples/digits.py, ~20k parameters)
             trained on 10,000 examples: scikit-learn's 1,797 digits repeated, each copy shifted
             by up to +-3 px and given Gaussian noise (sigma 0.05), upsampled to 32x32; Adam, batch
             64, --epochs passes (157 steps each). With the monitor, every step calls
             mon.log(step, loss=...) and mon.log_examples(step, ids, per-example losses); the
             monitor's comm is a stand-in for the kernel's that JSON-encodes each message as
             jupyter_client does and counts its buffer bytes, so the measured time holds what
             an update costs in a kernel (encode_array, trait set, get_state, serialisation) but
             not the socket. Runs with and without the monitor alternate (--pairs), after one
             warm-up epoch; the table gives medians and their ratio (target <= 1.05). Whole runs
             drift by +-20% on a shared machine, so two steadier estimates follow: the median of
             per-pair ratios, and two identical models trained in lockstep (one step each in turn,
             only the second logging), CPU time summed per arm. The lockstep arm's monitor sees
             twice the wall time, so it may send more updates than a real run: a pessimistic bound.
2. browser   A monitor holding --n examples x --steps logged steps (synthetic losses, 10% never
             learned), saved with save_html and opened in headless Chromium with the network
             blocked: ms from navigation start to the drawn view, then --brushes mouse drags in each
             panel, timed in the page from the pointerup to the end of the first frame in which the
             other panel has drawn (target <= 100 ms), and to the selection list (a frame later).

Usage: python benchmarks/training.py [--epochs 3] [--pairs 6] [--n 10000] [--steps 100] [--brushes 8] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import comm
import torch
from comm.base_comm import BaseComm
from torch.nn import functional as F

import deepvis_widgets as dv
from deepvis_widgets.examples.digits import DigitsCNN, upsample
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, LOCAL_PREFIXES


class KernelLikeComm(BaseComm):
    """Serialises each message like jupyter_client's Session (JSON text + binary buffers) and counts it."""

    messages = 0
    json_bytes = 0
    buffer_bytes = 0

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any) -> None:
        text = json.dumps({"data": data, "metadata": metadata or {}}, ensure_ascii=False, allow_nan=False).encode("utf8")
        cls = KernelLikeComm
        cls.messages += 1
        cls.json_bytes += len(text)
        cls.buffer_bytes += sum(memoryview(b).nbytes for b in buffers or [])


def digits_10k(n: int = 10_000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    idx = np.arange(n) % len(d.target)
    x = upsample(d.images[idx])
    shifts = rng.integers(-3, 4, size=(n, 2))
    for k, (dy, dx) in enumerate(shifts):
        x[k] = torch.roll(x[k], shifts=(int(dy), int(dx)), dims=(1, 2))
    x = (x + 0.05 * torch.from_numpy(rng.normal(size=x.shape).astype(np.float32))).clamp(0, 1)
    return x, torch.as_tensor(d.target[idx], dtype=torch.int64)


def train(x: torch.Tensor, y: torch.Tensor, epochs: int, mon: dv.TrainingMonitor | None, seed: int = 0) -> tuple[float, float, float]:
    """Wall and CPU seconds to train a fresh DigitsCNN (logging to `mon` when given, final flush included),
    and the wall seconds spent inside the monitor's calls."""
    torch.manual_seed(seed)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    step = 0
    inside = 0.0
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        for batch in torch.randperm(len(y), generator=g).split(64):
            losses = F.cross_entropy(model(x[batch]), y[batch], reduction="none")
            loss = losses.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if mon is not None:
                t0 = time.perf_counter()
                mon.log(step, split="train", loss=loss.item())
                mon.log_examples(step, ids=batch, losses=losses.detach())
                inside += time.perf_counter() - t0
            step += 1
    if mon is not None:
        t0 = time.perf_counter()
        mon.flush()  # what the post_run_cell hook does when the cell ends
        inside += time.perf_counter() - t0
    return time.perf_counter() - start, time.process_time() - cpu, inside


def count_change(counter: dict[str, int], _change: Any) -> None:
    counter["n"] += 1


def interleaved(x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int = 0) -> tuple[float, float, int]:
    """Two identical models trained in lockstep, one step each in turn, only the second one logging to a
    monitor: machine drift (which moves whole runs by +-20% here) hits both arms alike.
    Returns the CPU seconds of the plain arm, of the logging arm (its step plus its log calls), and updates sent."""
    torch.manual_seed(seed)
    models = [DigitsCNN(), DigitsCNN()]
    models[1].load_state_dict(models[0].state_dict())
    opts = [torch.optim.Adam(m.parameters(), lr=3e-3) for m in models]
    mon = dv.TrainingMonitor(title="interleaved")
    g = torch.Generator().manual_seed(seed)
    spent = [0.0, 0.0]
    step = 0
    for _ in range(epochs):
        for batch in torch.randperm(len(y), generator=g).split(64):
            for arm in ((0, 1) if step % 2 == 0 else (1, 0)):
                t0 = time.process_time()
                losses = F.cross_entropy(models[arm](x[batch]), y[batch], reduction="none")
                loss = losses.mean()
                opts[arm].zero_grad(set_to_none=True)
                loss.backward()
                opts[arm].step()
                if arm == 1:
                    mon.log(step, split="train", loss=loss.item())
                    mon.log_examples(step, ids=batch, losses=losses.detach())
                spent[arm] += time.process_time() - t0
            step += 1
    t0 = time.process_time()
    mon.flush()
    spent[1] += time.process_time() - t0
    updates = mon.updates_sent
    mon.close()
    return spent[0], spent[1], updates


def overhead(args: argparse.Namespace) -> dict[str, Any]:
    x, y = digits_10k(args.n_train)
    comm.create_comm = KernelLikeComm  # type: ignore[assignment]
    train(x[:2000], y[:2000], 1, dv.TrainingMonitor(title="warm-up"))  # warms torch, numpy and the cached figures
    train(x[:2000], y[:2000], 1, None)
    plain: list[tuple[float, float, float]] = []
    logged: list[tuple[float, float, float]] = []
    stats: list[dict[str, float]] = []
    for k in range(args.pairs):
        for with_monitor in ([False, True] if k % 2 == 0 else [True, False]):
            if not with_monitor:
                plain.append(train(x, y, args.epochs, None))
                continue
            mon = dv.TrainingMonitor(title="digits 10k")
            changes = {"n": 0}
            mon.observe(functools.partial(count_change, changes), names=["_ex", "_scalars"])
            KernelLikeComm.messages = KernelLikeComm.json_bytes = KernelLikeComm.buffer_bytes = 0
            logged.append(train(x, y, args.epochs, mon))
            stats.append({"updates": mon.updates_sent, "changes": changes["n"], "msgs": KernelLikeComm.messages,
                          "mb": (KernelLikeComm.json_bytes + KernelLikeComm.buffer_bytes) / 1e6,
                          "last_ms": mon.last_update_seconds * 1e3, "examples": len(mon.example_log)})  # fmt: skip
            mon.close()
        print(f"pair {k + 1}: without {plain[-1][0]:.2f} s, with {logged[-1][0]:.2f} s", file=sys.stderr, flush=True)
    inter = interleaved(x, y, args.epochs)
    return {"plain": plain, "logged": logged, "stats": stats, "steps": args.epochs * -(-args.n_train // 64), "inter": inter}


# --- browser ---------------------------------------------------------------------------

# Times every brush in the page, from its pointerup (capture phase, before the view sees it) to
#  panel: the end of the first frame in which the OTHER panel has drawn (canvas calls are tagged
#         by panel; a frame has ended when the next one begins), and
#  list:  the rewrite of the selection line above the example cards (a frame later, by design).
PROBE = """() => {
  const panelOf = (node) => {
    for (let n = node; n; n = n.getRootNode().host) {
      if (n.closest?.('.dv-traj')) return 'traj';
      if (n.closest?.('.dv-train-scatter')) return 'scatter';
    }
    return '';
  };
  const b = window.__brush = { t0: null, expect: '', panel: [], list: [], painted: { traj: false, scatter: false } };
  const proto = CanvasRenderingContext2D.prototype;
  for (const m of ['fill', 'stroke', 'fillRect', 'putImageData', 'drawImage']) {
    const orig = proto[m];
    // kept cheap (an expando lookup and a flag): Bokeh makes ~20,000 of these calls per repaint
    proto[m] = function (...args) {
      const c = this.canvas;
      const t = c.__dvPanel ?? (c.__dvPanel = panelOf(c));
      if (t) b.painted[t] = true;
      return orig.apply(this, args);
    };
  }
  window.addEventListener('pointerup', (ev) => {
    const t0 = (b.t0 = performance.now());
    const other = panelOf(ev.target) === 'traj' ? 'scatter' : 'traj';
    b.painted[other] = false;
    // A paint is on screen once the frame it belongs to has been committed, i.e. when the next
    // frame begins. This listener runs in the capture phase, before the view's handlers, so its
    // animation-frame callbacks run first in each frame: one in frame 1 (which holds whatever the
    // input handlers and frame 1's callbacks paint), then a check at the start of every later
    // frame, before that frame's own work (such as the example cards) runs.
    let frames = 0;  // gives up (-1) after 120 frames without a paint of the other panel
    const check = () => {
      if (b.painted[other]) b.panel.push(performance.now() - t0);
      else if (++frames > 120) b.panel.push(-1);
      else requestAnimationFrame(check);
    };
    requestAnimationFrame(() => requestAnimationFrame(check));
  }, true);
  new MutationObserver(() => {
    if (b.t0 !== null) { b.list.push(performance.now() - b.t0); b.t0 = null; }
  }).observe(document.querySelector('.dv-train-selhead'), { childList: true, characterData: true, subtree: true });
}"""



def synthetic_monitor(n: int, steps: int) -> dv.TrainingMonitor:
    """Losses like a training run: most examples learned at various speeds, 10% never."""
    rng = np.random.default_rng(0)
    hard = np.arange(n) % 10 == 0
    speed = rng.uniform(0.02, 0.1, n)
    mon = dv.TrainingMonitor(example_ids=np.arange(n), labels=np.arange(n) % 10, title=f"{n} x {steps}")
    for k in range(steps):
        loss = np.where(hard, 2.0 + 0.1 * rng.normal(size=n), 2.3 * np.exp(-speed * k) * np.exp(0.2 * rng.normal(size=n)))
        mon.log(k, split="train", loss=float(loss.mean()))
        mon.log_examples(k, np.arange(n), loss)
    mon.flush()
    return mon


def drag(page: Any, selector: str, fx0: float, fy0: float, fx1: float, fy1: float) -> None:
    box = page.locator(selector).bounding_box()
    page.mouse.move(box["x"] + box["width"] * fx0, box["y"] + box["height"] * fy0)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * fx1, box["y"] + box["height"] * fy1, steps=4)
    page.mouse.up()


def settle(page: Any) -> None:
    """Waits for the selection list to follow a brush (a brush that changes nothing leaves it alone)."""
    try:
        page.wait_for_function("() => window.__brush.t0 === null", timeout=5_000)
    except Exception:
        page.evaluate("() => { window.__brush.t0 = null; window.__brush.list.push(-1); }")


def selected(page: Any) -> int:
    m = re.match(r"(\d+) selected", page.inner_text(".dv-train-selhead"))
    return int(m.group(1)) if m else 0


def browser_brush(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    mon = synthetic_monitor(args.n, args.steps)
    out: dict[str, Any] = {"draw": [], "traj": [], "scatter": [], "selected": [], "errors": []}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        path = Path(tmp) / "monitor.html"
        dv.save_html(path, mon)
        out["mb"] = path.stat().st_size / 1e6
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for load in range(args.loads):
            ctx = browser.new_context(viewport={"width": 1100, "height": 1000})
            page = ctx.new_page()
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(LOCAL_PREFIXES) else r.abort())
            page.on("pageerror", lambda e: out["errors"].append(str(e)))
            page.goto(path.as_uri(), wait_until="commit")
            page.wait_for_selector("[data-dv-drawn=true]", state="attached", timeout=120_000)
            out["draw"].append(float(page.get_attribute("[data-dv-drawn=true]", "data-dv-drawn-at")))
            if load == 0:
                page.locator(".dv-traj-canvas").scroll_into_view_if_needed()
                page.wait_for_timeout(500)
                page.evaluate(PROBE)
                rng = np.random.default_rng(1)
                for _ in range(args.brushes):
                    # Trajectories: a band of steps and losses (its rows get highlighted in the scatter).
                    x0, y0 = rng.uniform(0.15, 0.7), rng.uniform(0.05, 0.5)
                    drag(page, ".dv-traj-canvas", x0, y0, x0 + 0.15, y0 + 0.2)
                    settle(page)
                    out["selected"].append(selected(page))
                    # Scatter: a box of early vs latest loss (its rows get highlighted in the trajectories).
                    x0, y0 = rng.uniform(0.15, 0.5), rng.uniform(0.2, 0.6)
                    drag(page, ".dv-train-scatter", x0, y0, x0 + 0.3, y0 + 0.3)
                    settle(page)
                    out["selected"].append(selected(page))
                page.wait_for_function(f"() => window.__brush.panel.length === {2 * args.brushes}", timeout=10_000)
                times = page.evaluate("() => window.__brush")
                out["traj"], out["scatter"] = times["panel"][0::2], times["panel"][1::2]
                out["traj_list"], out["scatter_list"] = times["list"][0::2], times["list"][1::2]
            ctx.close()
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3, help="passes over the 10,000 examples per run")
    ap.add_argument("--pairs", type=int, default=6, help="runs with and without the monitor, alternated")
    ap.add_argument("--n-train", type=int, default=10_000)
    ap.add_argument("--n", type=int, default=10_000, help="examples in the browser monitor")
    ap.add_argument("--steps", type=int, default=100, help="logged steps per example in the browser monitor")
    ap.add_argument("--brushes", type=int, default=8, help="brushes in each panel")
    ap.add_argument("--loads", type=int, default=3, help="page loads (median time to drawn)")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--skip-browser", action="store_true")
    ap.add_argument("--quick", action="store_true", help="1 epoch, 1 pair, 1 load, 3 brushes")
    args = ap.parse_args()
    if args.quick:
        args.epochs, args.pairs, args.loads, args.brushes = 1, 1, 1, 3
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    ov = None if args.skip_overhead else overhead(args)
    load_mid = os.getloadavg()
    br = None if args.skip_browser else browser_brush(args)
    load_after = os.getloadavg()
    print(f"\nTrainingMonitor benchmark; load average {load_before[0]:.2f} before, {load_mid[0]:.2f} between, "
          f"{load_after[0]:.2f} after, on {os.cpu_count()} cores; torch {torch.__version__}, 1 thread")  # fmt: skip
    if ov is not None:
        med = {k: [statistics.median(r[i] for r in ov[k]) for i in range(3)] for k in ("plain", "logged")}
        a = med["plain"][0]
        s = ov["stats"]
        print(f"\n1. Logging overhead: DigitsCNN, {args.n_train:,} examples, {args.epochs} epoch(s) = {ov['steps']} steps of 64, "
              f"log + log_examples every step; {args.pairs} alternating pairs")  # fmt: skip
        print(f"{'':>18} | {'median s':>8} | {'runs s':<24} | {'ratio':>6} | {'CPU s':>7} | {'ratio':>6} | target")
        for key, label in (("plain", "without monitor"), ("logged", "with monitor")):
            wall, cpu = med[key][0], med[key][1]
            runs = " ".join(f"{r[0]:.2f}" for r in ov[key])
            ratio = f"{wall / a:6.3f}" if key == "logged" else f"{'':>6}"
            cratio = f"{cpu / med['plain'][1]:6.3f}" if key == "logged" else f"{'':>6}"
            print(f"{label:>18} | {wall:8.2f} | {runs:<24} | {ratio} | {cpu:7.2f} | {cratio} |")
        # Runs drift by more than the effect (12-15 s without the monitor in one run): the two runs of a pair
        # are adjacent in time, so the median of the per-pair ratios is the steadier estimate.
        pair_wall = [lg[0] / pl[0] for pl, lg in zip(ov["plain"], ov["logged"], strict=True)]
        pair_cpu = [lg[1] / pl[1] for pl, lg in zip(ov["plain"], ov["logged"], strict=True)]
        est = statistics.median(pair_wall)
        print(f"{'per-pair ratios':>18} | wall {' '.join(f'{r:.3f}' for r in pair_wall)}; CPU {' '.join(f'{r:.3f}' for r in pair_cpu)}")
        print(f"{'median pair ratio':>18} | wall {est:.3f}, CPU {statistics.median(pair_cpu):.3f} | target <= 1.05 {'met' if est <= 1.05 else 'NOT met'}")
        a0, a1, upd = ov["inter"]
        print(f"{'interleaved by step':>18} | CPU without {a0:.2f} s, with {a1:.2f} s ({upd} updates): ratio {a1 / a0:.3f} | "
              f"target <= 1.05 {'met' if a1 / a0 <= 1.05 else 'NOT met'}")  # fmt: skip
        print(f"time inside the monitor's calls (log, log_examples, flush): median {med['logged'][2]:.3f} s "
              f"= {med['logged'][2] / a:.1%} of the median run without it")  # fmt: skip
        print(f"per monitored run: updates sent {[r['updates'] for r in s]}, trait changes seen by observe() "
              f"{[r['changes'] for r in s]}, comm messages {[r['msgs'] for r in s]}, "
              f"MB serialised {[round(r['mb'], 1) for r in s]}, last update ms {[round(r['last_ms'], 1) for r in s]}, "
              f"examples tracked {s[0]['examples']:,}")  # fmt: skip
    if br is not None:
        def med_max(v: list[float]) -> str:
            return f"{statistics.median(v):7.1f} {max(v):7.1f} {min(v):7.1f}" if v else "      -       -       -"

        print(f"\n2. Trajectory view, {args.n:,} examples x {args.steps} steps, save_html page {br['mb']:.1f} MB, headless Chromium, network blocked")
        print(f"{'':>34} | {'median':>7} {'max':>7} {'min':>7} | count | target")
        print(f"{'navigation to drawn ms':>34} | {med_max(br['draw'])} | {len(br['draw']):>5} |")
        rows = (("traj", "trajectories -> scatter drawn"), ("scatter", "scatter -> trajectories drawn"),
                ("traj_list", "trajectories -> selection list"), ("scatter_list", "scatter -> selection list"))
        for key, label in rows:
            v = [t for t in br.get(key, []) if t >= 0]
            missed = len(br.get(key, [])) - len(v)
            target = ("<= 100 ms " + ("met" if v and max(v) <= 100 else "median met" if v and statistics.median(v) <= 100 else "NOT met")) if "list" not in label else ""
            print(f"{label + ' ms':>34} | {med_max(v)} | {len(v):>5} | {target}{f' ({missed} brushes unanswered)' if missed else ''}")
        print(f"examples selected per brush (trajectory, scatter alternating): {br['selected']}")
        if br["errors"]:
            print(f"page errors: {br['errors']}")


if __name__ == "__main__":
    main()
