// @vitest-environment happy-dom
// The colour parsing of the scatter layer (its drawing needs Bokeh's scales: see
// tests/test_browser_training.py::test_scatter_points_are_drawn_where_bokeh_maps_them).
import { describe, expect, it } from "vitest";
import { parseRgb } from "../lib/scatter_layer";

describe("parseRgb", () => {
  it("reads hex and rgb() colours", () => {
    expect(parseRgb("#4c78a8")).toBe(0x4c78a8);
    expect(parseRgb("#FFF")).toBe(0xffffff);
    expect(parseRgb("rgb(25, 118, 210)")).toBe(0x1976d2);
    expect(parseRgb(" rgba(1 2 3 / 0.5) ")).toBe(0x010203);
  });

  it("falls back to grey for anything else", () => {
    expect(parseRgb("var(--dv-accent)")).toBe(0x808080);
    expect(parseRgb("<script>")).toBe(0x808080);
  });
});
