// @vitest-environment happy-dom
// Only the exported counting; the view itself needs an anywidget model.
import { describe, expect, it } from "vitest";
import { CATEGORIES, tally } from "../comparison";

describe("tally", () => {
  it("sorts each example into both right / only A / only B / both wrong, per true class", () => {
    const y = [0, 0, 1, 1, 2];
    const a = [0, 1, 1, 0, 2];
    const b = [0, 0, 0, 0, 1];
    const { counts, category } = tally(y, a, b, 3);
    expect(CATEGORIES).toEqual(["both_right", "only_a", "only_b", "both_wrong"]);
    expect(Array.from(category)).toEqual([0, 2, 1, 3, 1]);
    expect(counts.map((c) => Array.from(c))).toEqual([
      [1, 0, 1, 0],
      [0, 1, 0, 1],
      [0, 1, 0, 0],
    ]);
  });

  it("keeps empty rows for classes with no examples, and every example counted once", () => {
    const y = new Int32Array([3, 3, 0]);
    const { counts, category } = tally(y, new Int32Array([3, 1, 2]), new Int32Array([2, 3, 2]), 5);
    expect(counts.length).toBe(5);
    expect(Array.from(counts[1])).toEqual([0, 0, 0, 0]);
    expect(Array.from(counts[3])).toEqual([0, 1, 1, 0]);
    expect(Array.from(counts[0])).toEqual([0, 0, 0, 1]);
    expect(counts.reduce((s, c) => s + c.reduce((x, v) => x + v, 0), 0)).toBe(3);
    expect(Array.from(category)).toEqual([1, 2, 3]);
  });

  it("handles no examples", () => {
    const { counts, category } = tally([], [], [], 2);
    expect(category.length).toBe(0);
    expect(counts.map((c) => Array.from(c))).toEqual([[0, 0, 0, 0], [0, 0, 0, 0]]);
  });
});
