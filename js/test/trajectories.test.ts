// @vitest-environment happy-dom
// Only the pure tick helpers; TrajectoryPanel needs a real 2D canvas.
import { describe, expect, it } from "vitest";
import { linearTicks, logTicks } from "../lib/trajectories";

/** Ticks are evenly spaced, inside [lo, hi], and at most one step from each end. */
function checkLinear(lo: number, hi: number, ticks: number[]): void {
  expect(ticks.length).toBeGreaterThanOrEqual(2);
  const step = ticks[1] - ticks[0];
  for (let i = 1; i < ticks.length; i++) expect(ticks[i] - ticks[i - 1]).toBeCloseTo(step, 9);
  expect(ticks[0]).toBeGreaterThanOrEqual(lo - 1e-12);
  expect(ticks[ticks.length - 1]).toBeLessThanOrEqual(hi + 1e-12);
  expect(ticks[0] - lo).toBeLessThan(step + 1e-12);
  expect(hi - ticks[ticks.length - 1]).toBeLessThan(step + 1e-12);
}

describe("linearTicks", () => {
  it("picks a 1-2-5 step giving about six ticks", () => {
    expect(linearTicks(0, 10)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(linearTicks(0, 1e6)).toEqual([0, 2e5, 4e5, 6e5, 8e5, 1e6]);
    expect(linearTicks(0, 0.3)).toEqual([0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]);
    expect(linearTicks(0, 99)).toEqual([0, 20, 40, 60, 80]);
  });

  it("starts at the first multiple of the step inside the range", () => {
    expect(linearTicks(-7, 13)).toEqual([-6, -4, -2, 0, 2, 4, 6, 8, 10, 12]);
    expect(linearTicks(-2.1, 0.1)).toEqual([-2, -1.5, -1, -0.5, 0]);
  });

  it("returns round decimals, not accumulated float error", () => {
    // 0.1 + 0.1 + 0.1 is 0.30000000000000004; the ticks must read 0.3.
    expect(linearTicks(0.1, 0.95)).toEqual([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
  });

  it("keeps the range covered for spans from 1e-6 to 1e9 and offsets far from 0", () => {
    for (const [lo, hi] of [[0, 1e-6], [3, 3.0004], [1e9, 1e9 + 5], [-1e9, 1e9], [17, 1234], [-0.3, 0.3]]) {
      checkLinear(lo, hi, linearTicks(lo, hi));
    }
  });

  it("honours the target count", () => {
    expect(linearTicks(0, 10, 2)).toEqual([0, 5, 10]);
    expect(linearTicks(0, 10, 10)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it("returns the single value for an empty or reversed range", () => {
    expect(linearTicks(5, 5)).toEqual([5]);
    expect(linearTicks(3, 1)).toEqual([3]);
  });

  it("terminates (no ticks) on an infinite range instead of looping", () => {
    expect(linearTicks(0, Infinity)).toEqual([]);
  });

  // Ticks are k * step, not a running sum (which gave -5.55e-17 for 0 and could stall).
  it("puts an exact 0 tick on a range that crosses zero", () => {
    expect(linearTicks(-1, 1)).toEqual([-1, -0.8, -0.6, -0.4, -0.2, 0, 0.2, 0.4, 0.6, 0.8, 1]);
  });

  it("terminates where a running sum would stall (step near the float spacing)", () => {
    const t = linearTicks(1e16, 1e16 + 8);
    expect(t.length).toBeGreaterThan(0);
    expect(t.length).toBeLessThanOrEqual(1000);
  });
});

describe("logTicks", () => {
  it("gives whole powers of ten over a long range", () => {
    expect(logTicks(-2, 1)).toEqual([-2, -1, 0, 1]);
    expect(logTicks(-3.5, 0.2)).toEqual([-3, -2, -1, 0]);
  });

  it("adds 2 and 5 times each power when the range is short (< 1.5 decades)", () => {
    const t = logTicks(0, 1);
    expect(t.map((v) => Math.round(10 ** v))).toEqual([1, 2, 5, 10]);
    expect(logTicks(0.2, 0.8).map((v) => Math.round(10 ** v))).toEqual([2, 5]);
    expect(logTicks(-1.2, 0).map((v) => Number((10 ** v).toPrecision(6)))).toEqual([0.1, 0.2, 0.5, 1]);
  });

  it("keeps every tick inside the range, ascending, on a 1-2-5 mantissa", () => {
    for (const [lo, hi] of [[-4, -3.1], [-0.7, 0.4], [-4, 2], [1.3, 1.4]]) {
      const t = logTicks(lo, hi);
      for (let i = 0; i < t.length; i++) {
        expect(t[i]).toBeGreaterThanOrEqual(lo - 1e-9);
        expect(t[i]).toBeLessThanOrEqual(hi + 1e-9);
        if (i) expect(t[i]).toBeGreaterThan(t[i - 1]);
        const mantissa = Number((10 ** (t[i] - Math.floor(t[i] + 1e-12))).toPrecision(6));
        expect([1, 2, 5]).toContain(mantissa);
      }
    }
  });

  it("includes the ends when they are exact powers", () => {
    expect(logTicks(-3, 0)).toEqual([-3, -2, -1, 0]);
  });

  it("is empty or a single tick on a degenerate range, and empty when reversed", () => {
    expect(logTicks(0, 0)).toEqual([0]);
    expect(logTicks(0.5, 0.5)).toEqual([]); // 10^0.5 = 3.16 is no 1-2-5 value
    expect(logTicks(1, -1)).toEqual([]);
  });
});
