// LogitLens view. Mirrors deepvis_widgets/widgets/logit_lens.py.
//
// A positions x layers grid on one canvas, coloured by the rank (log scale) or
// probability of the next token after each layer; hover lists the top-k
// candidates, clicking a column plots the watched tokens' ranks there.

import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { setupCanvas } from "./lib/canvas";
import { decode, type Encoded } from "./lib/codec";
import { formatValue, lut } from "./lib/colors";
import { Tooltip, h } from "./lib/dom";
import { showToken } from "./lib/tokens";

export interface LogitLensTraits extends BaseTraits {
  tokens: string[];
  n_prompt: number;
  layer_names: string[];
  target_ids: Encoded;
  ranks: Encoded;
  probs: Encoded;
  top_ids: Encoded;
  top_probs: Encoded;
  vocab: Record<string, string>;
  watched: { token: string; id: number; ranks: Encoded }[];
  position: number | null;
  color_by: "rank" | "probability";
}

const CELL_W = 46;
const CELL_H = 18;
const LINE_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

function build(ctx: ViewContext<LogitLensTraits>): void {
  const { model, body, disposer } = ctx;
  const tokens = model.get("tokens");
  const layers = model.get("layer_names");
  const nPrompt = model.get("n_prompt");
  const vocab = model.get("vocab");
  const ranks = decode(model.get("ranks")).values;
  const probs = decode(model.get("probs")).values;
  const targets = decode(model.get("target_ids")).values;
  const top = decode(model.get("top_ids"));
  const topP = decode(model.get("top_probs")).values;
  const k = top.shape[2];
  const T = tokens.length;
  const L = layers.length;
  if (ranks.length !== T * L) throw new RangeError(`ranks: expected ${L}x${T} values, got ${ranks.length}`);
  const word = (id: number) => vocab[String(id)] ?? `#${id}`;
  let maxRank = 1;
  for (let i = 0; i < ranks.length; i++) if (ranks[i] > maxRank) maxRank = ranks[i];

  // Controls
  const colorSelect = h("select", { class: "dv-select", "aria-label": "colour by" }, h("option", { value: "rank" }, "rank of next token (log)"), h("option", { value: "probability" }, "probability of next token"));
  colorSelect.value = model.get("color_by");
  ctx.toolbar.prepend(h("label", { class: "dv-control" }, "colour: ", colorSelect));

  // Grid: header tokens, row names, canvas, target row.
  const header = h("div", { class: "dv-lens-header" });
  const names = h("div", { class: "dv-lens-names" });
  const canvas = h("canvas", { class: "dv-lens-canvas" });
  const targetRow = h("div", { class: "dv-lens-targets" });
  const plot = h("div", { class: "dv-lens-plot" }, canvas);
  const grid = h("div", { class: "dv-lens-grid" }, h("div", { class: "dv-lens-corner" }, "input →"), header, names, plot, h("div", { class: "dv-lens-corner" }, "next →"), targetRow);
  const watchPanel = h("div", { class: "dv-lens-watch" });
  body.append(h("div", { class: "dv-lens-scroll" }, grid), watchPanel);
  const tooltip = new Tooltip(plot);

  tokens.forEach((tok, j) => {
    const cell = h("div", { class: j >= nPrompt ? "dv-lens-tok dv-lens-generated" : "dv-lens-tok", title: tok }, showToken(tok));
    cell.style.width = `${CELL_W}px`;
    header.append(cell);
    const tgt = h("div", { class: "dv-lens-tok", title: word(targets[j]) }, showToken(word(targets[j])));
    tgt.style.width = `${CELL_W}px`;
    targetRow.append(tgt);
  });
  layers.forEach((name) => {
    const d = h("div", { class: "dv-lens-name" }, name);
    d.style.height = `${CELL_H}px`;
    names.append(d);
  });

  const table = lut("viridis");
  const shade = (li: number, j: number): number => {
    const v = model.get("color_by") === "probability" ? probs[li * T + j] : 1 - Math.log1p(ranks[li * T + j]) / Math.log1p(maxRank);
    return Math.max(0, Math.min(255, Math.round(v * 255)));
  };

  const draw = () => {
    const W = T * CELL_W;
    const H = L * CELL_H;
    const dpr = setupCanvas(canvas, W, H);
    const c = canvas.getContext("2d")!;
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.font = "10px sans-serif";
    c.textAlign = "center";
    c.textBaseline = "middle";
    for (let li = 0; li < L; li++) {
      for (let j = 0; j < T; j++) {
        const s = shade(li, j) * 4;
        c.fillStyle = `rgb(${table[s]},${table[s + 1]},${table[s + 2]})`;
        c.fillRect(j * CELL_W, li * CELL_H, CELL_W - 1, CELL_H - 1);
        c.fillStyle = s > 150 * 4 ? "#111" : "#fff";
        const label = model.get("color_by") === "probability" ? probs[li * T + j].toFixed(2) : String(ranks[li * T + j]);
        c.fillText(label, j * CELL_W + CELL_W / 2, li * CELL_H + CELL_H / 2);
      }
    }
    const pos = model.get("position");
    if (pos !== null && pos !== undefined) {
      c.strokeStyle = ctx.cssVar("--dv-accent", "#1976d2");
      c.lineWidth = 2;
      c.strokeRect(pos * CELL_W + 1, 1, CELL_W - 2, H - 2);
    }
    // Separator between prompt and generated tokens.
    if (nPrompt < T) {
      c.fillStyle = ctx.cssVar("--dv-fg", "#000");
      c.fillRect(nPrompt * CELL_W - 1, 0, 2, H);
    }
  };

  const drawWatch = () => {
    const watched = model.get("watched");
    const pos = model.get("position");
    watchPanel.replaceChildren();
    if (!watched.length || pos === null || pos === undefined) return;
    const title = h("div", { class: "dv-lens-watch-title" }, `Watched tokens at position ${pos} (after "${tokens[pos]}"): rank per layer`);
    const legend = h("div", { class: "dv-lens-legend" });
    const chart = h("canvas", { class: "dv-lens-chart" });
    watchPanel.append(title, chart, legend);
    const W = Math.max(320, Math.min(720, L * 18 + 60));
    const H = 180;
    const dpr = setupCanvas(chart, W, H);
    const c = chart.getContext("2d")!;
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    const left = 48, right = 8, topPad = 8, bottom = 22;
    const series = watched.map((w) => decode(w.ranks).values);
    let worst = 1;
    for (const s of series) for (let li = 0; li < L; li++) worst = Math.max(worst, s[li * T + pos]);
    const x = (li: number) => left + (li / Math.max(L - 1, 1)) * (W - left - right);
    const y = (r: number) => topPad + (Math.log1p(r) / Math.log1p(worst)) * (H - topPad - bottom);
    c.strokeStyle = ctx.cssVar("--dv-border", "#bbb");
    c.fillStyle = ctx.cssVar("--dv-fg2", "#666");
    c.font = "10px sans-serif";
    c.lineWidth = 1;
    for (const r of [0, 10, 100, 1000, 10000]) {
      if (r > worst) break;
      c.beginPath();
      c.moveTo(left, y(r));
      c.lineTo(W - right, y(r));
      c.stroke();
      c.fillText(`rank ${r}`, 2, y(r) + 3);
    }
    c.fillText(layers[0], left, H - 6);
    c.textAlign = "right";
    c.fillText(layers[L - 1], W - right, H - 6);
    c.textAlign = "left";
    series.forEach((s, wi) => {
      c.strokeStyle = LINE_COLORS[wi % LINE_COLORS.length];
      c.lineWidth = 2;
      c.beginPath();
      for (let li = 0; li < L; li++) {
        const px = x(li), py = y(s[li * T + pos]);
        if (li === 0) c.moveTo(px, py);
        else c.lineTo(px, py);
      }
      c.stroke();
      const swatch = h("span", { class: "dv-lens-swatch" });
      swatch.style.background = LINE_COLORS[wi % LINE_COLORS.length];
      legend.append(h("span", { class: "dv-lens-legend-item" }, swatch, `${showToken(watched[wi].token)}: final rank ${s[(L - 1) * T + pos]}`));
    });
  };

  const cellAt = (ev: MouseEvent): [number, number] | null => {
    const r = canvas.getBoundingClientRect();
    const j = Math.floor(((ev.clientX - r.left) / r.width) * T);
    const li = Math.floor(((ev.clientY - r.top) / r.height) * L);
    return j >= 0 && j < T && li >= 0 && li < L ? [li, j] : null;
  };
  disposer.listen(canvas, "mousemove", ctx.guard((ev: MouseEvent) => {
    const cell = cellAt(ev);
    if (!cell) return tooltip.hide();
    const [li, j] = cell;
    const rows: [string, string][] = [
      ["layer", layers[li]],
      ["position", `${j}: ${showToken(tokens[j])} → ${showToken(word(targets[j]))}`],
      ["rank", String(ranks[li * T + j])],
      ["p", formatValue(probs[li * T + j])],
    ];
    for (let q = 0; q < k; q++) {
      const idx = (li * T + j) * k + q;
      rows.push([`top ${q + 1}`, `${showToken(word(top.values[idx]))}  ${formatValue(topP[idx])}`]);
    }
    const pr = plot.getBoundingClientRect();
    tooltip.show(rows, ev.clientX - pr.left, ev.clientY - pr.top);
  }));
  disposer.listen(canvas, "mouseleave", () => tooltip.hide());
  disposer.listen(canvas, "click", ctx.guard((ev: MouseEvent) => {
    const cell = cellAt(ev);
    if (!cell) return;
    model.set("position", cell[1]);
    model.save_changes();
    draw();
    drawWatch();
  }));
  disposer.listen(colorSelect, "change", ctx.guard(() => {
    model.set("color_by", colorSelect.value as "rank" | "probability");
    model.save_changes();
    draw();
  }));
  ctx.on("change:position", ctx.guard(() => { draw(); drawWatch(); }));
  ctx.on("change:color_by", ctx.guard(() => { colorSelect.value = model.get("color_by"); draw(); }));

  ctx.setExporter("png", () => {
    const out = document.createElement("canvas");
    out.width = canvas.width;
    out.height = canvas.height;
    const o = out.getContext("2d")!;
    o.drawImage(canvas, 0, 0);
    return out;
  });
  draw();
  drawWatch();
  ctx.markDrawn();
}

export default defineView<LogitLensTraits>("logit_lens", build);
