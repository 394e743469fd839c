// TrainingMonitor view. Mirrors deepvis_widgets/widgets/training.py.
//
// Three panels appear as data arrives: curves (Bokeh, one figure per metric),
// examples (a Bokeh scatter of early vs latest loss beside the canvas of all
// trajectories, linked both ways, plus cards of the selected examples), and
// layers (a Bokeh heatmap of layer statistics over steps). Python throttles
// its updates; here, changes are coalesced into at most one repaint per
// animation frame and applied in order through one promise chain.

import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { embedItem, exportCanvas, loadBokeh, onHover, onSelection, palette, setSelection, themeDocument, watchTheme, type BokehJS, type Embedded } from "./lib/bokeh";
import { categoryColor, RIGHT_COLOR, WRONG_COLOR } from "./lib/categorical";
import { decode, type Encoded } from "./lib/codec";
import { formatValue } from "./lib/colors";
import { h, setText } from "./lib/dom";
import { Examples, type ExamplesPayload } from "./lib/examples";
import { ScatterLayer } from "./lib/scatter_layer";
import { sparkline, TrajectoryPanel, type TrajectoryData } from "./lib/trajectories";

type Metric = "grad_norm" | "act_mean" | "act_std" | "dead_fraction";

export interface TrainingTraits extends BaseTraits {
  _bokeh: string;
  _scalars: { keys: [string, string][]; steps: Encoded; values: Encoded; offsets: number[] } | Record<string, never>;
  _curves_item: string;
  _ex: { ids: Encoded; loss: Encoded; steps: Encoded; uniform: boolean; declared: number; final_pred?: Encoded } | Record<string, never>;
  _scatter_item: string;
  _examples: ExamplesPayload;
  _labels: Encoded | Record<string, never>;
  label_names: string[];
  _layers: { names: string[]; steps: Encoded; metrics: Record<Metric, Encoded> } | Record<string, never>;
  _layers_item: string;
  notices: string[];
  early_step: number | null;
  layer_metric: Metric;
  selected_ids: number[];
}

const MAX_CARDS = 48;
const MAX_LAYER_COLUMNS = 400;
const METRIC_SHORT: Record<Metric, string> = { grad_norm: "log10 ‖grad‖", act_mean: "mean", act_std: "std", dead_fraction: "dead" };
const METRIC_LABEL: Record<Metric, string> = {
  grad_norm: "gradient norm (log10)",
  act_mean: "activation mean",
  act_std: "activation std",
  dead_fraction: "dead units (fraction)",
};

interface ExampleState {
  ids: Int32Array;
  rows: Map<number, number>;
  traj: TrajectoryData;
  early: Float32Array;
  latest: Float32Array;
  finalPred: Float32Array | null;
}

function has<T extends object>(payload: T | Record<string, never> | null | undefined): payload is T {
  return !!payload && Object.keys(payload).length > 0;
}

function build(ctx: ViewContext<TrainingTraits>): void {
  const { model, body, disposer } = ctx;
  const labelsPayload = model.get("_labels");
  const labels = has(labelsPayload) ? decode(labelsPayload as Encoded).values : null;
  const labelNames = model.get("label_names") ?? [];

  // --- DOM -----------------------------------------------------------------------------
  const notices = h("div", { class: "dv-train-notices", role: "note" });
  const waiting = h("div", { class: "dv-train-waiting" }, "Waiting for data: call log(step, loss=...) or log_examples(step, ids, losses) from your training loop.");
  const curvesHost = h("div", { class: "dv-train-curves dv-bokeh-host" });
  const scatterHost = h("div", { class: "dv-train-scatter dv-bokeh-host" });
  const hoverLine = h("div", { class: "dv-train-hover" });
  const selHead = h("div", { class: "dv-train-selhead" });
  const cards = h("div", { class: "dv-example-grid dv-train-cards" });
  const clearButton = h("button", { class: "dv-button", type: "button" }, "clear selection");
  const examplesSection = h(
    "div",
    { class: "dv-train-examples" },
    h("div", { class: "dv-train-section-title" }, "Per-example losses: brush either panel"),
    h("div", { class: "dv-train-row" }, scatterHost),
    hoverLine,
    h("div", { class: "dv-train-selbar" }, selHead, clearButton),
    cards,
  );
  const metricButtons = (Object.keys(METRIC_LABEL) as Metric[]).map((m) => {
    const b = h("button", { class: "dv-button", type: "button", "data-metric": m }, METRIC_LABEL[m]);
    disposer.listen(b, "click", () => {
      model.set("layer_metric", m);
      model.save_changes();
    });
    return b;
  });
  const layersReadout = h("div", { class: "dv-train-readout" });
  const layersHost = h("div", { class: "dv-train-layers dv-bokeh-host" });
  const layersSection = h(
    "div",
    { class: "dv-train-layers-section" },
    h("div", { class: "dv-train-section-title" }, "Layers over training"),
    h("div", { class: "dv-train-metrics" }, ...metricButtons),
    layersReadout,
    layersHost,
  );
  for (const s of [curvesHost, examplesSection, layersSection]) s.style.display = "none";
  body.append(notices, waiting, curvesHost, examplesSection, layersSection);
  const examples = new Examples(model.get("_examples"), 0);

  const colors = () => {
    const p = palette(ctx);
    return { fg: p.fg, fg2: p.fg2, border: p.border, accent: p.accent, bg: p.bg };
  };
  let ex: ExampleState | null = null;
  let selectedRows: number[] = [];
  const applyBrush = (rows: number[] | null) => {
    if (!scatter) return;
    setSelection(scatter.get("dv_points"), rows ?? []);
  };
  const traj = new TrajectoryPanel(560, 320, colors, ctx.guard(applyBrush), (target, type, fn) => disposer.listen(target, type, fn));
  examplesSection.querySelector(".dv-train-row")!.append(traj.element);

  // --- state shared by the panels ---------------------------------------------------
  let bokeh: BokehJS | null = null;
  let curves: Embedded | null = null;
  let curvesItem = "";
  let scatter: Embedded | null = null;
  let scatterLayer: ScatterLayer | null = null;
  let scatterXY: [Float64Array, Float64Array] | null = null;
  let layers: Embedded | null = null;
  let layersItem = "";
  let alive = true;
  disposer.add(() => {
    alive = false;
    scatterLayer?.dispose();
    for (const e of [curves, scatter, layers]) e?.remove();
  });

  const labelOf = (row: number) => (labels && ex && row < labels.length ? (labelNames[labels[row]] ?? String(labels[row])) : null);
  const caption = (row: number): [string, string][] => {
    const out: [string, string][] = [["id", String(ex!.ids[row])]];
    const lab = labelOf(row);
    if (lab !== null) out.push(["label", lab]);
    out.push(["loss", `${formatValue(ex!.early[row])} → ${formatValue(ex!.latest[row])}`]);
    if (ex!.finalPred && Number.isFinite(ex!.finalPred[row])) {
      const p = ex!.finalPred[row];
      out.push(["pred", labelNames[p] ?? formatValue(p)]);
    }
    return out;
  };

  const renderCards = () => {
    if (!ex) return;
    const rows = selectedRows;
    clearButton.style.display = rows.length ? "" : "none";
    if (!rows.length) {
      setText(selHead, "Drag in either panel to select examples; they are listed here, hardest first.");
      cards.replaceChildren();
      return;
    }
    const order = [...rows].sort((a, b) => (ex!.latest[b] || 0) - (ex!.latest[a] || 0));
    setText(selHead, `${rows.length} selected${rows.length > MAX_CARDS ? ` (showing the ${MAX_CARDS} with the highest latest loss)` : ""}`);
    const accent = palette(ctx).accent;
    cards.replaceChildren(
      ...order.slice(0, MAX_CARDS).map((row) => {
        const cap = caption(row);
        const declared = (model.get("_ex") as { declared?: number }).declared ?? 0;
        const card = examples.available && row < declared
          ? examples.card(row, cap, 56)
          : h("div", { class: "dv-example-card" }, ...cap.map(([k, v]) => h("div", { class: "dv-example-caption" }, h("span", { class: "dv-example-key" }, k), " ", v)));
        card.append(sparkline(ex!.traj, row, 96, 28, accent));
        return card;
      }),
    );
  };

  let cardsFrame = 0;
  const renderCardsSoon = () => {
    // The linked panels answer a brush at once (Bokeh repaints the scatter in the
    // coming frame); the cards follow in the frame after, so they do not delay it.
    if (cardsFrame) cancelAnimationFrame(cardsFrame);
    cardsFrame = requestAnimationFrame(() => {
      cardsFrame = requestAnimationFrame(() => {
        cardsFrame = 0;
        ctx.guard(renderCards)();
      });
    });
  };
  disposer.add(() => cardsFrame && cancelAnimationFrame(cardsFrame));
  const onRowsSelected = (rows: number[]) => {
    selectedRows = rows;
    scatterLayer?.setSelected(rows);
    traj.setSelected(rows);
    renderCardsSoon();
    if (!ex) return;
    const ids = rows.map((r) => ex!.ids[r]);
    const cur = model.get("selected_ids") ?? [];
    if (cur.length !== ids.length || cur.some((v, k) => v !== ids[k])) {
      model.set("selected_ids", ids);
      model.save_changes();
    }
  };
  disposer.listen(clearButton, "click", ctx.guard(() => applyBrush(null)));

  // --- panels -----------------------------------------------------------------------
  const updateCurves = async () => {
    const sc = model.get("_scalars");
    const item = model.get("_curves_item");
    if (!has(sc) || !item) return;
    curvesHost.style.display = "";
    if (item !== curvesItem) {
      curves?.remove();
      curves = await embedItem(ctx, bokeh, curvesHost, item);
      curvesItem = item;
    }
    const steps = decode(sc.steps).values;
    const values = decode(sc.values).values;
    sc.keys.forEach((_key, k) => {
      const [a, b] = [sc.offsets[k], sc.offsets[k + 1]];
      const src = curves!.doc.get_model_by_name(`dv_series_${k}`);
      if (src) src.data = { x: Array.from(steps.subarray(a, b)), y: Array.from(values.subarray(a, b)) };
    });
  };

  const pointColors = (n: number): string[] => {
    const out = new Array<string>(n);
    const fallback = palette(ctx).accent;
    for (let i = 0; i < n; i++) {
      if (labels && ex!.finalPred && i < labels.length && Number.isFinite(ex!.finalPred[i])) out[i] = ex!.finalPred[i] === labels[i] ? RIGHT_COLOR : WRONG_COLOR;
      else if (labels && i < labels.length) out[i] = categoryColor(labels[i]);
      else out[i] = fallback;
    }
    return out;
  };

  const computeExamples = (): ExampleState | null => {
    const payload = model.get("_ex");
    if (!has(payload)) return null;
    const ids = decode(payload.ids).values as Int32Array;
    const lossD = decode(payload.loss);
    const [n, c] = lossD.shape;
    const stepsD = decode(payload.steps).values as Int32Array;
    const t: TrajectoryData = { n, c, loss: lossD.values as Float32Array, steps: payload.uniform ? stepsD : null, stepsAll: payload.uniform ? null : stepsD };
    const early = new Float32Array(n).fill(NaN);
    const latest = new Float32Array(n).fill(NaN);
    const from = model.get("early_step");
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < c; j++) {
        const v = t.loss[i * c + j];
        const s = t.steps ? t.steps[j] : t.stepsAll![i * c + j];
        if (s < 0) continue;
        if (Number.isNaN(early[i]) && (from === null || s >= from) && Number.isFinite(v)) early[i] = v;
        if (Number.isFinite(v)) latest[i] = v;
      }
    }
    const rows = new Map<number, number>();
    ids.forEach((id, r) => rows.set(id, r));
    return { ids, rows, traj: t, early, latest, finalPred: payload.final_pred ? (decode(payload.final_pred).values as Float32Array) : null };
  };

  const updateExamples = async () => {
    const item = model.get("_scatter_item");
    const next = computeExamples();
    if (!next || !item) return;
    ex = next;
    examplesSection.style.display = "";
    if (!scatter) {
      scatter = await embedItem(ctx, bokeh, scatterHost, item);
      const src = scatter.get("dv_points");
      scatterLayer = new ScatterLayer(scatter.view, scatterHost, { alpha: 0.7, selectedAlpha: 1, unselectedAlpha: 0.1 }, (range, fn) => {
        range.change.connect(fn);
        disposer.add(() => range.change.disconnect(fn));
      });
      onSelection(src, ctx, ctx.guard(onRowsSelected));
      onHover(scatter.get("dv_hover"), scatterHost, ctx, ctx.guard((row: number | null) => {
        setText(hoverLine, row === null || !ex ? "" : caption(row).map(([k, v]) => `${k} ${v}`).join(" · "));
      }));
    }
    const floor = 1e-4;
    const n = ex.ids.length;
    const xs = new Float64Array(n);
    const ys = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      xs[i] = Number.isFinite(ex.early[i]) ? Math.max(ex.early[i], floor) : NaN;
      ys[i] = Number.isFinite(ex.latest[i]) ? Math.max(ex.latest[i], floor) : NaN;
    }
    const src = scatter.get("dv_points");
    const colors = pointColors(n);
    src.data = { x: xs, y: ys, color: colors };
    scatterXY = [xs, ys];
    scatterLayer?.setData(xs, ys, colors);
    const axis = scatter.doc.get_model_by_name("dv_xaxis");
    const from = model.get("early_step");
    if (axis) axis.axis_label = from === null ? "first logged loss" : `loss at step ${from}`;
    traj.setData(ex.traj);
    syncSelectionFromPython();
    traj.setSelected(selectedRows);
    renderCards();
  };

  const rowsOfSelectedIds = (): number[] =>
    (model.get("selected_ids") ?? []).map((id) => ex!.rows.get(id)).filter((r): r is number => r !== undefined);
  const syncSelectionFromPython = () => {
    if (!ex || !scatter) return;
    const rows = rowsOfSelectedIds();
    setSelection(scatter.get("dv_points"), rows);
    selectedRows = rows;
  };

  const updateLayers = async () => {
    const payload = model.get("_layers");
    const item = model.get("_layers_item");
    if (!has(payload) || !item) return;
    layersSection.style.display = "";
    if (item !== layersItem) {
      layers?.remove();
      layers = await embedItem(ctx, bokeh, layersHost, item);
      layersItem = item;
      const e = layers;
      onHover(e.get("dv_hover"), layersHost, ctx, (k) => {
        const d = e.get("dv_cells").data;
        setText(layersReadout, k === null ? "" : `${d.y[k]} · step ${d.step[k]} · ${METRIC_LABEL[model.get("layer_metric")]} ${formatValue(d.raw[k])}`);
      });
    }
    const metric = model.get("layer_metric");
    for (const b of metricButtons) b.setAttribute("aria-pressed", String(b.dataset.metric === metric));
    const names = payload.names;
    const steps = decode(payload.steps).values;
    const vals = decode(payload.metrics[metric]);
    const [L, S] = vals.shape;
    const bin = Math.max(1, Math.ceil(S / MAX_LAYER_COLUMNS));
    const cols = Math.ceil(S / bin);
    const gap = S > 1 ? (steps[S - 1] - steps[0]) / (S - 1) : 1;
    const x: number[] = [];
    const y: string[] = [];
    const w: number[] = [];
    const value: number[] = [];
    const raw: number[] = [];
    const step: number[] = [];
    let lo = Infinity;
    let hi = -Infinity;
    for (let l = 0; l < L; l++) {
      for (let cidx = 0; cidx < cols; cidx++) {
        let sum = 0;
        let cnt = 0;
        for (let s = cidx * bin; s < Math.min(S, (cidx + 1) * bin); s++) {
          const v = vals.values[l * S + s];
          if (Number.isFinite(v)) {
            sum += v;
            cnt++;
          }
        }
        const mean = cnt ? sum / cnt : NaN;
        const shown = metric === "grad_norm" ? (mean > 0 ? Math.log10(mean) : NaN) : mean;
        const s0 = steps[cidx * bin];
        const s1 = steps[Math.min(S, (cidx + 1) * bin) - 1];
        x.push((s0 + s1) / 2);
        w.push(s1 - s0 + gap);
        y.push(names[l]);
        value.push(shown);
        raw.push(mean);
        step.push(s0);
        if (Number.isFinite(shown)) {
          lo = Math.min(lo, shown);
          hi = Math.max(hi, shown);
        }
      }
    }
    const mapper = layers!.get("dv_mapper");
    if (metric === "dead_fraction") [lo, hi] = [0, 1];
    if (!(hi > lo)) [lo, hi] = [Number.isFinite(lo) ? lo - 0.5 : 0, Number.isFinite(lo) ? lo + 0.5 : 1];
    mapper.setv({ low: lo, high: hi });
    layers!.get("dv_colorbar").title = METRIC_SHORT[metric];
    layers!.get("dv_cells").data = { x, y, w, value, raw, step };
  };

  const updateNotices = () => {
    const list = model.get("notices") ?? [];
    notices.replaceChildren(...list.map((t) => h("div", { class: "dv-train-notice" }, t)));
  };

  // --- scheduling -------------------------------------------------------------------
  const pending = new Set<"curves" | "examples" | "layers">();
  let frame = 0;
  let chain: Promise<void> = Promise.resolve();
  let updates = 0;
  let firstDrawn = false;
  const process = async () => {
    frame = 0;
    const todo = [...pending];
    pending.clear();
    bokeh ??= await loadBokeh(model);
    if (!alive) return;
    if (todo.includes("curves")) await updateCurves();
    if (todo.includes("examples")) await updateExamples();
    if (todo.includes("layers")) await updateLayers();
    updateNotices();
    const anything = has(model.get("_scalars")) || has(model.get("_ex")) || has(model.get("_layers"));
    waiting.style.display = anything ? "none" : "";
    updates += 1;
    ctx.root.dataset.dvUpdates = String(updates);
    if (!firstDrawn) {
      firstDrawn = true;
      ctx.markDrawn();
    }
  };
  const schedule = (what: "curves" | "examples" | "layers") => {
    pending.add(what);
    if (frame) return;
    frame = requestAnimationFrame(() => {
      chain = chain.then(process).catch((err) => ctx.showError(err));
    });
  };
  disposer.add(() => frame && cancelAnimationFrame(frame));

  ctx.on("change:_scalars change:_curves_item", () => schedule("curves"));
  ctx.on("change:_ex change:_scatter_item change:early_step", () => schedule("examples"));
  ctx.on("change:_layers change:_layers_item change:layer_metric", () => schedule("layers"));
  ctx.on("change:notices", ctx.guard(updateNotices));
  ctx.on("change:selected_ids", ctx.guard(() => {
    if (!ex) return;
    const rows = rowsOfSelectedIds();
    // Our own brush set these ids: the panels already show them.
    if (rows.length === selectedRows.length && rows.every((r, k) => r === selectedRows[k])) return;
    syncSelectionFromPython();
    traj.setSelected(selectedRows);
    renderCards();
  }));
  watchTheme(ctx, () => {
    for (const e of [curves, scatter, layers]) if (e) themeDocument(e.doc, ctx);
    if (scatterLayer && scatterXY && ex) scatterLayer.setData(scatterXY[0], scatterXY[1], pointColors(ex.ids.length));
    traj.restyle();
  });
  ctx.setExporter("png", () => {
    const parts: HTMLCanvasElement[] = [];
    if (curves && curvesHost.style.display !== "none") parts.push(exportCanvas(curves.view));
    if (scatter && examplesSection.style.display !== "none") parts.push(withLayer(exportCanvas(scatter.view), scatter.view, scatterLayer), traj.canvas);
    if (layers && layersSection.style.display !== "none") parts.push(exportCanvas(layers.view));
    return stack(parts, palette(ctx).bg);
  });
  schedule("curves");
  schedule("examples");
  schedule("layers");
}

/** Bokeh's export of the scatter with our layer of points drawn into its frame. */
function withLayer(out: HTMLCanvasElement, plotView: any, layer: ScatterLayer | null): HTMLCanvasElement {
  const bbox = plotView.frame?.bbox;
  if (!layer || !bbox) return out;
  const k = window.devicePixelRatio || 1;
  out.getContext("2d")?.drawImage(layer.canvas, bbox.left * k, bbox.top * k, bbox.width * k, bbox.height * k);
  return out;
}

/** Stacks canvases vertically on one background (the PNG of the whole monitor). */
function stack(parts: HTMLCanvasElement[], bg: string): HTMLCanvasElement {
  const out = document.createElement("canvas");
  out.width = Math.max(1, ...parts.map((p) => p.width));
  out.height = Math.max(1, parts.reduce((s, p) => s + p.height + 8, 0));
  const g = out.getContext("2d")!;
  g.fillStyle = bg;
  g.fillRect(0, 0, out.width, out.height);
  let y = 0;
  for (const p of parts) {
    g.drawImage(p, 0, y);
    y += p.height + 8;
  }
  return out;
}

export default defineView<TrainingTraits>("training", build);
