// ProjectionView. Mirrors deepvis_widgets/widgets/projection.py.
//
// The figure (axes, tools, the smoothed error-rate image) arrives as a Bokeh
// json_item string; the points arrive as binary arrays and are put into the
// figure's "dv_points" source here, with a colour column computed from the
// labels or errors. Hover shows the example beside the chart; a selection
// (box, lasso, tap) lists the selected examples and syncs `selected`.

import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { embedItem, exportCanvas, loadBokeh, onHover, onSelection, setSelection, themeDocument, watchTheme, type Embedded } from "./lib/bokeh";
import { categoryColor, RIGHT_COLOR, WRONG_COLOR } from "./lib/categorical";
import { decode, type Encoded } from "./lib/codec";
import { formatValue } from "./lib/colors";
import { h, setText } from "./lib/dom";
import { Examples, type ExamplesPayload } from "./lib/examples";

export interface ProjectionTraits extends BaseTraits {
  _bokeh: string;
  _points: Encoded;
  _labels: Encoded | Record<string, never>;
  label_names: string[];
  _errors: Encoded | Record<string, never>;
  _examples: ExamplesPayload;
  _item: string;
  method: string;
  note: string;
  color_by: "label" | "error" | "none";
  show_surface: boolean;
  point_size: number;
  selected: number[];
}

const MAX_CARDS = 60;

function optional(payload: Encoded | Record<string, never>): Float32Array | Int32Array | null {
  return payload && "buffer" in payload ? decode(payload as Encoded).values : null;
}

function build(ctx: ViewContext<ProjectionTraits>): void {
  const { model, body } = ctx;
  const t0 = performance.now();
  const pts = decode(model.get("_points"));
  if (pts.shape.length !== 2 || pts.shape[1] !== 2) throw new RangeError(`_points: expected shape (n, 2), got [${pts.shape}]`);
  const n = pts.shape[0];
  const xs = new Float64Array(n);
  const ys = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    xs[i] = pts.values[2 * i];
    ys[i] = pts.values[2 * i + 1];
  }
  const labels = optional(model.get("_labels"));
  const errors = optional(model.get("_errors"));
  const names = model.get("label_names") ?? [];
  const examples = new Examples(model.get("_examples"), n);

  // --- DOM ---------------------------------------------------------------------------
  const note = h("div", { class: "dv-proj-note" });
  const chart = h("div", { class: "dv-proj-chart" });
  const controls = h("div", { class: "dv-proj-controls" });
  const legend = h("div", { class: "dv-proj-legend" });
  const hover = h("div", { class: "dv-proj-hover" });
  const selHead = h("div", { class: "dv-proj-selhead" });
  const grid = h("div", { class: "dv-example-grid" });
  const side = h("div", { class: "dv-proj-side" }, legend, hover, selHead, grid);
  body.append(note, controls, h("div", { class: "dv-proj-layout" }, chart, side));

  const labelText = (i: number) => (labels ? (names[labels[i]] ?? String(labels[i])) : "");
  const caption = (i: number): [string, string][] => {
    const rows: [string, string][] = [["#", String(i)]];
    if (labels) rows.push(["label", labelText(i)]);
    if (errors) rows.push(["error", errors[i] >= 0.5 ? `wrong (${formatValue(errors[i])})` : `right (${formatValue(errors[i])})`]);
    return rows;
  };

  const colorBy = (): "label" | "error" | "none" => {
    const c = model.get("color_by");
    if (c === "label" && labels) return "label";
    if (c === "error" && errors) return "error";
    return "none";
  };
  const colors = (): string[] => {
    const mode = colorBy();
    const accent = ctx.cssVar("--dv-accent", "#1976d2");
    const out = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      out[i] = mode === "label" ? categoryColor(labels![i]) : mode === "error" ? (errors![i] >= 0.5 ? WRONG_COLOR : RIGHT_COLOR) : accent;
    }
    return out;
  };

  const renderLegend = () => {
    const mode = colorBy();
    const items: [string, string][] =
      mode === "label" ? names.slice(0, 20).map((name, k) => [categoryColor(k), name]) : mode === "error" ? [[RIGHT_COLOR, "right"], [WRONG_COLOR, "wrong"]] : [];
    legend.replaceChildren(
      ...items.map(([color, text]) => {
        const sw = h("span", { class: "dv-swatch" });
        sw.style.background = color;
        return h("span", { class: "dv-legend-item" }, sw, text);
      }),
    );
    if (mode === "label" && names.length > 20) legend.append(h("span", { class: "dv-legend-item" }, `… ${names.length - 20} more (colours repeat)`));
  };

  const options: ["label" | "error" | "none", boolean][] = [["label", !!labels], ["error", !!errors], ["none", true]];
  const buttons = options
    .filter(([, ok]) => ok)
    .map(([value]) => {
      const b = h("button", { class: "dv-button", type: "button", "data-color-by": value }, value);
      ctx.disposer.listen(b, "click", () => {
        model.set("color_by", value);
        model.save_changes();
      });
      return b;
    });
  controls.append(h("span", { class: "dv-proj-label" }, "colour by"), ...buttons);
  const renderControls = () => {
    for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.colorBy === colorBy()));
  };

  const renderHover = (i: number | null) => {
    if (i === null || i < 0 || i >= n) {
      hover.replaceChildren();
      hover.style.display = "none";
      return;
    }
    hover.style.display = "";
    hover.replaceChildren(examples.available ? examples.card(i, caption(i), 96) : h("div", { class: "dv-example-card" }, ...caption(i).map(([k, v]) => h("div", {}, `${k}: ${v}`))));
  };

  const renderSelection = () => {
    const sel = (model.get("selected") ?? []).filter((i) => i >= 0 && i < n);
    if (!sel.length) {
      setText(selHead, examples.available ? "Hover a point to see its example; drag to select." : "Drag to select points.");
      grid.replaceChildren();
      return;
    }
    const order = [...sel].sort((a, b) => (errors ? errors[b] - errors[a] : 0) || a - b);
    setText(selHead, `${sel.length} selected${sel.length > MAX_CARDS ? ` (showing ${MAX_CARDS}, most wrong first)` : ""}`);
    grid.replaceChildren(...order.slice(0, MAX_CARDS).map((i) => (examples.available ? examples.card(i, caption(i), 48) : h("div", { class: "dv-example-card" }, caption(i).map(([k, v]) => `${k}: ${v}`).join("  ")))));
  };

  setText(note, model.get("note") ?? "");
  note.style.display = model.get("note") ? "" : "none";
  renderControls();
  renderLegend();
  renderHover(null);
  renderSelection();

  // --- Bokeh --------------------------------------------------------------------------
  let alive = true;
  ctx.disposer.add(() => (alive = false));
  let emb: Embedded | null = null;
  (async () => {
    const bokeh = await loadBokeh(model);
    if (!alive) return;
    emb = await embedItem(ctx, bokeh, chart, model.get("_item"));
    if (!alive) return emb.remove();
    const e = emb;
    ctx.disposer.add(() => e.remove());
    const source = e.get("dv_points");
    const scatter = e.get("dv_scatter");
    const index = Array.from({ length: n }, (_, i) => i);
    source.data = { x: xs, y: ys, color: colors(), index };
    scatter.glyph.size = model.get("point_size");
    const surfaceRenderers = ["dv_surface", "dv_surface_bar"].map((name) => e.doc.get_model_by_name(name)).filter(Boolean);
    const syncSurface = () => {
      for (const r of surfaceRenderers) r.visible = model.get("show_surface");
    };
    syncSurface();
    setSelection(source, model.get("selected") ?? []);
    onSelection(source, ctx, (idx) => {
      const cur = model.get("selected") ?? [];
      if (cur.length !== idx.length || cur.some((v, k) => v !== idx[k])) {
        model.set("selected", idx);
        model.save_changes();
      }
      renderSelection();
    });
    onHover(e.get("dv_hover"), chart, ctx, ctx.guard(renderHover));
    ctx.on("change:selected", ctx.guard(() => {
      setSelection(source, model.get("selected") ?? []);
      renderSelection();
    }));
    ctx.on("change:color_by", ctx.guard(() => {
      source.data = { ...source.data, color: colors() };
      renderLegend();
      renderControls();
    }));
    ctx.on("change:show_surface", ctx.guard(syncSurface));
    ctx.on("change:point_size", ctx.guard(() => (scatter.glyph.size = model.get("point_size"))));
    watchTheme(ctx, () => {
      themeDocument(e.doc, ctx);
      if (colorBy() === "none") source.data = { ...source.data, color: colors() };
    });
    ctx.setExporter("png", () => exportCanvas(e.view));
    ctx.root.dataset.dvRenderMs = (performance.now() - t0).toFixed(1);
    ctx.markDrawn();
  })().catch((err) => ctx.showError(err));
  ctx.on("change:_points", () => ctx.showError(new Error("points changed: create a new ProjectionView to show new data")));
}

export default defineView<ProjectionTraits>("projection", build);
