// NeuronView. Mirrors deepvis_widgets/widgets/neuron_view.py: for one head
// and one query token, every key's vector, its elementwise product with the
// query, the scaled dot product and the softmax (BertViz's neuron view).
// Vectors arrive as float16; scores and softmax are recomputed here (with the
// causal mask) exactly as the model does: softmax(q . k * scaling).

import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { withBuffers } from "./lib/codec";
import { setupCanvas } from "./lib/canvas";
import { bytesOf, decode, type Encoded } from "./lib/codec";
import { formatValue, lut } from "./lib/colors";
import { Tooltip, h, setText } from "./lib/dom";
import { TokenColumn, displayToken, tokenWidth, type Row } from "./lib/token_column";

interface HeadPayload {
  query: Encoded;
  key: Encoded;
  mask: Encoded | null;
  scaling: number;
  causal: boolean;
  max_error: number | null;
}

export interface NeuronViewTraits extends BaseTraits {
  tokens: string[];
  tokens_k: string[];
  n_layers: number;
  n_heads: number;
  stack_name: string;
  available: [number, number][];
  _heads: Record<string, HeadPayload>;
  layer: number;
  head: number;
  query: number;
}

interface Head {
  q: Float32Array;
  k: Float32Array;
  d: number;
  nq: number;
  nk: number;
  mask: Uint8Array | null;
  scaling: number;
  causal: boolean;
  maxError: number | null;
}

const ROW = 18;
const BAR = 110;
const GAP = 14;
const MAX_VIEW = 560;
const FONT = "12px sans-serif";

function headOf(p: HeadPayload): Head {
  const q = decode(p.query);
  const k = decode(p.key);
  const [nq, d] = q.shape;
  const [nk, dk] = k.shape;
  if (d !== dk) throw new RangeError(`query and key vectors differ in size (${d} vs ${dk})`);
  let mask: Uint8Array | null = null;
  if (p.mask) {
    const m = bytesOf(p.mask.buffer);
    mask = new Uint8Array(m.length);
    for (let i = 0; i < m.length; i++) mask[i] = m[i] > 0 && m[i] !== 255 ? 1 : 0;
  }
  return { q: q.values as Float32Array, k: k.values as Float32Array, d, nq, nk, mask, scaling: p.scaling, causal: p.causal, maxError: p.max_error };
}

function build(ctx: ViewContext<NeuronViewTraits>): void {
  const { model, body, disposer } = ctx;
  const t0 = performance.now();
  const layerSelect = h("select", { class: "dv-att-select dv-nv-layer", "aria-label": "layer" });
  const headSelect = h("select", { class: "dv-att-select dv-nv-head", "aria-label": "head" });
  const queryText = h("span", { class: "dv-nv-query" });
  const controls = h(
    "div",
    { class: "dv-att-controls" },
    h("label", { class: "dv-att-control" }, "Layer", layerSelect),
    h("label", { class: "dv-att-control" }, "Head", headSelect),
    h("span", { class: "dv-att-control" }, "Query", queryText),
  );
  const tokensQ = model.get("tokens");
  const tokensK = model.get("tokens_k");
  const leftW = tokenWidth(tokensQ, FONT, 140) + 12;
  const keyW = tokenWidth(tokensK, FONT, 140) + 12;
  const left = new TokenColumn("dv-nv-queries", ROW);
  const keys = new TokenColumn("dv-nv-keys", ROW);
  const canvas = h("canvas", { class: "dv-nv-canvas", role: "img", "aria-label": "query and key vectors" });
  const header = h("canvas", { class: "dv-nv-header", role: "img", "aria-label": "query vector" });
  const headerRow = h("div", { class: "dv-nv-headerrow" }, header);
  const inner = h("div", { class: "dv-nv-inner" }, canvas, left.el, keys.el);
  const scroller = h("div", { class: "dv-att-scroll dv-nv-scroll" }, inner);
  const status = h("div", { class: "dv-att-status" });
  const plot = h("div", { class: "dv-nv-plot" }, headerRow, scroller);
  body.append(controls, plot, status);
  const tooltip = new Tooltip(plot);

  const rows = Math.max(tokensQ.length, tokensK.length);
  const viewH = Math.min(rows * ROW, MAX_VIEW);
  left.setRows(tokensQ.map((t, i): Row => ({ token: i, text: t, special: false })), ROW);
  keys.setRows(tokensK.map((t, i): Row => ({ token: i, text: t, special: false })), ROW);
  left.el.style.width = `${leftW}px`;
  keys.el.style.left = `${leftW + 8}px`;
  keys.el.style.width = `${keyW}px`;
  inner.style.height = `${rows * ROW}px`;
  scroller.style.height = `${viewH}px`;

  const cache = new Map<string, Head>();
  let cur: Head | null = null;
  let cellW = 4;
  let vecW = 0;
  let canvasW = 0;
  let scores = new Float32Array(0);
  let probs = new Float32Array(0);
  let prod = new Float32Array(0);
  let qMax = 1;
  let vecMax = 1;
  let prodMax = 1;
  let scoreMax = 1;
  let generation = 0;
  const table = lut("rdbu");
  let drawnOnce = false;

  // Columns: key vector | q x k | score (number, then a bar centred on 0) | softmax (bar, then number).
  const SCORE_TEXT = 64;
  const colW = () => Math.max(vecW, 130);
  const xKey = 0;
  const xProd = () => colW() + GAP;
  const xScore = () => 2 * (colW() + GAP);
  const xSoft = () => xScore() + SCORE_TEXT + BAR + GAP;

  const allowed = (hd: Head, i: number, j: number) => {
    if (hd.mask) return hd.mask[i * hd.nk + j] === 1;
    return !hd.causal || j <= i + (hd.nk - hd.nq);
  };

  const compute = () => {
    if (!cur) return;
    const hd = cur;
    const i = Math.max(0, Math.min(model.get("query"), hd.nq - 1));
    const { d, nk } = hd;
    const qi = hd.q.subarray(i * d, (i + 1) * d);
    prod = new Float32Array(nk * d);
    scores = new Float32Array(nk);
    probs = new Float32Array(nk);
    // The query and the keys each get their own symmetric colour range (keys are often much larger).
    qMax = 0;
    vecMax = 0;
    for (let c = 0; c < d; c++) qMax = Math.max(qMax, Math.abs(qi[c]));
    for (let x = 0; x < hd.k.length; x++) vecMax = Math.max(vecMax, Math.abs(hd.k[x]));
    prodMax = 0;
    let top = -Infinity;
    for (let j = 0; j < nk; j++) {
      let s = 0;
      for (let c = 0; c < d; c++) {
        const v = qi[c] * hd.k[j * d + c];
        prod[j * d + c] = v;
        s += v;
        prodMax = Math.max(prodMax, Math.abs(v));
      }
      scores[j] = allowed(hd, i, j) ? s * hd.scaling : NaN;
      if (scores[j] > top) top = scores[j];
    }
    let sum = 0;
    scoreMax = 0;
    for (let j = 0; j < nk; j++) {
      if (Number.isNaN(scores[j])) continue;
      probs[j] = Math.exp(scores[j] - top);
      sum += probs[j];
      scoreMax = Math.max(scoreMax, Math.abs(scores[j]));
    }
    for (let j = 0; j < nk; j++) probs[j] = Number.isNaN(scores[j]) ? NaN : probs[j] / sum;
    qMax ||= 1;
    vecMax ||= 1;
    prodMax ||= 1;
    scoreMax ||= 1;
  };

  const color = (v: number, max: number) => {
    const k = Math.max(0, Math.min(255, Math.round(((v / max + 1) / 2) * 255))) * 4;
    return `rgb(${table[k]},${table[k + 1]},${table[k + 2]})`;
  };

  const layoutHead = () => {
    if (!cur) return;
    cellW = Math.max(1, Math.min(10, Math.floor(256 / cur.d)));
    vecW = cellW * cur.d;
    canvasW = 2 * (colW() + GAP) + SCORE_TEXT + BAR + GAP + BAR + 50;
    canvas.style.marginLeft = `${leftW + keyW + 16}px`;
    header.style.marginLeft = canvas.style.marginLeft;
    setupCanvas(canvas, canvasW, viewH);
    setupCanvas(header, canvasW, 34);
  };

  const drawHeader = () => {
    const c = header.getContext("2d")!;
    const dpr = header.width / Math.max(canvasW, 1);
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.clearRect(0, 0, canvasW, 34);
    if (!cur) return;
    const i = Math.max(0, Math.min(model.get("query"), cur.nq - 1));
    c.fillStyle = ctx.cssVar("--dv-fg2", "#666");
    c.font = "11px sans-serif";
    c.textBaseline = "top";
    c.fillText("query q (here) · keys k", xKey, 0);
    c.fillText("q × k (elementwise)", xProd(), 0);
    c.fillText("q · k × scaling", xScore() + SCORE_TEXT - 40, 0);
    c.fillText("softmax", xSoft(), 0);
    for (let x = 0; x < cur.d; x++) {
      c.fillStyle = color(cur.q[i * cur.d + x], qMax);
      c.fillRect(xKey + x * cellW, 16, Math.max(cellW - (cellW > 3 ? 1 : 0), 1), 16);
    }
  };

  const draw = () => {
    const c = canvas.getContext("2d")!;
    const dpr = canvas.width / Math.max(canvasW, 1);
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.clearRect(0, 0, canvasW, viewH);
    const top = scroller.scrollTop;
    left.render(top, viewH);
    keys.render(top, viewH);
    if (!cur) return;
    const hd = cur;
    const first = Math.max(0, Math.floor(top / ROW));
    const last = Math.min(hd.nk - 1, Math.ceil((top + viewH) / ROW));
    const fg = ctx.cssVar("--dv-fg", "#222");
    const fg2 = ctx.cssVar("--dv-fg2", "#666");
    const accent = ctx.cssVar("--dv-accent", "#1976d2");
    c.font = "11px sans-serif";
    c.textBaseline = "middle";
    const cw = Math.max(cellW - (cellW > 3 ? 1 : 0), 1);
    for (let j = first; j <= last; j++) {
      const y = j * ROW - top;
      for (let x = 0; x < hd.d; x++) {
        c.fillStyle = color(hd.k[j * hd.d + x], vecMax);
        c.fillRect(xKey + x * cellW, y + 2, cw, ROW - 4);
        c.fillStyle = color(prod[j * hd.d + x], prodMax);
        c.fillRect(xProd() + x * cellW, y + 2, cw, ROW - 4);
      }
      const s = scores[j];
      const mid = xScore() + SCORE_TEXT + BAR / 2;
      c.textAlign = "right";
      if (Number.isNaN(s)) {
        c.fillStyle = fg2;
        c.fillText("masked", xScore() + SCORE_TEXT - 6, y + ROW / 2);
      } else {
        const w = (s / scoreMax) * (BAR / 2 - 2);
        c.fillStyle = s >= 0 ? "rgb(214,96,77)" : "rgb(67,147,195)";
        c.fillRect(w >= 0 ? mid : mid + w, y + 4, Math.abs(w), ROW - 8);
        c.fillStyle = fg;
        c.fillText(formatValue(s), xScore() + SCORE_TEXT - 6, y + ROW / 2);
      }
      c.fillStyle = fg2;
      c.fillRect(mid, y + 2, 1, ROW - 4);
      c.textAlign = "left";
      const p = probs[j];
      if (!Number.isNaN(p)) {
        c.fillStyle = accent;
        c.fillRect(xSoft(), y + 4, Math.max(1, p * BAR), ROW - 8);
        c.fillStyle = fg;
        c.fillText(formatValue(p), xSoft() + Math.max(1, p * BAR) + 4, y + ROW / 2);
      }
    }
  };

  const describe = () => {
    if (!cur) return;
    const i = Math.max(0, Math.min(model.get("query"), cur.nq - 1));
    setText(queryText, `${i}: ${displayToken(tokensQ[i] ?? "")}`);
    const err = cur.maxError === null ? "" : ` · reproduces the model's weights within ${formatValue(cur.maxError)}`;
    setText(status, `${model.get("stack_name") || "stack"} layer ${model.get("layer")}, head ${model.get("head")} · d = ${cur.d}, scaling = ${formatValue(cur.scaling)}${cur.causal ? " · causal mask" : ""}${err}. Hover or click a query token on the left.`);
    left.restyle();
  };

  left.setStyler((node, row) => node.classList.toggle("dv-att-focus", row.token === model.get("query")));

  const syncSelects = () => {
    const av = model.get("available");
    const have = new Set(av.map(([l, hh]) => `${l}:${hh}`));
    const L = model.get("n_layers");
    const H = model.get("n_heads");
    const layers = Array.from({ length: L }, (_, l) => l).filter((l) => av.some(([x]) => x === l));
    if (layerSelect.options.length !== layers.length) layerSelect.replaceChildren(...layers.map((l) => h("option", { value: l }, String(l))));
    layerSelect.value = String(model.get("layer"));
    headSelect.replaceChildren(
      ...Array.from({ length: H }, (_, hh) => {
        const o = h("option", { value: hh }, String(hh));
        if (!have.has(`${model.get("layer")}:${hh}`)) o.disabled = true;
        return o;
      }),
    );
    headSelect.value = String(model.get("head"));
  };

  const show = () => {
    syncSelects();
    const key = `${model.get("layer")}:${model.get("head")}`;
    const gen = ++generation;
    const finish = (hd: Head) => {
      if (gen !== generation) return;
      cur = hd;
      layoutHead();
      compute();
      drawHeader();
      draw();
      describe();
      status.classList.remove("dv-att-warning");
      if (!drawnOnce) {
        drawnOnce = true;
        ctx.root.dataset.dvRenderMs = (performance.now() - t0).toFixed(1);
        ctx.markDrawn();
      }
    };
    const hit = cache.get(key);
    if (hit) return finish(hit);
    const payload = model.get("_heads")[key];
    if (payload) {
      const hd = headOf(payload);
      cache.set(key, hd);
      return finish(hd);
    }
    setText(status, `computing layer ${model.get("layer")}, head ${model.get("head")} in the kernel…`);
    ctx.invoke<HeadPayload>("_neuron_head", { layer: model.get("layer"), head: model.get("head") }).then(
      ([reply, buffers]) => {
        const hd = headOf(withBuffers(reply, buffers));
        cache.set(key, hd);
        finish(hd);
      },
      () => {
        if (gen !== generation) return;
        status.classList.add("dv-att-warning");
        setText(status, `layer ${model.get("layer")}, head ${model.get("head")} was not saved with this page and no kernel is running`);
        if (!drawnOnce) {
          drawnOnce = true;
          ctx.markDrawn();
        }
      },
    );
  };

  const setQuery = (i: number) => {
    if (i < 0 || i === model.get("query")) return;
    model.set("query", i);
    model.save_changes();
  };
  disposer.listen(left.el, "mousemove", ctx.guard((ev: MouseEvent) => {
    const r = left.rowAt(ev.clientY);
    if (r >= 0) setQuery(left.rows[r].token);
  }));
  disposer.listen(left.el, "click", ctx.guard((ev: MouseEvent) => {
    const r = left.rowAt(ev.clientY);
    if (r >= 0) setQuery(left.rows[r].token);
  }));
  const hoverRow = ctx.guard((ev: MouseEvent) => {
    const r = keys.rowAt(ev.clientY);
    if (r < 0 || !cur || r >= cur.nk) return tooltip.hide();
    const pr = plot.getBoundingClientRect();
    tooltip.show(
      [
        ["key", `${r}: ${tokensK[r]}`],
        ["q · k × scaling", Number.isNaN(scores[r]) ? "masked" : formatValue(scores[r])],
        ["softmax", Number.isNaN(probs[r]) ? "0 (masked)" : formatValue(probs[r])],
      ],
      ev.clientX - pr.left,
      ev.clientY - pr.top,
    );
  });
  disposer.listen(keys.el, "mousemove", hoverRow);
  disposer.listen(canvas, "mousemove", ctx.guard((ev: MouseEvent) => hoverRow(ev)));
  for (const el of [keys.el, canvas]) disposer.listen(el, "mouseleave", () => tooltip.hide());
  let frame = 0;
  disposer.listen(scroller, "scroll", () => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      draw();
    });
  });
  disposer.add(() => cancelAnimationFrame(frame));
  disposer.listen(layerSelect, "change", ctx.guard(() => {
    const l = Number(layerSelect.value);
    const heads = model.get("available").filter(([x]) => x === l).map(([, hh]) => hh);
    model.set("layer", l);
    if (!heads.includes(model.get("head")) && heads.length) model.set("head", heads[0]);
    model.save_changes();
  }));
  disposer.listen(headSelect, "change", ctx.guard(() => {
    model.set("head", Number(headSelect.value));
    model.save_changes();
  }));
  ctx.on("change:layer", ctx.guard(show));
  ctx.on("change:head", ctx.guard(show));
  ctx.on("change:query", ctx.guard(() => {
    compute();
    drawHeader();
    draw();
    describe();
  }));

  ctx.setExporter("png", () => {
    const k = 2;
    const pad = 12;
    const title = model.get("title") ?? "";
    const head = title ? 26 : 0;
    const x0 = leftW + keyW + 16;
    const W = x0 + canvasW;
    const H = 34 + viewH;
    const out = document.createElement("canvas");
    out.width = (W + 2 * pad) * k;
    out.height = (H + head + 2 * pad) * k;
    const o = out.getContext("2d")!;
    o.scale(k, k);
    o.fillStyle = ctx.cssVar("--dv-bg", "#fff");
    o.fillRect(0, 0, W + 2 * pad, H + head + 2 * pad);
    o.fillStyle = ctx.cssVar("--dv-fg", "#222");
    if (title) {
      o.font = "bold 14px sans-serif";
      o.fillText(title, pad, pad + 14);
    }
    o.font = FONT;
    o.textBaseline = "middle";
    const top = scroller.scrollTop;
    const first = Math.floor(top / ROW);
    const last = Math.min(rows - 1, Math.ceil((top + viewH) / ROW));
    for (let j = first; j <= last; j++) {
      const y = pad + head + 34 + j * ROW - top + ROW / 2;
      o.textAlign = "right";
      if (tokensQ[j] !== undefined) o.fillText(displayToken(tokensQ[j]), pad + leftW - 6, y);
      o.textAlign = "left";
      if (tokensK[j] !== undefined) o.fillText(displayToken(tokensK[j]), pad + leftW + 14, y);
    }
    o.drawImage(header, pad + x0, pad + head, canvasW, 34);
    o.drawImage(canvas, pad + x0, pad + head + 34, canvasW, viewH);
    return out;
  });

  show();
}

export default defineView<NeuronViewTraits>("neuron_view", build);
