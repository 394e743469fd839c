// SimilarityMatrix view. Mirrors deepvis_widgets/widgets/similarity.py.
//
// The Bokeh layout (heatmap with categorical axes, two projection plots)
// arrives as a json_item string; the matrix and the per-layer projections
// arrive as binary arrays and fill the figure's sources here. Clicking a cell
// selects it (synced as `selected`) and shows the two layers' projections.

import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { embedItem, exportCanvas, loadBokeh, onHover, onSelection, setSelection, themeDocument, watchTheme } from "./lib/bokeh";
import { categoryColor } from "./lib/categorical";
import { decode, type Encoded } from "./lib/codec";
import { formatValue } from "./lib/colors";
import { h, setText } from "./lib/dom";

export interface SimilarityTraits extends BaseTraits {
  _bokeh: string;
  _matrix: Encoded;
  names_a: string[];
  names_b: string[];
  model_names: [string, string];
  _proj: Encoded;
  _labels: Encoded | Record<string, never>;
  label_names: string[];
  method: string;
  _item: string;
  selected: [number, number] | null;
}

const MAX_CELL_TEXT = 12;

function build(ctx: ViewContext<SimilarityTraits>): void {
  const { model, body } = ctx;
  const t0 = performance.now();
  const m = decode(model.get("_matrix"));
  const [rows, cols] = m.shape;
  const namesA = model.get("names_a");
  const namesB = model.get("names_b");
  if (namesA.length !== rows || namesB.length !== cols) throw new RangeError(`names: ${namesA.length} x ${namesB.length} for a ${rows} x ${cols} matrix`);
  const proj = decode(model.get("_proj"));
  const [layers, points] = proj.shape;
  if (layers !== rows + cols) throw new RangeError(`_proj: expected ${rows + cols} layers, got ${layers}`);
  const labelsPayload = model.get("_labels");
  const labels = labelsPayload && "buffer" in labelsPayload ? decode(labelsPayload as Encoded).values : null;
  const [sideA, sideB] = model.get("model_names");

  const readout = h("div", { class: "dv-sim-readout" });
  const chart = h("div", { class: "dv-sim-chart" });
  body.append(readout, chart);
  const describe = (cell: [number, number] | null, prefix: string) =>
    cell ? `${prefix}${sideA} ${namesA[cell[0]]} × ${sideB} ${namesB[cell[1]]}: ${model.get("method")} ${formatValue(m.values[cell[0] * cols + cell[1]])}` : "Click a cell to compare the two layers' projections.";

  let alive = true;
  ctx.disposer.add(() => (alive = false));
  (async () => {
    const bokeh = await loadBokeh(model);
    if (!alive) return;
    const e = await embedItem(ctx, bokeh, chart, model.get("_item"));
    if (!alive) return e.remove();
    ctx.disposer.add(() => e.remove());
    const cells = e.get("dv_cells");
    const n = rows * cols;
    const x = new Array<string>(n);
    const y = new Array<string>(n);
    const label = new Array<string>(n);
    const ink = new Array<string>(n);
    const value = new Float64Array(n);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        const k = i * cols + j;
        const v = m.values[k];
        x[k] = namesB[j];
        y[k] = namesA[i];
        value[k] = v;
        label[k] = rows <= MAX_CELL_TEXT && cols <= MAX_CELL_TEXT && Number.isFinite(v) ? v.toFixed(2) : "";
        ink[k] = v > 0.6 ? "#1a1a1a" : "#f5f5f5"; // viridis is light above ~0.6
      }
    }
    cells.data = { x, y, value, label, ink };

    const fill = (k: "a" | "b", layer: number, name: string) => {
      const src = e.get(`dv_proj_${k}`);
      const xs = new Float64Array(points);
      const ys = new Float64Array(points);
      const color = new Array<string>(points);
      const base = layer * points * 2;
      for (let p = 0; p < points; p++) {
        xs[p] = proj.values[base + 2 * p];
        ys[p] = proj.values[base + 2 * p + 1];
        color[p] = labels ? categoryColor(labels[p]) : ctx.cssVar("--dv-accent", "#1976d2");
      }
      src.data = { x: xs, y: ys, color };
      e.get(`dv_title_${k}`).text = name;
    };
    const show = () => {
      const sel = model.get("selected");
      setText(readout, describe(sel, ""));
      setSelection(cells, sel ? [sel[0] * cols + sel[1]] : []);
      if (!sel) return;
      fill("a", sel[0], `${sideA}: ${namesA[sel[0]]}`);
      fill("b", rows + sel[1], `${sideB}: ${namesB[sel[1]]}`);
    };
    onSelection(cells, ctx, (idx) => {
      if (!idx.length) return; // a click outside the cells keeps the current pair
      const k = idx[idx.length - 1];
      const cell: [number, number] = [Math.floor(k / cols), k % cols];
      const cur = model.get("selected");
      if (!cur || cur[0] !== cell[0] || cur[1] !== cell[1]) {
        model.set("selected", cell);
        model.save_changes();
      }
      show();
    });
    onHover(e.get("dv_hover"), chart, ctx, (k) => setText(readout, k === null ? describe(model.get("selected"), "") : describe([Math.floor(k / cols), k % cols], "")));
    ctx.on("change:selected", ctx.guard(show));
    show();
    watchTheme(ctx, () => themeDocument(e.doc, ctx));
    ctx.setExporter("png", () => exportCanvas(e.view));
    ctx.root.dataset.dvRenderMs = (performance.now() - t0).toFixed(1);
    ctx.markDrawn();
  })().catch((err) => ctx.showError(err));
}

export default defineView<SimilarityTraits>("similarity", build);
