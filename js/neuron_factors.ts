// NeuronFactors view. Mirrors deepvis_widgets/widgets/neuron_factors.py.
//
// Tokens as text spans coloured by their dominant factor (or one chosen
// factor), and one sparkline per factor over all tokens.

import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { setupCanvas } from "./lib/canvas";
import { decode, type Encoded } from "./lib/codec";
import { formatValue } from "./lib/colors";
import { Tooltip, h } from "./lib/dom";
import { showToken } from "./lib/tokens";

export interface NeuronFactorsTraits extends BaseTraits {
  tokens: string[];
  doc_starts: number[];
  factors: Encoded;
  factor_neurons: string[][];
  reconstruction_error: number;
  factor: number | null;
}

// Categorical hues (Tableau 10), one per factor.
const HUES: [number, number, number][] = [
  [78, 121, 167], [242, 142, 43], [225, 87, 89], [118, 183, 178], [89, 161, 79],
  [237, 201, 72], [176, 122, 161], [255, 157, 167], [156, 117, 95], [186, 176, 172],
];
const hue = (f: number) => HUES[f % HUES.length];

function build(ctx: ViewContext<NeuronFactorsTraits>): void {
  const { model, body, disposer } = ctx;
  const tokens = model.get("tokens");
  const starts = new Set(model.get("doc_starts"));
  const { values: W, shape } = decode(model.get("factors"));
  const [N, K] = shape;
  if (N !== tokens.length) throw new RangeError(`factors: ${N} rows for ${tokens.length} tokens`);
  const maxPer = new Float32Array(K);
  for (let i = 0; i < N; i++) for (let f = 0; f < K; f++) maxPer[f] = Math.max(maxPer[f], W[i * K + f]);

  const legend = h("div", { class: "dv-nmf-factors" });
  const text = h("div", { class: "dv-nmf-text" });
  const note = h("div", { class: "dv-nmf-note" }, `reconstruction error ${formatValue(model.get("reconstruction_error"))} (relative); click a factor to show it alone`);
  body.append(legend, text, note);
  const tooltip = new Tooltip(body);

  // Running text: spaces stay spaces, a newline shows as ⏎ and breaks the line.
  const spans = tokens.map((tok, i) => {
    const s = h("span", { class: "dv-nmf-token", "data-i": i });
    tok.split("\n").forEach((part, k) => {
      if (k > 0) s.append("⏎", h("br"));
      s.append(part);
    });
    if (!tok) s.append("∅");
    return s;
  });
  tokens.forEach((_, i) => {
    if (starts.has(i) && i > 0) text.append(h("div", { class: "dv-nmf-break" }));
    text.append(spans[i]);
  });

  const sparkCanvases: HTMLCanvasElement[] = [];
  const rows: HTMLElement[] = [];
  for (let f = 0; f < K; f++) {
    const [r, g, b] = hue(f);
    const swatch = h("span", { class: "dv-nmf-swatch" });
    swatch.style.background = `rgb(${r},${g},${b})`;
    const spark = h("canvas", { class: "dv-nmf-spark" });
    sparkCanvases.push(spark);
    const row = h("button", { class: "dv-nmf-factor", type: "button", title: model.get("factor_neurons")[f]?.join(", ") ?? "" }, swatch, `factor ${f}`, spark);
    rows.push(row);
    legend.append(row);
    disposer.listen(row, "click", ctx.guard(() => {
      model.set("factor", model.get("factor") === f ? null : f);
      model.save_changes();
      paint();
    }));
  }

  const paint = () => {
    const chosen = model.get("factor");
    for (let i = 0; i < N; i++) {
      let f = chosen ?? 0;
      if (chosen === null || chosen === undefined) {
        for (let q = 1; q < K; q++) if (W[i * K + q] > W[i * K + f]) f = q;
      }
      const a = maxPer[f] > 0 ? W[i * K + f] / maxPer[f] : 0;
      const [r, g, b] = hue(f);
      spans[i].style.background = `rgba(${r},${g},${b},${(0.08 + 0.8 * a).toFixed(3)})`;
      spans[i].dataset.factor = String(f);
    }
    rows.forEach((row, f) => row.classList.toggle("dv-nmf-active", chosen === f));
    sparkCanvases.forEach((c, f) => {
      const w = 160, hgt = 22;
      const dpr = setupCanvas(c, w, hgt);
      const g2 = c.getContext("2d")!;
      g2.setTransform(dpr, 0, 0, dpr, 0, 0);
      const [r, g, b] = hue(f);
      g2.fillStyle = `rgb(${r},${g},${b})`;
      for (let i = 0; i < N; i++) {
        const v = maxPer[f] > 0 ? W[i * K + f] / maxPer[f] : 0;
        const x0 = (i / N) * w;
        g2.fillRect(x0, hgt - v * hgt, Math.max(w / N, 1), v * hgt);
      }
    });
  };

  disposer.listen(text, "mousemove", ctx.guard((ev: MouseEvent) => {
    const t = (ev.target as HTMLElement).closest(".dv-nmf-token") as HTMLElement | null;
    if (!t) return tooltip.hide();
    const i = Number(t.dataset.i);
    const rowsTip: [string, string][] = [["token", `${i}: ${showToken(tokens[i])}`]];
    for (let f = 0; f < K; f++) rowsTip.push([`factor ${f}`, formatValue(W[i * K + f])]);
    const br = body.getBoundingClientRect();
    tooltip.show(rowsTip, ev.clientX - br.left, ev.clientY - br.top);
  }));
  disposer.listen(text, "mouseleave", () => tooltip.hide());
  ctx.on("change:factor", ctx.guard(paint));

  ctx.setExporter("png", () => {
    // The sparklines stacked: the part of this view that is a picture.
    const out = document.createElement("canvas");
    const k = 2;
    out.width = 220 * k;
    out.height = (K * 26 + 8) * k;
    const o = out.getContext("2d")!;
    o.scale(k, k);
    o.fillStyle = ctx.cssVar("--dv-bg", "#fff");
    o.fillRect(0, 0, 220, K * 26 + 8);
    o.font = "11px sans-serif";
    sparkCanvases.forEach((c, f) => {
      o.fillStyle = ctx.cssVar("--dv-fg", "#222");
      o.fillText(`factor ${f}`, 4, 18 + f * 26);
      o.drawImage(c, 56, 4 + f * 26, 160, 22);
    });
    return out;
  });
  paint();
  ctx.markDrawn();
}

export default defineView<NeuronFactorsTraits>("neuron_factors", build);
