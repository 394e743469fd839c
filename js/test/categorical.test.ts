import { describe, expect, it } from "vitest";
import { CATEGORY20, RIGHT_COLOR, WRONG_COLOR, categoryColor } from "../lib/categorical";

describe("categoryColor", () => {
  it("gives 20 distinct hex colours in order", () => {
    const first = Array.from({ length: 20 }, (_, i) => categoryColor(i));
    expect(first).toEqual(CATEGORY20);
    expect(new Set(first).size).toBe(20);
    for (const c of first) expect(c).toMatch(/^#[0-9a-f]{6}$/);
    expect(categoryColor(0)).toBe("#4c78a8");
  });
  it("cycles past 20", () => {
    expect(categoryColor(20)).toBe(categoryColor(0));
    expect(categoryColor(43)).toBe(categoryColor(3));
  });
  it("wraps negative indices instead of returning undefined", () => {
    expect(categoryColor(-1)).toBe(CATEGORY20[19]);
    expect(categoryColor(-20)).toBe(CATEGORY20[0]);
    expect(categoryColor(-21)).toBe(CATEGORY20[19]);
  });
  it("uses the palette's blue and red for right and wrong", () => {
    expect(RIGHT_COLOR).toBe(CATEGORY20[0]);
    expect(WRONG_COLOR).toBe(CATEGORY20[3]);
  });
});
