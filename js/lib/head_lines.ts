// The head view's drawing, shared by js/head_view.ts and js/model_view.ts:
// query tokens on the left, key tokens on the right, one line per weight
// coloured by head with opacity = weight.
//
// Scale: the token columns scroll and only the rows near the viewport exist
// in the DOM; the canvas is the viewport's size (sticky) and only the lines
// crossing it are rasterized (js/lib/line_raster.ts). On its first visit a
// layer's weights >= 1% are sorted strongest first by a counting sort over
// their uint8 bytes (one pass over 3.1M weights for 12 heads x 512 tokens);
// every later choice of heads, sentences or special tokens walks that list
// and keeps the strongest `max_lines`.

import type { ViewContext } from "./base";
import { setupCanvas } from "./canvas";
import { formatValue } from "./colors";
import { h, setText } from "./dom";
import { AttentionStore, HEAD_COLORS, headColor, type AttentionTraits, type Layer, type StackMeta } from "./attention";
import { addSvgButton, svg, svgRoot } from "./attention_export";
import { LineRaster } from "./line_raster";
import { TokenColumn, displayToken, tokenWidth, type Row } from "./token_column";

/** Opacity steps: a line's opacity is its weight rounded to 1/LEVELS. */
const LEVELS = 64;
/** Weights below this are never drawn: a line at 1% opacity is invisible on its own. */
const MIN_WEIGHT = 0.01;
const LINES_WIDTH = 240;
const MAX_VIEW_HEIGHT = 600;
const FONT = "12px sans-serif";
const DIM = 0.25;

interface Edges {
  /** (head slot, level) bucket boundaries into rowL/rowR: bucket b = slot * LEVELS + level. */
  start: Int32Array;
  rowL: Int32Array;
  rowR: Int32Array;
  heads: number[];
  candidates: number;
  threshold: number;
}

interface Focus {
  side: "query" | "key";
  token: number;
  pinned: boolean;
}

type Filter = AttentionTraits["sentence_filter"];

/** 12345 -> "12,345" (toLocaleString's first call loads locale data: tens of ms). */
function thousands(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

function sides(filter: Filter): [string, string] {
  if (filter === "all") return ["all", "all"];
  const [a, b] = filter.split("->");
  return [a, b];
}

/** Token -> row (or -1 when filtered out), and the rows in order. */
function placeTokens(tokens: string[], special: number[], b: number | null, keep: string, hide: boolean): [Int32Array, Row[]] {
  const pos = new Int32Array(tokens.length).fill(-1);
  const rows: Row[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const inB = b !== null && i >= b;
    if (keep === "A" && inB) continue;
    if (keep === "B" && !inB) continue;
    if (hide && special[i]) continue;
    pos[i] = rows.length;
    rows.push({ token: i, text: tokens[i], special: !!special[i] });
  }
  return [pos, rows];
}

export class HeadLines<T extends AttentionTraits> {
  readonly el: HTMLDivElement;
  /** Called after each completed draw (for markDrawn and timings). */
  onDrawn: (() => void) | null = null;

  private readonly store: AttentionStore<T>;
  private readonly stackSelect = h("select", { class: "dv-att-select", "aria-label": "stack" });
  private readonly layerSelect = h("select", { class: "dv-att-select dv-att-layer", "aria-label": "layer" });
  private readonly filterSelect = h("select", { class: "dv-att-select", "aria-label": "sentences" });
  private readonly specialSelect = h("select", { class: "dv-att-select", "aria-label": "special tokens" });
  private readonly headBar = h("div", { class: "dv-att-heads", role: "group", "aria-label": "heads" });
  private readonly scroller = h("div", { class: "dv-att-scroll" });
  private readonly inner = h("div", { class: "dv-att-inner" });
  private readonly canvas = h("canvas", { class: "dv-att-canvas", role: "img", "aria-label": "attention lines" });
  private readonly left = new TokenColumn("dv-att-left", 18);
  private readonly right = new TokenColumn("dv-att-right", 18);
  private readonly status = h("div", { class: "dv-att-status" });

  private meta!: StackMeta;
  private layerIndex = 0;
  private layer: Layer | null = null;
  private posL: Int32Array = new Int32Array(0);
  private posR: Int32Array = new Int32Array(0);
  private edges: Edges | null = null;
  private focus: Focus | null = null;
  private exact: { key: string; values: Float32Array } | null = null;
  /** Per token of the other side while focused: strongest weight and its head. */
  private focusW: Float32Array | null = null;
  private focusH: Int32Array | null = null;
  private rowH = 18;
  private leftW = 80;
  private rightW = 80;
  private viewH = 0;
  private frame = 0;
  private linesDrawn = 0;
  private generation = 0;
  private raster: LineRaster | null = null;
  private candidateCache = new WeakMap<Layer, Int32Array>();
  private layoutKey = "";
  private active = true;
  private stale = true;

  constructor(
    private readonly ctx: ViewContext<T>,
    exporters = true,
  ) {
    this.store = new AttentionStore(ctx);
    const label = (text: string, control: HTMLElement) => h("label", { class: "dv-att-control" }, text, control);
    const controls = h(
      "div",
      { class: "dv-att-controls" },
      label("Stack", this.stackSelect),
      label("Layer", this.layerSelect),
      label("Sentences", this.filterSelect),
      label("Special tokens", this.specialSelect),
    );
    this.inner.append(this.canvas, this.left.el, this.right.el);
    this.scroller.append(this.inner);
    this.el = h("div", { class: "dv-att-headview" }, controls, this.headBar, this.scroller, this.status);
    for (const [value, text] of [["all", "all"], ["A->A", "A → A"], ["A->B", "A → B"], ["B->A", "B → A"], ["B->B", "B → B"]]) {
      this.filterSelect.append(h("option", { value }, text));
    }
    for (const value of ["show", "dim", "hide"]) this.specialSelect.append(h("option", { value }, value));
    this.wire();
    this.wireHeads();
    if (exporters) {
      ctx.setExporter("png", () => this.png());
      addSvgButton(ctx, "attention", () => this.svg());
    }
  }

  // Wiring ---------------------------------------------------------------------
  private set<K extends keyof T & string>(key: K, value: T[K]): void {
    this.ctx.model.set(key, value);
    this.ctx.model.save_changes();
  }

  private wire(): void {
    const { ctx, disposer } = { ctx: this.ctx, disposer: this.ctx.disposer };
    disposer.listen(this.stackSelect, "change", ctx.guard(() => this.set("stack", this.stackSelect.value as T["stack"])));
    disposer.listen(this.layerSelect, "change", ctx.guard(() => this.set("layer", Number(this.layerSelect.value) as T["layer"])));
    disposer.listen(this.filterSelect, "change", ctx.guard(() => this.set("sentence_filter", this.filterSelect.value as T["sentence_filter"])));
    disposer.listen(this.specialSelect, "change", ctx.guard(() => this.set("special", this.specialSelect.value as T["special"])));
    const update = ctx.guard(() => this.update());
    for (const name of ["stack", "layer", "heads", "sentence_filter", "special", "max_lines", "stacks", "_attention"]) ctx.on(`change:${name}`, update);
    disposer.listen(this.scroller, "scroll", () => this.schedule());
    for (const [col, side] of [[this.left, "query"], [this.right, "key"]] as const) {
      disposer.listen(col.el, "mousemove", ctx.guard((ev: MouseEvent) => {
        if (this.focus?.pinned) return;
        const row = col.rowAt(ev.clientY);
        this.setFocus(row < 0 ? null : { side, token: col.rows[row].token, pinned: false });
      }));
      disposer.listen(col.el, "mouseleave", ctx.guard(() => {
        if (!this.focus?.pinned) this.setFocus(null);
      }));
      disposer.listen(col.el, "click", ctx.guard((ev: MouseEvent) => {
        const row = col.rowAt(ev.clientY);
        const same = this.focus?.pinned && this.focus.side === side && row >= 0 && this.focus.token === col.rows[row].token;
        this.setFocus(row < 0 || same ? null : { side, token: col.rows[row].token, pinned: true });
      }));
    }
    disposer.add(() => cancelAnimationFrame(this.frame));
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      try {
        this.draw();
      } catch (err) {
        this.ctx.showError(err);
      }
    });
  }

  /** A hidden view (the model view's panel before a click) does no work until shown. */
  setActive(active: boolean): void {
    this.active = active;
    if (active && this.stale) this.update();
  }

  // State -> layout ---------------------------------------------------------------
  /** Re-reads every trait, lays the tokens out, fetches the layer if needed and draws. */
  update(): void {
    if (!this.active) {
      this.stale = true;
      return;
    }
    this.stale = false;
    const model = this.ctx.model;
    this.meta = this.store.meta(model.get("stack"));
    const m = this.meta;
    this.layerIndex = Math.max(0, Math.min(model.get("layer"), m.layer_names.length - 1));
    this.focus = null;
    this.exact = null;
    this.focusW = null;
    this.focusH = null;
    this.edges = null;
    this.syncControls();
    this.layout();
    const gen = ++this.generation;
    const stack = m.name;
    const layer = this.layerIndex;
    this.layer = this.store.peek(stack, layer);
    if (this.layer) {
      const t0 = performance.now();
      this.prepare();
      const t1 = performance.now();
      this.draw();
      this.ctx.root.dataset.dvPrepareMs = (t1 - t0).toFixed(1);
      this.ctx.root.dataset.dvDrawMs = (performance.now() - t1).toFixed(1);
      return;
    }
    this.draw();
    setText(this.status, `loading layer ${m.layer_names[layer]}…`);
    this.store.load(stack, layer).then(
      (data) => {
        if (gen !== this.generation) return;
        this.layer = data;
        this.prepare();
        this.draw();
      },
      (err: unknown) => {
        if (gen !== this.generation) return;
        this.status.classList.add("dv-att-warning");
        setText(this.status, err instanceof Error ? err.message : String(err));
        this.onDrawn?.();
      },
    );
  }

  private isRollout(): boolean {
    return this.meta.rollout && this.layerIndex === this.meta.layer_names.length - 1;
  }

  private visibleHeads(): number[] {
    if (this.isRollout()) return [0];
    const n = this.meta.heads;
    return this.ctx.model.get("heads").filter((x) => x >= 0 && x < n);
  }

  private syncControls(): void {
    const m = this.meta;
    const stacks = this.ctx.model.get("stacks");
    if (this.stackSelect.options.length !== stacks.length) {
      this.stackSelect.replaceChildren(...stacks.map((s) => h("option", { value: s.name }, s.name)));
    }
    this.stackSelect.value = m.name;
    (this.stackSelect.parentElement as HTMLElement).style.display = stacks.length > 1 ? "" : "none";
    const names = m.layer_names.map((n, i) => (m.rollout && i === m.layer_names.length - 1 ? "rollout (all layers)" : n));
    if (this.layerSelect.dataset.names !== names.join("\u0000")) {
      this.layerSelect.replaceChildren(...names.map((n, i) => h("option", { value: i }, n)));
      this.layerSelect.dataset.names = names.join("\u0000");
    }
    this.layerSelect.value = String(this.layerIndex);
    const pairs = m.sentence_b !== null && !m.cross;
    (this.filterSelect.parentElement as HTMLElement).style.display = pairs ? "" : "none";
    this.filterSelect.value = this.ctx.model.get("sentence_filter");
    const anySpecial = m.special.some(Boolean) || m.special_k.some(Boolean);
    (this.specialSelect.parentElement as HTMLElement).style.display = anySpecial ? "" : "none";
    this.specialSelect.value = this.ctx.model.get("special");
    this.syncHeads();
  }

  private syncHeads(): void {
    const m = this.meta;
    if (this.isRollout()) {
      this.headBar.replaceChildren(h("span", { class: "dv-att-note" }, "rollout: attention flow through all layers, heads averaged"));
      return;
    }
    const on = new Set(this.ctx.model.get("heads"));
    const buttons: HTMLElement[] = [];
    for (let i = 0; i < m.heads; i++) {
      const b = h("button", { type: "button", class: "dv-att-head", "data-head": i, "aria-pressed": on.has(i) ? "true" : "false", title: `head ${i} (click: toggle, double-click: only this head)` }, String(i));
      b.style.setProperty("--dv-head", headColor(i));
      buttons.push(b);
    }
    const all = h("button", { type: "button", class: "dv-button dv-att-all" }, on.size === m.heads ? "none" : "all");
    this.headBar.replaceChildren(h("span", { class: "dv-att-note" }, "Heads"), ...buttons, all);
  }

  /** Head toggles, by delegation: click toggles (after a pause, so a double-click can mean "only this head"). */
  private wireHeads(): void {
    let timer = 0;
    const headOf = (ev: Event) => {
      const b = (ev.target as Element | null)?.closest?.(".dv-att-head") as HTMLElement | null;
      return b ? Number(b.dataset.head) : -1;
    };
    this.ctx.disposer.listen(this.headBar, "click", this.ctx.guard((ev: MouseEvent) => {
      if ((ev.target as Element | null)?.closest?.(".dv-att-all")) {
        const n = this.meta.heads;
        const on = this.ctx.model.get("heads").length;
        this.set("heads", (on === n ? [] : Array.from({ length: n }, (_, i) => i)) as T["heads"]);
        return;
      }
      const head = headOf(ev);
      if (head < 0) return;
      clearTimeout(timer);
      timer = window.setTimeout(this.ctx.guard(() => {
        const cur = new Set(this.ctx.model.get("heads"));
        if (cur.has(head)) cur.delete(head);
        else cur.add(head);
        this.set("heads", [...cur].sort((a, c) => a - c) as T["heads"]);
      }), 200);
    }));
    this.ctx.disposer.listen(this.headBar, "dblclick", this.ctx.guard((ev: MouseEvent) => {
      const head = headOf(ev);
      if (head < 0) return;
      clearTimeout(timer);
      this.set("heads", [head] as T["heads"]);
    }));
    this.ctx.disposer.add(() => clearTimeout(timer));
  }

  private layout(): void {
    const m = this.meta;
    // Rows depend only on the stack, the sentence filter and hidden specials: a layer switch keeps them.
    const key = `${m.name}\u0000${this.ctx.model.get("sentence_filter")}\u0000${this.ctx.model.get("special")}`;
    if (key === this.layoutKey) {
      this.left.restyle();
      this.right.restyle();
      return;
    }
    this.layoutKey = key;
    const [keepL, keepR] = m.cross || m.sentence_b === null ? ["all", "all"] : sides(this.ctx.model.get("sentence_filter"));
    const hide = this.ctx.model.get("special") === "hide";
    const [posL, rowsL] = placeTokens(m.tokens, m.special, m.cross ? null : m.sentence_b, keepL, hide);
    const [posR, rowsR] = placeTokens(m.tokens_k, m.special_k, m.cross ? null : m.sentence_b, keepR, hide);
    this.posL = posL;
    this.posR = posR;
    const n = Math.max(rowsL.length, rowsR.length, 1);
    this.rowH = n <= 64 ? 20 : 16;
    this.leftW = tokenWidth(m.tokens, FONT, 160) + 12;
    this.rightW = tokenWidth(m.tokens_k, FONT, 160) + 12;
    const total = n * this.rowH;
    this.viewH = Math.min(total, MAX_VIEW_HEIGHT);
    this.left.setRows(rowsL, this.rowH);
    this.right.setRows(rowsR, this.rowH);
    this.left.el.style.width = `${this.leftW}px`;
    this.right.el.style.width = `${this.rightW}px`;
    this.right.el.style.left = `${this.leftW + LINES_WIDTH}px`;
    this.inner.style.height = `${total}px`;
    this.inner.style.width = `${this.leftW + LINES_WIDTH + this.rightW}px`;
    this.scroller.style.height = `${this.viewH}px`;
    this.canvas.style.marginLeft = `${this.leftW}px`;
    setupCanvas(this.canvas, LINES_WIDTH, this.viewH);
    const dim = this.ctx.model.get("special") === "dim";
    const styler = (side: "query" | "key") => (node: HTMLDivElement, row: Row) => {
      node.classList.toggle("dv-att-dim", dim && row.special);
      const f = this.focus;
      node.classList.toggle("dv-att-focus", !!f && f.side === side && f.token === row.token);
      node.style.backgroundColor = "";
      if (f && f.side !== side && this.focusW && this.focusH) {
        const w = this.focusW[row.token];
        if (w >= MIN_WEIGHT) node.style.backgroundColor = headColor(this.focusH[row.token], Math.min(1, w));
      }
    };
    this.left.setStyler(styler("query"));
    this.right.setStyler(styler("key"));
  }

  // Edges ------------------------------------------------------------------------
  private specialWeight(i: number, j: number): number {
    if (this.ctx.model.get("special") !== "dim") return 1;
    return this.meta.special[i] || this.meta.special_k[j] ? DIM : 1;
  }

  /**
   * Every weight of a layer worth drawing (>= MIN_WEIGHT), strongest first, as flat indices into
   * its (heads, q, width) bytes. One pass over the layer on its first visit; after that, toggling
   * heads, filtering sentences or hiding special tokens only walks this list.
   */
  private candidates(L: Layer): Int32Array {
    const cached = this.candidateCache.get(L);
    if (cached) return cached;
    const { bytes, table } = L;
    let minByte = 0;
    while (minByte < 255 && !(table[minByte] >= MIN_WEIGHT)) minByte++;
    const count = new Int32Array(257);
    let n = 0;
    for (let x = 0; x < bytes.length; x++) {
      const b = bytes[x];
      if (b >= minByte && b !== 255) {
        count[b]++;
        n++;
      }
    }
    // Counting sort, strongest byte first.
    const at = new Int32Array(256);
    let acc = 0;
    for (let b = 254; b >= 0; b--) {
      at[b] = acc;
      acc += count[b];
    }
    const out = new Int32Array(n);
    for (let x = 0; x < bytes.length; x++) {
      const b = bytes[x];
      if (b >= minByte && b !== 255) out[at[b]++] = x;
    }
    this.candidateCache.set(L, out);
    return out;
  }

  /** Picks the lines to draw: the strongest visible weights, at most max_lines of them. */
  private prepare(): void {
    const L = this.layer;
    if (!L) return;
    this.status.classList.remove("dv-att-warning");
    const heads = this.visibleHeads();
    const { q, width, bytes, index, table } = L;
    const posL = this.posL;
    const posR = this.posR;
    const slotOf = new Int32Array(L.heads).fill(-1);
    heads.forEach((hd, slot) => {
      if (hd < L.heads) slotOf[hd] = slot;
    });
    const budget = Math.max(1, this.ctx.model.get("max_lines"));
    const dim = this.ctx.model.get("special") === "dim";
    const specialQ = this.meta.special;
    const specialK = this.meta.special_k;
    const cand = this.candidates(L);
    const perHead = q * width;
    const nb = heads.length * LEVELS;
    const count = new Int32Array(nb + 1);
    const tmpL = new Int32Array(Math.min(budget, cand.length));
    const tmpR = new Int32Array(tmpL.length);
    const tmpB = new Int32Array(tmpL.length);
    let n = 0;
    let visible = 0;
    let weakest = Infinity;
    for (let c = 0; c < cand.length; c++) {
      const x = cand[c];
      const hd = (x / perHead) | 0;
      const slot = slotOf[hd];
      if (slot < 0) continue;
      const rest = x - hd * perHead;
      const i = (rest / width) | 0;
      const j = index ? index[x] : rest - i * width;
      if (posL[i] < 0 || posR[j] < 0) continue;
      visible++;
      if (n >= tmpL.length) continue;
      const w = table[bytes[x]];
      weakest = w;
      const alpha = dim && (specialQ[i] || specialK[j]) ? w * DIM : w;
      const level = Math.max(1, Math.min(LEVELS, Math.round(alpha * LEVELS)));
      tmpL[n] = posL[i];
      tmpR[n] = posR[j];
      tmpB[n] = slot * LEVELS + level - 1;
      count[tmpB[n] + 1]++;
      n++;
    }
    for (let b = 0; b < nb; b++) count[b + 1] += count[b];
    const start = count.slice();
    const rowL = new Int32Array(n);
    const rowR = new Int32Array(n);
    const fill = count.slice(0, nb);
    for (let e = 0; e < n; e++) {
      const at = fill[tmpB[e]]++;
      rowL[at] = tmpL[e];
      rowR[at] = tmpR[e];
    }
    this.edges = { start, rowL, rowR, heads, candidates: visible, threshold: weakest };
  }

  // Focus ------------------------------------------------------------------------
  private setFocus(f: Focus | null): void {
    const same = f && this.focus && f.side === this.focus.side && f.token === this.focus.token && f.pinned === this.focus.pinned;
    if (same || (!f && !this.focus)) return;
    this.focus = f;
    this.computeFocus();
    this.left.restyle();
    this.right.restyle();
    this.schedule();
    const L = this.layer;
    if (f && L && L.index) {
      // A pruned layer: ask a live kernel for the token's exact row (null without one).
      const key = `${this.meta.name}/${this.layerIndex}/${f.side}/${f.token}`;
      if (this.exact?.key === key) return;
      const gen = this.generation;
      this.store.row(this.meta.name, this.layerIndex, f.side, f.token).then((values) => {
        if (!values || gen !== this.generation || !this.focus || this.focus.side !== f.side || this.focus.token !== f.token) return;
        this.exact = { key, values };
        this.computeFocus();
        this.left.restyle();
        this.right.restyle();
        this.schedule();
      }, () => undefined);
    }
  }

  /** The focused token's weights to every token of the other side, per visible head: (slot, other) row-major. */
  private focusWeights(): { w: Float32Array; heads: number[]; other: number } | null {
    const f = this.focus;
    const L = this.layer;
    if (!f || !L) return null;
    const heads = this.visibleHeads();
    const other = f.side === "query" ? L.k : L.q;
    const w = new Float32Array(heads.length * other);
    const key = `${this.meta.name}/${this.layerIndex}/${f.side}/${f.token}`;
    if (this.exact && this.exact.key === key) {
      heads.forEach((hd, slot) => w.set(this.exact!.values.subarray(hd * other, (hd + 1) * other), slot * other));
      return { w, heads, other };
    }
    const { q, width, bytes, index, table } = L;
    heads.forEach((hd, slot) => {
      if (f.side === "query") {
        const base = (hd * q + f.token) * width;
        for (let s = 0; s < width; s++) w[slot * other + (index ? index[base + s] : s)] = table[bytes[base + s]];
      } else if (!index) {
        for (let i = 0; i < q; i++) w[slot * other + i] = table[bytes[(hd * q + i) * width + f.token]];
      } else {
        for (let i = 0; i < q; i++) {
          const base = (hd * q + i) * width;
          for (let s = 0; s < width; s++) if (index[base + s] === f.token) w[slot * other + i] = table[bytes[base + s]];
        }
      }
    });
    return { w, heads, other };
  }

  private computeFocus(): void {
    const fw = this.focusWeights();
    if (!fw) {
      this.focusW = null;
      this.focusH = null;
      return;
    }
    const { w, heads, other } = fw;
    const best = new Float32Array(other);
    const arg = new Int32Array(other);
    heads.forEach((hd, slot) => {
      for (let t = 0; t < other; t++) {
        const v = w[slot * other + t];
        if (v > best[t]) {
          best[t] = v;
          arg[t] = hd;
        }
      }
    });
    this.focusW = best;
    this.focusH = arg;
  }

  // Drawing -------------------------------------------------------------------------
  private y(row: number, top: number): number {
    return row * this.rowH + this.rowH / 2 - top;
  }

  /** Draws the lines crossing the viewport (all of them, or the focused token's). */
  draw(): void {
    const c = this.canvas.getContext("2d");
    if (!c) return;
    const dpr = this.canvas.width / LINES_WIDTH;
    const top = this.scroller.scrollTop;
    this.left.render(top, this.viewH);
    this.right.render(top, this.viewH);
    if (!this.raster || this.raster.width !== this.canvas.width || this.raster.height !== this.canvas.height) {
      this.raster = new LineRaster(this.canvas.width, this.canvas.height);
    }
    const R = this.raster;
    R.clear();
    const x0 = 4 * dpr;
    const x1 = (LINES_WIDTH - 4) * dpr;
    const H = this.viewH;
    const width = (this.rowH >= 20 ? 2 : 1.2) * dpr;
    const y = (row: number) => (row * this.rowH + this.rowH / 2 - top) * dpr;
    let drawn = 0;
    const fw = this.focus ? this.focusWeights() : null;
    if (fw && this.focus) {
      const f = this.focus;
      const mine = f.side === "query" ? this.posL[f.token] : this.posR[f.token];
      const theirs = f.side === "query" ? this.posR : this.posL;
      if (mine >= 0) {
        const ym = y(mine);
        fw.heads.forEach((hd, slot) => {
          const [r, g, b] = HEAD_COLORS[hd % HEAD_COLORS.length];
          for (let t = 0; t < fw.other; t++) {
            const w = fw.w[slot * fw.other + t];
            if (!(w >= MIN_WEIGHT) || theirs[t] < 0) continue;
            const yt = y(theirs[t]);
            if ((ym < 0 && yt < 0) || (ym > H * dpr && yt > H * dpr)) continue;
            const [i, j] = f.side === "query" ? [f.token, t] : [t, f.token];
            const alpha = Math.min(1, w * this.specialWeight(i, j));
            if (f.side === "query") R.line(x0, ym, x1, yt, width * 1.5, r, g, b, alpha);
            else R.line(x0, yt, x1, ym, width * 1.5, r, g, b, alpha);
            drawn++;
          }
        });
      }
    } else if (this.edges) {
      const { start, rowL, rowR, heads } = this.edges;
      const lo = -2 * dpr;
      const hi = (H + 2) * dpr;
      // Faint lines first, so that strong ones stay on top whatever the head order.
      for (let level = 0; level < LEVELS; level++) {
        const alpha = (level + 1) / LEVELS;
        heads.forEach((hd, slot) => {
          const b = slot * LEVELS + level;
          if (start[b] === start[b + 1]) return;
          const [r, g, bl] = HEAD_COLORS[hd % HEAD_COLORS.length];
          for (let e = start[b]; e < start[b + 1]; e++) {
            const ya = y(rowL[e]);
            const yb = y(rowR[e]);
            if ((ya < lo && yb < lo) || (ya > hi && yb > hi)) continue;
            R.line(x0, ya, x1, yb, width, r, g, bl, alpha);
            drawn++;
          }
        });
      }
    }
    R.blit(c);
    this.linesDrawn = drawn;
    this.describe();
    this.ctx.root.dataset.dvLines = String(drawn);
    this.ctx.root.dataset.dvLayerShown = `${this.meta.name}/${this.layerIndex}`;
    if (this.layer) this.onDrawn?.();
  }

  private describe(): void {
    if (!this.layer || !this.edges) return;
    const m = this.meta;
    const e = this.edges;
    const parts = [this.isRollout() ? "rollout" : `layer ${m.layer_names[this.layerIndex]}`];
    if (!this.isRollout()) parts.push(`${e.heads.length} of ${m.heads} heads`);
    const total = e.start[e.start.length - 1];
    if (this.focus) {
      const tok = this.focus.side === "query" ? m.tokens[this.focus.token] : m.tokens_k[this.focus.token];
      parts.push(`${this.focus.side} ${this.focus.token} “${displayToken(tok)}”${this.focus.pinned ? " (pinned: click again to release)" : ""}`);
      if (this.layer.index && !this.exact) parts.push(`its top ${m.top_k} keys per head`);
    } else if (total < e.candidates) {
      parts.push(`${thousands(total)} strongest of ${thousands(e.candidates)} lines (weights ≥ ${formatValue(e.threshold)})`);
    } else if (total === 0) {
      parts.push(`no line: every weight shown is below ${MIN_WEIGHT}`);
    } else {
      parts.push(`${thousands(total)} lines`);
    }
    if (m.mode === "top_k") parts.push(`top ${m.top_k} keys per query kept`);
    setText(this.status, parts.join(" · "));
  }

  // Export ---------------------------------------------------------------------------
  private textRows(col: TokenColumn, top: number): [number, Row][] {
    const first = Math.max(0, Math.floor(top / this.rowH));
    const last = Math.min(col.rows.length - 1, Math.ceil((top + this.viewH) / this.rowH));
    const out: [number, Row][] = [];
    for (let i = first; i <= last; i++) out.push([i, col.rows[i]]);
    return out;
  }

  private png(): HTMLCanvasElement {
    const k = 2;
    const pad = 12;
    const title = this.ctx.model.get("title") ?? "";
    const head = title ? 26 : 0;
    const W = this.leftW + LINES_WIDTH + this.rightW;
    const out = document.createElement("canvas");
    out.width = (W + 2 * pad) * k;
    out.height = (this.viewH + head + 2 * pad) * k;
    const o = out.getContext("2d")!;
    o.scale(k, k);
    o.fillStyle = this.ctx.cssVar("--dv-bg", "#fff");
    o.fillRect(0, 0, W + 2 * pad, this.viewH + head + 2 * pad);
    o.fillStyle = this.ctx.cssVar("--dv-fg", "#222");
    if (title) {
      o.font = "bold 14px sans-serif";
      o.fillText(title, pad, pad + 14);
    }
    o.font = FONT;
    o.textBaseline = "middle";
    const top = this.scroller.scrollTop;
    for (const [col, x, align] of [[this.left, pad + this.leftW - 6, "right"], [this.right, pad + this.leftW + LINES_WIDTH + 6, "left"]] as const) {
      o.textAlign = align;
      for (const [i, row] of this.textRows(col, top)) o.fillText(displayToken(row.text), x, pad + head + this.y(i, top));
    }
    o.drawImage(this.canvas, pad + this.leftW, pad + head, LINES_WIDTH, this.viewH);
    return out;
  }

  private svg(): SVGSVGElement {
    const W = this.leftW + LINES_WIDTH + this.rightW;
    const root = svgRoot(W, this.viewH, this.ctx.cssVar("--dv-bg", "#fff"));
    const fg = this.ctx.cssVar("--dv-fg", "#222");
    const top = this.scroller.scrollTop;
    for (const [col, x, anchor] of [[this.left, this.leftW - 6, "end"], [this.right, this.leftW + LINES_WIDTH + 6, "start"]] as const) {
      for (const [i, row] of this.textRows(col, top)) {
        root.append(svg("text", { x, y: this.y(i, top), "text-anchor": anchor, "dominant-baseline": "middle", "font-size": 12, "font-family": "sans-serif", fill: fg }, displayToken(row.text)));
      }
    }
    const g = svg("g", { transform: `translate(${this.leftW},0)`, "stroke-width": this.rowH >= 20 ? 2 : 1.2 });
    root.append(g);
    const e = this.edges;
    if (e && !this.focus) {
      e.heads.forEach((hd, slot) => {
        const [r, gg, b] = HEAD_COLORS[hd % HEAD_COLORS.length];
        for (let level = 0; level < LEVELS; level++) {
          const bucket = slot * LEVELS + level;
          for (let i = e.start[bucket]; i < e.start[bucket + 1]; i++) {
            const ya = this.y(e.rowL[i], top);
            const yb = this.y(e.rowR[i], top);
            if ((ya < 0 && yb < 0) || (ya > this.viewH && yb > this.viewH)) continue;
            g.append(svg("line", { x1: 4, y1: ya.toFixed(1), x2: LINES_WIDTH - 4, y2: yb.toFixed(1), stroke: `rgb(${r},${gg},${b})`, "stroke-opacity": ((level + 1) / LEVELS).toFixed(3) }));
          }
        }
      });
    } else {
      g.append(svg("image", { href: this.canvas.toDataURL("image/png"), width: LINES_WIDTH, height: this.viewH }));
    }
    return root;
  }

  /** Lines drawn in the last frame (tests and benchmarks read data-dv-lines). */
  get lines(): number {
    return this.linesDrawn;
  }
}
