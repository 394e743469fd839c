// ArrayHeatmap view. Mirrors deepvis_widgets/widgets/heatmap.py.
//
// The array is painted once into an offscreen canvas at one pixel per cell
// and scaled onto the visible canvas, so a 2048 x 2048 array costs one
// putImageData; hover and selection only redraw the overlay.

import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { decode, extent, type Encoded } from "./lib/codec";
import { colorize, formatValue, lut, makeScale, type Scale } from "./lib/colors";
import { Tooltip, h } from "./lib/dom";
import { setupCanvas, drawLegend } from "./lib/canvas";

export interface HeatmapTraits extends BaseTraits {
  data: Encoded;
  row_labels: string[];
  col_labels: string[];
  scale: "auto" | "sequential" | "diverging";
  colormap: string;
  vmin: number | null;
  vmax: number | null;
  max_size: number;
  selected: [number, number] | null;
}

const MAX_DOM_LABELS = 64;

let measureCtx: CanvasRenderingContext2D | null = null;
/** Width in CSS pixels of the longest label at the label font size. */
function textWidth(labels: string[]): number {
  measureCtx ??= document.createElement("canvas").getContext("2d")!;
  measureCtx.font = "11px sans-serif";
  return Math.ceil(Math.max(0, ...labels.map((l) => measureCtx!.measureText(l).width)));
}

function build(ctx: ViewContext<HeatmapTraits>): void {
  const { model, body, disposer } = ctx;
  const t0 = performance.now();
  const { values, shape } = decode(model.get("data"));
  if (shape.length !== 2) throw new RangeError(`data: expected a 2-D array, got shape [${shape}]`);
  const [rows, cols] = shape;

  const source = document.createElement("canvas");
  source.width = Math.max(cols, 1);
  source.height = Math.max(rows, 1);
  const [lo, hi] = extent(values);
  let scale: Scale = makeScale("auto", lo, hi);
  let table = lut("viridis");

  const paintSource = () => {
    scale = makeScale(model.get("scale"), lo, hi, model.get("vmin"), model.get("vmax"));
    const name = model.get("colormap");
    table = lut(name === "auto" ? (scale.kind === "diverging" ? "rdbu" : "viridis") : name);
    const sctx = source.getContext("2d")!;
    const img = sctx.createImageData(source.width, source.height);
    colorize(values, scale, table, img.data);
    sctx.putImageData(img, 0, 0);
  };

  // Layout: [corner][col labels] / [row labels][canvas][legend]
  const colLabels = h("div", { class: "dv-heatmap-collabels" });
  const rowLabels = h("div", { class: "dv-heatmap-rowlabels" });
  const canvas = h("canvas", { class: "dv-heatmap-canvas", role: "img", "aria-label": "heatmap" });
  const legend = h("div", { class: "dv-legend" });
  const plot = h("div", { class: "dv-heatmap-plot" }, canvas);
  const grid = h("div", { class: "dv-heatmap-grid" }, h("div"), colLabels, h("div"), rowLabels, plot, legend);
  body.append(grid);
  const tooltip = new Tooltip(plot);

  let cssW = 0;
  let cssH = 0;
  let hover: [number, number] | null = null;

  const layout = () => {
    const maxSize = model.get("max_size");
    const cell = Math.max(Math.min(Math.floor(maxSize / Math.max(rows, cols, 1)), 40), 0);
    if (cell >= 1) {
      cssW = cols * cell;
      cssH = rows * cell;
    } else {
      const f = maxSize / Math.max(rows, cols);
      cssW = Math.max(1, Math.round(cols * f));
      cssH = Math.max(1, Math.round(rows * f));
    }
    setupCanvas(canvas, cssW, cssH);
    labelAxes();
  };

  const labelAxes = () => {
    const rl = model.get("row_labels") ?? [];
    const cl = model.get("col_labels") ?? [];
    const rowPx = cssH / Math.max(rows, 1);
    const colPx = cssW / Math.max(cols, 1);
    rowLabels.replaceChildren();
    colLabels.replaceChildren();
    rowLabels.style.height = `${cssH}px`;
    colLabels.style.width = `${cssW}px`;
    const showRows = rl.length > 0 && rows <= MAX_DOM_LABELS && rowPx >= 11;
    const showCols = cl.length > 0 && cols <= MAX_DOM_LABELS && colPx >= 11;
    rowLabels.style.width = showRows ? `${Math.min(textWidth(rl), 160) + 4}px` : "0px";
    colLabels.style.height = showCols ? `${Math.min(textWidth(cl), 120) + 6}px` : "0px";
    if (showRows) {
      rl.forEach((label, i) => {
        const d = h("div", { class: "dv-heatmap-rowlabel", title: label }, label);
        d.style.top = `${i * rowPx}px`;
        d.style.height = `${rowPx}px`;
        d.style.lineHeight = `${rowPx}px`;
        rowLabels.append(d);
      });
    }
    if (showCols) {
      cl.forEach((label, j) => {
        const d = h("div", { class: "dv-heatmap-collabel", title: label }, label);
        d.style.left = `${j * colPx}px`;
        d.style.width = `${colPx}px`;
        colLabels.append(d);
      });
    }
  };

  const draw = () => {
    const c2 = canvas.getContext("2d")!;
    const dpr = canvas.width / Math.max(cssW, 1);
    c2.setTransform(dpr, 0, 0, dpr, 0, 0);
    c2.clearRect(0, 0, cssW, cssH);
    // Upscaled cells stay crisp; downscaled arrays average neighbouring cells.
    c2.imageSmoothingEnabled = cssW < cols || cssH < rows;
    c2.drawImage(source, 0, 0, cssW, cssH);
    const mark = (rc: [number, number] | null, color: string, width: number) => {
      if (!rc) return;
      const cw = cssW / cols;
      const ch = cssH / rows;
      c2.strokeStyle = color;
      c2.lineWidth = width;
      c2.strokeRect(rc[1] * cw + width / 2, rc[0] * ch + width / 2, Math.max(cw - width, 1), Math.max(ch - width, 1));
    };
    mark(hover, ctx.cssVar("--dv-hover", "#888"), 1);
    mark(model.get("selected"), ctx.cssVar("--dv-accent", "#f57c00"), 2);
  };

  const repaintLegend = () => drawLegend(legend, table, scale, cssH, formatValue);

  const cellAt = (ev: MouseEvent): [number, number] | null => {
    const r = canvas.getBoundingClientRect();
    const x = ev.clientX - r.left;
    const y = ev.clientY - r.top;
    if (x < 0 || y < 0 || x >= r.width || y >= r.height) return null;
    return [Math.min(rows - 1, Math.floor((y / r.height) * rows)), Math.min(cols - 1, Math.floor((x / r.width) * cols))];
  };

  disposer.listen(canvas, "mousemove", ctx.guard((ev: MouseEvent) => {
    const rc = cellAt(ev);
    hover = rc;
    draw();
    if (!rc) return tooltip.hide();
    const [r, c] = rc;
    const rl = model.get("row_labels") ?? [];
    const cl = model.get("col_labels") ?? [];
    const pr = plot.getBoundingClientRect();
    tooltip.show(
      [
        ["row", rl[r] !== undefined ? `${r}: ${rl[r]}` : String(r)],
        ["column", cl[c] !== undefined ? `${c}: ${cl[c]}` : String(c)],
        ["value", formatValue(values[r * cols + c])],
      ],
      ev.clientX - pr.left,
      ev.clientY - pr.top,
    );
  }));
  disposer.listen(canvas, "mouseleave", () => {
    hover = null;
    tooltip.hide();
    draw();
  });
  disposer.listen(canvas, "click", ctx.guard((ev: MouseEvent) => {
    const rc = cellAt(ev);
    if (!rc) return;
    model.set("selected", rc);
    model.save_changes();
    draw();
  }));

  const full = ctx.guard(() => {
    paintSource();
    layout();
    draw();
    repaintLegend();
  });
  for (const name of ["scale", "colormap", "vmin", "vmax", "max_size", "row_labels", "col_labels"]) ctx.on(`change:${name}`, full);
  ctx.on("change:selected", ctx.guard(draw));
  ctx.on("change:data", () => ctx.showError(new Error("data changed: create a new ArrayHeatmap to show a new array")));

  ctx.setExporter("png", () => {
    const titleText = model.get("title") ?? "";
    const pad = 16;
    const head = titleText ? 28 : 0;
    const legendW = 80;
    const out = document.createElement("canvas");
    const k = 2;
    out.width = (cssW + legendW + 2 * pad) * k;
    out.height = (cssH + head + 2 * pad) * k;
    const o = out.getContext("2d")!;
    o.scale(k, k);
    o.fillStyle = ctx.cssVar("--dv-bg", "#fff");
    o.fillRect(0, 0, out.width, out.height);
    o.fillStyle = ctx.cssVar("--dv-fg", "#222");
    o.font = "bold 14px sans-serif";
    if (titleText) o.fillText(titleText, pad, pad + 14);
    o.imageSmoothingEnabled = cssW < cols;
    o.drawImage(source, pad, pad + head, cssW, cssH);
    const lc = legend.querySelector("canvas");
    if (lc) o.drawImage(lc, pad + cssW + 12, pad + head, 12, cssH);
    o.font = "11px sans-serif";
    o.fillText(formatValue(scale.vmax), pad + cssW + 28, pad + head + 10);
    o.fillText(formatValue(scale.vmin), pad + cssW + 28, pad + head + cssH);
    return out;
  });

  full();
  ctx.root.dataset.dvRenderMs = (performance.now() - t0).toFixed(1);
  ctx.markDrawn();
}

export default defineView<HeatmapTraits>("heatmap", build);
