import { describe, expect, it } from "vitest";
import { colorize, formatValue, lut, makeScale, toIndex } from "../lib/colors";

describe("lut", () => {
  it("starts and ends at the colormap's end colours", () => {
    const t = lut("viridis");
    expect(Array.from(t.slice(0, 4))).toEqual([68, 1, 84, 255]);
    expect(Array.from(t.slice(255 * 4, 256 * 4))).toEqual([253, 231, 37, 255]);
  });
  it("puts white-ish exactly in the middle of the diverging map", () => {
    const t = lut("rdbu");
    const mid = Array.from(t.slice(127 * 4, 127 * 4 + 3));
    for (const c of mid) expect(c).toBeGreaterThan(235);
  });
  it("names the choices for an unknown colormap", () => {
    expect(() => lut("jet")).toThrow(/expected one of viridis, magma, rdbu/);
  });
});

describe("makeScale", () => {
  it("chooses diverging, symmetric around zero, for signed data", () => {
    expect(makeScale("auto", -1, 3)).toEqual({ kind: "diverging", vmin: -3, vmax: 3 });
  });
  it("chooses sequential for one-signed data and honours vmin/vmax", () => {
    expect(makeScale("auto", 0, 5)).toEqual({ kind: "sequential", vmin: 0, vmax: 5 });
    expect(makeScale("sequential", 0, 5, 1, 2)).toEqual({ kind: "sequential", vmin: 1, vmax: 2 });
  });
  it("never returns an empty range", () => {
    const s = makeScale("sequential", 4, 4);
    expect(s.vmax).toBeGreaterThan(s.vmin);
  });
});

describe("colorize", () => {
  it("maps ends of the range to ends of the table, clips outliers, greys NaN", () => {
    const s = makeScale("sequential", 0, 1);
    const table = lut("viridis");
    const out = new Uint8ClampedArray(5 * 4);
    colorize([0, 1, -10, 10, NaN], s, table, out);
    expect(Array.from(out.slice(0, 4))).toEqual(Array.from(table.slice(0, 4)));
    expect(Array.from(out.slice(4, 8))).toEqual(Array.from(table.slice(1020, 1024)));
    expect(Array.from(out.slice(8, 12))).toEqual(Array.from(table.slice(0, 4)));
    expect(Array.from(out.slice(12, 16))).toEqual(Array.from(table.slice(1020, 1024)));
    expect(Array.from(out.slice(16, 20))).toEqual([128, 128, 128, 255]);
  });
  it("agrees with toIndex", () => {
    const s = makeScale("diverging", -2, 2);
    expect(toIndex(0, s)).toBe(128);
    expect(toIndex(-2, s)).toBe(0);
    expect(toIndex(NaN, s)).toBe(-1);
  });
});

describe("formatValue", () => {
  it("keeps four significant digits and switches to exponents for extremes", () => {
    expect(formatValue(3.14159)).toBe("3.142");
    expect(formatValue(0.0001234)).toBe("1.234e-4");
    expect(formatValue(123456)).toBe("1.235e+5");
    expect(formatValue(NaN)).toBe("NaN");
    expect(formatValue(-Infinity)).toBe("−∞");
  });
});
