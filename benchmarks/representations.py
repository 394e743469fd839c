"""Representations: linear CKA at 10,000 x 1,024, and one copy of BokehJS however many chart views.

1. cka      dv.cka on two (--n, --d) float32 activation matrices (b = a @ W + noise, so CKA is
            neither 0 nor 1), timed beside the textbook formula written plainly in numpy float64
            (centre, then ||B'A||_F^2 / (||A'A||_F ||B'B||_F)) in the same run; medians of --repeat.
            The values are checked against each other, and at --gram-n examples against the
            centred-Gram formula (HSIC with n x n Gram matrices, Kornblith et al. 2019).
            Target: <= 1 s for 10,000 x 1,024.
2. bokehjs  The same small chart views saved as one page (dv.save_html) and as an executed,
            exported notebook (deepvis_widgets.export.execute_notebook + export_notebook), with
            1 view and with 5 (ProjectionView x2, SimilarityMatrix, TrainingMonitor x2). Prints the
            file sizes and how often BokehJS's source is in each (a path string that occurs once
            in bokeh.min.js). Target: once, whatever the number of views.

Usage: python benchmarks/representations.py [--n 10000] [--d 1024] [--repeat 3] [--gram-n 2000] [--skip-notebook]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

import deepvis_widgets as dv

#: Occurs once in bokeh.min.js (slashes may be escaped inside JSON): counts copies of BokehJS.
BOKEH_MARKER = re.compile(r"models\\?/tools\\?/inspectors\\?/hover_tool")


def cka_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Linear CKA, feature-space formula, float64, nothing clever."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    a = a - a.mean(0)
    b = b - b.mean(0)
    return float(np.linalg.norm(b.T @ a) ** 2 / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)))


def cka_gram(a: np.ndarray, b: np.ndarray) -> float:
    """Linear CKA from centred n x n Gram matrices: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))."""
    n = a.shape[0]
    h = np.eye(n) - 1.0 / n
    k = h @ (a.astype(np.float64) @ a.T.astype(np.float64)) @ h
    lm = h @ (b.astype(np.float64) @ b.T.astype(np.float64)) @ h
    return float((k * lm).sum() / np.sqrt((k * k).sum() * (lm * lm).sum()))


def timed(fn, repeat: int) -> tuple[float, float]:
    times, value = [], float("nan")
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), value


def bench_cka(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(args.n, args.d)).astype(np.float32)
    w = rng.normal(size=(args.d, args.d)).astype(np.float32) / np.sqrt(args.d)
    b = np.tanh(a @ w + 0.5 * rng.normal(size=(args.n, args.d)).astype(np.float32)).astype(np.float32)
    dv.cka(a[:500], b[:500])  # warm-up (imports, BLAS threads)
    ours_s, ours = timed(lambda: dv.cka(a, b), args.repeat)
    ref_s, ref = timed(lambda: cka_reference(a, b), args.repeat)
    m = args.gram_n
    gram_s, gram = timed(lambda: cka_gram(a[:m], b[:m]), 1)
    ours_m = dv.cka(a[:m], b[:m])
    return {"ours_s": ours_s, "ours": ours, "ref_s": ref_s, "ref": ref, "gram_s": gram_s, "gram": gram, "ours_m": ours_m}


# --- BokehJS once ----------------------------------------------------------------------

SETUP = """
import numpy as np
from deepvis_widgets.widgets.projection import ProjectionView
from deepvis_widgets.widgets.similarity import SimilarityMatrix
from deepvis_widgets.widgets.training import TrainingMonitor
rng = np.random.default_rng(0)
x = rng.normal(size=(300, 8))
def monitor(title):
    mon = TrainingMonitor(example_ids=np.arange(200), title=title)
    for step in range(20):
        mon.log(step, split="train", loss=1.0 / (step + 1))
        mon.log_examples(step, np.arange(200), rng.uniform(0.1, 2.0, 200) / (step + 1))
    mon.flush()
    return mon
"""
VIEWS = [
    'ProjectionView(x, labels=np.arange(300) % 3, title="projection 1")',
    'ProjectionView(np.tanh(x), labels=np.arange(300) % 3, title="projection 2")',
    'SimilarityMatrix({"x": x, "tanh": np.tanh(x), "square": x ** 2}, title="similarity")',
    'monitor("monitor 1")',
    'monitor("monitor 2")',
]


def bench_bokehjs(args: argparse.Namespace) -> list[dict]:
    import nbformat

    from deepvis_widgets.export import execute_notebook, export_notebook

    rows = []
    scope: dict = {}
    exec(SETUP, scope)  # the same views, for save_html
    with tempfile.TemporaryDirectory() as tmp:
        for k in (1, 5):
            views = [eval(src, scope) for src in VIEWS[:k]]
            page = Path(tmp) / f"page_{k}.html"
            dv.save_html(page, *views)
            rows.append({"how": "save_html", "views": k, "bytes": page.stat().st_size,
                         "copies": len(BOKEH_MARKER.findall(page.read_text(encoding="utf-8")))})  # fmt: skip
            if args.skip_notebook:
                continue
            nb = nbformat.v4.new_notebook()
            nb.cells = [nbformat.v4.new_code_cell(SETUP)] + [nbformat.v4.new_code_cell(src) for src in VIEWS[:k]]
            src = Path(tmp) / f"nb_{k}.ipynb"
            nbformat.write(nb, src)
            t0 = time.perf_counter()
            executed = execute_notebook(src)
            html = export_notebook(executed, Path(tmp) / f"nb_{k}.html")
            print(f"notebook with {k} view(s) executed and exported in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            saved = Path(tmp) / f"nb_{k}_executed.ipynb"
            nbformat.write(executed, saved)
            rows.append({"how": "exported notebook", "views": k, "bytes": html.stat().st_size,
                         "copies": len(BOKEH_MARKER.findall(html.read_text(encoding="utf-8"))),
                         "ipynb": saved.stat().st_size,
                         "ipynb_copies": len(BOKEH_MARKER.findall(saved.read_text(encoding="utf-8")))})  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="examples")
    ap.add_argument("--d", type=int, default=1024, help="features of each representation")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--gram-n", type=int, default=2000, help="examples for the n x n Gram-matrix check")
    ap.add_argument("--skip-notebook", action="store_true", help="save_html only (no kernel)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    ck = bench_cka(args)
    bk = bench_bokehjs(args)
    bokeh_js = Path(__import__("bokeh").__file__).parent / "server/static/js/bokeh.min.js"
    print(f"\nRepresentations benchmark; load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after, "
          f"on {os.cpu_count()} cores; numpy {np.__version__}, torch 1 thread")  # fmt: skip
    print(f"\n1. Linear CKA, {args.n:,} x {args.d:,} vs {args.n:,} x {args.d:,} float32 activations, median of {args.repeat}")
    print(f"{'':>34} | {'seconds':>8} | {'CKA':>12} | {'x':>5}")
    print(f"{'dv.cka':>34} | {ck['ours_s']:8.3f} | {ck['ours']:12.8f} | {1.0:5.2f}")
    print(f"{'plain numpy float64 (feature space)':>34} | {ck['ref_s']:8.3f} | {ck['ref']:12.8f} | {ck['ref_s'] / ck['ours_s']:5.2f}")
    print(f"{f'centred Gram n x n, n = {args.gram_n:,}':>34} | {ck['gram_s']:8.3f} | {ck['gram']:12.8f} | dv.cka on the same rows {ck['ours_m']:.8f}")
    ok = ck["ours_s"] <= 1.0
    print(f"target <= 1 s: {'met' if ok else 'NOT met'} ({ck['ours_s']:.3f} s); |dv.cka - float64| = {abs(ck['ours'] - ck['ref']):.1e}, "
          f"|dv.cka - Gram| at n = {args.gram_n:,}: {abs(ck['ours_m'] - ck['gram']):.1e}")  # fmt: skip
    print(f"\n2. BokehJS in saved pages (bokeh.min.js is {bokeh_js.stat().st_size / 1e6:.2f} MB)")
    print(f"{'':>18} | {'views':>5} | {'MB':>6} | {'BokehJS copies':>14} | {'+MB per extra view':>18}")
    base = {r["how"]: r["bytes"] for r in bk if r["views"] == 1}
    bk.sort(key=lambda r: (r["how"] != "save_html", r["views"]))
    for r in bk:
        extra = f"{(r['bytes'] - base[r['how']]) / (r['views'] - 1) / 1e6:18.3f}" if r["views"] > 1 else f"{'':>18}"
        print(f"{r['how']:>18} | {r['views']:>5} | {r['bytes'] / 1e6:6.2f} | {r['copies']:>14} | {extra}")
    for r in bk:
        if "ipynb" in r:
            print(f"executed .ipynb with {r['views']} view(s): {r['ipynb'] / 1e6:.2f} MB, BokehJS copies {r['ipynb_copies']}")
    once = all(r["copies"] == 1 for r in bk)
    print(f"target BokehJS once per file: {'met' if once else 'NOT met'}")


if __name__ == "__main__":
    main()
