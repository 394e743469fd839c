"""Array transport: our binary buffers vs the tolist() JSON other tools send.

For square float32 arrays of 256² ... 2048², side by side in one run:
  encode   time from the array to the saved widget state text (ours: encode_array + base64 in the
           page's JSON; JSON: a.tolist() + json.dumps), i.e. what saving a notebook or page costs
  render   time from navigation start to the drawn canvas in headless Chromium
           (both pages use the same save_html runtime; only the payload differs)
  bytes    size of the saved page, and that size divided by the raw float32 bytes

Usage: python benchmarks/transport.py [--sizes 256 512 1024 2048] [--repeat 3] [--json-timeout 120]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import traitlets as t

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anywidget

import deepvis_widgets as dv
from deepvis_widgets._html import standalone_html
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, LOCAL_PREFIXES

# The baseline view: what a tool that ships `tolist()` JSON must do in the browser
# (flatten nested lists, then draw the same image with one putImageData).
JSON_ESM = """
export default { render({ model, el }) {
  const rows = model.get("data_json");
  const h = rows.length, w = h ? rows[0].length : 0;
  const flat = new Float32Array(h * w);
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < h; i++) { const r = rows[i]; for (let j = 0; j < w; j++) { const v = r[j]; flat[i * w + j] = v; if (v < lo) lo = v; if (v > hi) hi = v; } }
  const c = document.createElement("canvas"); c.width = w; c.height = h;
  const ctx = c.getContext("2d"); const img = ctx.createImageData(w, h); const span = hi - lo || 1;
  for (let k = 0; k < flat.length; k++) { const g = ((flat[k] - lo) / span * 255) | 0; img.data[4*k] = g; img.data[4*k+1] = g; img.data[4*k+2] = g; img.data[4*k+3] = 255; }
  ctx.putImageData(img, 0, 0);
  const root = document.createElement("div"); root.append(c); el.append(root);
  root.dataset.dvDrawnAt = performance.now().toFixed(1); root.dataset.dvDrawn = "true";
} };
"""


class JsonListHeatmap(anywidget.AnyWidget):
    _esm = JSON_ESM
    data_json = t.List().tag(sync=True)


def time_render(browser, path: Path, timeout_s: float) -> float | None:
    ctx = browser.new_context(viewport={"width": 1000, "height": 900})
    page = ctx.new_page()
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(LOCAL_PREFIXES) else r.abort())
    try:
        page.goto(path.as_uri(), timeout=timeout_s * 1000, wait_until="commit")
        page.wait_for_selector("[data-dv-drawn=true]", timeout=timeout_s * 1000, state="attached")
        return float(page.get_attribute("[data-dv-drawn=true]", "data-dv-drawn-at"))
    except Exception:
        return None
    finally:
        ctx.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json-timeout", type=float, default=120.0)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    rows = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for n in args.sizes:
            a = np.random.default_rng(n).normal(size=(n, n)).astype(np.float32)
            raw = a.nbytes
            ours_path = Path(tmp) / f"ours_{n}.html"
            json_path = Path(tmp) / f"json_{n}.html"
            t0 = time.perf_counter()
            for _ in range(args.repeat):
                ours_path.write_text(standalone_html([dv.ArrayHeatmap(a)]))
            enc_ours = (time.perf_counter() - t0) / args.repeat
            t0 = time.perf_counter()
            json_path.write_text(standalone_html([JsonListHeatmap(data_json=a.tolist())]))
            enc_json = time.perf_counter() - t0

            ours_ms = [time_render(browser, ours_path, 60) for _ in range(args.repeat)]
            json_ms = time_render(browser, json_path, args.json_timeout)
            ours_ok = [m for m in ours_ms if m is not None]
            rows.append(
                {
                    "n": n,
                    "enc_ours": enc_ours * 1e3,
                    "enc_json": enc_json * 1e3,
                    "render_ours": statistics.median(ours_ok) if ours_ok else None,
                    "render_json": json_ms,
                    "bytes_ours": ours_path.stat().st_size,
                    "bytes_json": json_path.stat().st_size,
                    "raw": raw,
                }
            )
            json_path.unlink()
            print(f"done {n}x{n}", file=sys.stderr, flush=True)
        browser.close()

    def ms(v: float | None) -> str:
        return f"{v:9.1f}" if v is not None else "  no draw"

    print(f"\nArray transport, float32, {args.repeat} runs (median render) on headless Chromium; JSON = tolist() as other tools send")
    print(f"{'size':>10} | {'encode ms':>9} {'JSON':>9} {'x':>6} | {'render ms':>9} {'JSON':>9} {'x':>6} | {'page MB':>8} {'JSON':>8} {'x':>6} | {'ours/raw':>8} {'JSON/raw':>8}")
    for r in rows:
        rr = r["render_json"] / r["render_ours"] if r["render_json"] and r["render_ours"] else float("nan")
        print(
            f"{r['n']:>5}x{r['n']:<4} | {r['enc_ours']:9.1f} {r['enc_json']:9.1f} {r['enc_json'] / r['enc_ours']:6.1f} |"
            f" {ms(r['render_ours'])} {ms(r['render_json'])} {rr:6.1f} |"
            f" {r['bytes_ours'] / 1e6:8.2f} {r['bytes_json'] / 1e6:8.1f} {r['bytes_json'] / r['bytes_ours']:6.1f} |"
            f" {r['bytes_ours'] / r['raw']:8.3f} {r['bytes_json'] / r['raw']:8.2f}"
        )


if __name__ == "__main__":
    main()
