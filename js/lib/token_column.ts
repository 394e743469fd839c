// Token columns for the attention views: display text for tokenizer pieces,
// and a virtualized column of token labels (only rows near the viewport are
// in the DOM, so 2048 tokens cost what 60 do). Tokens are data: they enter
// the DOM as text only (`<script>` is a valid token).

import { h } from "./dom";

/** Readable text for a tokenizer piece: byte-level/sentencepiece spaces shown as spaces. */
export function displayToken(token: string): string {
  let t = token.replace(/^[\u0120\u2581]/, " ").replace(/[\u0120\u2581]/g, " ");
  t = t.replace(/\u010a/g, "\u21b5").replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5");
  return t.trim() === "" ? (t.length ? "\u2423".repeat(Math.min(t.length, 3)) : "\u2205") : t;
}

let measureCtx: CanvasRenderingContext2D | null = null;
/** Width in CSS pixels of the widest token at `font`, capped at `max`. */
export function tokenWidth(tokens: string[], font: string, max: number): number {
  measureCtx ??= document.createElement("canvas").getContext("2d");
  if (!measureCtx) return max;
  measureCtx.font = font;
  let w = 0;
  for (const t of tokens) {
    w = Math.max(w, measureCtx.measureText(displayToken(t)).width);
    if (w >= max) return max;
  }
  return Math.ceil(w);
}

/** One row of a column: which token it shows and how. */
export interface Row {
  token: number;
  text: string;
  special: boolean;
}

/**
 * A column of token labels, absolutely positioned rows of `rowHeight` pixels,
 * of which only those inside [top - overscan, bottom + overscan] exist.
 */
export class TokenColumn {
  readonly el: HTMLDivElement;
  rows: Row[] = [];
  private shown = new Map<number, HTMLDivElement>();
  private styler: ((node: HTMLDivElement, row: Row, index: number) => void) | null = null;

  constructor(
    className: string,
    public rowHeight: number,
    private overscan = 80,
  ) {
    this.el = h("div", { class: `dv-att-tokens ${className}` });
  }

  /** Replaces the rows (and drops every label node). */
  setRows(rows: Row[], rowHeight: number): void {
    this.rows = rows;
    this.rowHeight = rowHeight;
    this.shown.clear();
    this.el.replaceChildren();
    this.el.style.height = `${rows.length * rowHeight}px`;
  }

  /** Called for every label node when drawn or restyled (highlight, dimming, focus). */
  setStyler(fn: (node: HTMLDivElement, row: Row, index: number) => void): void {
    this.styler = fn;
  }

  /** Makes sure the rows around [top, top + height) have label nodes; removes far ones. */
  render(top: number, height: number): void {
    const rh = this.rowHeight;
    const first = Math.max(0, Math.floor(top / rh) - this.overscan);
    const last = Math.min(this.rows.length - 1, Math.ceil((top + height) / rh) + this.overscan);
    for (const [i, node] of this.shown) {
      if (i < first || i > last) {
        node.remove();
        this.shown.delete(i);
      }
    }
    const fresh: HTMLDivElement[] = [];
    for (let i = first; i <= last; i++) {
      if (this.shown.has(i)) continue;
      const row = this.rows[i];
      const node = h("div", { class: "dv-att-token", title: row.text, "data-token": row.token }, displayToken(row.text));
      if (row.special) node.classList.add("dv-att-special");
      node.style.top = `${i * rh}px`;
      node.style.height = `${rh}px`;
      node.style.lineHeight = `${rh}px`;
      this.shown.set(i, node);
      this.styler?.(node, row, i);
      fresh.push(node);
    }
    if (fresh.length) this.el.append(...fresh);
  }

  /** Re-applies the styler to every label in the DOM. */
  restyle(): void {
    if (!this.styler) return;
    for (const [i, node] of this.shown) this.styler(node, this.rows[i], i);
  }

  /** Row index under a client y coordinate, or -1. */
  rowAt(clientY: number): number {
    const r = this.el.getBoundingClientRect();
    const i = Math.floor((clientY - r.top) / this.rowHeight);
    return i >= 0 && i < this.rows.length ? i : -1;
  }
}
