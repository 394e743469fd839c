// Per-example loss trajectories on canvas (used by js/training.ts).
//
// Thousands of polylines (10,000 x 100 points) are too many for SVG or for a
// Bokeh multi_line redrawn on every selection, so all trajectories are drawn
// once into an offscreen layer; a selection only redraws the selected lines
// over it. Dragging a rectangle selects the examples whose trajectory has a
// point inside it (a plain click clears the selection).

import { setupCanvas } from "./canvas";
import { formatValue } from "./colors";
import { h } from "./dom";

export interface TrajectoryData {
  n: number;
  c: number;
  /** (n, c) losses, NaN where an example has no observation. */
  loss: Float32Array;
  /** (c,) steps shared by every example, or null with `stepsAll`. */
  steps: Int32Array | null;
  /** (n, c) steps (-1 where none) when examples were seen at different steps. */
  stepsAll: Int32Array | null;
}

export interface TrajectoryStyle {
  fg: string;
  fg2: string;
  border: string;
  accent: string;
  bg: string;
}

const MARGIN = { left: 52, right: 10, top: 10, bottom: 30 };
const FLOOR = 1e-4; // losses below are drawn at the floor (log axis)

function niceStep(span: number, target: number): number {
  const raw = span / Math.max(target, 1);
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

/** Ticks for a linear axis: about `target` round values inside [lo, hi]. */
export function linearTicks(lo: number, hi: number, target = 6): number[] {
  if (!(hi > lo)) return [lo];
  const step = niceStep(hi - lo, target);
  const out: number[] = [];
  // each tick is k * step (never a running sum: that drifts to -5.55e-17 instead of 0, and stalls
  // when step is below the float spacing); the count is bounded by the range / step
  const k0 = Math.ceil(lo / step);
  const k1 = Math.floor(hi / step + 1e-9);
  for (let k = k0; k <= k1 && out.length < 1000; k++) out.push(Number((k * step).toPrecision(12)) || 0);
  return out;
}

/** Ticks for a log10 axis given in log10 units: powers of ten, with 2 and 5 when the range is short. */
export function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  const short = hi - lo < 1.5;
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
    for (const m of short ? [1, 2, 5] : [1]) {
      const v = Math.log10(m) + e;
      if (v >= lo - 1e-9 && v <= hi + 1e-9) out.push(v);
    }
  }
  return out;
}

/** Packs a colour for a little-endian Uint32 view of RGBA pixels (opaque). */
function pack(r: number, g: number, b: number): number {
  return ((255 << 24) | (Math.round(b) << 16) | (Math.round(g) << 8) | Math.round(r)) >>> 0;
}

let probe: CanvasRenderingContext2D | null = null;
/** RGBA bytes of any CSS colour (drawn once on a 1x1 canvas). */
function rgba(color: string): [number, number, number, number] {
  probe ??= document.createElement("canvas").getContext("2d", { willReadFrequently: true });
  if (!probe) return [128, 128, 128, 255];
  probe.clearRect(0, 0, 1, 1);
  probe.fillStyle = color;
  probe.fillRect(0, 0, 1, 1);
  const d = probe.getImageData(0, 0, 1, 1).data;
  return [d[0], d[1], d[2], d[3]];
}

export class TrajectoryPanel {
  readonly canvas: HTMLCanvasElement;
  readonly element: HTMLDivElement;
  private base = document.createElement("canvas");
  private data: TrajectoryData | null = null;
  private px = new Float32Array(0);
  private py = new Float32Array(0);
  /** Device-pixel coordinates of every point, -1 where missing. */
  private dx = new Int32Array(0);
  private dy = new Int32Array(0);
  private basePixels = new Uint32Array(0);
  private frame: ImageData | null = null;
  /** The selection whose lines `frame` holds (null: it must be redrawn). */
  private frameRows: number[] | null = null;
  /** With shared steps: the device column of each step, and the device rows step-major ((c, n), -1 where missing). */
  private colX = new Int32Array(0);
  private rowsByStep = new Int16Array(0);
  private runs = new Int32Array(0);
  /**
   * With shared steps and monotonic columns: each example's vertical run of pixels in each
   * device column ((columns, n), column-major; lo > hi where the line does not cross it), so a
   * selection of thousands of lines is a union of runs per column instead of a rasterization.
   */
  private colRuns = new Int32Array(0);
  private colFirst = 0;
  private colDiff = new Int32Array(0);
  private generation = 0;
  private selected: number[] = [];
  private brush: [number, number, number, number] | null = null;
  private x0 = 0;
  private x1 = 1;
  private y0 = 0;
  private y1 = 1;
  private dpr = 1;

  constructor(
    private width: number,
    private height: number,
    private style: () => TrajectoryStyle,
    private onBrush: (rows: number[] | null) => void,
    listen: (target: EventTarget, type: string, fn: (ev: any) => void) => void,
  ) {
    this.canvas = h("canvas", { class: "dv-traj-canvas", role: "img", "aria-label": "per-example loss trajectories" });
    this.element = h("div", { class: "dv-traj" }, this.canvas);
    this.dpr = setupCanvas(this.canvas, width, height);
    this.base.width = this.canvas.width;
    this.base.height = this.canvas.height;
    let start: [number, number] | null = null;
    const pos = (ev: MouseEvent): [number, number] => {
      const r = this.canvas.getBoundingClientRect();
      return [ev.clientX - r.left, ev.clientY - r.top];
    };
    listen(this.canvas, "mousedown", (ev: MouseEvent) => {
      start = pos(ev);
      ev.preventDefault();
    });
    listen(window, "mousemove", (ev: MouseEvent) => {
      if (!start) return;
      const p = pos(ev);
      this.brush = [start[0], start[1], p[0], p[1]];
      this.draw();
    });
    listen(window, "mouseup", (ev: MouseEvent) => {
      if (!start) return;
      const p = pos(ev);
      const [sx, sy] = start;
      start = null;
      this.brush = null;
      if (Math.abs(p[0] - sx) < 3 && Math.abs(p[1] - sy) < 3) {
        this.onBrush(null);
        this.draw();
        return;
      }
      this.onBrush(this.rowsIn(Math.min(sx, p[0]), Math.min(sy, p[1]), Math.max(sx, p[0]), Math.max(sy, p[1])));
    });
  }

  private stepAt(i: number, j: number): number {
    const d = this.data!;
    if (d.steps) return d.steps[j];
    const s = d.stepsAll![i * d.c + j];
    return s < 0 ? NaN : s;
  }

  setData(d: TrajectoryData): void {
    this.data = d;
    const { n, c, loss } = d;
    let xlo = Infinity;
    let xhi = -Infinity;
    let ylo = Infinity;
    let yhi = -Infinity;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < c; j++) {
        const v = loss[i * c + j];
        const s = this.stepAt(i, j);
        if (!Number.isFinite(v) || !Number.isFinite(s)) continue;
        const y = Math.log10(Math.max(v, FLOOR));
        if (s < xlo) xlo = s;
        if (s > xhi) xhi = s;
        if (y < ylo) ylo = y;
        if (y > yhi) yhi = y;
      }
    }
    if (!(xhi >= xlo)) [xlo, xhi] = [0, 1];
    if (!(yhi >= ylo)) [ylo, yhi] = [-1, 0];
    if (xhi === xlo) xhi = xlo + 1;
    if (yhi - ylo < 0.3) [ylo, yhi] = [ylo - 0.15, yhi + 0.15];
    [this.x0, this.x1, this.y0, this.y1] = [xlo, xhi, ylo, yhi];
    const W = this.width - MARGIN.left - MARGIN.right;
    const H = this.height - MARGIN.top - MARGIN.bottom;
    this.px = new Float32Array(n * c);
    this.py = new Float32Array(n * c);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < c; j++) {
        const k = i * c + j;
        const v = loss[k];
        const s = this.stepAt(i, j);
        if (!Number.isFinite(v) || !Number.isFinite(s)) {
          this.px[k] = NaN;
          this.py[k] = NaN;
          continue;
        }
        this.px[k] = MARGIN.left + ((s - xlo) / (xhi - xlo)) * W;
        this.py[k] = MARGIN.top + (1 - (Math.log10(Math.max(v, FLOOR)) - ylo) / (yhi - ylo)) * H;
      }
    }
    const k = this.dpr;
    this.dx = new Int32Array(n * c);
    this.dy = new Int32Array(n * c);
    for (let m = 0; m < n * c; m++) {
      const x = this.px[m];
      this.dx[m] = x === x ? Math.round(x * k) : -1;
      this.dy[m] = x === x ? Math.round(this.py[m] * k) : -1;
    }
    if (d.steps && this.canvas.height < 32767) {
      this.colX = new Int32Array(c);
      this.rowsByStep = new Int16Array(n * c).fill(-1);
      for (let j = 0; j < c; j++) {
        for (let i = 0; i < n; i++) {
          if (this.dx[i * c + j] >= 0) {
            this.colX[j] = this.dx[i * c + j];
            break;
          }
        }
        for (let i = 0; i < n; i++) this.rowsByStep[j * n + i] = this.dy[i * c + j];
      }
      // built after this frame (about as long as setData itself): live updates stay quick, and
      // a brush before it is ready uses overlayByStep
      this.colRuns = new Int32Array(0);
      const generation = ++this.generation;
      setTimeout(() => {
        if (generation === this.generation && this.data === d) this.buildColumns();
      }, 30);
    } else {
      this.colX = new Int32Array(0);
      this.rowsByStep = new Int16Array(0);
      this.colRuns = new Int32Array(0);
    }
    this.paintBase();
    this.draw();
  }

  setSelected(rows: number[]): void {
    this.selected = rows;
    this.draw();
  }

  /** Rows with a point inside the CSS-pixel rectangle. */
  rowsIn(ax: number, ay: number, bx: number, by: number): number[] {
    const d = this.data;
    if (!d) return [];
    const out: number[] = [];
    // With steps shared by every example, only the steps inside the brush can hit.
    let j0 = 0;
    let j1 = d.c - 1;
    if (d.steps) {
      const W = this.width - MARGIN.left - MARGIN.right;
      const xAt = (j: number) => MARGIN.left + ((d.steps![j] - this.x0) / (this.x1 - this.x0)) * W;
      while (j0 < d.c && xAt(j0) < ax - 1) j0++;
      while (j1 >= j0 && xAt(j1) > bx + 1) j1--;
    }
    for (let i = 0; i < d.n; i++) {
      for (let j = j0; j <= j1; j++) {
        const x = this.px[i * d.c + j];
        const y = this.py[i * d.c + j];
        if (x >= ax && x <= bx && y >= ay && y <= by) {
          out.push(i);
          break;
        }
      }
    }
    return out;
  }

  /**
   * Rasterizes the polylines of `rows` into `target` (one entry per device
   * pixel, row-major), Bresenham without anti-aliasing: an order of magnitude
   * faster than canvas paths for a million segments. With `value` < 0 each
   * pixel is incremented (a density count, saturating at 65535); otherwise it
   * is set to `value` (and its right neighbour too when `thick`). A missing
   * point (NaN loss) breaks the line.
   */
  private rasterize(rows: ArrayLike<number> | null, target: Uint16Array | Uint32Array, value: number, thick = false): void {
    const d = this.data!;
    const { c } = d;
    const w = this.canvas.width;
    const h = this.canvas.height;
    const X = this.dx;
    const Y = this.dy;
    const count = value < 0;
    const n = rows ? rows.length : d.n;
    for (let r = 0; r < n; r++) {
      const i = rows ? rows[r] : r;
      let x = -1;
      let y = -1;
      for (let j = 0; j < c; j++) {
        const x1 = X[i * c + j];
        const y1 = Y[i * c + j];
        if (x1 < 0) {
          x = -1;
          continue;
        }
        if (x < 0) {
          x = x1;
          y = y1;
        } else if (x === x1 && y === y1) {
          continue;
        }
        const ddx = Math.abs(x1 - x);
        const ddy = -Math.abs(y1 - y);
        const sx = x < x1 ? 1 : -1;
        const sy = y < y1 ? 1 : -1;
        let err = ddx + ddy;
        for (;;) {
          if (x < w && y < h) {
            const o = y * w + x;
            if (count) {
              if (target[o] < 65535) target[o]++;
            } else {
              target[o] = value;
              if (thick && x + 1 < w) target[o + 1] = value;
            }
          }
          if (x === x1 && y === y1) break;
          const e2 = 2 * err;
          if (e2 >= ddy) {
            err += ddy;
            x += sx;
          }
          if (e2 <= ddx) {
            err += ddx;
            y += sy;
          }
        }
      }
    }
  }

  /** Fills colRuns: the pixel run of every example in every device column (see overlayByColumns). */
  private buildColumns(): void {
    const { n, c } = this.data!;
    const X = this.colX;
    const Y = this.rowsByStep;
    this.colRuns = new Int32Array(0);
    for (let j = 1; j < c; j++) if (X[j] < X[j - 1]) return;
    const first = X[0];
    const cols = X[c - 1] - first + 1;
    if (!(cols > 0) || cols * n > 16_000_000) return; // 64 MB at most; larger data uses overlayByStep
    const lo = new Int16Array(cols * n).fill(32767);
    const hi = new Int16Array(cols * n).fill(-1);
    // The same geometry as overlayByStep: column xa + t covers the segment from t - 1/2 to t + 1/2.
    for (let j = 0; j < c; j++) {
      const xa = X[j];
      const oa = j * n;
      const last = j + 1 === c;
      const dx = last ? 0 : X[j + 1] - xa;
      const inv = dx > 0 ? 1 / dx : 0;
      for (let i = 0; i < n; i++) {
        const y = Y[oa + i];
        if (y < 0) continue;
        const y1 = last ? -1 : Y[oa + n + i];
        let o = (xa - first) * n + i;
        if (y1 < 0) {
          if ((j === 0 || Y[oa - n + i] < 0) && y < lo[o]) lo[o] = y;
          if ((j === 0 || Y[oa - n + i] < 0) && y > hi[o]) hi[o] = y;
          continue;
        }
        const slope = (y1 - y) * inv;
        let prev = y;
        for (let t = 0; t <= dx; t++, o += n) {
          const next = t < dx ? y + slope * (t + 0.5) : y1;
          const a = ((prev < next ? prev : next) + 0.5) | 0;
          const b = ((prev < next ? next : prev) + 0.5) | 0;
          if (a < lo[o]) lo[o] = a;
          if (b > hi[o]) hi[o] = b;
          prev = next;
        }
      }
    }
    // packed as lo | hi << 16 (hi = -1, i.e. 0xffff, where the line does not cross the column)
    const runs = new Int32Array(cols * n);
    for (let o = 0; o < runs.length; o++) runs[o] = hi[o] < 0 ? 0x7fff0000 | 0x7fff : (lo[o] & 0xffff) | (hi[o] << 16);
    this.colRuns = runs;
    this.colFirst = first;
  }

  /**
   * The pixels of `rows` from the per-column runs: per device column, the union of
   * the selected examples' runs (a difference array of one column's height, in cache).
   * Same pixels as overlayByStep without `thick`, several times faster for thousands of lines.
   */
  private overlayByColumns(rows: ArrayLike<number>, target: Uint32Array, value: number): void {
    const { n } = this.data!;
    const w = this.canvas.width;
    const h = this.canvas.height;
    const runs = this.colRuns;
    const cols = runs.length / n;
    if (this.colDiff.length !== 0x8000 + 2) this.colDiff = new Int32Array(0x8000 + 2);
    const diff = this.colDiff; // indexed by pixel row; absent runs land at 0x7fff, never read
    const m = rows.length;
    for (let col = 0; col < cols; col++) {
      const x = this.colFirst + col;
      if (x >= w) break;
      const base = col * n;
      for (let r = 0; r < m; r++) {
        const v = runs[base + rows[r]];
        diff[v & 0xffff]++;
        diff[(v >>> 16) + 1]--;
      }
      let sum = 0;
      for (let y = 0; y < h; y++) {
        sum += diff[y];
        if (sum > 0) target[y * w + x] = value;
        diff[y] = 0;
      }
      diff[h] = 0;
      diff[0x7fff] = 0;
      diff[0x8000] = 0;
    }
  }

  /**
   * Sets the pixels of the polylines of `rows` to `value` (and their right
   * neighbours when `thick`) when every example shares the same steps: the
   * result of `rasterize`, about twice as fast for thousands of lines. Step by
   * step, each segment covers one run of pixels per device column it crosses;
   * the runs go into a column-major difference array (+1 at a run's top, -1
   * below its bottom) that stays in cache while one step is processed, and one
   * pass over the pixels turns the counts into the selection's pixels.
   */
  private overlayByStep(rows: ArrayLike<number>, target: Uint32Array, value: number, thick: boolean): void {
    const { n, c } = this.data!;
    const w = this.canvas.width;
    const h = this.canvas.height;
    const h1 = h + 1;
    if (this.runs.length !== w * h1) this.runs = new Int32Array(w * h1);
    const runs = this.runs;
    runs.fill(0);
    const Y = this.rowsByStep;
    const X = this.colX;
    const m = rows.length;
    const spread = thick ? 2 : 1;
    for (let j = 0; j < c; j++) {
      const xa = X[j];
      const oa = j * n;
      const last = j + 1 === c;
      const dx = last ? 0 : X[j + 1] - xa;
      const inv = dx > 0 ? 1 / dx : 0;
      for (let r = 0; r < m; r++) {
        const i = rows[r];
        const y = Y[oa + i];
        if (y < 0) continue;
        const y1 = last ? -1 : Y[oa + n + i];
        if (y1 < 0) {
          // No next point: draw this one alone if it has no previous point either.
          if (j === 0 || Y[oa - n + i] < 0) {
            for (let s = 0; s < spread && xa + s < w; s++) {
              runs[(xa + s) * h1 + y]++;
              runs[(xa + s) * h1 + y + 1]--;
            }
          }
          continue;
        }
        // Column xa + t covers the segment from x = t - 1/2 to t + 1/2 (clipped to its ends).
        const slope = (y1 - y) * inv;
        let prev = y;
        let base = xa * h1;
        for (let t = 0; t <= dx; t++) {
          const next = t < dx ? y + slope * (t + 0.5) : y1;
          const lo = ((prev < next ? prev : next) + 0.5) | 0;
          const hi = ((prev < next ? next : prev) + 0.5) | 0;
          runs[base + lo]++;
          runs[base + hi + 1]--;
          if (thick && xa + t + 1 < w) {
            runs[base + h1 + lo]++;
            runs[base + h1 + hi + 1]--;
          }
          prev = next;
          base += h1;
        }
      }
    }
    for (let col = 0; col < w; col++) {
      let s = 0;
      const base = col * h1;
      for (let y = 0; y < h; y++) {
        s += runs[base + y];
        if (s > 0) target[y * w + col] = value;
      }
    }
  }

  private baseContext(): CanvasRenderingContext2D {
    return this.base.getContext("2d", { willReadFrequently: true })!;
  }

  private paintBase(): void {
    const g = this.baseContext();
    const st = this.style();
    const w = this.base.width;
    const hgt = this.base.height;
    const bg = rgba(st.bg);
    const ink = rgba(st.fg2);
    const inkAlpha = ink[3] / 255; // fg2 is often translucent: mix it over the background once
    const fg = [0, 1, 2].map((c) => bg[c] + (ink[c] - bg[c]) * inkAlpha);
    const d = this.data;
    const img = g.createImageData(w, hgt);
    const px32 = new Uint32Array(img.data.buffer);
    px32.fill(pack(bg[0], bg[1], bg[2]));
    if (d && d.n) {
      // Density: each line adds opacity `a`; k lines through a pixel give 1 - (1 - a)^k.
      const hits = new Uint16Array(w * hgt);
      this.rasterize(null, hits, -1);
      const a = Math.min(0.6, Math.max(0.03, 4 / Math.sqrt(d.n)));
      const lut = new Uint32Array(256);
      for (let k = 0; k < 256; k++) {
        const t = 1 - (1 - a) ** k;
        lut[k] = pack(bg[0] + (fg[0] - bg[0]) * t, bg[1] + (fg[1] - bg[1]) * t, bg[2] + (fg[2] - bg[2]) * t);
      }
      for (let o = 0; o < hits.length; o++) if (hits[o]) px32[o] = lut[Math.min(hits[o], 255)];
    }
    g.putImageData(img, 0, 0);
    this.paintAxes(g, st);
    this.basePixels = new Uint32Array(g.getImageData(0, 0, w, hgt).data.buffer.slice(0));
    this.frameRows = null;
  }

  private paintAxes(g: CanvasRenderingContext2D, st: TrajectoryStyle): void {
    g.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    const W = this.width - MARGIN.left - MARGIN.right;
    const H = this.height - MARGIN.top - MARGIN.bottom;
    g.strokeStyle = st.border;
    g.lineWidth = 1;
    g.strokeRect(MARGIN.left + 0.5, MARGIN.top + 0.5, W, H);
    g.fillStyle = st.fg2;
    g.font = "10px sans-serif";
    g.textAlign = "center";
    g.textBaseline = "top";
    for (const v of linearTicks(this.x0, this.x1)) {
      const x = MARGIN.left + ((v - this.x0) / (this.x1 - this.x0)) * W;
      g.fillText(formatValue(v), x, MARGIN.top + H + 4);
      g.beginPath();
      g.moveTo(x, MARGIN.top + H);
      g.lineTo(x, MARGIN.top + H + 3);
      g.stroke();
    }
    g.fillText("step", MARGIN.left + W / 2, MARGIN.top + H + 17);
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (const v of logTicks(this.y0, this.y1)) {
      const y = MARGIN.top + (1 - (v - this.y0) / (this.y1 - this.y0)) * H;
      g.fillText(formatValue(10 ** v), MARGIN.left - 5, y);
      g.globalAlpha = 0.35;
      g.beginPath();
      g.moveTo(MARGIN.left, y);
      g.lineTo(MARGIN.left + W, y);
      g.stroke();
      g.globalAlpha = 1;
    }
    g.save();
    g.translate(11, MARGIN.top + H / 2);
    g.rotate(-Math.PI / 2);
    g.textAlign = "center";
    g.fillText("loss (log)", 0, 0);
    g.restore();
  }

  /** Repaints: the cached background, the selected lines, and the brush rectangle. */
  draw(): void {
    const g = this.canvas.getContext("2d")!;
    g.setTransform(1, 0, 0, 1, 0, 0);
    const st = this.style();
    if (this.data && this.selected.length) {
      // Selected lines are written over a copy of the background's pixels.
      // They are kept while the selection is unchanged: dragging a brush only redraws its rectangle.
      const w = this.canvas.width;
      if (!this.frame || this.frame.width !== w || this.frame.height !== this.canvas.height) {
        this.frame = g.createImageData(w, this.canvas.height);
        this.frameRows = null;
      }
      if (this.frameRows !== this.selected) {
        const px32 = new Uint32Array(this.frame.data.buffer);
        px32.set(this.basePixels);
        const [r, gg, b] = rgba(st.accent);
        const thick = this.selected.length <= 200;
        if (this.colRuns.length && !thick) this.overlayByColumns(this.selected, px32, pack(r, gg, b));
        else if (this.colX.length) this.overlayByStep(this.selected, px32, pack(r, gg, b), thick);
        else this.rasterize(this.selected, px32, pack(r, gg, b), thick);
        this.frameRows = this.selected;
      }
      g.putImageData(this.frame, 0, 0);
    } else {
      g.clearRect(0, 0, this.canvas.width, this.canvas.height);
      g.drawImage(this.base, 0, 0);
    }
    g.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    if (this.brush) {
      const [ax, ay, bx, by] = this.brush;
      g.strokeStyle = st.accent;
      g.setLineDash([4, 3]);
      g.lineWidth = 1;
      g.strokeRect(Math.min(ax, bx), Math.min(ay, by), Math.abs(bx - ax), Math.abs(by - ay));
      g.setLineDash([]);
    }
  }

  /** Repaints everything (after a theme change). */
  restyle(): void {
    this.paintBase();
    this.draw();
  }
}

/** A small sparkline of one example's trajectory (for the selection cards). */
export function sparkline(d: TrajectoryData, row: number, width: number, height: number, color: string): HTMLCanvasElement {
  const c = h("canvas", { class: "dv-sparkline" });
  const dpr = setupCanvas(c, width, height);
  const g = c.getContext("2d");
  if (!g) return c;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  const xs: number[] = [];
  const ys: number[] = [];
  for (let j = 0; j < d.c; j++) {
    const v = d.loss[row * d.c + j];
    const s = d.steps ? d.steps[j] : d.stepsAll![row * d.c + j];
    if (Number.isFinite(v) && s >= 0) {
      xs.push(s);
      ys.push(Math.log10(Math.max(v, FLOOR)));
    }
  }
  if (xs.length < 1) return c;
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys, -1), Math.max(...ys, 0.5)];
  g.strokeStyle = color;
  g.lineWidth = 1.2;
  g.beginPath();
  xs.forEach((x, k) => {
    const px = 1 + ((x - x0) / Math.max(x1 - x0, 1)) * (width - 2);
    const py = 1 + (1 - (ys[k] - y0) / Math.max(y1 - y0, 1e-9)) * (height - 2);
    if (k) g.lineTo(px, py);
    else g.moveTo(px, py);
  });
  g.stroke();
  return c;
}
