// @vitest-environment happy-dom
// The two ways TrajectoryPanel paints a selection must give the same pixels:
// overlayByColumns (per-column runs, used for large selections) and
// overlayByStep (segment by segment). happy-dom has no 2D canvas, so a
// do-nothing context stands in: only the pixel buffers are compared.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TrajectoryPanel, type TrajectoryData } from "../lib/trajectories";

let original: HTMLCanvasElement["getContext"];

beforeAll(() => {
  original = HTMLCanvasElement.prototype.getContext;
  const image = (width: number, height: number) => ({ width, height, data: new Uint8ClampedArray(width * height * 4) });
  (HTMLCanvasElement.prototype as any).getContext = function () {
    const ctx: Record<string | symbol, unknown> = {
      createImageData: image,
      getImageData: (_x: number, _y: number, w: number, h: number) => image(w, h),
      measureText: () => ({ width: 10 }),
    };
    return new Proxy(ctx, { get: (t, k) => (k in t ? t[k] : () => undefined), set: () => true });
  };
});

afterAll(() => {
  HTMLCanvasElement.prototype.getContext = original;
});

function randomData(n: number, c: number, seed: number, gaps: boolean): TrajectoryData {
  let s = seed;
  const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const loss = new Float32Array(n * c);
  for (let i = 0; i < n; i++) {
    const speed = 0.01 + 0.1 * rand();
    for (let j = 0; j < c; j++) loss[i * c + j] = gaps && rand() < 0.05 ? NaN : 2.3 * Math.exp(-speed * j) * Math.exp(0.4 * (rand() - 0.5));
  }
  const steps = new Int32Array(c);
  for (let j = 0; j < c; j++) steps[j] = j * 3;
  return { n, c, loss, steps, stepsAll: null };
}

function panel(): TrajectoryPanel {
  const style = () => ({ fg: "#000", fg2: "#666", border: "#ccc", accent: "#f00", bg: "#fff" });
  return new TrajectoryPanel(560, 320, style, () => {}, () => {});
}

describe("TrajectoryPanel selection overlay", () => {
  for (const [n, c, gaps] of [[3000, 100, false], [500, 37, true], [200, 300, true], [50, 2, false]] as const) {
    it(`by columns equals by steps (${n} examples x ${c} steps${gaps ? ", with NaN gaps" : ""})`, () => {
      const p = panel() as any;
      p.setData(randomData(n, c, n + c, gaps));
      expect(p.colRuns.length).toBe(0); // built after the frame
      p.buildColumns();
      expect(p.colRuns.length).toBeGreaterThan(0);
      const rows = Array.from({ length: n }, (_, i) => i).filter((i) => i % 3 !== 1);
      const size = p.canvas.width * p.canvas.height;
      const a = new Uint32Array(size);
      const b = new Uint32Array(size);
      p.overlayByStep(rows, a, 7, false);
      p.overlayByColumns(rows, b, 7);
      let lit = 0;
      for (let k = 0; k < size; k++) lit += a[k] === 7 ? 1 : 0;
      expect(lit).toBeGreaterThan(100);
      expect(Array.from(b)).toEqual(Array.from(a));
      // an empty selection paints nothing
      const e = new Uint32Array(size);
      p.overlayByColumns([], e, 7);
      expect(e.every((v) => v === 0)).toBe(true);
    });
  }

  it("falls back to steps when steps go backwards", () => {
    const d = randomData(20, 5, 1, false);
    d.steps = Int32Array.from([0, 4, 2, 6, 8]);
    const p = panel() as any;
    p.setData(d);
    p.buildColumns();
    expect(p.colRuns.length).toBe(0);
  });
});
