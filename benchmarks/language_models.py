"""Language-model views on SmolLM2-135M (CPU, one thread): compute time and saved bytes.

For 64 and 512 tokens of standard-library text: logit-lens time (all 30 layers, top-5, two watched
tokens), NMF time (all layers' MLP neurons, 8 factors) and the bytes each view saves with
save_html, next to what the same data would take as tolist() JSON.

Usage: python benchmarks/language_models.py [--tokens 64 512]
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepvis_widgets.compute.logit_lens import logit_lens
from deepvis_widgets.compute.neuron_factors import neuron_factors
from deepvis_widgets.examples.language import smollm2
from deepvis_widgets.widgets.logit_lens import LogitLens
from deepvis_widgets.widgets.neuron_factors import NeuronFactors


def text_of(tokenizer, n: int) -> str:
    """Real text (this repository's and the stdlib's Python source) cut to ``n`` tokens."""
    src = inspect.getsource(json) + inspect.getsource(argparse)
    ids = tokenizer(src, add_special_tokens=False)["input_ids"][:n]
    return tokenizer.decode(ids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, nargs="+", default=[64, 512])
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, tok = smollm2()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.tokens:
            text = text_of(tok, n)
            t0 = time.perf_counter()
            lens = logit_lens(model, tok, text, watch=[" the", " def"], top_k=5)
            t_lens = time.perf_counter() - t0
            t0 = time.perf_counter()
            nmf = neuron_factors(model, tok, [text], n_components=8)
            t_nmf = time.perf_counter() - t0
            p_lens = Path(tmp) / "lens.html"
            LogitLens(lens).save_html(p_lens)
            p_nmf = Path(tmp) / "nmf.html"
            NeuronFactors(nmf).save_html(p_nmf)
            json_lens = len(json.dumps([lens.ranks.tolist(), lens.probs.tolist(), lens.top_ids.tolist(), lens.top_probs.tolist()]))
            json_nmf = len(json.dumps(nmf.factors.tolist()))
            rows.append((len(lens.tokens), t_lens, t_nmf, p_lens.stat().st_size, json_lens, p_nmf.stat().st_size, json_nmf,
                         nmf.reconstruction_error))
            print(f"done {n} tokens", file=sys.stderr, flush=True)
    print("\nSmolLM2-135M on CPU (1 thread); page = save_html file (data + ~30 kB of view code); JSON = the arrays as tolist()")
    print(f"{'tokens':>6} | {'lens s':>7} {'NMF s':>7} | {'lens page kB':>12} {'JSON kB':>8} | {'NMF page kB':>11} {'JSON kB':>8} | {'NMF err':>7}")
    for n, tl, tn, pl, jl, pn, jn, err in rows:
        print(f"{n:>6} | {tl:7.1f} {tn:7.1f} | {pl / 1e3:12.1f} {jl / 1e3:8.1f} | {pn / 1e3:11.1f} {jn / 1e3:8.1f} | {err:7.3f}")


if __name__ == "__main__":
    main()
