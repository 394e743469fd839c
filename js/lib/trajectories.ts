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
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
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

export class TrajectoryPanel {
  readonly canvas: HTMLCanvasElement;
  readonly element: HTMLDivElement;
  private base = document.createElement("canvas");
  private data: TrajectoryData | null = null;
  private px = new Float32Array(0);
  private py = new Float32Array(0);
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
    for (let i = 0; i < d.n; i++) {
      for (let j = 0; j < d.c; j++) {
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

  private path(g: CanvasRenderingContext2D, rows: Iterable<number>): void {
    const d = this.data!;
    g.beginPath();
    for (const i of rows) {
      let pen = false;
      for (let j = 0; j < d.c; j++) {
        const x = this.px[i * d.c + j];
        const y = this.py[i * d.c + j];
        if (x !== x) {
          pen = false; // a NaN loss is a gap (missing observations only ever trail a row)
          continue;
        }
        if (pen) g.lineTo(x, y);
        else {
          g.moveTo(x, y);
          pen = true;
        }
      }
    }
  }

  private paintBase(): void {
    const g = this.base.getContext("2d")!;
    const st = this.style();
    g.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    g.clearRect(0, 0, this.width, this.height);
    g.fillStyle = st.bg;
    g.fillRect(0, 0, this.width, this.height);
    const W = this.width - MARGIN.left - MARGIN.right;
    const H = this.height - MARGIN.top - MARGIN.bottom;
    // Axes and ticks.
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
    const d = this.data;
    if (!d || !d.n) return;
    g.save();
    g.beginPath();
    g.rect(MARGIN.left, MARGIN.top, W, H);
    g.clip();
    g.strokeStyle = st.fg2;
    g.globalAlpha = Math.min(0.6, Math.max(0.03, 4 / Math.sqrt(d.n)));
    g.lineWidth = 1;
    // One path per chunk keeps each stroke() call bounded.
    const chunk = 2000;
    for (let start = 0; start < d.n; start += chunk) {
      const rows = { *[Symbol.iterator]() { for (let i = start; i < Math.min(d.n, start + chunk); i++) yield i; } };
      this.path(g, rows);
      g.stroke();
    }
    g.restore();
  }

  /** Repaints: the cached background, the selected lines, and the brush rectangle. */
  draw(): void {
    const g = this.canvas.getContext("2d")!;
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.clearRect(0, 0, this.canvas.width, this.canvas.height);
    g.drawImage(this.base, 0, 0);
    g.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    const st = this.style();
    if (this.data && this.selected.length) {
      g.save();
      g.beginPath();
      g.rect(MARGIN.left, MARGIN.top, this.width - MARGIN.left - MARGIN.right, this.height - MARGIN.top - MARGIN.bottom);
      g.clip();
      g.strokeStyle = st.accent;
      g.globalAlpha = this.selected.length > 200 ? 0.35 : 0.85;
      g.lineWidth = this.selected.length > 200 ? 1 : 1.5;
      this.path(g, this.selected);
      g.stroke();
      g.restore();
    }
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
