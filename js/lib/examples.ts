// Examples shown beside charts: image thumbnails drawn on canvas from a uint8
// payload, or texts as text nodes. Mirrors encode_examples() in
// deepvis_widgets/widgets/projection.py.

import { bytesOf, type Encoded } from "./codec";
import { h } from "./dom";

export type ExamplesPayload =
  | { kind: "none" }
  | { kind: "text"; texts: string[] }
  | { kind: "image"; images: Encoded };

export class Examples {
  readonly kind: "none" | "text" | "image";
  private bytes: Uint8Array | null = null;
  private h = 0;
  private w = 0;
  private c = 1;
  private texts: string[] = [];

  constructor(payload: ExamplesPayload | null | undefined, readonly count: number) {
    this.kind = payload?.kind ?? "none";
    if (payload?.kind === "image") {
      const { shape, dtype } = payload.images;
      if (dtype !== "uint8" || shape.length !== 4) throw new TypeError(`examples: expected uint8 images (n, h, w, c), got ${dtype} [${shape}]`);
      [, this.h, this.w, this.c] = shape;
      this.bytes = bytesOf(payload.images.buffer);
      if (this.bytes.length !== shape[0] * this.h * this.w * this.c) throw new RangeError(`examples: ${this.bytes.length} bytes for shape [${shape}]`);
    } else if (payload?.kind === "text") {
      this.texts = payload.texts;
    }
  }

  get available(): boolean {
    return this.kind !== "none";
  }

  /** A canvas of example `i` scaled to `size` CSS pixels on its longest side. */
  thumbnail(i: number, size: number): HTMLCanvasElement {
    const canvas = h("canvas", { class: "dv-example-thumb", "data-index": i });
    const { h: rows, w: cols, c } = this;
    canvas.width = cols;
    canvas.height = rows;
    const k = size / Math.max(rows, cols, 1);
    canvas.style.width = `${Math.round(cols * k)}px`;
    canvas.style.height = `${Math.round(rows * k)}px`;
    const ctx = canvas.getContext("2d");
    if (!ctx || !this.bytes) return canvas;
    const img = ctx.createImageData(cols, rows);
    const base = i * rows * cols * c;
    for (let p = 0; p < rows * cols; p++) {
      for (let ch = 0; ch < 3; ch++) {
        const q = this.bytes[base + p * c + (c === 3 ? ch : 0)];
        // 0..254 are intensities (255 marks NaN in our uint8 codec: show mid grey).
        img.data[p * 4 + ch] = q === 255 ? 128 : Math.round((q * 255) / 254);
      }
      img.data[p * 4 + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    return canvas;
  }

  text(i: number): string {
    return this.texts[i] ?? "";
  }

  /** A card: the example (thumbnail or text) and caption rows, all as text. */
  card(i: number, caption: [string, string][], size: number, onClick?: () => void): HTMLElement {
    const body = this.kind === "image" ? this.thumbnail(i, size) : h("div", { class: "dv-example-text" }, this.text(i));
    const rows = caption.map(([k, v]) => h("div", { class: "dv-example-caption" }, h("span", { class: "dv-example-key" }, k), " ", v));
    const card = h("div", { class: "dv-example-card", "data-index": i }, body, ...rows);
    if (onClick) {
      card.classList.add("dv-clickable");
      card.addEventListener("click", onClick);
    }
    return card;
  }
}
