// Colour scales shared by every view: 256-entry lookup tables built from a
// few control points, and the mapping from values to table indices.

export type RGB = [number, number, number];

// Control points sampled from matplotlib's viridis and ColorBrewer's RdBu (reversed: blue = negative).
const STOPS: Record<string, RGB[]> = {
  viridis: [
    [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
    [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
  ],
  magma: [
    [0, 0, 4], [28, 16, 68], [79, 18, 123], [129, 37, 129], [181, 54, 122],
    [229, 80, 100], [251, 135, 97], [254, 194, 135], [252, 253, 191],
  ],
  rdbu: [
    [5, 48, 97], [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240],
    [247, 247, 247], [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43], [103, 0, 31],
  ],
};

export type ColormapName = keyof typeof STOPS;
export const COLORMAPS = Object.keys(STOPS);

const LUT_CACHE = new Map<string, Uint8ClampedArray>();

/** A 256 x RGBA lookup table for a named colormap. */
export function lut(name: string): Uint8ClampedArray {
  const cached = LUT_CACHE.get(name);
  if (cached) return cached;
  const stops = STOPS[name];
  if (!stops) throw new RangeError(`unknown colormap ${JSON.stringify(name)}; expected one of ${COLORMAPS.join(", ")}`);
  const out = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (stops.length - 1);
    const k = Math.min(Math.floor(t), stops.length - 2);
    const f = t - k;
    for (let c = 0; c < 3; c++) out[i * 4 + c] = Math.round(stops[k][c] * (1 - f) + stops[k + 1][c] * f);
    out[i * 4 + 3] = 255;
  }
  LUT_CACHE.set(name, out);
  return out;
}

export interface Scale {
  kind: "sequential" | "diverging";
  vmin: number;
  vmax: number;
}

/**
 * Picks the value range: diverging scales are symmetric around zero so that
 * white means exactly 0; sequential scales span the data.
 */
export function makeScale(kind: "auto" | "sequential" | "diverging", lo: number, hi: number, vmin?: number | null, vmax?: number | null): Scale {
  const resolved = kind === "auto" ? (lo < 0 && hi > 0 ? "diverging" : "sequential") : kind;
  if (resolved === "diverging") {
    const m = Math.max(Math.abs(vmin ?? lo), Math.abs(vmax ?? hi)) || 1;
    return { kind: resolved, vmin: -m, vmax: m };
  }
  const a = vmin ?? lo;
  let b = vmax ?? hi;
  if (b <= a) b = a + 1;
  return { kind: resolved, vmin: a, vmax: b };
}

/** Index 0..255 into a LUT, or -1 for NaN. Values outside the range clip. */
export function toIndex(v: number, s: Scale): number {
  if (Number.isNaN(v)) return -1;
  const t = (v - s.vmin) / (s.vmax - s.vmin);
  return t <= 0 ? 0 : t >= 1 ? 255 : Math.round(t * 255);
}

/** Fills an RGBA pixel buffer (one pixel per value) through a LUT; NaN pixels get `nan`. */
export function colorize(values: ArrayLike<number>, s: Scale, table: Uint8ClampedArray, out: Uint8ClampedArray, nan: RGB = [128, 128, 128]): void {
  const span = s.vmax - s.vmin;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const o = i * 4;
    if (v !== v) {
      out[o] = nan[0]; out[o + 1] = nan[1]; out[o + 2] = nan[2]; out[o + 3] = 255;
      continue;
    }
    let t = (v - s.vmin) / span;
    t = t <= 0 ? 0 : t >= 1 ? 1 : t;
    const k = ((t * 255 + 0.5) | 0) * 4;
    out[o] = table[k]; out[o + 1] = table[k + 1]; out[o + 2] = table[k + 2]; out[o + 3] = 255;
  }
}

/** Short, readable number for tooltips and legends. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "−∞";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(3);
  return Number(v.toPrecision(4)).toString();
}
