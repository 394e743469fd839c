"""Attention views at scale: our HeadView/ModelView against BertViz's head view, side by side.

Same input for both: a BERT-base-shaped random model (12 layers x 12 heads,
hidden 768) run with eager attention on random token ids of length 128, 512
and 2048. Its query/key weights are scaled x4 after initialisation so that
attention is as peaked as a trained BERT's (mean largest weight per row ~0.4)
instead of the near-uniform attention of a fresh initialisation.

Columns:
  saved MB     size of the saved page (our save_html / BertViz's html_action='return' page),
               and for ours the widget state a saved notebook carries (nbclient stores the same
               base64 buffers; JS code excluded)
  first paint  ms from navigation start until the view has drawn (ours: data-dv-drawn-at;
               BertViz: a MutationObserver sees its SVG), median (min) of --repeat loads
  paint CPU    CPU ms the page's main thread had used by then (Chrome's ThreadTime metric):
               what the page costs, much less sensitive than wall time to other processes
  switch       ms from changing the layer <select> until the next frame has run, median (min)
               over every layer visited twice (BertViz: two switches)

Wall-clock times depend on what else the machine runs: the load average is printed with the
table, and the minimum is the run least disturbed by other processes.
  lines        lines drawn by the head view for the first layer (ours: data-dv-lines)

BertViz loads require.js, d3 5.7.0 and jQuery from CDNs; offline, its page is served local copies
(require.js and jQuery from node_modules, d3 from --bertviz-vendor: `npm install --prefix DIR
d3@5.7.0`). Its page is generated (and timed) only up to --bertviz-max-tokens; beyond, its size is
extrapolated from the bytes per weight measured at the largest size built, marked "est.".
BertViz is used only here: `pip install --no-deps bertviz` (never a dependency of the package).

Usage: python benchmarks/attention.py [--tokens 128 512 2048] [--repeat 3] [--bertviz-max-tokens 128] [--top-k auto]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from deepvis_widgets.compute.attention import AttentionData
from deepvis_widgets.widgets.attention import HeadView, ModelView
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, LOCAL_PREFIXES

ROOT = Path(__file__).resolve().parents[1]
CDN = {
    "require.js": ROOT / "node_modules/requirejs/require.js",
    "jquery": ROOT / "node_modules/jquery/dist/jquery.min.js",
}
# Records when BertViz's SVG first has lines in it (its rendering is synchronous inside require's callback).
BERTVIZ_PROBE = """
(() => {
  const seen = () => document.querySelectorAll('[id^=bertviz] #vis svg *').length > 100;
  const obs = new MutationObserver(() => {
    if (window.__bvDrawn === undefined && seen()) { window.__bvDrawn = performance.now(); obs.disconnect(); }
  });
  document.addEventListener('DOMContentLoaded', () => obs.observe(document.body, { childList: true, subtree: true }));
})();
"""
SWITCH = """async ([selector, value]) => {
  const s = document.querySelector(selector);
  const t0 = performance.now();
  s.value = String(value);
  s.dispatchEvent(new Event('change', { bubbles: true }));
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  return performance.now() - t0;
}"""


def bert_base_attention(n: int, seed: int = 0) -> AttentionData:
    """12 x 12 attention of a random BERT-base-shaped model on n random tokens ([CLS] ... [SEP])."""
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.BertConfig(max_position_embeddings=max(n, 512), attn_implementation="eager")
    model = transformers.BertModel(cfg).eval()
    with torch.no_grad():
        for layer in model.encoder.layer:
            layer.attention.self.query.weight.mul_(4)
            layer.attention.self.key.weight.mul_(4)
    ids = torch.randint(1000, 30000, (1, n))
    ids[0, 0], ids[0, -1] = 101, 102
    with torch.no_grad():
        out = model(input_ids=ids, output_attentions=True)
    tokens = ["[CLS]", *[f"tok{int(i)}" for i in ids[0, 1:-1]], "[SEP]"]
    special = np.zeros(n, dtype=bool)
    special[[0, -1]] = True
    data = AttentionData(out.attentions, tokens, special_mask=special, name="encoder")
    del out, model
    gc.collect()
    return data


def notebook_state_bytes(widget: Any) -> int:
    """Bytes of the widget state a saved notebook carries for this view (base64 buffers, no JS)."""
    from ipywidgets.embed import dependency_state, embed_data

    state = embed_data([widget], drop_defaults=True, state=dependency_state([widget], drop_defaults=True))["manager_state"]
    for model in state["state"].values():
        model["state"].pop("_esm", None)
        model["state"].pop("_css", None)
    return len(json.dumps(state))


def bertviz_page(data: AttentionData, path: Path) -> float:
    """Writes BertViz's head-view page for the same weights; returns the seconds it took."""
    from bertviz import head_view

    t0 = time.perf_counter()
    attention = tuple(torch.from_numpy(layer[None]) for layer in data.attention)
    page = head_view(attention, data.tokens, html_action="return").data
    path.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{page}</body></html>", encoding="utf-8")
    return time.perf_counter() - t0


def serve_offline(page: Any, d3: Path | None) -> None:
    """Routes BertViz's CDN URLs to local files; every other non-local request fails."""
    files = {**CDN, **({"d3": d3} if d3 else {})}

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(LOCAL_PREFIXES):
            return r.continue_()
        for key, path in files.items():
            if key in url and path.exists():
                return r.fulfill(path=str(path), content_type="application/javascript")
        return r.abort()

    page.route("**/*", route)


def thread_ms(cdp: Any) -> float:
    """CPU milliseconds used so far by the page's main thread."""
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return metrics["ThreadTime"] * 1000


def time_ours(browser: Any, path: Path, repeat: int, timeout_s: float) -> dict[str, Any]:
    paints: list[float] = []
    cpus: list[float] = []
    switches: list[float] = []
    lines = None
    for k in range(repeat):
        ctx = browser.new_context(viewport={"width": 1200, "height": 1000})
        page = ctx.new_page()
        serve_offline(page, None)
        cdp = ctx.new_cdp_session(page)
        cdp.send("Performance.enable")
        try:
            page.goto(path.as_uri(), timeout=timeout_s * 1000, wait_until="commit")
            page.wait_for_selector("[data-dv-drawn=true]", timeout=timeout_s * 1000, state="attached")
            cpus.append(thread_ms(cdp))
            paints.append(float(page.get_attribute(".dv-root", "data-dv-drawn-at")))
            lines = page.get_attribute(".dv-root", "data-dv-lines")
            if k == 0 and page.query_selector(".dv-att-layer:visible"):
                page.wait_for_timeout(1000)  # let the garbage of the page load be collected first
                for layer in [*range(1, 12), *range(1, 12)]:
                    switches.append(page.evaluate(SWITCH, [".dv-att-layer", layer]))
        except Exception as exc:
            print(f"  ours {path.name}: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
        finally:
            ctx.close()
    return {
        "paint": (statistics.median(paints), min(paints)) if paints else None,
        "cpu": statistics.median(cpus) if cpus else None,
        "switch": (statistics.median(switches), min(switches)) if switches else None,
        "lines": lines,
    }


def time_bertviz(browser: Any, path: Path, d3: Path | None, timeout_s: float) -> dict[str, Any]:
    ctx = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = ctx.new_page()
    serve_offline(page, d3)
    page.add_init_script(BERTVIZ_PROBE)
    cdp = ctx.new_cdp_session(page)
    cdp.send("Performance.enable")
    out: dict[str, Any] = {"paint": None, "cpu": None, "switch": None, "lines": None}
    try:
        page.goto(path.as_uri(), timeout=timeout_s * 1000, wait_until="commit")
        page.wait_for_function("() => window.__bvDrawn !== undefined", timeout=timeout_s * 1000, polling=200)
        out["cpu"] = thread_ms(cdp)
        paint = page.evaluate("() => window.__bvDrawn")
        out["paint"] = (paint, paint)
        out["lines"] = str(page.evaluate("() => document.querySelectorAll('[id^=bertviz] #vis svg line').length"))
        switches = [page.evaluate(SWITCH, ["[id^=bertviz] #layer", layer]) for layer in (1, 4)]
        out["switch"] = (statistics.median(switches), min(switches))
    except Exception as exc:
        print(f"  bertviz {path.name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", file=sys.stderr)
    finally:
        ctx.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, nargs="+", default=[128, 512, 2048])
    ap.add_argument("--repeat", type=int, default=3, help="page loads per view (median first paint)")
    ap.add_argument("--bertviz-max-tokens", type=int, default=128, help="build/time BertViz pages up to this length")
    ap.add_argument("--bertviz-vendor", type=Path, default=Path("/tmp/bertviz_vendor"), help="folder with node_modules/d3 (d3@5.7.0)")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for a page to draw")
    ap.add_argument("--top-k", default="auto", help="our views' top_k: 'auto' (dense up to 40M weights) or keys per query")
    args = ap.parse_args()
    torch.set_num_threads(1)
    top_k = args.top_k if args.top_k == "auto" else int(args.top_k)
    from playwright.sync_api import sync_playwright

    try:
        import bertviz  # noqa: F401

        have_bertviz = True
    except ImportError:
        have_bertviz = False
    d3 = args.bertviz_vendor / "node_modules/d3/dist/d3.min.js"
    d3 = d3 if d3.exists() else None
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    per_weight: float | None = None
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for n in args.tokens:
            t0 = time.perf_counter()
            data = bert_base_attention(n)
            weights = int(np.prod(data.shape))
            print(f"{n} tokens: model ran in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
            for cls in (HeadView, ModelView):
                t0 = time.perf_counter()
                view = cls(data, title=f"{cls.__name__} {n}", top_k=top_k)
                built = time.perf_counter() - t0
                path = Path(tmp) / f"{cls.__name__}_{n}.html"
                view.save_html(path)
                state = notebook_state_bytes(view)
                timing = time_ours(browser, path, args.repeat, args.timeout)
                rows.append({"n": n, "tool": f"ours {cls.__name__}", "bytes": path.stat().st_size, "state": state,
                             "build": built, **timing, "mode": view.stacks[0]["mode"], "est": False})  # fmt: skip
                path.unlink()
                del view
                gc.collect()
            if have_bertviz and n <= args.bertviz_max_tokens:
                path = Path(tmp) / f"bertviz_{n}.html"
                built = bertviz_page(data, path)
                per_weight = path.stat().st_size / weights
                timing = time_bertviz(browser, path, d3, args.timeout)
                rows.append({"n": n, "tool": "BertViz head_view", "bytes": path.stat().st_size, "state": None,
                             "build": built, **timing, "mode": "JSON", "est": False})  # fmt: skip
                path.unlink()
            elif per_weight is not None:
                rows.append({"n": n, "tool": "BertViz head_view", "bytes": per_weight * weights, "state": None, "build": None,
                             "paint": None, "cpu": None, "switch": None, "lines": None, "mode": "JSON", "est": True})  # fmt: skip
            del data
            gc.collect()
        browser.close()

    def ms(v: tuple[float, float] | None) -> str:
        return f"{v[0]:.0f} ({v[1]:.0f})" if v is not None else "no draw"

    print(
        f"\nAttention views, BERT-base shape (12 layers x 12 heads), headless Chromium, network blocked; "
        f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after on {os.cpu_count()} cores"
    )
    if not have_bertviz:
        print("BertViz is not installed here: pip install --no-deps bertviz to compare")
    if d3 is None:
        print(f"d3 5.7.0 not found under {args.bertviz_vendor}: BertViz pages cannot draw offline (npm install --prefix DIR d3@5.7.0)")
    print(f"{'tokens':>6} | {'view':<18} | {'transport':<9} | {'saved MB':>9} | {'notebook MB':>11} | {'first paint ms':>15} | {'paint CPU':>9} | {'switch ms':>11} | {'lines':>6}")
    for r in rows:
        saved = f"{r['bytes'] / 1e6:8.1f}" + ("*" if r["est"] else " ")
        nb = f"{r['state'] / 1e6:11.1f}" if r["state"] is not None else f"{'-':>11}"
        paint = "not built" if r["est"] else ms(r["paint"])
        switch = "-" if r["est"] or r["switch"] is None else ms(r["switch"])
        cpu = f"{r['cpu']:.0f}" if r.get("cpu") is not None else "-"
        print(f"{r['n']:>6} | {r['tool']:<18} | {r['mode']:<9} | {saved} | {nb} | {paint:>15} | {cpu:>9} | {switch:>11} | {r['lines'] or '-':>6}")
    print("times: median (min). * estimated from the bytes per weight of the largest BertViz page built (JSON from tolist()).")
    k = "16 (beyond 40M weights)" if top_k == "auto" else str(top_k)
    print(f"ours: uint8 weights; 'top_k' = the {k} strongest keys per query and head are kept.")


if __name__ == "__main__":
    main()
