// ModelView. Mirrors deepvis_widgets/widgets/attention.py (ModelView): a
// layers x heads grid of attention-matrix thumbnails on one canvas, heads
// sortable by their summaries; clicking a thumbnail opens the head view
// (js/lib/head_lines.ts) on that layer and head below the grid.

import { defineView, type ViewContext } from "./lib/base";
import type { AttentionTraits } from "./lib/attention";
import { headColor } from "./lib/attention";
import { setupCanvas } from "./lib/canvas";
import { bytesOf, decode, type Encoded } from "./lib/codec";
import { formatValue, lut } from "./lib/colors";
import { Tooltip, h, setText } from "./lib/dom";
import { HeadLines } from "./lib/head_lines";

type SortKey = "head" | "entropy" | "distance" | "special";

export interface ModelViewTraits extends AttentionTraits {
  _thumbnails: Record<string, Encoded>;
  summary: Record<string, { entropy: Encoded; distance: Encoded; special: Encoded; peak: Encoded }>;
  sort_by: SortKey;
  selected: [number, number] | null;
}

const GAP = 3;
const LABEL_W = 34;
const SORT_TEXT: Record<SortKey, string> = {
  head: "head index",
  entropy: "entropy (focused first)",
  distance: "mean distance (local first)",
  special: "attention to special tokens (least first)",
};

interface Grid {
  stack: string;
  layers: number;
  heads: number;
  rows: number;
  cols: number;
  atlas: HTMLCanvasElement;
  stats: Record<"entropy" | "distance" | "special" | "peak", Float32Array>;
}

function buildGrid(ctx: ViewContext<ModelViewTraits>, stack: string): Grid {
  const enc = ctx.model.get("_thumbnails")[stack];
  if (!enc) throw new Error(`_thumbnails: no thumbnails for stack ${JSON.stringify(stack)}`);
  const [layers, heads, rows, cols] = enc.shape;
  const bytes = bytesOf(enc.buffer);
  if (bytes.length !== layers * heads * rows * cols) throw new RangeError(`_thumbnails: ${bytes.length} bytes for shape [${enc.shape}]`);
  // One atlas holds every thumbnail at its native size: one putImageData for the whole grid.
  const atlas = document.createElement("canvas");
  atlas.width = heads * cols;
  atlas.height = layers * rows;
  const a = atlas.getContext("2d")!;
  const img = a.createImageData(atlas.width, atlas.height);
  const table = lut("viridis");
  const scale = enc.scale ?? 1 / 254;
  const offset = enc.offset ?? 0;
  for (let l = 0; l < layers; l++) {
    for (let hd = 0; hd < heads; hd++) {
      const base = (l * heads + hd) * rows * cols;
      for (let r = 0; r < rows; r++) {
        const out = ((l * rows + r) * atlas.width + hd * cols) * 4;
        for (let c = 0; c < cols; c++) {
          const v = offset + bytes[base + r * cols + c] * scale;
          const k = Math.max(0, Math.min(255, Math.round(v * 255))) * 4;
          const o = out + c * 4;
          img.data[o] = table[k];
          img.data[o + 1] = table[k + 1];
          img.data[o + 2] = table[k + 2];
          img.data[o + 3] = 255;
        }
      }
    }
  }
  a.putImageData(img, 0, 0);
  const s = ctx.model.get("summary")[stack];
  const stats = {
    entropy: decode(s.entropy).values as Float32Array,
    distance: decode(s.distance).values as Float32Array,
    special: decode(s.special).values as Float32Array,
    peak: decode(s.peak).values as Float32Array,
  };
  return { stack, layers, heads, rows, cols, atlas, stats };
}

/** Head order within each layer: (layers, heads) -> original head index, NaN last, stable. */
function order(g: Grid, by: SortKey): Int32Array {
  const out = new Int32Array(g.layers * g.heads);
  for (let l = 0; l < g.layers; l++) {
    const idx = Array.from({ length: g.heads }, (_, i) => i);
    if (by !== "head") {
      const v = g.stats[by];
      const key = (i: number) => (Number.isNaN(v[l * g.heads + i]) ? Infinity : v[l * g.heads + i]);
      idx.sort((x, y) => key(x) - key(y) || x - y);
    }
    out.set(idx, l * g.heads);
  }
  return out;
}

function build(ctx: ViewContext<ModelViewTraits>): void {
  const { model, body, disposer } = ctx;
  const t0 = performance.now();
  const stackSelect = h("select", { class: "dv-att-select", "aria-label": "stack" });
  const sortSelect = h("select", { class: "dv-att-select dv-mv-sort", "aria-label": "sort heads by" });
  for (const k of Object.keys(SORT_TEXT) as SortKey[]) sortSelect.append(h("option", { value: k }, SORT_TEXT[k]));
  const stackLabel = h("label", { class: "dv-att-control" }, "Stack", stackSelect);
  const controls = h("div", { class: "dv-att-controls" }, stackLabel, h("label", { class: "dv-att-control" }, "Sort heads by", sortSelect));
  const colLabels = h("div", { class: "dv-mv-collabels" });
  const rowLabels = h("div", { class: "dv-mv-rowlabels" });
  const canvas = h("canvas", { class: "dv-mv-canvas", role: "img", "aria-label": "attention of every head" });
  const plot = h("div", { class: "dv-mv-plot" }, canvas);
  const grid = h("div", { class: "dv-mv-grid" }, h("div"), colLabels, rowLabels, plot);
  const caption = h("div", { class: "dv-att-status dv-mv-caption" });
  const panelTitle = h("div", { class: "dv-mv-panel-title" });
  const lines = new HeadLines(ctx, false);
  const panel = h("div", { class: "dv-mv-panel" }, panelTitle, lines.el);
  body.append(controls, grid, caption, panel);
  const tooltip = new Tooltip(plot);

  let g: Grid | null = null;
  let ord: Int32Array = new Int32Array(0);
  let cell = 48;
  let hover: [number, number] | null = null; // (layer, column)

  const layoutGrid = () => {
    const stacks = model.get("stacks");
    const stack = (stacks.find((s) => s.name === model.get("stack")) ?? stacks[0]).name;
    if (stackSelect.options.length !== stacks.length) stackSelect.replaceChildren(...stacks.map((s) => h("option", { value: s.name }, s.name)));
    stackSelect.value = stack;
    stackLabel.style.display = stacks.length > 1 ? "" : "none";
    sortSelect.value = model.get("sort_by");
    if (!g || g.stack !== stack) g = buildGrid(ctx, stack);
    ord = order(g, model.get("sort_by"));
    cell = Math.max(24, Math.min(64, Math.floor(720 / g.heads) - GAP));
    const W = g.heads * (cell + GAP);
    const H = g.layers * (cell + GAP);
    setupCanvas(canvas, W, H);
    colLabels.style.width = `${W}px`;
    rowLabels.style.height = `${H}px`;
    const sorted = model.get("sort_by") !== "head";
    colLabels.replaceChildren(
      ...Array.from({ length: g.heads }, (_, i) => {
        const d = h("div", { class: "dv-mv-collabel" }, sorted ? `#${i + 1}` : String(i));
        d.style.left = `${i * (cell + GAP)}px`;
        d.style.width = `${cell}px`;
        return d;
      }),
    );
    const names = (stacks.find((s) => s.name === stack) ?? stacks[0]).layer_names;
    rowLabels.replaceChildren(
      ...Array.from({ length: g.layers }, (_, l) => {
        const d = h("div", { class: "dv-mv-rowlabel", title: `layer ${names[l]}` }, names[l]);
        d.style.top = `${l * (cell + GAP)}px`;
        d.style.height = `${cell}px`;
        d.style.lineHeight = `${cell}px`;
        return d;
      }),
    );
    setText(caption, `${g.layers} layers × ${g.heads} heads; rows are layers, columns ${sorted ? `heads sorted by ${SORT_TEXT[model.get("sort_by")]}` : "heads"}. Each thumbnail: queries down, keys across, scaled to its own largest weight. Click one to open it below.`);
    drawGrid();
  };

  const drawGrid = () => {
    if (!g) return;
    const c = canvas.getContext("2d")!;
    const dpr = canvas.width / (g.heads * (cell + GAP));
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.clearRect(0, 0, g.heads * (cell + GAP), g.layers * (cell + GAP));
    c.imageSmoothingEnabled = g.rows > cell || g.cols > cell;
    const sel = model.get("selected");
    for (let l = 0; l < g.layers; l++) {
      for (let col = 0; col < g.heads; col++) {
        const hd = ord[l * g.heads + col];
        const x = col * (cell + GAP);
        const y = l * (cell + GAP);
        c.drawImage(g.atlas, hd * g.cols, l * g.rows, g.cols, g.rows, x, y, cell, cell);
        // A strip in the head's colour ties the thumbnail to the head view's colours.
        c.fillStyle = headColor(hd);
        c.fillRect(x, y + cell - 3, cell, 3);
        const isSel = sel && sel[0] === l && sel[1] === hd;
        const isHover = hover && hover[0] === l && hover[1] === col;
        if (isSel || isHover) {
          c.strokeStyle = isSel ? ctx.cssVar("--dv-accent", "#1976d2") : ctx.cssVar("--dv-hover", "#888");
          c.lineWidth = isSel ? 3 : 1.5;
          c.strokeRect(x + c.lineWidth / 2, y + c.lineWidth / 2, cell - c.lineWidth, cell - c.lineWidth);
        }
      }
    }
  };

  const at = (ev: MouseEvent): [number, number] | null => {
    if (!g) return null;
    const r = canvas.getBoundingClientRect();
    const col = Math.floor((ev.clientX - r.left) / (cell + GAP));
    const l = Math.floor((ev.clientY - r.top) / (cell + GAP));
    return col >= 0 && col < g.heads && l >= 0 && l < g.layers ? [l, col] : null;
  };

  const syncPanel = () => {
    const sel = model.get("selected");
    panel.style.display = sel ? "" : "none";
    lines.setActive(!!sel);
    if (sel) setText(panelTitle, `Layer ${sel[0]}, head ${sel[1]} (toggle more heads or pick another layer below)`);
  };

  disposer.listen(canvas, "mousemove", ctx.guard((ev: MouseEvent) => {
    const p = at(ev);
    const changed = JSON.stringify(p) !== JSON.stringify(hover);
    hover = p;
    if (changed) drawGrid();
    if (!p || !g) return tooltip.hide();
    const [l, col] = p;
    const hd = ord[l * g.heads + col];
    const i = l * g.heads + hd;
    const pr = plot.getBoundingClientRect();
    tooltip.show(
      [
        ["layer, head", `${l}, ${hd}`],
        ["entropy", `${formatValue(g.stats.entropy[i])} nats`],
        ["mean distance", Number.isNaN(g.stats.distance[i]) ? "n/a (cross-attention)" : `${formatValue(g.stats.distance[i])} tokens`],
        ["to special tokens", formatValue(g.stats.special[i])],
        ["largest (pooled) weight", formatValue(g.stats.peak[i])],
      ],
      ev.clientX - pr.left,
      ev.clientY - pr.top,
    );
  }));
  disposer.listen(canvas, "mouseleave", () => {
    hover = null;
    tooltip.hide();
    drawGrid();
  });
  disposer.listen(canvas, "click", ctx.guard((ev: MouseEvent) => {
    const p = at(ev);
    if (!p || !g) return;
    const hd = ord[p[0] * g.heads + p[1]];
    model.set("layer", p[0]);
    model.set("heads", [hd]);
    model.set("selected", [p[0], hd]);
    model.save_changes();
  }));
  disposer.listen(stackSelect, "change", ctx.guard(() => {
    model.set("selected", null);
    model.set("stack", stackSelect.value);
    model.save_changes();
  }));
  disposer.listen(sortSelect, "change", ctx.guard(() => {
    model.set("sort_by", sortSelect.value as SortKey);
    model.save_changes();
  }));
  ctx.on("change:sort_by", ctx.guard(layoutGrid));
  ctx.on("change:stack", ctx.guard(layoutGrid));
  ctx.on("change:selected", ctx.guard(() => {
    drawGrid();
    syncPanel();
  }));

  ctx.setExporter("png", () => {
    if (!g) throw new Error("nothing drawn yet");
    const k = 2;
    const pad = 12;
    const title = model.get("title") ?? "";
    const head = title ? 26 : 0;
    const W = g.heads * (cell + GAP);
    const H = g.layers * (cell + GAP);
    const out = document.createElement("canvas");
    out.width = (W + LABEL_W + 2 * pad) * k;
    out.height = (H + head + 18 + 2 * pad) * k;
    const o = out.getContext("2d")!;
    o.scale(k, k);
    o.fillStyle = ctx.cssVar("--dv-bg", "#fff");
    o.fillRect(0, 0, out.width, out.height);
    o.fillStyle = ctx.cssVar("--dv-fg", "#222");
    if (title) {
      o.font = "bold 14px sans-serif";
      o.fillText(title, pad, pad + 14);
    }
    o.font = "11px sans-serif";
    o.textAlign = "center";
    for (let i = 0; i < g.heads; i++) o.fillText(colLabels.children[i]?.textContent ?? "", pad + LABEL_W + i * (cell + GAP) + cell / 2, pad + head + 12);
    o.textAlign = "right";
    o.textBaseline = "middle";
    for (let l = 0; l < g.layers; l++) o.fillText(rowLabels.children[l]?.textContent ?? "", pad + LABEL_W - 6, pad + head + 18 + l * (cell + GAP) + cell / 2);
    o.drawImage(canvas, pad + LABEL_W, pad + head + 18, W, H);
    return out;
  });

  lines.setActive(false);
  layoutGrid();
  syncPanel();
  ctx.root.dataset.dvRenderMs = (performance.now() - t0).toFixed(1);
  ctx.markDrawn();
}

export default defineView<ModelViewTraits>("model_view", build);
