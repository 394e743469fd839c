// Canvas helpers shared by the views.

import { h } from "./dom";
import type { Scale } from "./colors";

/** Sizes a canvas for crisp drawing on high-DPI screens; returns the device pixel ratio used. */
export function setupCanvas(canvas: HTMLCanvasElement, cssWidth: number, cssHeight: number): number {
  const dpr = Math.min(globalThis.devicePixelRatio || 1, 3);
  canvas.width = Math.max(1, Math.round(cssWidth * dpr));
  canvas.height = Math.max(1, Math.round(cssHeight * dpr));
  canvas.style.width = `${cssWidth}px`;
  canvas.style.height = `${cssHeight}px`;
  return dpr;
}

/** A vertical colour bar (canvas) with max, mid and min as text ticks. */
export function drawLegend(
  host: HTMLElement,
  table: Uint8ClampedArray,
  scale: Scale,
  height: number,
  format: (v: number) => string,
): HTMLCanvasElement {
  const bar = document.createElement("canvas");
  bar.className = "dv-legend-bar";
  bar.width = 1;
  bar.height = 256;
  const c = bar.getContext("2d")!;
  const img = c.createImageData(1, 256);
  for (let i = 0; i < 256; i++) img.data.set(table.subarray((255 - i) * 4, (255 - i) * 4 + 4), i * 4);
  c.putImageData(img, 0, 0);
  bar.style.height = `${Math.max(height, 40)}px`;
  const mid = (scale.vmin + scale.vmax) / 2;
  const ticks = h(
    "div",
    { class: "dv-legend-ticks" },
    h("span", {}, format(scale.vmax)),
    h("span", {}, format(mid)),
    h("span", {}, format(scale.vmin)),
  );
  ticks.style.height = bar.style.height;
  host.replaceChildren(bar, ticks);
  return bar;
}
