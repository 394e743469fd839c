// @vitest-environment happy-dom
// Only the exported helpers; the view itself needs an anywidget model.
import { describe, expect, it } from "vitest";
import { groupColor, wrapText } from "../error_gallery";

const RED = "#e45756";
const BLUE = "#4c78a8";
const GREY = "#8c8c8c";

describe("groupColor", () => {
  it("colours the named groups", () => {
    expect(groupColor("worst")).toBe(RED);
    expect(groupColor("best")).toBe(BLUE);
    expect(groupColor("median")).toBe(GREY);
  });

  it("colours quantile groups (names as compute/comparison.py writes them: f'q{q:g}') by side of the median", () => {
    expect(groupColor("q1")).toBe(RED);
    expect(groupColor("q0.9")).toBe(RED);
    expect(groupColor("q0")).toBe(BLUE);
    expect(groupColor("q0.1")).toBe(BLUE);
    expect(groupColor("q0.5")).toBe(GREY);
    expect(groupColor("q0.35")).toBe(GREY);
    expect(groupColor("q0.65")).toBe(GREY);
  });

  it("treats quantiles 0.2 either side of the median alike", () => {
    // 0.7 - 0.5 is 0.19999999999999996 in floating point, 0.5 - 0.3 is 0.2.
    expect(groupColor("q0.3")).toBe(BLUE);
    expect(groupColor("q0.7")).toBe(RED);
  });

  it("is grey for names it cannot read, including hostile text", () => {
    expect(groupColor("q1.5")).toBe(GREY);
    expect(groupColor("q-0.2")).toBe(GREY);
    expect(groupColor("qx")).toBe(GREY);
    expect(groupColor("<script>alert(1)</script>")).toBe(GREY);
  });
});

describe("wrapText", () => {
  it("keeps line breaks, wraps long lines and marks a cut with an ellipsis", () => {
    expect(wrapText("ab\ncd", 10, 6)).toEqual(["ab", "cd"]);
    expect(wrapText("abcdefgh", 3, 6)).toEqual(["abc", "def", "gh"]);
    expect(wrapText("a\nb\nc\nd", 5, 3)).toEqual(["a", "b", "c…"]);
    expect(wrapText("\tx", 10, 2)).toEqual(["    x"]);
    expect(wrapText("", 5, 2)).toEqual([""]);
  });

  it("returns hostile markup unchanged, as text to draw", () => {
    expect(wrapText("<img src=x onerror=alert(1)>", 100, 2)).toEqual(["<img src=x onerror=alert(1)>"]);
  });
});
