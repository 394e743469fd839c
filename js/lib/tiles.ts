// Grids of small images (filters, activation maps, optimised images): layout
// maths, hit testing, and painting arrays into offscreen canvases that views
// then scale onto their visible canvas with imageSmoothing off.

import { lut, type Scale } from "./colors";

export interface TileLayout {
  cols: number;
  rows: number;
  /** Tile side in CSS pixels (width, height). */
  tw: number;
  th: number;
  gap: number;
  width: number;
  height: number;
}

/** Lays `n` tiles of `tw` x `th` CSS pixels in rows no wider than `maxWidth`. */
export function tileLayout(n: number, tw: number, th: number, maxWidth: number, gap = 2): TileLayout {
  const cols = Math.max(1, Math.min(n, Math.floor((maxWidth + gap) / (tw + gap))));
  const rows = Math.max(1, Math.ceil(n / cols));
  return { cols, rows, tw, th, gap, width: cols * tw + (cols - 1) * gap, height: rows * th + (rows - 1) * gap };
}

/** Top-left corner of slot `i` (display position, not filter index). */
export function tileOrigin(l: TileLayout, i: number): [number, number] {
  return [(i % l.cols) * (l.tw + l.gap), Math.floor(i / l.cols) * (l.th + l.gap)];
}

/** Slot under CSS point (x, y), or -1 in a gap or outside. */
export function tileAt(l: TileLayout, n: number, x: number, y: number): number {
  if (x < 0 || y < 0) return -1;
  const c = Math.floor(x / (l.tw + l.gap));
  const r = Math.floor(y / (l.th + l.gap));
  if (c >= l.cols || x - c * (l.tw + l.gap) >= l.tw || y - r * (l.th + l.gap) >= l.th) return -1;
  const i = r * l.cols + c;
  return i < n ? i : -1;
}

/** An integer upscale that brings a `side`-pixel image close to `target` CSS pixels (at least 1). */
export function pixelScale(side: number, target: number): number {
  return Math.max(1, Math.round(target / Math.max(side, 1)));
}

export function offscreen(w: number, h: number): HTMLCanvasElement {
  const c = document.createElement("canvas");
  c.width = Math.max(1, w);
  c.height = Math.max(1, h);
  return c;
}

/**
 * Paints an (h, w, c) image with values in [0, 1] (c = 1 or 3) starting at
 * `offset` into a new canvas, one pixel per value. NaN paints grey.
 */
export function imageCanvas(values: ArrayLike<number>, offset: number, h: number, w: number, c: number): HTMLCanvasElement {
  const canvas = offscreen(w, h);
  const ctx = canvas.getContext("2d")!;
  const img = ctx.createImageData(w, h);
  const d = img.data;
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) {
      const v = values[offset + p * c + (c === 1 ? 0 : k)];
      d[p * 4 + k] = v !== v ? 128 : Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
    d[p * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

/** Paints `n` consecutive (h, w) maps from `values` side by side in one strip canvas (h, n * w), through a colormap. */
export function mapStrip(values: ArrayLike<number>, n: number, h: number, w: number, scales: Scale[], cmap: string): HTMLCanvasElement {
  const canvas = offscreen(n * w, h);
  const ctx = canvas.getContext("2d")!;
  const img = ctx.createImageData(n * w, h);
  const table = lut(cmap);
  for (let i = 0; i < n; i++) {
    const s = scales[Math.min(i, scales.length - 1)];
    const span = s.vmax - s.vmin || 1;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = values[i * h * w + y * w + x];
        const o = (y * n * w + i * w + x) * 4;
        if (v !== v) {
          img.data[o] = img.data[o + 1] = img.data[o + 2] = 128;
        } else {
          const t = Math.min(1, Math.max(0, (v - s.vmin) / span));
          const k = Math.round(t * 255) * 4;
          img.data[o] = table[k];
          img.data[o + 1] = table[k + 1];
          img.data[o + 2] = table[k + 2];
        }
        img.data[o + 3] = 255;
      }
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

/** Finite min, max and max |v| of values[start, end). */
export function rangeOf(values: ArrayLike<number>, start: number, end: number): { lo: number; hi: number; abs: number } {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = start; i < end; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo > hi) lo = hi = 0;
  return { lo, hi, abs: Math.max(Math.abs(lo), Math.abs(hi)) };
}

// --- convolution kernels ---------------------------------------------------------------------

export type KernelMode = "rgb" | "channels" | "summary";

export interface KernelGeometry {
  k: number;
  kh: number;
  kw: number;
  /** Sub-kernel grid ('channels' mode): columns, rows, separator pixels. */
  gc: number;
  gr: number;
  sep: number;
  /** Native size of the whole kernel image (one pixel per weight). */
  w: number;
  h: number;
}

/** Layout of one filter's image: RGB (k = 3 planes), a grid of k single-channel kernels, or one summary plane. */
export function kernelGeometry(k: number, kh: number, kw: number, mode: KernelMode): KernelGeometry {
  if (mode === "rgb") {
    if (k !== 3) throw new RangeError(`kernel: mode 'rgb' needs 3 planes, got ${k}`);
    return { k, kh, kw, gc: 1, gr: 1, sep: 0, w: kw, h: kh };
  }
  const gc = Math.ceil(Math.sqrt(k));
  const gr = Math.ceil(k / gc);
  const sep = kh > 1 || kw > 1 ? 1 : 0;
  return { k, kh, kw, gc, gr, sep, w: gc * kw + (gc - 1) * sep, h: gr * kh + (gr - 1) * sep };
}

/**
 * Paints one filter (values[offset .. offset + k*kh*kw]) into `img` at (ox, oy):
 * RGB with grey = 0, RdBu with white = 0, or viridis from 0 for summaries;
 * `m` is the magnitude that maps to full colour. Separators are left as they are.
 */
export function paintKernel(
  img: ImageData, ox: number, oy: number, values: ArrayLike<number>, offset: number, g: KernelGeometry, mode: KernelMode, m: number,
): void {
  const d = img.data;
  const table = lut(mode === "summary" ? "viridis" : "rdbu");
  const plane = g.kh * g.kw;
  const scale = m > 0 ? m : 1;
  for (let c = 0; c < (mode === "rgb" ? 1 : g.k); c++) {
    const sx = ox + (c % g.gc) * (g.kw + g.sep);
    const sy = oy + Math.floor(c / g.gc) * (g.kh + g.sep);
    for (let y = 0; y < g.kh; y++) {
      for (let x = 0; x < g.kw; x++) {
        const o = ((sy + y) * img.width + sx + x) * 4;
        if (mode === "rgb") {
          for (let ch = 0; ch < 3; ch++) {
            const v = values[offset + ch * plane + y * g.kw + x];
            d[o + ch] = Math.round(Math.min(1, Math.max(0, 0.5 + (0.5 * v) / scale)) * 255);
          }
        } else {
          const v = values[offset + c * plane + y * g.kw + x];
          const t = mode === "summary" ? v / scale : 0.5 + (0.5 * v) / scale;
          const k = Math.round(Math.min(1, Math.max(0, t)) * 255) * 4;
          d[o] = table[k];
          d[o + 1] = table[k + 1];
          d[o + 2] = table[k + 2];
        }
        d[o + 3] = 255;
      }
    }
  }
}

/** One filter as its own canvas (one pixel per weight), separators in `sepColor`. */
export function kernelCanvas(
  values: ArrayLike<number>, offset: number, g: KernelGeometry, mode: KernelMode, m: number, sepColor: [number, number, number] = [128, 128, 128],
): HTMLCanvasElement {
  const canvas = offscreen(g.w, g.h);
  const ctx = canvas.getContext("2d")!;
  const img = ctx.createImageData(g.w, g.h);
  for (let p = 0; p < g.w * g.h; p++) img.data.set([sepColor[0], sepColor[1], sepColor[2], 255], p * 4);
  paintKernel(img, 0, 0, values, offset, g, mode, m);
  ctx.putImageData(img, 0, 0);
  return canvas;
}
