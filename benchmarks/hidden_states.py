"""Benchmark: LSTMVis match with the bit index vs a plain numpy scan (issue 10).

Run ``.venv/bin/python benchmarks/hidden_states.py`` (full: 1M x 512 in
memory and 10M x 512 memory-mapped from a temporary file) or with ``--quick``
(200k x 512 and 2M x 512). Prints one table; every ratio comes from this run.

Data: each cell is an AR(1) process (time constants 2 to 200 tokens, so cells
stay on for a few to hundreds of tokens, like LSTM cells), squashed by tanh and
stored as float16. Queries: a random token range of 2-8 tokens, LSTMVis's
select at threshold 0.3, and a match of the selected cells (at most 12,
top_k=50); ranges that select no cell are redrawn.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from deepvis_widgets.compute.hidden_states import HiddenStates

THRESHOLD = 0.3
MAX_CELLS = 12
TOP_K = 50


def fill_states(out: np.ndarray, seed: int, chunk: int = 1 << 16) -> None:
    """Writes smoothed-noise states into ``out`` (float16, possibly a memmap), chunk by chunk.

    Cells come in 16 groups whose noise is averaged over windows of 2 to 200
    tokens (so a cell stays on for a few to hundreds of tokens), plus a bias
    per cell, squashed by tanh.
    """
    n, c = out.shape
    rng = np.random.default_rng(seed)
    groups = np.array_split(np.arange(c), 16)
    windows = np.unique(np.geomspace(2, 200, 16).astype(int))
    windows = np.resize(windows, len(groups))
    wmax = int(windows.max())
    bias = rng.normal(0.0, 0.4, size=c).astype(np.float32)
    tail = rng.integers(-127, 128, size=(wmax, c), dtype=np.int8)
    for r0 in range(0, n, chunk):
        rows = min(chunk, n - r0)
        noise = np.concatenate([tail, rng.integers(-127, 128, size=(rows, c), dtype=np.int8)])
        csum = np.cumsum(noise, axis=0, dtype=np.float32)
        block = np.empty((rows, c), dtype=np.float32)
        for cols, w in zip(groups, windows, strict=True):
            lo, hi = cols[0], cols[-1] + 1  # contiguous column blocks
            block[:, lo:hi] = csum[wmax:, lo:hi] - csum[wmax - w : wmax - w + rows, lo:hi]
            block[:, lo:hi] *= np.float32(1.5 / (73.6 * np.sqrt(w)))  # unit variance, gain 1.5
        block += bias
        out[r0 : r0 + rows] = np.tanh(block, out=block)
        tail = noise[-wmax:]


def draw_queries(hs: HiddenStates, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    queries = []
    while len(queries) < n:
        start = int(rng.integers(1, hs.n_tokens - 10))
        sel = hs.select(start, start + int(rng.integers(2, 9)), THRESHOLD)
        if len(sel):
            queries.append(sel.cells[:MAX_CELLS])
    return queries


def time_match(hs: HiddenStates, queries: list[np.ndarray], method: str) -> tuple[float, list]:
    times, results = [], []
    for cells in queries:
        t0 = time.perf_counter()
        m = hs.match(cells, top_k=TOP_K, threshold=THRESHOLD, method=method)
        times.append((time.perf_counter() - t0) * 1e3)
        results.append(m)
    return statistics.median(times), results


def same(a: list, b: list) -> bool:
    return all(
        np.array_equal(x.starts, y.starts) and np.array_equal(x.lengths, y.lengths)
        and np.array_equal(x.intersection, y.intersection) and np.array_equal(x.union, y.union)
        for x, y in zip(a, b, strict=True)
    )


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller corpora (200k and 2M tokens)")
    parser.add_argument("--cells", type=int, default=512)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--scan-queries", type=int, default=8, help="queries for the slow numpy scan")
    parser.add_argument("--tmpdir", default=None, help="where to write the memory-mapped corpus")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n_mem, n_map = (200_000, 2_000_000) if args.quick else (1_000_000, 10_000_000)
    c = args.cells
    rows: list[tuple[str, str, str]] = []

    # ---- in memory: index vs plain numpy scan, same queries ----------------------
    t0 = time.perf_counter()
    values = np.empty((n_mem, c), dtype=np.float16)
    fill_states(values, seed=0)
    gen_s = time.perf_counter() - t0
    hs = HiddenStates(values, np.zeros(n_mem, dtype=np.int32), vocab=["x"])
    queries = draw_queries(hs, args.queries, seed=1)
    info = hs.build_index(THRESHOLD)
    med_index, res_index = time_match(hs, queries, "index")
    med_scan, res_scan = time_match(hs, queries[: args.scan_queries], "scan")
    agree = same(res_index[: args.scan_queries], res_scan)
    k_mean = statistics.mean(len(q) for q in queries)
    label = f"{n_mem:,} x {c} in memory"
    rows.append((label, "data generation", f"{gen_s:.1f} s"))
    rows.append((label, "index build", f"{info['seconds']:.2f} s, {info['nbytes'] / 2**20:.0f} MiB"))
    rows.append((label, f"match, index (median of {len(queries)})", f"{med_index:.1f} ms"))
    rows.append((label, f"match, numpy scan (median of {args.scan_queries})", f"{med_scan:.1f} ms"))
    rows.append((label, "speed-up (same queries)", f"{med_scan / med_index:.0f}x, results identical: {agree}"))
    del hs, values, res_index, res_scan
    gc.collect()

    # ---- memory-mapped ------------------------------------------------------------
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        path = os.path.join(tmp, "states.npy")
        t0 = time.perf_counter()
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n_map, c))
        fill_states(mm, seed=2)
        mm.flush()
        del mm
        gen_s = time.perf_counter() - t0
        values = np.load(path, mmap_mode="r")
        hs = HiddenStates(values, np.zeros(n_map, dtype=np.int32), vocab=["x"])
        queries = draw_queries(hs, args.queries, seed=3)
        info = hs.build_index(THRESHOLD)
        med_index, _ = time_match(hs, queries, "index")
        label = f"{n_map:,} x {c} memory-mapped"
        rows.append((label, "data generation (to disk)", f"{gen_s:.1f} s, {os.path.getsize(path) / 2**30:.1f} GiB file"))
        rows.append((label, "index build", f"{info['seconds']:.2f} s, {info['nbytes'] / 2**20:.0f} MiB"))
        rows.append((label, f"match, index (median of {len(queries)})", f"{med_index:.1f} ms"))
        del hs, values
    rows.append(("process", "peak RSS", f"{rss_mb():.0f} MiB"))

    print(f"\nmatch: threshold {THRESHOLD}, top_k {TOP_K}, mean {k_mean:.1f} selected cells per query, 1 torch thread")
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"{'corpus':<{w0}}  {'measure':<{w1}}  value")
    print(f"{'-' * w0}  {'-' * w1}  {'-' * 30}")
    for a, b, v in rows:
        print(f"{a:<{w0}}  {b:<{w1}}  {v}")


if __name__ == "__main__":
    main()
