// CellOverText view (Karpathy et al. 2015). Mirrors deepvis_widgets/widgets/cell_text.py.
//
// The shown tokens are text spans (bounded by the widget: at most 20,000),
// their background coloured by one cell's state, red above 0 and blue below,
// scaled by that cell's largest magnitude over the text. A list ranks cells
// by their correlation with an indicator; clicking one recolours the text.

import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { drawLegend, setupCanvas } from "./lib/canvas";
import { decode, type Encoded } from "./lib/codec";
import { formatValue, lut, makeScale, toIndex } from "./lib/colors";
import { Tooltip, h, setText } from "./lib/dom";
import { cellName } from "./lib/hidden_states";
import { showToken } from "./lib/tokens";

export interface CellOverTextTraits extends BaseTraits {
  tokens: string[];
  start: number;
  n_cells: number;
  cell_labels: string[];
  ranked: { cell: number; score: number }[];
  score_name: "r" | "std";
  ranked_over: string;
  indicator_name: string;
  indicator: Encoded | Record<string, never>;
  _columns: number[];
  _values: Encoded;
  cell: number;
  color_by: "cell" | "indicator";
}

const WRAP_PX = 900;

function build(ctx: ViewContext<CellOverTextTraits>): void {
  const { model, body, disposer } = ctx;
  const tokens = model.get("tokens");
  const T = tokens.length;
  const offset = model.get("start");
  const labels = model.get("cell_labels") ?? [];
  const name = (c: number) => cellName(labels, c);
  const indPayload = model.get("indicator");
  const indicator = indPayload && "buffer" in indPayload ? (decode(indPayload as Encoded).values as Float32Array) : null;
  let values: Float32Array = new Float32Array(0);
  let columns: number[] = [];
  const loadValues = () => {
    values = decode(model.get("_values")).values as Float32Array;
    columns = model.get("_columns");
    if (values.length !== T * columns.length) throw new RangeError(`_values: expected ${T} x ${columns.length} values, got ${values.length}`);
  };
  loadValues();

  // --- DOM ------------------------------------------------------------------------------------
  const list = h("div", { class: "dv-cot-list", role: "listbox", "aria-label": "cells ranked" });
  const cellInput = h("input", { class: "dv-cot-input", type: "number", min: "0", max: String(model.get("n_cells") - 1), step: "1", "aria-label": "cell" });
  const colorSelect = h("select", { class: "dv-select", "aria-label": "colour by" }, h("option", { value: "cell" }, "the cell"));
  if (indicator) colorSelect.append(h("option", { value: "indicator" }, `the indicator (${model.get("indicator_name")})`));
  ctx.toolbar.prepend(h("label", { class: "dv-control" }, "colour by", colorSelect), h("label", { class: "dv-control" }, "cell", cellInput));
  const legend = h("div", { class: "dv-cot-legend" });
  const caption = h("div", { class: "dv-cot-caption" });
  const text = h("div", { class: "dv-cot-text" });
  const note = h("div", { class: "dv-cot-note" });
  const side = h("div", { class: "dv-cot-side" },
    h("div", { class: "dv-cot-list-head" }, indicator ? `cells by |r| with ${model.get("indicator_name")}` : "cells by std over the text"),
    h("div", { class: "dv-cot-list-sub" }, model.get("ranked_over")),
    list);
  const main = h("div", { class: "dv-cot-main" }, caption, note, text);
  body.append(h("div", { class: "dv-cot-layout" }, side, main, legend));
  const tooltip = new Tooltip(main);

  // Running text: a newline shows as ⏎ and breaks the line.
  const spans = tokens.map((tok, i) => {
    const s = h("span", { class: "dv-cot-tok", "data-i": i });
    tok.split("\n").forEach((part, k) => {
      if (k > 0) s.append("⏎", h("br"));
      s.append(part);
    });
    if (!tok) s.append("∅");
    return s;
  });
  text.append(...spans);

  const maxScore = Math.max(1e-9, ...model.get("ranked").map((r) => Math.abs(r.score)));
  const items = model.get("ranked").map((r, rank) => {
    const bar = h("span", { class: "dv-cot-bar" });
    bar.style.width = `${Math.round((Math.abs(r.score) / maxScore) * 48)}px`;
    bar.classList.toggle("dv-cot-neg", r.score < 0);
    const score = model.get("score_name") === "r" ? `r ${r.score >= 0 ? "+" : "−"}${Math.abs(r.score).toFixed(2)}` : `std ${formatValue(r.score)}`;
    const b = h("button", { class: "dv-cot-item", type: "button", role: "option", "data-cell": r.cell, "data-rank": rank },
      h("span", { class: "dv-cot-name" }, name(r.cell)), bar, h("span", { class: "dv-cot-score" }, score));
    disposer.listen(b, "click", ctx.guard(() => {
      model.set("cell", r.cell);
      model.save_changes();
      paint();
    }));
    list.append(b);
    return b;
  });

  const rdbu = lut("rdbu");
  let scaleMax = 1;
  const series = (): Float32Array | null => {
    if (model.get("color_by") === "indicator" && indicator) return indicator;
    const k = columns.indexOf(model.get("cell"));
    if (k < 0) return null;
    const out = new Float32Array(T);
    for (let i = 0; i < T; i++) out[i] = values[i * columns.length + k];
    return out;
  };

  const paint = () => {
    const cell = model.get("cell");
    cellInput.value = String(cell);
    colorSelect.value = model.get("color_by");
    items.forEach((b) => b.classList.toggle("dv-cot-active", Number(b.dataset.cell) === cell));
    const s = series();
    const byIndicator = model.get("color_by") === "indicator" && indicator;
    if (!s) {
      setText(note, `${name(cell)} was not saved with this page (it holds the ${columns.length} listed cells); run the notebook to show any cell.`);
      note.style.display = "";
      for (const sp of spans) sp.style.background = "";
      text.dataset.cell = "";
      return;
    }
    note.style.display = "none";
    let m = 0;
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < T; i++) {
      const v = s[i];
      if (v !== v) continue;
      m = Math.max(m, Math.abs(v));
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    scaleMax = m || 1;
    // A cell is diverging around 0; an indicator (depths, 0/1 flags) is sequential from its minimum.
    const scale = byIndicator ? makeScale("sequential", Math.min(lo, 0), hi > lo ? hi : lo + 1) : makeScale("diverging", -scaleMax, scaleMax);
    for (let i = 0; i < T; i++) {
      const v = s[i];
      let k = toIndex(v, scale);
      if (byIndicator && k >= 0) k = 128 + Math.floor(k / 2); // white to red
      spans[i].style.background = k < 0 ? "" : `rgba(${rdbu[k * 4]},${rdbu[k * 4 + 1]},${rdbu[k * 4 + 2]},0.9)`;
      spans[i].style.color = k >= 0 && (k < 40 || k > 215) ? "#fff" : "#111";
    }
    text.dataset.cell = byIndicator ? "indicator" : String(cell);
    const ranked = model.get("ranked").find((r) => r.cell === cell);
    setText(caption, byIndicator
      ? `Coloured by the indicator ${model.get("indicator_name")} (white = ${formatValue(Math.min(lo, 0))}, red = ${formatValue(hi)}).`
      : `Coloured by ${name(cell)}: red above 0, blue below, full colour at ±${formatValue(scaleMax)}${ranked ? ` (${model.get("score_name")} = ${formatValue(ranked.score)})` : ""}. Tokens ${offset}–${offset + T - 1}.`);
    const table = new Uint8ClampedArray(256 * 4);
    for (let i = 0; i < 256; i++) {
      const k = byIndicator ? 128 + Math.floor(i / 2) : i;
      table.set(rdbu.subarray(k * 4, k * 4 + 4), i * 4);
    }
    drawLegend(legend, table, scale, 120, formatValue);
  };

  disposer.listen(text, "mousemove", ctx.guard((ev: MouseEvent) => {
    const el = (ev.target as HTMLElement).closest(".dv-cot-tok") as HTMLElement | null;
    if (!el) return tooltip.hide();
    const i = Number(el.dataset.i);
    const k = columns.indexOf(model.get("cell"));
    const rows: [string, string][] = [["token", `${offset + i}: ${showToken(tokens[i])}`]];
    if (k >= 0) rows.push([name(model.get("cell")), formatValue(values[i * columns.length + k])]);
    if (indicator) rows.push([model.get("indicator_name"), formatValue(indicator[i])]);
    const r = main.getBoundingClientRect();
    tooltip.show(rows, ev.clientX - r.left, ev.clientY - r.top);
  }));
  disposer.listen(text, "mouseleave", () => tooltip.hide());
  disposer.listen(cellInput, "change", ctx.guard(() => {
    const c = Number(cellInput.value);
    if (!Number.isInteger(c) || c < 0 || c >= model.get("n_cells")) return;
    model.set("cell", c);
    model.save_changes();
    paint();
  }));
  disposer.listen(cellInput, "keydown", (ev: KeyboardEvent) => ev.stopPropagation());
  disposer.listen(colorSelect, "change", ctx.guard(() => {
    model.set("color_by", colorSelect.value as "cell" | "indicator");
    model.save_changes();
    paint();
  }));
  ctx.on("change:cell", ctx.guard(paint));
  ctx.on("change:color_by", ctx.guard(paint));
  ctx.on("change:_columns", ctx.guard(() => {
    loadValues();
    paint();
  }));

  ctx.setExporter("png", () => {
    // The coloured text, wrapped at WRAP_PX, one monospace cell per character.
    const font = "12px monospace";
    const probe = document.createElement("canvas").getContext("2d")!;
    probe.font = font;
    const cw = probe.measureText("M").width;
    const lineH = 16;
    const perLine = Math.floor(WRAP_PX / cw);
    let col = 0;
    let line = 0;
    const places: [number, number, string, string][] = [];
    tokens.forEach((tok, i) => {
      const bg = spans[i].style.background;
      for (const ch of tok) {
        if (ch === "\n") {
          places.push([col, line, "⏎", bg]);
          col = 0;
          line++;
          continue;
        }
        if (col >= perLine) {
          col = 0;
          line++;
        }
        places.push([col, line, ch, bg]);
        col++;
      }
    });
    const out = document.createElement("canvas");
    const W = WRAP_PX + 16;
    const H = (line + 1) * lineH + 16;
    const dpr = setupCanvas(out, W, H);
    const o = out.getContext("2d")!;
    o.setTransform(dpr, 0, 0, dpr, 0, 0);
    o.fillStyle = "#fff";
    o.fillRect(0, 0, W, H);
    o.font = font;
    o.textBaseline = "middle";
    for (const [cx, ly, ch, bg] of places) {
      if (bg) {
        o.fillStyle = bg;
        o.fillRect(8 + cx * cw, 8 + ly * lineH, cw + 0.5, lineH);
      }
      o.fillStyle = "#111";
      o.fillText(ch, 8 + cx * cw, 8 + ly * lineH + lineH / 2);
    }
    return out;
  });

  paint();
  ctx.markDrawn();
}

export default defineView<CellOverTextTraits>("cell_text", build);
