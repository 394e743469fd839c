// FeatureVisView. Mirrors deepvis_widgets/widgets/feature_vis.py.
//
// One row per target: its optimised images (each a small canvas with its
// objective value), a sparkline of the objective during optimisation, and the
// top-activating examples. Clicking any image enlarges it above the rows.

import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { decode, type Encoded } from "./lib/codec";
import { formatValue } from "./lib/colors";
import { h, setText } from "./lib/dom";
import { setupCanvas } from "./lib/canvas";
import { imageCanvas, offscreen, rangeOf } from "./lib/tiles";

export interface FeatureVisTraits extends BaseTraits {
  images: Encoded | Record<string, never>;
  labels: string[];
  values: Encoded | Record<string, never>;
  start_values: Encoded | Record<string, never>;
  history: Encoded | Record<string, never>;
  examples: Encoded | Record<string, never>;
  example_values: Encoded | Record<string, never>;
  example_labels: string[][];
  layer: string;
  objective: string;
  image_size: number;
  selected: [number, number] | null;
}

const BIG = 320;
const OBJECTIVE_NAMES: Record<string, string> = { channel: "mean activation", neuron: "centre activation", logit: "logit" };

function has(e: Encoded | Record<string, never>): e is Encoded {
  return !!e && Array.isArray((e as Encoded).shape);
}

interface Cell {
  source: HTMLCanvasElement;
  canvas: HTMLCanvasElement;
  caption: string;
}

function build(ctx: ViewContext<FeatureVisTraits>): void {
  const { model, body, disposer } = ctx;
  const enlarged = h("canvas", { class: "dv-fv-big", role: "img", "aria-label": "enlarged image" });
  const enlargedText = h("div", { class: "dv-fv-big-text" });
  const detail = h("div", { class: "dv-fv-detail" }, enlarged, enlargedText);
  const rowsBox = h("div", { class: "dv-fv-rows" });
  const empty = h("div", { class: "dv-fv-empty" });
  body.append(empty, detail, rowsBox);
  let cells: Cell[][] = [];
  let drawn = false;

  const paintImage = (canvas: HTMLCanvasElement, source: HTMLCanvasElement, w: number, hh: number) => {
    setupCanvas(canvas, w, hh);
    const c2 = canvas.getContext("2d")!;
    const dpr = canvas.width / w;
    c2.setTransform(dpr, 0, 0, dpr, 0, 0);
    c2.imageSmoothingEnabled = source.width < w;
    c2.drawImage(source, 0, 0, w, hh);
  };

  const sparkline = (series: number[], start: number): HTMLCanvasElement => {
    const w = 120;
    const hh = 40;
    const canvas = h("canvas", { class: "dv-fv-spark", role: "img", "aria-label": "objective during optimisation" });
    setupCanvas(canvas, w, hh);
    const c2 = canvas.getContext("2d")!;
    c2.setTransform(canvas.width / w, 0, 0, canvas.width / w, 0, 0);
    const all = [...series, start];
    const { lo, hi } = rangeOf(all, 0, all.length);
    const y = (v: number) => hh - 3 - ((v - lo) / (hi - lo || 1)) * (hh - 6);
    c2.strokeStyle = ctx.cssVar("--dv-border", "#bbb");
    c2.setLineDash([2, 2]);
    c2.beginPath();
    c2.moveTo(0, y(start));
    c2.lineTo(w, y(start));
    c2.stroke();
    c2.setLineDash([]);
    c2.strokeStyle = ctx.cssVar("--dv-accent", "#1976d2");
    c2.lineWidth = 1.5;
    c2.beginPath();
    series.forEach((v, i) => {
      const x = (i / Math.max(series.length - 1, 1)) * w;
      if (i === 0) c2.moveTo(x, y(v));
      else c2.lineTo(x, y(v));
    });
    c2.stroke();
    return canvas;
  };

  const drawSelection = () => {
    const sel = model.get("selected");
    cells.forEach((row, r) => row.forEach((cell, c) => cell.canvas.classList.toggle("dv-fv-selected", !!sel && sel[0] === r && sel[1] === c)));
    const cell = sel ? cells[sel[0]]?.[sel[1]] : undefined;
    if (!cell) {
      detail.style.display = "none";
      return;
    }
    detail.style.display = "flex";
    const s = cell.source;
    const w = s.width >= s.height ? BIG : Math.round((BIG * s.width) / s.height);
    const hh = s.width >= s.height ? Math.round((BIG * s.height) / s.width) : BIG;
    paintImage(enlarged, s, w, hh);
    setText(enlargedText, cell.caption);
  };

  const full = ctx.guard(() => {
    rowsBox.replaceChildren();
    cells = [];
    const imagesP = model.get("images");
    if (!has(imagesP)) {
      setText(empty, "No images yet: run the optimisation (FeatureVisView.run or from_model).");
      empty.style.display = "block";
      detail.style.display = "none";
      return;
    }
    empty.style.display = "none";
    const images = decode(imagesP);
    if (images.shape.length !== 5 || images.shape[4] !== 3) throw new RangeError(`images: expected (targets, samples, H, W, 3), got [${images.shape}]`);
    const [T, S, H, W] = images.shape;
    const labels = model.get("labels") ?? [];
    const values = has(model.get("values")) ? decode(model.get("values") as Encoded).values : null;
    const starts = has(model.get("start_values")) ? decode(model.get("start_values") as Encoded).values : null;
    const history = has(model.get("history")) ? decode(model.get("history") as Encoded) : null;
    const exP = model.get("examples");
    const examples = has(exP) ? decode(exP) : null;
    if (examples && (examples.shape.length !== 5 || examples.shape[0] !== T)) throw new RangeError(`examples: expected (${T}, k, h, w, 3), got [${examples.shape}]`);
    const exValues = has(model.get("example_values")) ? decode(model.get("example_values") as Encoded).values : null;
    const exLabels = model.get("example_labels") ?? [];
    const size = model.get("image_size");
    const iw = W >= H ? size : Math.round((size * W) / H);
    const ih = W >= H ? Math.round((size * H) / W) : size;
    const objective = OBJECTIVE_NAMES[model.get("objective")] ?? "objective";

    for (let r = 0; r < T; r++) {
      const row: Cell[] = [];
      const label = labels[r] ?? `target ${r}`;
      const figs: HTMLElement[] = [];
      for (let s = 0; s < S; s++) {
        const source = imageCanvas(images.values, (r * S + s) * H * W * 3, H, W, 3);
        const canvas = h("canvas", { class: "dv-fv-image", role: "img", "aria-label": `${label}, sample ${s + 1}` });
        paintImage(canvas, source, iw, ih);
        const v = values ? formatValue(values[r * S + s]) : "";
        const start = starts ? formatValue(starts[r * S + s]) : "";
        const caption = values ? `${objective} ${v}${starts ? ` (start ${start})` : ""}` : "";
        row.push({ source, canvas, caption: `${label}${S > 1 ? ` · sample ${s + 1}` : ""} · ${caption}` });
        figs.push(h("figure", { class: "dv-fv-fig" }, canvas, h("figcaption", {}, values ? v : "")));
      }
      if (history && history.shape.length === 2 && history.shape[1] === T && history.shape[0] > 1) {
        const series = Array.from({ length: history.shape[0] }, (_, i) => history.values[i * T + r]);
        figs.push(h("figure", { class: "dv-fv-fig dv-fv-sparkfig" }, sparkline(series, starts ? starts[r * S] : series[0]),
          h("figcaption", {}, `${history.shape[0]} steps`)));
      }
      const exFigs: HTMLElement[] = [];
      if (examples) {
        const [, K, eh, ew] = examples.shape;
        const es = Math.round(size / 2);
        for (let e = 0; e < K; e++) {
          const source = imageCanvas(examples.values, (r * K + e) * eh * ew * 3, eh, ew, 3);
          const name = exLabels[r]?.[e] ?? `example ${e + 1}`;
          const canvas = h("canvas", { class: "dv-fv-example", role: "img", "aria-label": name });
          paintImage(canvas, source, es, Math.round((es * eh) / ew));
          const v = exValues ? formatValue(exValues[r * K + e]) : "";
          row.push({ source, canvas, caption: `${label} · top-activating example ${e + 1}: ${name}${v ? ` · ${v}` : ""}` });
          exFigs.push(h("figure", { class: "dv-fv-fig" }, canvas, h("figcaption", { title: name }, v || name)));
        }
      }
      const head = h("div", { class: "dv-fv-row-head" }, h("span", { class: "dv-fv-label" }, label));
      const parts: HTMLElement[] = [h("div", { class: "dv-fv-group" }, ...figs)];
      if (exFigs.length) parts.push(h("div", { class: "dv-fv-group dv-fv-examples" }, h("div", { class: "dv-fv-group-label" }, "top-activating examples"), h("div", { class: "dv-fv-group-items" }, ...exFigs)));
      rowsBox.append(h("div", { class: "dv-fv-row", "data-target": String(r) }, head, h("div", { class: "dv-fv-row-body" }, ...parts)));
      row.forEach((cell, c) => {
        disposer.listen(cell.canvas, "click", ctx.guard(() => {
          const sel = model.get("selected");
          model.set("selected", sel && sel[0] === r && sel[1] === c ? null : [r, c]);
          model.save_changes();
          drawSelection();
        }));
      });
      cells.push(row);
    }
    drawSelection();
    if (!drawn) {
      drawn = true;
      ctx.markDrawn();
    }
  });

  for (const name of ["images", "labels", "values", "start_values", "history", "examples", "example_values", "example_labels", "image_size", "objective"]) {
    ctx.on(`change:${name}`, full);
  }
  ctx.on("change:selected", ctx.guard(drawSelection));

  ctx.setExporter("png", () => {
    const pad = 12;
    const cell = 128;
    const cols = Math.max(1, ...cells.map((r) => r.length));
    const k = 2;
    const width = pad + cols * (cell + pad) + 200;
    const height = pad + Math.max(cells.length, 1) * (cell + pad + 4);
    const out = offscreen(width * k, height * k);
    const o = out.getContext("2d")!;
    o.scale(k, k);
    o.fillStyle = ctx.cssVar("--dv-bg", "#fff");
    o.fillRect(0, 0, width, height);
    o.fillStyle = ctx.cssVar("--dv-fg", "#222");
    o.font = "12px sans-serif";
    const labels = model.get("labels") ?? [];
    cells.forEach((row, r) => {
      const y = pad + r * (cell + pad + 4);
      o.fillText(labels[r] ?? "", pad, y + 12, 190);
      row.forEach((c, i) => o.drawImage(c.source, 200 + pad + i * (cell + pad), y, cell, cell));
    });
    return out;
  });

  full();
  if (!drawn) ctx.markDrawn();  // an empty view is drawn too (it says what to do)
}

export default defineView<FeatureVisTraits>("feature_vis", build);
