// SanityCheckView. Mirrors deepvis_widgets/widgets/sanity.py.
//
// Rows = methods, columns = the original map then each randomization step,
// all painted on ONE canvas (small multiples, each map scaled to its own
// maximum); beside it one line chart per similarity metric (mean over the
// examples, one line per method, the verdict threshold dashed); below, the
// verdict per method as text. Method names, steps and tokens are data: they
// enter the DOM as text only.

import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { setupCanvas } from "./lib/canvas";
import { categoryColor } from "./lib/categorical";
import { decode, type Encoded } from "./lib/codec";
import { colorize, formatValue, lut, type Scale } from "./lib/colors";
import { Tooltip, h } from "./lib/dom";
import { imageCanvas, offscreen } from "./lib/tiles";
import { showToken } from "./lib/tokens";

export interface Verdict {
  method: string;
  passed: boolean;
  text: string;
  value: number;
}

export interface SanityTraits extends BaseTraits {
  kind: "image" | "text" | "dense";
  mode: "cascading" | "independent" | "labels";
  methods: string[];
  method_labels: string[];
  signed: boolean[];
  steps: string[];
  maps: Encoded;
  inputs: Encoded | Record<string, never>;
  tokens: string[][];
  targets: number[];
  metric_names: string[];
  metric_labels: string[];
  scores: Encoded;
  threshold: number;
  verdict_metric: string;
  verdicts: Verdict[];
  example: number;
}

const GAP = 4;
const CHART_W = 200;
const CHART_H = 112;
const PAD = { left: 30, right: 8, top: 8, bottom: 20 };
const DIVERGING: Scale = { kind: "diverging", vmin: -1, vmax: 1 };
const SEQUENTIAL: Scale = { kind: "sequential", vmin: 0, vmax: 1 };

const MODE_TEXT: Record<string, string> = {
  cascading: "Cascading randomization: each column re-initialises one more block, from the output side.",
  independent: "Independent randomization: each column re-initialises that block alone.",
  labels: "Label randomization: the same architecture trained on randomly permuted labels.",
};

/** Mean over examples of scores[m, s, :, k], NaN-aware; NaN when no value is defined. */
function meanScore(values: ArrayLike<number>, shape: number[], m: number, s: number, k: number): number {
  const [, S, N, K] = shape;
  let sum = 0;
  let count = 0;
  for (let e = 0; e < N; e++) {
    const v = values[((m * S + s) * N + e) * K + k];
    if (v === v) {
      sum += v;
      count++;
    }
  }
  return count ? sum / count : NaN;
}

function build(ctx: ViewContext<SanityTraits>): void {
  const { model, body, disposer } = ctx;
  const methods = model.get("methods");
  const labels = model.get("method_labels");
  const signed = model.get("signed");
  const steps = model.get("steps");
  const kind = model.get("kind");
  const maps = decode(model.get("maps"));
  const scores = decode(model.get("scores"));
  const metricNames = model.get("metric_names");
  const metricLabels = model.get("metric_labels");
  const M = methods.length;
  const S = steps.length;
  const N = maps.shape[2];
  const mapShape = maps.shape.slice(3);
  const [mh, mw] = mapShape.length === 2 ? mapShape : [1, mapShape[0] ?? 1];
  const per = mh * mw;
  if (maps.shape[0] !== M || maps.shape[1] !== S) throw new RangeError(`maps: expected ${M} methods x ${S} steps, got shape [${maps.shape}]`);
  if (scores.shape[0] !== M || scores.shape[1] !== S || scores.shape[3] !== metricNames.length) throw new RangeError(`scores: unexpected shape [${scores.shape}]`);
  const inputsPayload = model.get("inputs");
  const inputs = inputsPayload && "buffer" in inputsPayload ? decode(inputsPayload as Encoded) : null;
  const withInput = inputs !== null && kind === "image";
  const C = S + (withInput ? 1 : 0);

  // Tile size: square tiles for images, strips for token and feature vectors.
  const tw = mapShape.length === 2 ? Math.max(40, Math.min(88, Math.floor(520 / C) - GAP)) : Math.max(48, Math.min(140, mw * 8));
  const th = mapShape.length === 2 ? Math.round((tw * mh) / Math.max(mw, 1)) : 18;
  const gridW = C * tw + (C - 1) * GAP;
  const gridH = M * th + (M - 1) * GAP;

  // --- controls ---------------------------------------------------------------
  const targets = model.get("targets");
  if (N > 1) {
    const select = h("select", { class: "dv-select dv-sanity-example", "aria-label": "example" });
    for (let e = 0; e < N; e++) select.append(h("option", { value: String(e) }, targets.length ? `example ${e} (class ${targets[e]})` : `example ${e}`));
    select.value = String(model.get("example"));
    ctx.toolbar.prepend(h("label", { class: "dv-control" }, "showing ", select));
    disposer.listen(select, "change", ctx.guard(() => {
      model.set("example", Number(select.value));
      model.save_changes();
      drawGrid();
    }));
    ctx.on("change:example", ctx.guard(() => {
      select.value = String(model.get("example"));
      drawGrid();
    }));
  }

  // --- layout -------------------------------------------------------------------
  const caption = h("div", { class: "dv-sanity-caption" }, `${MODE_TEXT[model.get("mode")] ?? ""} Each map is scaled to its own maximum${signed.some(Boolean) ? " (signed maps: blue negative, red positive)" : ""}.`);
  const colHeads = h("div", { class: "dv-sanity-colheads" });
  colHeads.style.width = `${gridW}px`;
  const colNames = [...(withInput ? ["input"] : []), ...steps.map((s, i) => (i === 0 ? s : `${i}: ${s}`))];
  const colLines: [string, string][] = [...(withInput ? [["", "input"] as [string, string]] : []), ...steps.map((s, i): [string, string] => [i === 0 ? "step 0" : `step ${i}`, s])];
  colLines.forEach(([top, name], c) => {
    const d = h("div", { class: "dv-sanity-colhead", title: colNames[c] }, h("div", { class: "dv-sanity-colstep" }, top), h("div", { class: "dv-sanity-colname" }, name));
    d.style.left = `${c * (tw + GAP)}px`;
    d.style.width = `${tw}px`;
    colHeads.append(d);
  });
  const rowHeads = h("div", { class: "dv-sanity-rowheads" });
  const badges = h("div", { class: "dv-sanity-badges" });
  rowHeads.style.gap = badges.style.gap = `${GAP}px`;
  labels.forEach((label, m) => {
    const d = h("div", { class: "dv-sanity-rowhead", title: label, "data-row": m }, label);
    d.style.height = d.style.lineHeight = `${th}px`;
    rowHeads.append(d);
  });
  const canvas = h("canvas", { class: "dv-sanity-grid", role: "img", "aria-label": "maps per method and randomization step" });
  const plot = h("div", { class: "dv-sanity-plot" }, canvas);
  const grid = h("div", { class: "dv-sanity-table" }, h("div"), colHeads, h("div"), rowHeads, plot, badges);
  const tokenLine = h("div", { class: "dv-sanity-tokens" });
  const charts = h("div", { class: "dv-sanity-charts" });
  const legend = h("div", { class: "dv-sanity-legend" });
  const verdictList = h("ul", { class: "dv-sanity-verdicts" });
  const rule = h("div", { class: "dv-sanity-rule" });
  body.append(
    caption,
    h("div", { class: "dv-sanity-main" }, h("div", { class: "dv-sanity-left" }, grid, tokenLine), h("div", { class: "dv-sanity-right" }, charts, legend)),
    rule,
    verdictList,
  );
  const tooltip = new Tooltip(plot);

  labels.forEach((label, m) => {
    const sw = h("span", { class: "dv-sanity-swatch" });
    sw.style.background = categoryColor(m);
    legend.append(h("span", { class: "dv-sanity-legend-item" }, sw, label));
  });

  // --- small multiples ------------------------------------------------------------
  const tileCanvas = (m: number, s: number, e: number): HTMLCanvasElement => {
    const start = ((m * S + s) * N + e) * per;
    const c = offscreen(mw, mh);
    const c2 = c.getContext("2d")!;
    const img = c2.createImageData(mw, mh);
    colorize(maps.values.subarray(start, start + per), signed[m] ? DIVERGING : SEQUENTIAL, lut(signed[m] ? "rdbu" : "viridis"), img.data);
    c2.putImageData(img, 0, 0);
    return c;
  };

  const drawGrid = () => {
    const e = model.get("example");
    const dpr = setupCanvas(canvas, gridW, gridH);
    const c = canvas.getContext("2d")!;
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.clearRect(0, 0, gridW, gridH);
    c.imageSmoothingEnabled = false;
    if (withInput && inputs) {
      const [, ih, iw] = inputs.shape;
      const ic = inputs.shape.length === 4 ? 3 : 1;
      c.drawImage(imageCanvas(inputs.values, e * ih * iw * ic, ih, iw, ic), 0, 0, tw, th);
    }
    for (let m = 0; m < M; m++) {
      for (let s = 0; s < S; s++) {
        const x = (s + (withInput ? 1 : 0)) * (tw + GAP);
        c.drawImage(tileCanvas(m, s, e), x, m * (th + GAP), tw, th);
      }
    }
    const tokens = model.get("tokens");
    tokenLine.replaceChildren();
    if (tokens.length) {
      tokenLine.append(h("span", { class: "dv-sanity-tokens-label" }, `tokens of example ${e}: `));
      for (const tok of tokens[e] ?? []) tokenLine.append(h("span", { class: "dv-sanity-token", title: tok }, showToken(tok)));
    }
  };

  const cellAt = (ev: MouseEvent): [number, number] | null => {
    const r = canvas.getBoundingClientRect();
    const x = ev.clientX - r.left;
    const y = ev.clientY - r.top;
    const col = Math.floor(x / (tw + GAP)) - (withInput ? 1 : 0);
    const m = Math.floor(y / (th + GAP));
    if (col < 0 || col >= S || m < 0 || m >= M || x % (tw + GAP) >= tw || y % (th + GAP) >= th) return null;
    return [m, col];
  };
  disposer.listen(canvas, "mousemove", ctx.guard((ev: MouseEvent) => {
    const cell = cellAt(ev);
    if (!cell) return tooltip.hide();
    const [m, s] = cell;
    const e = model.get("example");
    const K = metricNames.length;
    const rows: [string, string][] = [["method", labels[m]], ["step", s === 0 ? steps[0] : `${s}: ${steps[s]}`]];
    if (kind !== "image" && mapShape.length === 1) {
      const r = canvas.getBoundingClientRect();
      const x = ev.clientX - r.left - (s + (withInput ? 1 : 0)) * (tw + GAP);
      const t = Math.min(mw - 1, Math.max(0, Math.floor((x / tw) * mw)));
      const tok = model.get("tokens")[e]?.[t];
      rows.push(["position", tok !== undefined ? `${t}: ${showToken(tok)}` : String(t)]);
      rows.push(["value / max", formatValue(maps.values[((m * S + s) * N + e) * per + t])]);
    }
    for (let k = 0; k < K; k++) rows.push([metricLabels[k], formatValue(scores.values[((m * S + s) * N + e) * K + k])]);
    const pr = plot.getBoundingClientRect();
    tooltip.show(rows, ev.clientX - pr.left, ev.clientY - pr.top);
  }));
  disposer.listen(canvas, "mouseleave", () => tooltip.hide());

  // --- charts ---------------------------------------------------------------------
  const chartCanvases: HTMLCanvasElement[] = [];
  const drawChart = (chart: HTMLCanvasElement, k: number) => {
    const dpr = setupCanvas(chart, CHART_W, CHART_H);
    const c = chart.getContext("2d")!;
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.clearRect(0, 0, CHART_W, CHART_H);
    const x = (s: number) => PAD.left + (S > 1 ? (s / (S - 1)) * (CHART_W - PAD.left - PAD.right) : 0);
    const y = (v: number) => PAD.top + ((1 - v) / 2) * (CHART_H - PAD.top - PAD.bottom);
    const fg2 = ctx.cssVar("--dv-fg2", "#666");
    c.font = "10px sans-serif";
    c.lineWidth = 1;
    c.strokeStyle = ctx.cssVar("--dv-border", "#bbb");
    c.fillStyle = fg2;
    for (const v of [-1, 0, 1]) {
      c.beginPath();
      c.moveTo(PAD.left, y(v));
      c.lineTo(CHART_W - PAD.right, y(v));
      c.stroke();
      c.textAlign = "right";
      c.fillText(String(v), PAD.left - 4, y(v) + 3);
    }
    c.textAlign = "center";
    for (let s = 0; s < S; s++) c.fillText(String(s), x(s), CHART_H - 6);
    if (metricNames[k] === model.get("verdict_metric")) {
      const th0 = model.get("threshold");
      c.setLineDash([4, 3]);
      c.strokeStyle = fg2;
      c.beginPath();
      c.moveTo(PAD.left, y(th0));
      c.lineTo(CHART_W - PAD.right, y(th0));
      c.stroke();
      c.setLineDash([]);
      c.textAlign = "right";
      c.fillText(`threshold ${th0}`, CHART_W - PAD.right, y(th0) - 3);
    }
    for (let m = 0; m < M; m++) {
      c.strokeStyle = c.fillStyle = categoryColor(m);
      c.lineWidth = 2;
      c.beginPath();
      let pen = false;
      for (let s = 0; s < S; s++) {
        const v = meanScore(scores.values, scores.shape, m, s, k);
        if (v !== v) {
          pen = false;
          continue;
        }
        if (pen) c.lineTo(x(s), y(v));
        else c.moveTo(x(s), y(v));
        pen = true;
      }
      c.stroke();
      for (let s = 0; s < S; s++) {
        const v = meanScore(scores.values, scores.shape, m, s, k);
        if (v === v) c.fillRect(x(s) - 2, y(v) - 2, 4, 4);
      }
    }
  };

  metricNames.forEach((name, k) => {
    let defined = false;
    for (let m = 0; m < M && !defined; m++) for (let s = 0; s < S; s++) if (meanScore(scores.values, scores.shape, m, s, k) === meanScore(scores.values, scores.shape, m, s, k)) defined = true;
    const head = h("div", { class: "dv-sanity-chart-title" }, `${metricLabels[k]}${N > 1 ? ` (mean of ${N})` : ""}`);
    if (!defined) {
      charts.append(h("div", { class: "dv-sanity-chart-box" }, head, h("div", { class: "dv-sanity-undefined" }, "not defined for these maps")));
      return;
    }
    const chart = h("canvas", { class: "dv-sanity-chart", "data-metric": name });
    const box = h("div", { class: "dv-sanity-chart-box" }, head, chart);
    charts.append(box);
    chartCanvases.push(chart);
    const tip = new Tooltip(box);
    disposer.listen(chart, "mousemove", ctx.guard((ev: MouseEvent) => {
      const r = chart.getBoundingClientRect();
      const fx = (ev.clientX - r.left - PAD.left) / Math.max(1, CHART_W - PAD.left - PAD.right);
      const s = Math.max(0, Math.min(S - 1, Math.round(fx * (S - 1))));
      const rows: [string, string][] = [["step", s === 0 ? steps[0] : `${s}: ${steps[s]}`]];
      for (let m = 0; m < M; m++) rows.push([labels[m], formatValue(meanScore(scores.values, scores.shape, m, s, k))]);
      const br = box.getBoundingClientRect();
      tip.show(rows, ev.clientX - br.left, ev.clientY - br.top);
    }));
    disposer.listen(chart, "mouseleave", () => tip.hide());
  });
  const drawCharts = () => chartCanvases.forEach((chart) => drawChart(chart, metricNames.indexOf(chart.dataset.metric ?? "")));

  // --- verdicts -------------------------------------------------------------------
  const drawVerdicts = () => {
    const verdicts = model.get("verdicts");
    const metric = metricLabels[metricNames.indexOf(model.get("verdict_metric"))] ?? model.get("verdict_metric");
    const how = model.get("mode") === "labels" ? "for the model trained on permuted labels" : "averaged over the randomization steps";
    rule.textContent = `Verdict: a method passes when its ${metric} with the original map, ${how}, is below ${model.get("threshold")} (mean over ${N} example${N === 1 ? "" : "s"}).`;
    verdictList.replaceChildren();
    badges.replaceChildren();
    methods.forEach((method, m) => {
      const v = verdicts.find((d) => d.method === method);
      if (!v) return;
      const badge = () => h("span", { class: `dv-sanity-badge ${v.passed ? "dv-sanity-pass" : "dv-sanity-fail"}` }, v.passed ? "✓ changes" : "✗ barely changes");
      verdictList.append(h("li", { class: "dv-sanity-verdict", "data-passed": String(v.passed), "data-method": method }, badge(), h("span", { class: "dv-sanity-verdict-text" }, v.text)));
      const cell = h("div", { class: "dv-sanity-rowbadge" }, badge());
      cell.style.height = `${th}px`;
      badges.append(cell);
    });
  };

  ctx.on("change:verdicts", ctx.guard(() => { drawVerdicts(); drawCharts(); }));
  ctx.on("change:threshold", ctx.guard(drawCharts));
  ctx.on("change:theme", ctx.guard(drawCharts));

  ctx.setExporter("png", () => {
    const k = 2;
    const pad = 12;
    const left = 150;
    const head = 44;
    const chartsW = CHART_W + 10;
    const chartsH = chartCanvases.length * (CHART_H + 16);
    const out = document.createElement("canvas");
    out.width = (pad * 2 + left + gridW + 16 + chartsW) * k;
    out.height = (pad * 2 + head + Math.max(gridH + 24, chartsH)) * k;
    const o = out.getContext("2d")!;
    o.scale(k, k);
    o.fillStyle = ctx.cssVar("--dv-bg", "#fff");
    o.fillRect(0, 0, out.width, out.height);
    o.fillStyle = ctx.cssVar("--dv-fg", "#222");
    o.font = "bold 14px sans-serif";
    o.fillText(model.get("title") ?? "", pad, pad + 14);
    o.font = "11px sans-serif";
    colNames.forEach((name, c) => o.fillText(name.length > 14 ? `${name.slice(0, 13)}…` : name, pad + left + c * (tw + GAP), pad + head - 4, tw));
    const verdicts = model.get("verdicts");
    labels.forEach((label, m) => {
      const v = verdicts.find((d) => d.method === methods[m]);
      o.fillText(`${label}${v ? (v.passed ? " ✓" : " ✗") : ""}`, pad, pad + head + m * (th + GAP) + th / 2 + 4, left - 8);
    });
    o.drawImage(canvas, pad + left, pad + head, gridW, gridH);
    chartCanvases.forEach((chart, i) => {
      const y0 = pad + head + i * (CHART_H + 16);
      o.fillText(metricLabels[metricNames.indexOf(chart.dataset.metric ?? "")] ?? "", pad + left + gridW + 16, y0 + 8);
      o.drawImage(chart, pad + left + gridW + 16, y0 + 12, CHART_W, CHART_H);
    });
    return out;
  });

  drawGrid();
  drawCharts();
  drawVerdicts();
  ctx.markDrawn();
}

export default defineView<SanityTraits>("sanity", build);
