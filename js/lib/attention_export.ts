// Downloads for the attention views: a second toolbar button (SVG) next to
// the PNG one the base provides, and the SVG helpers both views use.

import type { BaseTraits, ViewContext } from "./base";
import { slug } from "./base";
import { h, svg, svgRoot } from "./dom";

export { svg, svgRoot };

export function downloadBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Adds an "SVG" button to the toolbar that saves what `build` returns. */
export function addSvgButton<T extends BaseTraits>(ctx: ViewContext<T>, fallback: string, build: () => SVGSVGElement): void {
  const button = h("button", { class: "dv-button dv-att-svg", type: "button", title: "Download as SVG (vector, for papers)" }, "SVG");
  ctx.toolbar.append(button);
  ctx.disposer.add(() => button.remove());
  ctx.disposer.listen(button, "click", ctx.guard(() => {
    const xml = new XMLSerializer().serializeToString(build());
    downloadBlob(new Blob([xml], { type: "image/svg+xml" }), `${slug(ctx.model.get("title") ?? "", fallback)}.svg`);
  }));
}

