// GateView: a GRU's or LSTM's gates and states over one sequence. Mirrors
// deepvis_widgets/widgets/gate_view.py.
//
// One units x steps heatmap per component, each in its own hue (gates from
// white at 0 to the hue at 1; states from grey below 0 through white to the
// hue above), an optional input line above them, a crosshair and tooltip
// across all of them, and the clicked unit's components as lines below.

import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { setupCanvas } from "./lib/canvas";
import { decode, type Encoded } from "./lib/codec";
import { formatValue } from "./lib/colors";
import { Tooltip, h } from "./lib/dom";
import { showToken } from "./lib/tokens";

export interface GateViewTraits extends BaseTraits {
  cell_type: string;
  components: string[];
  labels: Record<string, string>;
  kinds: Record<string, "gate" | "state">;
  hues: Record<string, string>;
  equation: string;
  n_steps: number;
  n_units: number;
  caption: string;
  _arrays: Record<string, Encoded>;
  tokens: string[];
  inputs: Encoded | Record<string, never>;
  input_lines: number[];
  units: number[];
  unit: number | null;
}

const LABEL_W = 150;
const NEG: [number, number, number] = [82, 82, 82];

function rgb(hex: string): [number, number, number] {
  const m = /^#?([0-9a-f]{6})$/i.exec(hex.trim());
  if (!m) return [49, 130, 189];
  const n = parseInt(m[1], 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function build(ctx: ViewContext<GateViewTraits>): void {
  const { model, body, disposer } = ctx;
  const T = model.get("n_steps");
  const units = model.get("units");
  const U = units.length;
  const names = model.get("components");
  const kinds = model.get("kinds");
  const labels = model.get("labels");
  const hues = model.get("hues");
  const tokens = model.get("tokens") ?? [];
  const arrays: Record<string, Float32Array> = {};
  const scaleOf: Record<string, number> = {};
  for (const n of names) {
    const a = decode(model.get("_arrays")[n]).values as Float32Array;
    if (a.length !== T * U) throw new RangeError(`_arrays.${n}: expected ${T} x ${U} values, got ${a.length}`);
    arrays[n] = a;
    let m = 0;
    for (let i = 0; i < a.length; i++) if (Math.abs(a[i]) > m) m = Math.abs(a[i]);
    scaleOf[n] = kinds[n] === "gate" ? 1 : Math.max(1, m);
  }
  const inPayload = model.get("inputs");
  const inputs = inPayload && "buffer" in inPayload ? (decode(inPayload as Encoded).values as Float32Array) : null;

  const cw = T <= 900 ? Math.max(1, Math.min(12, Math.floor(900 / T))) : 1;
  const rh = Math.max(2, Math.min(8, Math.floor(240 / Math.max(U, 1))));
  const W = T * cw;
  const HM = U * rh;

  // --- DOM --------------------------------------------------------------------------------------
  body.append(h("div", { class: "dv-gate-caption" }, model.get("caption")), h("div", { class: "dv-gate-eq" }, model.get("equation")));
  const grid = h("div", { class: "dv-gate-grid" });
  const stack = h("div", { class: "dv-gate-stack" }, grid);
  const cursor = h("div", { class: "dv-gate-cursor" });
  cursor.style.display = "none";
  const plotArea = h("div", { class: "dv-gate-plots" });
  stack.append(cursor);
  body.append(h("div", { class: "dv-gate-scroll" }, stack), plotArea);
  const tooltip = new Tooltip(stack);
  grid.style.gridTemplateColumns = `${LABEL_W}px ${W}px`;

  let inputCanvas: HTMLCanvasElement | null = null;
  if (inputs) {
    inputCanvas = h("canvas", { class: "dv-gate-input", role: "img", "aria-label": "input per step" });
    grid.append(h("div", { class: "dv-gate-label" }, "input x_t"), inputCanvas);
  }
  const canvases: Record<string, HTMLCanvasElement> = {};
  const sources: Record<string, HTMLCanvasElement> = {};
  for (const n of names) {
    const sw = h("span", { class: "dv-gate-swatch" });
    sw.style.background = hues[n];
    const range = kinds[n] === "gate" ? "0 … 1" : `−${formatValue(scaleOf[n])} … ${formatValue(scaleOf[n])}`;
    const label = h("div", { class: "dv-gate-label" }, sw, h("span", {}, labels[n]), h("span", { class: "dv-gate-range" }, range));
    const cv = h("canvas", { class: "dv-gate-heat", "data-component": n, role: "img", "aria-label": `${labels[n]}: units x steps` });
    canvases[n] = cv;
    grid.append(label, cv);
    // One pixel per (step, unit), drawn scaled.
    const src = document.createElement("canvas");
    src.width = Math.max(T, 1);
    src.height = Math.max(U, 1);
    const sctx = src.getContext("2d")!;
    const img = sctx.createImageData(src.width, src.height);
    const [hr, hg, hb] = rgb(hues[n]);
    const a = arrays[n];
    const m = scaleOf[n];
    for (let t = 0; t < T; t++) {
      for (let u = 0; u < U; u++) {
        const v = a[t * U + u];
        const o = (u * T + t) * 4;
        let f: number;
        let c: [number, number, number];
        if (v !== v) {
          img.data[o] = img.data[o + 1] = img.data[o + 2] = 200;
          img.data[o + 3] = 255;
          continue;
        }
        if (kinds[n] === "gate" || v >= 0) {
          f = Math.max(0, Math.min(1, v / m));
          c = [hr, hg, hb];
        } else {
          f = Math.min(1, -v / m);
          c = NEG;
        }
        img.data[o] = Math.round(255 + (c[0] - 255) * f);
        img.data[o + 1] = Math.round(255 + (c[1] - 255) * f);
        img.data[o + 2] = Math.round(255 + (c[2] - 255) * f);
        img.data[o + 3] = 255;
      }
    }
    sctx.putImageData(img, 0, 0);
    sources[n] = src;
  }
  // Step axis: token labels when they fit, else step numbers.
  const axis = h("div", { class: "dv-gate-axis" });
  axis.style.width = `${W}px`;
  if (tokens.length === T && cw >= 8) {
    tokens.forEach((tok, t) => {
      const s = h("span", { class: "dv-gate-tok", "data-step": t }, showToken(tok));
      s.style.width = `${cw}px`;
      axis.append(s);
    });
  } else {
    const every = Math.max(1, Math.ceil(60 / cw / 10) * 10);
    for (let t = 0; t < T; t += every) {
      const s = h("span", { class: "dv-gate-tick" }, String(t));
      s.style.left = `${t * cw}px`;
      axis.append(s);
    }
  }
  grid.append(h("div", { class: "dv-gate-label dv-gate-steps" }, tokens.length === T && cw >= 8 ? "input" : "step"), axis);

  const drawHeats = () => {
    const sel = model.get("unit");
    const row = sel === null || sel === undefined ? -1 : units.indexOf(sel);
    const accent = ctx.cssVar("--dv-accent", "#1976d2");
    for (const n of names) {
      const cv = canvases[n];
      const dpr = setupCanvas(cv, W, HM);
      const c = cv.getContext("2d")!;
      c.setTransform(dpr, 0, 0, dpr, 0, 0);
      c.imageSmoothingEnabled = false;
      c.drawImage(sources[n], 0, 0, W, HM);
      if (row >= 0) {
        c.strokeStyle = accent;
        c.lineWidth = 1;
        c.strokeRect(0.5, row * rh - 0.5, W - 1, rh + 1);
      }
    }
  };

  const drawInputs = () => {
    if (!inputs || !inputCanvas) return;
    const H = 64;
    const dpr = setupCanvas(inputCanvas, W, H);
    const c = inputCanvas.getContext("2d")!;
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of [...inputs, ...model.get("input_lines")]) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (!(hi > lo)) hi = lo + 1;
    const y = (v: number) => 4 + (1 - (v - lo) / (hi - lo)) * (H - 8);
    c.strokeStyle = ctx.cssVar("--dv-fg2", "#888");
    c.setLineDash([3, 3]);
    for (const v of model.get("input_lines")) {
      c.beginPath();
      c.moveTo(0, y(v));
      c.lineTo(W, y(v));
      c.stroke();
    }
    c.setLineDash([]);
    c.strokeStyle = ctx.cssVar("--dv-fg", "#222");
    c.lineWidth = 1.2;
    c.beginPath();
    for (let t = 0; t < T; t++) {
      const xx = (t + 0.5) * cw;
      if (t === 0) c.moveTo(xx, y(inputs[t]));
      else c.lineTo(xx, y(inputs[t]));
    }
    c.stroke();
  };

  const drawUnit = () => {
    const sel = model.get("unit");
    plotArea.replaceChildren();
    if (sel === null || sel === undefined) {
      plotArea.append(h("div", { class: "dv-gate-hint" }, "Click a unit in any heatmap to plot its gates and states over time."));
      return;
    }
    const row = units.indexOf(sel);
    if (row < 0) return;
    const PW = Math.max(W, 360);
    const H = 150;
    const chart = h("canvas", { class: "dv-gate-unit", role: "img", "aria-label": `unit ${sel} over time` });
    const legend = h("div", { class: "dv-gate-legend" });
    plotArea.append(h("div", { class: "dv-gate-unit-title" }, `Unit ${sel} over time`), chart, legend);
    const dpr = setupCanvas(chart, PW + 40, H);
    const c = chart.getContext("2d")!;
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    const lo = Math.min(0, ...names.map((n) => (kinds[n] === "gate" ? 0 : -scaleOf[n])));
    const hi = Math.max(1, ...names.map((n) => scaleOf[n]));
    const y = (v: number) => 6 + (1 - (v - lo) / (hi - lo)) * (H - 18);
    c.font = "10px sans-serif";
    c.fillStyle = ctx.cssVar("--dv-fg2", "#888");
    c.strokeStyle = ctx.cssVar("--dv-border", "#ccc");
    for (const v of [lo, 0, 1, hi]) {
      c.beginPath();
      c.moveTo(40, y(v));
      c.lineTo(40 + PW, y(v));
      c.stroke();
      c.fillText(formatValue(v), 2, y(v) + 3);
    }
    for (const n of names) {
      c.strokeStyle = hues[n];
      c.lineWidth = n === "h" ? 2 : 1.3;
      c.beginPath();
      for (let t = 0; t < T; t++) {
        const xx = 40 + ((t + 0.5) / T) * PW;
        const v = arrays[n][t * U + row];
        if (t === 0) c.moveTo(xx, y(v));
        else c.lineTo(xx, y(v));
      }
      c.stroke();
      const sw = h("span", { class: "dv-gate-swatch" });
      sw.style.background = hues[n];
      legend.append(h("span", { class: "dv-gate-legend-item" }, sw, labels[n]));
    }
  };

  const hit = (ev: MouseEvent, cv: HTMLCanvasElement): [number, number] | null => {
    const r = cv.getBoundingClientRect();
    const t = Math.floor(((ev.clientX - r.left) / r.width) * T);
    const row = Math.floor(((ev.clientY - r.top) / r.height) * U);
    return t >= 0 && t < T && row >= 0 && row < U ? [t, row] : null;
  };
  for (const n of names) {
    const cv = canvases[n];
    disposer.listen(cv, "mousemove", ctx.guard((ev: MouseEvent) => {
      const at = hit(ev, cv);
      if (!at) return tooltip.hide();
      const [t, row] = at;
      const sr = stack.getBoundingClientRect();
      const gr = grid.getBoundingClientRect();
      cursor.style.display = "block";
      cursor.style.left = `${gr.left - sr.left + LABEL_W + (t + 0.5) * cw}px`;
      const rows: [string, string][] = [["step", tokens.length === T ? `${t}: ${showToken(tokens[t])}` : String(t)]];
      if (inputs) rows.push(["input", formatValue(inputs[t])]);
      rows.push(["unit", String(units[row])]);
      for (const m of names) rows.push([labels[m], formatValue(arrays[m][t * U + row])]);
      tooltip.show(rows, ev.clientX - sr.left, ev.clientY - sr.top);
    }));
    disposer.listen(cv, "mouseleave", () => {
      tooltip.hide();
      cursor.style.display = "none";
    });
    disposer.listen(cv, "click", ctx.guard((ev: MouseEvent) => {
      const at = hit(ev, cv);
      if (!at) return;
      model.set("unit", units[at[1]]);
      model.save_changes();
      drawHeats();
      drawUnit();
    }));
  }
  ctx.on("change:unit", ctx.guard(() => {
    drawHeats();
    drawUnit();
  }));

  ctx.setExporter("png", () => {
    const k = 2;
    const pad = 8;
    const inH = inputs ? 64 + 4 : 0;
    const out = document.createElement("canvas");
    const Wt = LABEL_W + W + 2 * pad;
    const Ht = inH + names.length * (HM + 4) + 2 * pad;
    out.width = Wt * k;
    out.height = Ht * k;
    const o = out.getContext("2d")!;
    o.scale(k, k);
    o.fillStyle = ctx.cssVar("--dv-bg", "#fff");
    o.fillRect(0, 0, Wt, Ht);
    o.fillStyle = ctx.cssVar("--dv-fg", "#222");
    o.font = "11px sans-serif";
    o.textBaseline = "middle";
    let yy = pad;
    if (inputs && inputCanvas) {
      o.fillText("input x_t", pad, yy + 32);
      o.drawImage(inputCanvas, pad + LABEL_W, yy, W, 64);
      yy += inH;
    }
    for (const n of names) {
      o.fillText(labels[n], pad, yy + HM / 2);
      o.imageSmoothingEnabled = false;
      o.drawImage(sources[n], pad + LABEL_W, yy, W, HM);
      yy += HM + 4;
    }
    return out;
  });

  drawInputs();
  drawHeats();
  drawUnit();
  ctx.markDrawn();
}

export default defineView<GateViewTraits>("gate_view", build);
