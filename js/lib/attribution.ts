// Small helpers shared by the attribution views (js/image_attribution.ts,
// js/text_attribution.ts).

/** A probability as a percentage that does not round 0.9996 up to a certain 100%. */
export function percent(p: number): string {
  if (p >= 0.999) return ">99.9%"; // a softmax is never exactly 1; float32 rounds it there
  if (p > 0 && p < 0.001) return "<0.1%";
  return `${(100 * p).toFixed(1)}%`;
}

/** The value at percentile p (0..100) of an ascending array; never 0 unless the map is all zeros. */
export function percentileOf(sorted: Float32Array, p: number): number {
  const n = sorted.length;
  if (n === 0) return 1;
  const v = sorted[Math.min(n - 1, Math.max(0, Math.floor((p / 100) * (n - 1))))];
  if (v > 0) return v;
  return sorted[n - 1] > 0 ? sorted[n - 1] : 1;
}
