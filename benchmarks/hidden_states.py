"""Benchmark: LSTMVis match with the bit index vs a plain numpy scan (issue 10).

Run ``.venv/bin/python benchmarks/hidden_states.py`` (1M x 512 in memory, and
10M x 512 memory-mapped from a temporary file of ~10 GB) or with ``--quick``
(200k x 512 and 2M x 512). Prints one table; every ratio comes from this run,
the same queries timed side by side.

Data: 512 cells in 16 groups; each cell is uniform noise averaged over a
window of 2 to 200 tokens (a group shares the window), plus a bias per cell,
squashed by tanh, stored as float16. So cells stay on for a few to hundreds of
tokens, like LSTM cells; the fast ones switch often and make many candidates.
The memory-mapped corpus is the in-memory one written 10 times (5 in --quick),
each copy with its own random permutation of the cells and rotation in time:
generating 5G fresh values would take minutes of CPU on this shared machine,
and the match never sees that the copies are related.

Queries: a random token range of 2-8 tokens, LSTMVis's select at threshold 0.3,
and a match of the selected cells (at most 12, top_k=50); ranges that select no
cell are redrawn. The numpy scan is the same match rule computed from the
float16 states without an index (threshold the selected columns, find runs,
threshold the rows of every candidate for its union); it returns identical
results. Most of its time goes to the unions of the many candidates that tie on
the intersection, so the table also times its first step alone (threshold the
selected columns, count, find runs), a floor for any index-free scan.

Times: median wall-clock milliseconds per query, and CPU milliseconds of this
process beside them (the machine's 2 cores are shared, so wall time includes
waiting; the load average is printed).
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


def fill_states(out: np.ndarray, seed: int, chunk: int = 1 << 15) -> None:
    """Writes smoothed-noise states into ``out`` (float16), chunk by chunk."""
    n, c = out.shape
    rng = np.random.default_rng(seed)
    groups = np.array_split(np.arange(c), 16)
    windows = np.resize(np.unique(np.geomspace(2, 200, 16).astype(int)), len(groups))
    wmax = int(windows.max())
    bias = rng.normal(0.0, 0.4, size=c).astype(np.float32)
    scale = np.concatenate([np.full(len(g), 1.5 / np.sqrt(w / 12.0)) for g, w in zip(groups, windows, strict=True)])
    total = np.zeros(c, dtype=np.float32)
    history = np.zeros((wmax, c), dtype=np.float32)  # running sums of the last wmax tokens
    for r0 in range(0, n, chunk):
        rows = min(chunk, n - r0)
        csum = rng.random((rows, c), dtype=np.float32) - np.float32(0.5)
        csum[0] += total
        for t in range(1, rows):  # row by row: np.cumsum along axis 0 is ~4x slower here
            csum[t] += csum[t - 1]
        total = csum[-1].copy()
        ext = np.concatenate([history, csum])
        block = np.empty((rows, c), dtype=np.float32)
        for cols, w in zip(groups, windows, strict=True):
            lo, hi = cols[0], cols[-1] + 1
            np.subtract(ext[wmax:, lo:hi], ext[wmax - w : wmax - w + rows, lo:hi], out=block[:, lo:hi])
        block *= scale
        block += bias
        out[r0 : r0 + rows] = np.tanh(block, out=block)
        history = ext[-wmax:]


def write_tiled(path: str, base: np.ndarray, copies: int, seed: int) -> None:
    """``copies`` copies of ``base``, each with permuted cells and rotated in time, into a .npy memmap."""
    n, c = base.shape
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n * copies, c))
    for b in range(copies):
        perm = rng.permutation(c)
        shift = int(rng.integers(0, n))
        for r0 in range(0, n, 1 << 16):
            r1 = min(r0 + (1 << 16), n)
            lo, hi = (r0 + shift) % n, (r1 - 1 + shift) % n + 1
            rows = base[lo:hi] if lo < hi else np.concatenate([base[lo:], base[:hi]])
            out[b * n + r0 : b * n + r1] = np.take(rows, perm, axis=1)
    out.flush()
    del out


def draw_queries(hs: HiddenStates, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    queries = []
    while len(queries) < n:
        start = int(rng.integers(1, hs.n_tokens - 10))
        sel = hs.select(start, start + int(rng.integers(2, 9)), THRESHOLD)
        if len(sel):
            queries.append(sel.cells[:MAX_CELLS])
    return queries


def time_match(hs: HiddenStates, queries: list[np.ndarray], method: str) -> tuple[list[float], list[float], list]:
    wall, cpu, results = [], [], []
    for cells in queries:
        t0, c0 = time.perf_counter(), time.process_time()
        m = hs.match(cells, top_k=TOP_K, threshold=THRESHOLD, method=method)
        cpu.append((time.process_time() - c0) * 1e3)
        wall.append((time.perf_counter() - t0) * 1e3)
        results.append(m)
    return wall, cpu, results


def scan_floor(hs: HiddenStates, queries: list[np.ndarray]) -> list[float]:
    """Wall ms of the first step any index-free scan needs: threshold the selected
    columns, count per token, find the runs at the top level (no unions, no ranking)."""
    values = hs.values
    times = []
    for cells in queries:
        t0 = time.perf_counter()
        count = (np.asarray(values[:, np.sort(cells)], dtype=np.float32) >= THRESHOLD).sum(axis=1)
        ge = np.concatenate([[False], count >= len(cells), [False]])
        np.flatnonzero(ge[1:] != ge[:-1])
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def same(a: list, b: list) -> bool:
    return all(
        np.array_equal(x.starts, y.starts)
        and np.array_equal(x.lengths, y.lengths)
        and np.array_equal(x.intersection, y.intersection)
        and np.array_equal(x.union, y.union)
        for x, y in zip(a, b, strict=True)
    )


def fmt(wall: list[float], cpu: list[float]) -> str:
    p90 = float(np.percentile(wall, 90))
    return f"{statistics.median(wall):.1f} ms (CPU {statistics.median(cpu):.1f} ms; wall p90 {p90:.0f} ms)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200k tokens in memory, 2M memory-mapped")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--scan-queries", type=int, default=6, help="queries for the slow numpy scan")
    parser.add_argument("--tmpdir", default=None, help="folder for the memory-mapped corpus (default: system temp)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n_mem, copies = (200_000, 10) if args.quick else (1_000_000, 10)
    c = 512
    rows: list[tuple[str, str, str]] = []
    load0 = os.getloadavg()[0]

    # ---- in memory: index vs plain numpy scan, same queries ---------------------
    t0 = time.perf_counter()
    base = np.empty((n_mem, c), dtype=np.float16)
    fill_states(base, seed=0)
    gen_s = time.perf_counter() - t0
    hs = HiddenStates(base, np.zeros(n_mem, dtype=np.int32), vocab=["x"])
    queries = draw_queries(hs, args.queries, seed=1)
    info = hs.build_index(THRESHOLD)
    wall_i, cpu_i, res_i = time_match(hs, queries, "index")
    scan_q = queries[: args.scan_queries]
    wall_s, cpu_s, res_s = time_match(hs, scan_q, "scan")
    floor = scan_floor(hs, queries)
    agree = same(res_i[: len(scan_q)], res_s)
    same_q = statistics.median(wall_s) / statistics.median(wall_i[: len(scan_q)])
    label = f"{n_mem:,} x {c}, in memory"
    rows.append((label, "states (float16) / generated in", f"{base.nbytes / 2**20:.0f} MiB / {gen_s:.1f} s"))
    rows.append((label, "index build: time, memory", f"{info['seconds']:.1f} s, {info['nbytes'] / 2**20:.0f} MiB"))
    rows.append((label, f"match, index ({len(queries)} queries)", fmt(wall_i, cpu_i)))
    rows.append((label, f"match, numpy scan (first {len(scan_q)})", fmt(wall_s, cpu_s)))
    rows.append((label, "numpy scan, first step only", f"{statistics.median(floor):.1f} ms (all {len(queries)} queries)"))
    rows.append((label, f"index, same {len(scan_q)} queries", fmt(wall_i[: len(scan_q)], cpu_i[: len(scan_q)])))
    rows.append((label, "speed-up, same queries (wall)", f"{same_q:.0f}x; results identical: {agree}"))
    rows.append((label, "speed-up over the first step alone", f"{statistics.median(floor) / statistics.median(wall_i):.0f}x"))
    rss_mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    k_mean = statistics.mean(len(q) for q in queries)
    k_one = sum(len(q) == 1 for q in queries)
    del hs, res_i, res_s
    gc.collect()

    # ---- memory-mapped ------------------------------------------------------------
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        path = os.path.join(tmp, "states.npy")
        t0 = time.perf_counter()
        write_tiled(path, base, copies, seed=2)
        write_s = time.perf_counter() - t0
        del base
        gc.collect()
        values = np.load(path, mmap_mode="r")
        n_map = values.shape[0]
        hs = HiddenStates(values, np.zeros(n_map, dtype=np.int32), vocab=["x"])
        queries = draw_queries(hs, args.queries, seed=3)
        info = hs.build_index(THRESHOLD)
        wall_m, cpu_m, _ = time_match(hs, queries, "index")
        label = f"{n_map:,} x {c}, memory-mapped"
        rows.append((label, "states file / written in", f"{os.path.getsize(path) / 2**30:.1f} GiB / {write_s:.1f} s"))
        rows.append((label, "index build: time, memory", f"{info['seconds']:.1f} s, {info['nbytes'] / 2**20:.0f} MiB"))
        rows.append((label, f"match, index ({len(queries)} queries)", fmt(wall_m, cpu_m)))
        del hs, values
    rss_all = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    rows.append(("process", "peak resident memory", f"{rss_mem:.0f} MiB in-memory part; {rss_all:.0f} MiB with the mapped file's pages"))
    load1 = os.getloadavg()[0]

    print(
        f"\nLSTMVis match, threshold {THRESHOLD}, top_k {TOP_K}; queries select {k_mean:.1f} cells on average "
        f"({k_one} of {args.queries} select one); 1 torch thread; load average {load0:.1f} -> {load1:.1f} on {os.cpu_count()} cores"
    )
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"{'corpus':<{w0}}  {'measure':<{w1}}  value")
    print(f"{'-' * w0}  {'-' * w1}  {'-' * 44}")
    for a, b, v in rows:
        print(f"{a:<{w0}}  {b:<{w1}}  {v}")


if __name__ == "__main__":
    main()
