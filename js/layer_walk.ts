// LayerWalk view. Mirrors deepvis_widgets/widgets/layer_walk.py.
//
// Each block's channels are painted once into a strip canvas (one pixel per
// value); a row canvas copies strip cells into a tile grid. Selecting a
// channel redraws only the outline, the enlarged map, the box on the input
// and the kernel.

import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { decode, type Encoded } from "./lib/codec";
import { formatValue, makeScale, type Scale } from "./lib/colors";
import { Tooltip, h, setText } from "./lib/dom";
import { setupCanvas } from "./lib/canvas";
import {
  imageCanvas, kernelCanvas, kernelGeometry, mapStrip, offscreen, rangeOf, tileAt, tileLayout, tileOrigin,
  type KernelMode, type TileLayout,
} from "./lib/tiles";

export interface WalkBlock {
  name: string;
  output: string;
  shape: [number, number, number];
  channels: Encoded;
  maps: Encoded;
  peaks: Encoded;
  peak_at: Encoded;
  boxes: Encoded;
  kernel_name: string;
  kernel?: Encoded;
  kernel_mode: KernelMode | "";
}

export interface LayerWalkTraits extends BaseTraits {
  image: Encoded;
  layers: WalkBlock[];
  caption: string;
  normalize: "layer" | "channel";
  thumb_size: number;
  selected: [number, number] | null;
}

const MAX_WIDTH = 760;
const BIG = 224;

interface Row {
  block: WalkBlock;
  channels: ArrayLike<number>;
  n: number;
  h: number;
  w: number;
  maps: ArrayLike<number>;
  peaks: ArrayLike<number>;
  peakAt: ArrayLike<number>;
  boxes: ArrayLike<number>;
  kernel: ArrayLike<number> | null;
  kernelShape: number[];
  strip: HTMLCanvasElement;
  layout: TileLayout;
  canvas: HTMLCanvasElement;
  cmapDiverging: boolean;
}

function build(ctx: ViewContext<LayerWalkTraits>): void {
  const { model, body, disposer } = ctx;

  // --- input image --------------------------------------------------------------------
  const img = decode(model.get("image"));
  if (img.shape.length !== 3 || img.shape[2] !== 3) throw new RangeError(`image: expected (H, W, 3), got shape [${img.shape}]`);
  const [ih, iw] = img.shape;
  const inputSource = imageCanvas(img.values, 0, ih, iw, 3);
  const inputW = iw >= ih ? BIG : Math.round((BIG * iw) / ih);
  const inputH = iw >= ih ? Math.round((BIG * ih) / iw) : BIG;

  const inputCanvas = h("canvas", { class: "dv-walk-input", role: "img", "aria-label": "input" });
  const caption = h("div", { class: "dv-walk-caption" });
  const bigCanvas = h("canvas", { class: "dv-walk-big", role: "img", "aria-label": "selected channel" });
  const kernelCanvasEl = h("canvas", { class: "dv-walk-kernel", role: "img", "aria-label": "kernel" });
  const detailText = h("div", { class: "dv-walk-detail-text" });
  const kernelLabel = h("div", { class: "dv-walk-kernel-label" });
  const detail = h("div", { class: "dv-walk-detail" }, bigCanvas, h("div", { class: "dv-walk-side" }, detailText, kernelLabel, kernelCanvasEl));
  const top = h("div", { class: "dv-walk-top" }, h("div", { class: "dv-walk-inputbox" }, inputCanvas, caption), detail);
  const list = h("div", { class: "dv-walk-list" });
  body.append(top, list);
  setupCanvas(inputCanvas, inputW, inputH);

  // --- rows -----------------------------------------------------------------------------
  const rows: Row[] = [];

  const paintRow = (row: Row) => {
    const { lo, hi } = rangeOf(row.maps, 0, row.maps.length);
    row.cmapDiverging = lo < 0 && hi > 0;
    let scales: Scale[];
    if (model.get("normalize") === "channel") {
      scales = Array.from({ length: row.n }, (_, i) => {
        const r = rangeOf(row.maps, i * row.h * row.w, (i + 1) * row.h * row.w);
        return makeScale(row.cmapDiverging ? "diverging" : "sequential", r.lo, r.hi);
      });
    } else {
      scales = [makeScale(row.cmapDiverging ? "diverging" : "sequential", lo, hi)];
    }
    row.strip = mapStrip(row.maps, row.n, row.h, row.w, scales, row.cmapDiverging ? "rdbu" : "viridis");
  };

  const drawRow = (row: Row, index: number) => {
    const c2 = row.canvas.getContext("2d")!;
    const dpr = row.canvas.width / Math.max(row.layout.width, 1);
    c2.setTransform(dpr, 0, 0, dpr, 0, 0);
    c2.clearRect(0, 0, row.layout.width, row.layout.height);
    c2.imageSmoothingEnabled = false;
    for (let i = 0; i < row.n; i++) {
      const [x, y] = tileOrigin(row.layout, i);
      c2.drawImage(row.strip, i * row.w, 0, row.w, row.h, x, y, row.layout.tw, row.layout.th);
    }
    const sel = model.get("selected");
    if (sel && sel[0] === index) {
      const i = Array.prototype.indexOf.call(row.channels, sel[1]);
      if (i >= 0) {
        const [x, y] = tileOrigin(row.layout, i);
        c2.strokeStyle = ctx.cssVar("--dv-accent", "#1976d2");
        c2.lineWidth = 2;
        c2.strokeRect(x + 1, y + 1, row.layout.tw - 2, row.layout.th - 2);
      }
    }
  };

  const blocks = model.get("layers") ?? [];
  if (!blocks.length) throw new RangeError("layers: expected at least one block");
  blocks.forEach((block, index) => {
    const channels = decode(block.channels).values;
    const maps = decode(block.maps);
    if (maps.shape.length !== 3 || maps.shape[0] !== channels.length) {
      throw new RangeError(`layers[${index}].maps: expected (${channels.length}, h, w), got [${maps.shape}]`);
    }
    const [n, mh, mw] = maps.shape;
    const thumb = model.get("thumb_size");
    const tw = mw >= mh ? thumb : Math.max(4, Math.round((thumb * mw) / mh));
    const th = mw >= mh ? Math.max(4, Math.round((thumb * mh) / mw)) : thumb;
    const kernel = block.kernel ? decode(block.kernel) : null;
    const canvas = h("canvas", { class: "dv-walk-row-canvas", role: "img", "aria-label": `activations of ${block.name}` });
    const [C, H, W] = block.shape;
    const via = block.output !== block.name ? ` → ${block.output}` : "";
    const shown = n < C ? ` · ${n} strongest of ${C} channels` : "";
    const head = h("div", { class: "dv-walk-row-head" },
      h("span", { class: "dv-walk-row-name" }, block.name), `${via} · ${C}×${H}×${W}${shown}`);
    const plot = h("div", { class: "dv-walk-row-plot" }, canvas);
    list.append(h("div", { class: "dv-walk-row", "data-block": String(index) }, head, plot));
    const row: Row = {
      block, channels, n, h: mh, w: mw, maps: maps.values,
      peaks: decode(block.peaks).values, peakAt: decode(block.peak_at).values, boxes: decode(block.boxes).values,
      kernel: kernel ? kernel.values : null, kernelShape: kernel ? kernel.shape : [],
      strip: offscreen(1, 1), layout: tileLayout(n, tw, th, MAX_WIDTH), canvas, cmapDiverging: false,
    };
    setupCanvas(canvas, row.layout.width, row.layout.height);
    rows.push(row);
    const tooltip = new Tooltip(plot);
    const slotAt = (ev: MouseEvent) => {
      const r = canvas.getBoundingClientRect();
      return tileAt(row.layout, row.n, ev.clientX - r.left, ev.clientY - r.top);
    };
    disposer.listen(canvas, "mousemove", ctx.guard((ev: MouseEvent) => {
      const i = slotAt(ev);
      if (i < 0) return tooltip.hide();
      const pr = plot.getBoundingClientRect();
      tooltip.show([["channel", String(row.channels[i])], ["peak", formatValue(row.peaks[i])]], ev.clientX - pr.left, ev.clientY - pr.top);
    }));
    disposer.listen(canvas, "mouseleave", () => tooltip.hide());
    disposer.listen(canvas, "click", ctx.guard((ev: MouseEvent) => {
      const i = slotAt(ev);
      if (i < 0) return;
      model.set("selected", [index, row.channels[i]]);
      model.save_changes();
      selectionChanged();
    }));
  });

  // --- the selection: box on the input, enlarged map, kernel ----------------------------------
  let selectedRow = -1;
  const current = (): [Row, number] | null => {
    const sel = model.get("selected");
    if (!sel) return null;
    const row = rows[sel[0]];
    if (!row) return null;
    const i = Array.prototype.indexOf.call(row.channels, sel[1]);
    return i < 0 ? null : [row, i];
  };

  const drawInput = () => {
    const c2 = inputCanvas.getContext("2d")!;
    const dpr = inputCanvas.width / inputW;
    c2.setTransform(dpr, 0, 0, dpr, 0, 0);
    c2.imageSmoothingEnabled = true;
    c2.drawImage(inputSource, 0, 0, inputW, inputH);
    const cur = current();
    if (!cur) return;
    const [row, i] = cur;
    const [t, l, b, r] = Array.from(row.boxes).slice(i * 4, i * 4 + 4);
    c2.lineWidth = 2;
    c2.strokeStyle = "#ffeb3b";
    c2.strokeRect(l * inputW, t * inputH, (r - l) * inputW, (b - t) * inputH);
    c2.strokeStyle = "rgba(0, 0, 0, 0.6)";
    c2.lineWidth = 1;
    c2.strokeRect(l * inputW - 1.5, t * inputH - 1.5, (r - l) * inputW + 3, (b - t) * inputH + 3);
  };

  const drawDetail = () => {
    const cur = current();
    if (!cur) {
      detail.classList.add("dv-walk-empty");
      setText(detailText, "Click a channel below to enlarge it, outline where it peaks on the input, and see its kernel.");
      setupCanvas(bigCanvas, 1, 1);
      kernelCanvasEl.style.display = "none";
      setText(kernelLabel, "");
      return;
    }
    detail.classList.remove("dv-walk-empty");
    const [row, i] = cur;
    const bw = row.w >= row.h ? BIG : Math.round((BIG * row.w) / row.h);
    const bh = row.w >= row.h ? Math.round((BIG * row.h) / row.w) : BIG;
    setupCanvas(bigCanvas, bw, bh);
    const c2 = bigCanvas.getContext("2d")!;
    const dpr = bigCanvas.width / bw;
    c2.setTransform(dpr, 0, 0, dpr, 0, 0);
    c2.imageSmoothingEnabled = false;
    c2.drawImage(row.strip, i * row.w, 0, row.w, row.h, 0, 0, bw, bh);
    const [C, H, W] = row.block.shape;
    const py = row.peakAt[i * 2];
    const px = row.peakAt[i * 2 + 1];
    // A ring that shows on any colormap: black outside, white inside.
    for (const [color, width, r] of [["#000", 3, 6], ["#fff", 1.5, 6]] as [string, number, number][]) {
      c2.strokeStyle = color;
      c2.lineWidth = width;
      c2.beginPath();
      c2.arc(((px + 0.5) / W) * bw, ((py + 0.5) / H) * bh, r, 0, 2 * Math.PI);
      c2.stroke();
    }
    const lines = [
      `${row.block.name} · channel ${row.channels[i]} of ${C}`,
      `map ${H}×${W}${row.h !== H ? ` (drawn at ${row.h}×${row.w})` : ""}`,
      `peak ${formatValue(row.peaks[i])} at (${py}, ${px})`,
      "ring: the peak; yellow box on the input: the region around it",
    ];
    detailText.replaceChildren(...lines.map((text) => h("div", {}, text)));
    if (row.kernel && row.block.kernel_mode) {
      const [, k, kh, kw] = row.kernelShape;
      const g = kernelGeometry(k, kh, kw, row.block.kernel_mode as KernelMode);
      const size = k * kh * kw;
      const m = rangeOf(row.kernel, i * size, (i + 1) * size).abs;
      const src = kernelCanvas(row.kernel, i * size, g, row.block.kernel_mode as KernelMode, m);
      const s = Math.max(1, Math.floor(120 / Math.max(g.w, g.h)));
      setupCanvas(kernelCanvasEl, g.w * s, g.h * s);
      const k2 = kernelCanvasEl.getContext("2d")!;
      const kd = kernelCanvasEl.width / (g.w * s);
      k2.setTransform(kd, 0, 0, kd, 0, 0);
      k2.imageSmoothingEnabled = false;
      k2.drawImage(src, 0, 0, g.w * s, g.h * s);
      kernelCanvasEl.style.display = "block";
      const what = row.block.kernel_mode === "rgb" ? "RGB" : row.block.kernel_mode === "summary" ? "L2 over inputs" : `${k} input channel${k > 1 ? "s" : ""}, blue < 0 < red`;
      setText(kernelLabel, `kernel of ${row.block.kernel_name} (${kh}×${kw}, ${what})`);
    } else {
      kernelCanvasEl.style.display = "none";
      setText(kernelLabel, "no single convolution produced this block's channels");
    }
  };

  const selectionChanged = () => {
    const sel = model.get("selected");
    const now = sel ? sel[0] : -1;
    if (selectedRow >= 0 && rows[selectedRow]) drawRow(rows[selectedRow], selectedRow);
    if (now >= 0 && rows[now]) drawRow(rows[now], now);
    selectedRow = now;
    drawInput();
    drawDetail();
  };

  const full = ctx.guard(() => {
    rows.forEach((row, index) => {
      paintRow(row);
      drawRow(row, index);
    });
    selectedRow = model.get("selected")?.[0] ?? -1;
    setText(caption, model.get("caption") ?? "");
    drawInput();
    drawDetail();
  });

  ctx.on("change:selected", ctx.guard(selectionChanged));
  ctx.on("change:normalize", full);
  ctx.on("change:caption", full);
  ctx.on("change:layers", () => ctx.showError(new Error("layers changed: create a new LayerWalk for a new input")));
  ctx.on("change:thumb_size", () => ctx.showError(new Error("thumb_size changed: create a new LayerWalk to change it")));

  ctx.setExporter("png", () => {
    const pad = 16;
    const k = 2;
    const cur = current();
    const kw = cur && kernelCanvasEl.style.display !== "none" ? parseFloat(kernelCanvasEl.style.width) || 0 : 0;
    const width = inputW + (cur ? BIG + pad + (kw ? kw + pad : 0) : 0) + 2 * pad;
    const out = offscreen(width * k, (BIG + 2 * pad + 24) * k);
    const o = out.getContext("2d")!;
    o.scale(k, k);
    o.fillStyle = ctx.cssVar("--dv-bg", "#fff");
    o.fillRect(0, 0, width, BIG + 2 * pad + 24);
    o.fillStyle = ctx.cssVar("--dv-fg", "#222");
    o.font = "12px sans-serif";
    const label = cur ? `${cur[0].block.name} · channel ${cur[0].channels[cur[1]]}` : model.get("title") || "input";
    o.fillText(label, pad, pad + 10);
    o.drawImage(inputCanvas, pad, pad + 24, inputW, inputH);
    if (cur) {
      o.imageSmoothingEnabled = false;
      o.drawImage(bigCanvas, pad + inputW + pad, pad + 24, parseFloat(bigCanvas.style.width), parseFloat(bigCanvas.style.height));
      if (kw) o.drawImage(kernelCanvasEl, pad + inputW + pad + BIG + pad, pad + 24, kw, parseFloat(kernelCanvasEl.style.height));
    }
    return out;
  });

  full();
  ctx.markDrawn();
}

export default defineView<LayerWalkTraits>("layer_walk", build);
