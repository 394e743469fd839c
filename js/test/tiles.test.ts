// @vitest-environment happy-dom
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lut, makeScale } from "../lib/colors";
import { imageCanvas, kernelCanvas, kernelGeometry, mapStrip, pixelScale, rangeOf, tileAt, tileLayout, tileOrigin } from "../lib/tiles";
import { installCanvasStub, pixel, removeCanvasStub } from "./canvas_stub";

describe("tileLayout", () => {
  it("fits as many columns as the width allows, gaps only between tiles", () => {
    // (100 + 2) / (20 + 2) = 4.6 -> 4 columns; 10 tiles -> 3 rows.
    expect(tileLayout(10, 20, 20, 100, 2)).toEqual({ cols: 4, rows: 3, tw: 20, th: 20, gap: 2, width: 86, height: 64 });
  });

  it("uses one row when every tile fits, and never more columns than tiles", () => {
    const l = tileLayout(3, 20, 10, 1000);
    expect([l.cols, l.rows, l.width, l.height]).toEqual([3, 1, 64, 10]);
  });

  it("counts the last tile's missing right gap: exactly k tiles fit in k*tw + (k-1)*gap", () => {
    expect(tileLayout(10, 20, 20, 86, 2).cols).toBe(4);
    expect(tileLayout(10, 20, 20, 85, 2).cols).toBe(3);
  });

  it("keeps at least one column and one row (narrow width, no tiles)", () => {
    const narrow = tileLayout(5, 50, 50, 10);
    expect([narrow.cols, narrow.rows]).toEqual([1, 5]);
    const empty = tileLayout(0, 20, 20, 100);
    expect([empty.cols, empty.rows]).toEqual([1, 1]);
  });
});

describe("tileOrigin and tileAt", () => {
  const n = 10;
  const l = tileLayout(n, 20, 15, 100, 2); // 4 x 3, steps of 22 x 17

  it("places slot i at column i % cols, row floor(i / cols)", () => {
    expect(tileOrigin(l, 0)).toEqual([0, 0]);
    expect(tileOrigin(l, 3)).toEqual([66, 0]);
    expect(tileOrigin(l, 5)).toEqual([22, 17]);
    expect(tileOrigin(l, 9)).toEqual([22, 34]);
  });

  it("round trips: every point inside slot i's tile hits i", () => {
    for (let i = 0; i < n; i++) {
      const [x, y] = tileOrigin(l, i);
      expect(tileAt(l, n, x, y)).toBe(i);
      expect(tileAt(l, n, x + l.tw - 0.01, y + l.th - 0.01)).toBe(i);
      expect(tileAt(l, n, x + l.tw / 2, y + l.th / 2)).toBe(i);
    }
  });

  it("misses in the gaps, outside the grid and in the empty end of the last row", () => {
    const [x, y] = tileOrigin(l, 0);
    expect(tileAt(l, n, x + l.tw, y)).toBe(-1); // right gap
    expect(tileAt(l, n, x, y + l.th + 1)).toBe(-1); // bottom gap
    expect(tileAt(l, n, -1, 5)).toBe(-1);
    expect(tileAt(l, n, 5, -0.5)).toBe(-1);
    expect(tileAt(l, n, l.width + 5, 0)).toBe(-1); // past the last column
    expect(tileAt(l, n, 0, l.height + 50)).toBe(-1); // below the last row
    const [x10, y10] = tileOrigin(l, 10); // slot 10 exists in the grid but holds no tile
    expect(tileAt(l, n, x10 + 1, y10 + 1)).toBe(-1);
  });

  it("finds nothing in an empty layout", () => {
    expect(tileAt(tileLayout(0, 20, 20, 100), 0, 1, 1)).toBe(-1);
  });
});

describe("pixelScale", () => {
  it("rounds target / side to an integer of at least 1", () => {
    expect(pixelScale(8, 64)).toBe(8);
    expect(pixelScale(28, 64)).toBe(2); // 2.29
    expect(pixelScale(20, 70)).toBe(4); // 3.5 rounds up
    expect(pixelScale(100, 64)).toBe(1);
    expect(pixelScale(1000, 64)).toBe(1); // 0.064 would round to 0
  });
  it("treats a zero side as one pixel", () => {
    expect(pixelScale(0, 64)).toBe(64);
  });
});

describe("kernelGeometry", () => {
  it("keeps RGB kernels at their native size with no grid", () => {
    expect(kernelGeometry(3, 5, 7, "rgb")).toEqual({ k: 3, kh: 5, kw: 7, gc: 1, gr: 1, sep: 0, w: 7, h: 5 });
  });
  it("refuses RGB for anything but 3 planes", () => {
    expect(() => kernelGeometry(4, 3, 3, "rgb")).toThrow(RangeError);
    expect(() => kernelGeometry(1, 3, 3, "rgb")).toThrow(/needs 3 planes, got 1/);
  });
  it("lays channels out in a near-square grid with 1-pixel separators", () => {
    expect(kernelGeometry(16, 3, 3, "channels")).toEqual({ k: 16, kh: 3, kw: 3, gc: 4, gr: 4, sep: 1, w: 15, h: 15 });
    // 5 channels: ceil(sqrt 5) = 3 columns, 2 rows.
    const g = kernelGeometry(5, 3, 2, "channels");
    expect([g.gc, g.gr, g.w, g.h]).toEqual([3, 2, 3 * 2 + 2, 2 * 3 + 1]);
    expect(g.gc * g.gr).toBeGreaterThanOrEqual(g.k);
  });
  it("drops separators for 1x1 kernels, so the grid is a plain image", () => {
    expect(kernelGeometry(64, 1, 1, "channels")).toMatchObject({ gc: 8, gr: 8, sep: 0, w: 8, h: 8 });
  });
  it("shows a single summary plane at its own size", () => {
    expect(kernelGeometry(1, 3, 3, "summary")).toMatchObject({ gc: 1, gr: 1, w: 3, h: 3 });
  });
});

describe("rangeOf", () => {
  it("skips NaN and infinities and reads only [start, end)", () => {
    expect(rangeOf([100, NaN, -3, Infinity, 2, -Infinity, -50], 1, 6)).toEqual({ lo: -3, hi: 2, abs: 3 });
  });
  it("is all zeros when nothing finite is in range", () => {
    expect(rangeOf([NaN, Infinity], 0, 2)).toEqual({ lo: 0, hi: 0, abs: 0 });
    expect(rangeOf([1, 2], 1, 1)).toEqual({ lo: 0, hi: 0, abs: 0 });
  });
});

// Pixel checks: happy-dom has no 2D context, so a recording stand-in is installed.
describe("painting (stub 2D context)", () => {
  beforeAll(installCanvasStub);
  afterAll(removeCanvasStub);

  it("imageCanvas paints grey values in [0, 1], clamps, and paints NaN mid grey", () => {
    // Offset 1 skips a leading value that is not part of the image.
    const c = imageCanvas([9, 0, 0.5, 1, NaN, -1, 2], 1, 2, 3, 1);
    expect([c.width, c.height]).toEqual([3, 2]);
    expect(pixel(c, 0, 0)).toEqual([0, 0, 0, 255]);
    expect(pixel(c, 1, 0)).toEqual([128, 128, 128, 255]); // 127.5 rounds up
    expect(pixel(c, 2, 0)).toEqual([255, 255, 255, 255]);
    expect(pixel(c, 0, 1)).toEqual([128, 128, 128, 255]); // NaN
    expect(pixel(c, 1, 1)).toEqual([0, 0, 0, 255]); // -1 clamped
    expect(pixel(c, 2, 1)).toEqual([255, 255, 255, 255]); // 2 clamped
  });

  it("imageCanvas reads interleaved RGB (h, w, 3)", () => {
    const c = imageCanvas([1, 0, 0, 0, 1, 0], 0, 1, 2, 3);
    expect(pixel(c, 0, 0)).toEqual([255, 0, 0, 255]);
    expect(pixel(c, 1, 0)).toEqual([0, 255, 0, 255]);
  });

  it("mapStrip puts map i at x offset i * w, through the colormap, NaN grey", () => {
    const table = lut("viridis");
    const s = makeScale("sequential", 0, 1);
    // two 1x2 maps: [0, 1] and [NaN, 0.5]
    const c = mapStrip([0, 1, NaN, 0.5], 2, 1, 2, [s], "viridis");
    expect([c.width, c.height]).toEqual([4, 1]);
    expect(pixel(c, 0, 0)).toEqual([table[0], table[1], table[2], 255]);
    expect(pixel(c, 1, 0)).toEqual([table[255 * 4], table[255 * 4 + 1], table[255 * 4 + 2], 255]);
    expect(pixel(c, 2, 0)).toEqual([128, 128, 128, 255]);
    expect(pixel(c, 3, 0)).toEqual([table[128 * 4], table[128 * 4 + 1], table[128 * 4 + 2], 255]);
  });

  it("kernelCanvas: RGB maps 0 to grey and +-m to full, channels leave separators in sepColor", () => {
    const rgb = kernelCanvas([1, 0, -1], 0, kernelGeometry(3, 1, 1, "rgb"), "rgb", 1);
    expect(pixel(rgb, 0, 0)).toEqual([255, 128, 0, 255]);

    const g = kernelGeometry(2, 1, 2, "channels"); // two 1x2 kernels side by side, a separator column between
    expect([g.w, g.h, g.sep]).toEqual([5, 1, 1]);
    const rdbu = lut("rdbu");
    const c = kernelCanvas([0, 2, -2, 0], 0, g, "channels", 2, [1, 2, 3]);
    expect(pixel(c, 0, 0)).toEqual([rdbu[128 * 4], rdbu[128 * 4 + 1], rdbu[128 * 4 + 2], 255]);
    expect(pixel(c, 1, 0)).toEqual([rdbu[255 * 4], rdbu[255 * 4 + 1], rdbu[255 * 4 + 2], 255]);
    expect(pixel(c, 2, 0)).toEqual([1, 2, 3, 255]);
    expect(pixel(c, 3, 0)).toEqual([rdbu[0], rdbu[1], rdbu[2], 255]);
  });
});
