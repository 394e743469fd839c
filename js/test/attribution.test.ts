import { describe, expect, it } from "vitest";
import { percent, percentileOf } from "../lib/attribution";

describe("percent", () => {
  it("formats with one decimal", () => {
    expect(percent(0.5)).toBe("50.0%");
    expect(percent(0.1234)).toBe("12.3%");
    expect(percent(0)).toBe("0.0%");
    expect(percent(0.001)).toBe("0.1%");
  });
  it("never claims certainty: from 0.999 up it reads >99.9%", () => {
    expect(percent(0.9996)).toBe(">99.9%"); // would round to 100.0%
    expect(percent(0.999)).toBe(">99.9%");
    expect(percent(1)).toBe(">99.9%");
    expect(percent(0.9989)).toBe("99.9%");
  });
  it("never rounds a tiny positive probability to 0.0%", () => {
    expect(percent(0.0004)).toBe("<0.1%");
    expect(percent(1e-12)).toBe("<0.1%");
  });
});

describe("percentileOf", () => {
  const asc = (xs: number[]) => new Float32Array(xs);

  it("indexes floor(p / 100 * (n - 1)) of the sorted array", () => {
    const s = asc([1, 2, 3, 4, 5]);
    expect(percentileOf(s, 0)).toBe(1);
    expect(percentileOf(s, 50)).toBe(3);
    expect(percentileOf(s, 99)).toBe(4); // floor(3.96)
    expect(percentileOf(s, 100)).toBe(5);
  });
  it("clamps p outside 0..100", () => {
    const s = asc([1, 2, 3]);
    expect(percentileOf(s, -10)).toBe(1);
    expect(percentileOf(s, 250)).toBe(3);
  });
  it("falls back to the maximum when the percentile lands on a non-positive value", () => {
    expect(percentileOf(asc([0, 0, 0, 0.5, 2]), 50)).toBe(2);
    expect(percentileOf(asc([-3, -1, 0, 4]), 10)).toBe(4);
  });
  it("is 1 for an empty, all-zero or all-negative map (a safe divisor)", () => {
    expect(percentileOf(asc([]), 99)).toBe(1);
    expect(percentileOf(asc([0, 0, 0]), 99)).toBe(1);
    expect(percentileOf(asc([-5, -2]), 99)).toBe(1);
  });
});
