// The points of a dense Bokeh scatter, drawn by us on a canvas laid over the
// plot's frame (used by js/training.ts).
//
// BokehJS repaints every marker on each selection change: for 10,000 points
// that is ~70 ms of JS and ~40 ms of software raster in headless Chromium,
// more than a brush may take. The Bokeh glyph stays (invisible) for hit
// testing, hover, box/lasso select and the ranges; this layer stamps the
// points into one image through the plot's own scales, and is redrawn when
// the selection, the data or a range changes.

import { h } from "./dom";

/** Anti-aliased coverage of a disc of diameter 5 px on a 6x6 grid centred on a pixel corner. */
const SIZE = 6;
const DISC = (() => {
  const out = new Float32Array(SIZE * SIZE);
  const r = 2.5;
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      let hit = 0;
      for (let sy = 0; sy < 4; sy++) for (let sx = 0; sx < 4; sx++) {
        const dx = x + (sx + 0.5) / 4 - SIZE / 2;
        const dy = y + (sy + 0.5) / 4 - SIZE / 2;
        if (dx * dx + dy * dy <= r * r) hit++;
      }
      out[y * SIZE + x] = hit / 16;
    }
  }
  return out;
})();

export interface ScatterStyle {
  alpha: number;
  selectedAlpha: number;
  unselectedAlpha: number;
}

export class ScatterLayer {
  readonly canvas: HTMLCanvasElement;
  private xs: Float64Array<ArrayBufferLike> = new Float64Array(0);
  private ys: Float64Array<ArrayBufferLike> = new Float64Array(0);
  private rgb = new Uint32Array(0); // 0xRRGGBB per point
  private selected: Uint8Array | null = null;
  private frame = 0;

  constructor(
    private plotView: any,
    private host: HTMLElement,
    private style: ScatterStyle,
    listen: (target: any, fn: () => void) => void,
  ) {
    this.canvas = h("canvas", { class: "dv-scatter-layer", "aria-hidden": "true" });
    host.append(this.canvas);
    const model = plotView.model;
    for (const range of [model.x_range, model.y_range]) listen(range, () => this.schedule());
  }

  setData(xs: Float64Array, ys: Float64Array, colors: string[]): void {
    this.xs = xs;
    this.ys = ys;
    this.rgb = new Uint32Array(xs.length);
    const cache = new Map<string, number>();
    colors.forEach((c, i) => {
      let v = cache.get(c);
      if (v === undefined) cache.set(c, (v = parseRgb(c)));
      this.rgb[i] = v;
    });
    this.draw();
  }

  setSelected(rows: number[] | null): void {
    if (!rows || !rows.length) this.selected = null;
    else {
      this.selected = new Uint8Array(this.xs.length);
      for (const r of rows) if (r < this.selected.length) this.selected[r] = 1;
    }
    this.draw();
  }

  /** Redraws in the next frame (range changes arrive while Bokeh repaints). */
  schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  dispose(): void {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.canvas.remove();
  }

  /** Where the frame is, in CSS pixels relative to the host (null before Bokeh has laid out). */
  private placement(): { left: number; top: number; width: number; height: number } | null {
    const frame = this.plotView.frame;
    const el: HTMLElement | undefined = this.plotView.canvas_view?.el;
    if (!frame || !el) return null;
    const bbox = frame.bbox;
    const a = el.getBoundingClientRect();
    const b = this.host.getBoundingClientRect();
    if (!(bbox.width > 0 && bbox.height > 0)) return null;
    return { left: a.left - b.left + bbox.left, top: a.top - b.top + bbox.top, width: bbox.width, height: bbox.height };
  }

  draw(): void {
    const at = this.placement();
    if (!at) return;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(at.width * dpr);
    const hgt = Math.round(at.height * dpr);
    const c = this.canvas;
    if (c.width !== w || c.height !== hgt) {
      c.width = w;
      c.height = hgt;
    }
    c.style.left = `${at.left}px`;
    c.style.top = `${at.top}px`;
    c.style.width = `${at.width}px`;
    c.style.height = `${at.height}px`;
    const g = c.getContext("2d");
    if (!g) return;
    const img = g.createImageData(w, hgt);
    const px = img.data;
    const { x_scale, bbox } = this.plotView.frame;
    const y_scale = this.plotView.frame.y_scale;
    const sel = this.selected;
    const { alpha, selectedAlpha, unselectedAlpha } = this.style;
    // unselected points first, selected ones on top
    for (const pass of sel ? [0, 1] : [0]) {
      const a0 = sel ? (pass ? selectedAlpha : unselectedAlpha) : alpha;
      for (let i = 0; i < this.xs.length; i++) {
        if (sel && sel[i] !== pass) continue;
        const sx = (x_scale.compute(this.xs[i]) - bbox.left) * dpr;
        const sy = (y_scale.compute(this.ys[i]) - bbox.top) * dpr;
        if (!Number.isFinite(sx) || !Number.isFinite(sy)) continue;
        const x0 = Math.round(sx) - SIZE / 2;
        const y0 = Math.round(sy) - SIZE / 2;
        const rgb = this.rgb[i];
        const r = rgb >>> 16;
        const gg = (rgb >>> 8) & 255;
        const b = rgb & 255;
        for (let dy = 0; dy < SIZE; dy++) {
          const y = y0 + dy;
          if (y < 0 || y >= hgt) continue;
          for (let dx = 0; dx < SIZE; dx++) {
            const x = x0 + dx;
            if (x < 0 || x >= w) continue;
            const a = DISC[dy * SIZE + dx] * a0;
            if (a <= 0) continue;
            // "source over" on premultiplied-free RGBA
            const o = (y * w + x) * 4;
            const da = px[o + 3] / 255;
            const oa = a + da * (1 - a);
            px[o] = (r * a + px[o] * da * (1 - a)) / oa;
            px[o + 1] = (gg * a + px[o + 1] * da * (1 - a)) / oa;
            px[o + 2] = (b * a + px[o + 2] * da * (1 - a)) / oa;
            px[o + 3] = oa * 255;
          }
        }
      }
    }
    g.putImageData(img, 0, 0);
  }
}

/** 0xRRGGBB of a #rgb / #rrggbb / rgb() colour (grey for anything else). */
export function parseRgb(color: string): number {
  const c = color.trim();
  let m = /^#([0-9a-f]{6})$/i.exec(c);
  if (m) return parseInt(m[1], 16);
  m = /^#([0-9a-f])([0-9a-f])([0-9a-f])$/i.exec(c);
  if (m) return parseInt(m[1] + m[1] + m[2] + m[2] + m[3] + m[3], 16);
  m = /^rgba?\(\s*(\d+)[\s,]+(\d+)[\s,]+(\d+)/i.exec(c);
  if (m) return (Number(m[1]) << 16) | (Number(m[2]) << 8) | Number(m[3]);
  return 0x808080;
}
