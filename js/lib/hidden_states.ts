// Shared pieces of the hidden-state views (js/hidden_state_explorer.ts,
// js/cell_text.ts): a corpus store that serves token windows from the part
// saved with the widget or from the kernel, and LSTMVis's select and match
// rules written out for kernel-less pages. The rules mirror
// deepvis_widgets/compute/_match.py (select_cells, match_cells); Python is the
// authority whenever a kernel runs.

import { decode, withBuffers, type Encoded } from "./codec";

/** A window of the corpus as the widget sends it (widgets/hidden_state_explorer.py: _window_payload). */
export interface WindowPayload {
  start: number;
  end: number;
  tokens: string[];
  docs: number[];
  values: Encoded;
}

interface Block {
  start: number;
  end: number;
  tokens: string[];
  values: Float32Array;
  docs: number[];
}


export type Fetch = (start: number, end: number) => Promise<WindowPayload>;

/**
 * Tokens and states by position: the saved part [0, saved) at once, other
 * blocks of BLOCK tokens fetched from the kernel when asked (kept LRU).
 */
export class CorpusStore {
  static readonly BLOCK = 256;
  static readonly KEEP = 96;
  readonly saved: number;
  private embedded: Block;
  private blocks = new Map<number, Block>();
  private pending = new Map<number, Promise<void>>();
  private failed = new Map<number, string>();

  constructor(
    readonly nTokens: number,
    readonly nCells: number,
    embedded: WindowPayload,
    private fetch: Fetch | null,
  ) {
    const values = decode(embedded.values).values as Float32Array;
    this.embedded = { start: 0, end: embedded.end, tokens: embedded.tokens, values, docs: embedded.docs };
    this.saved = embedded.end;
    if (values.length !== embedded.end * nCells) throw new RangeError(`_embedded: expected ${embedded.end} x ${nCells} values, got ${values.length}`);
  }

  /** Turns kernel fetching off (no kernel answered) or on. */
  setFetch(fetch: Fetch | null): void {
    this.fetch = fetch;
    this.failed.clear();
  }

  get canFetch(): boolean {
    return this.fetch !== null;
  }

  private blockOf(t: number): Block | undefined {
    if (t < this.saved) return this.embedded;
    const b = this.blocks.get(Math.floor(t / CorpusStore.BLOCK));
    if (b) {
      // refresh LRU order
      this.blocks.delete(Math.floor(t / CorpusStore.BLOCK));
      this.blocks.set(Math.floor(t / CorpusStore.BLOCK), b);
    }
    return b;
  }

  has(t: number): boolean {
    return t >= 0 && t < this.nTokens && this.blockOf(t) !== undefined;
  }

  /** True when every token of [start, end) is here. */
  hasRange(start: number, end: number): boolean {
    start = Math.max(0, start);
    end = Math.min(this.nTokens, end);
    if (end <= this.saved) return true;
    for (let b = Math.floor(Math.max(start, this.saved) / CorpusStore.BLOCK); b * CorpusStore.BLOCK < end; b++) {
      if (!this.blocks.has(b)) return false;
    }
    return true;
  }

  token(t: number): string | undefined {
    const b = this.blockOf(t);
    return b ? b.tokens[t - b.start] : undefined;
  }

  /** State of cell c at token t, or NaN when not loaded. */
  value(t: number, c: number): number {
    const b = this.blockOf(t);
    return b ? b.values[(t - b.start) * this.nCells + c] : NaN;
  }

  /** The row of all cells at token t (a view, do not modify), or null. */
  row(t: number): Float32Array | null {
    const b = this.blockOf(t);
    if (!b) return null;
    const o = (t - b.start) * this.nCells;
    return b.values.subarray(o, o + this.nCells);
  }

  isDocStart(t: number): boolean {
    const b = this.blockOf(t);
    return b ? b.docs.includes(t) : false;
  }

  /** The saved part's states (row-major, saved x nCells). */
  savedValues(): Float32Array {
    return this.embedded.values;
  }

  savedTokens(): string[] {
    return this.embedded.tokens;
  }

  /** Fetches the blocks covering [start, end); resolves when all are here (or rejects). */
  ensure(start: number, end: number): Promise<void> {
    start = Math.max(0, start);
    end = Math.min(this.nTokens, end);
    if (this.hasRange(start, end)) return Promise.resolve();
    if (!this.fetch) return Promise.reject(new Error("no kernel"));
    const waits: Promise<void>[] = [];
    for (let b = Math.floor(Math.max(start, this.saved) / CorpusStore.BLOCK); b * CorpusStore.BLOCK < end; b++) {
      if (this.blocks.has(b)) continue;
      const failure = this.failed.get(b);
      if (failure !== undefined) return Promise.reject(new Error(failure));
      let p = this.pending.get(b);
      if (!p) {
        const b0 = b * CorpusStore.BLOCK;
        const b1 = Math.min(this.nTokens, b0 + CorpusStore.BLOCK);
        p = this.fetch(b0, b1).then(
          (w) => {
            this.blocks.set(b, { start: w.start, end: w.end, tokens: w.tokens, values: decode(w.values).values as Float32Array, docs: w.docs });
            while (this.blocks.size > CorpusStore.KEEP) this.blocks.delete(this.blocks.keys().next().value as number);
          },
          (err) => {
            this.failed.set(b, err instanceof Error ? err.message : String(err));
            throw err;
          },
        );
        p.finally(() => this.pending.delete(b)).catch(() => undefined);
        this.pending.set(b, p);
      }
      waits.push(p);
    }
    return Promise.all(waits).then(() => undefined);
  }
}

/** LSTMVis's select (compute/_match.py select_cells): on at every token of [start, end), off just outside. */
export function selectCells(store: CorpusStore, start: number, end: number, threshold: number): { cells: number[]; scores: number[] } | null {
  const lo = Math.max(start - 1, 0);
  const hi = Math.min(end + 1, store.nTokens);
  if (!store.hasRange(lo, hi)) return null;
  const C = store.nCells;
  const out: [number, number][] = [];
  for (let c = 0; c < C; c++) {
    let ok = true;
    let sum = 0;
    for (let t = start; t < end && ok; t++) {
      const v = store.value(t, c);
      if (!(v >= threshold)) ok = false;
      sum += v;
    }
    if (!ok) continue;
    if (start > 0 && store.value(start - 1, c) >= threshold) continue;
    if (end < store.nTokens && store.value(end, c) >= threshold) continue;
    out.push([c, sum / (end - start) - threshold]);
  }
  out.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  return { cells: out.map((x) => x[0]), scores: out.map((x) => x[1]) };
}

export interface MatchRecord {
  start: number;
  end: number;
  length: number;
  intersection: number | null;
  union: number | null;
}

/**
 * LSTMVis's match (compute/_match.py match_cells, index-free) over the first
 * `n` tokens of a row-major (n x C) array: every maximal run where at least k
 * selected cells are on, for k = 1..len(cells); ranked by intersection
 * (descending), union, length (descending), start.
 */
export function matchCells(
  values: Float32Array, n: number, C: number, cells: number[], threshold: number,
  opts: { topK: number; length: number | null; minLength?: number },
): MatchRecord[] {
  const sel = [...new Set(cells)].sort((a, b) => a - b);
  const k = sel.length;
  if (!k || !n) return [];
  const minLength = opts.minLength ?? 2;
  // runEnd[t * C + c]: first token >= t where cell c is off (n when it stays on).
  const runEnd = new Int32Array(n * C);
  for (let c = 0; c < C; c++) {
    let next = n;
    for (let t = n - 1; t >= 0; t--) {
      if (!(values[t * C + c] >= threshold)) next = t;
      runEnd[t * C + c] = next;
    }
  }
  const count = new Int32Array(n);
  for (let t = 0; t < n; t++) {
    let m = 0;
    for (const c of sel) if (values[t * C + c] >= threshold) m++;
    count[t] = m;
  }
  const seen = new Set<number>();
  const rows: MatchRecord[] = [];
  const isSel = new Uint8Array(C);
  for (const c of sel) isSel[c] = 1;
  for (let level = 1; level <= k; level++) {
    let t = 0;
    while (t < n) {
      if (count[t] < level) {
        t++;
        continue;
      }
      const s = t;
      while (t < n && count[t] >= level) t++;
      const len = t - s;
      const keep = opts.length === null ? len >= minLength : len === opts.length;
      const key = s * (n + 1) + t;
      if (!keep || seen.has(key)) continue;
      seen.add(key);
      let inter = 0;
      let active = 0;
      for (let c = 0; c < C; c++) {
        if (runEnd[s * C + c] >= t) {
          active++;
          if (isSel[c]) inter++;
        }
      }
      rows.push({ start: s, end: t, length: len, intersection: inter, union: active + k - inter });
    }
  }
  rows.sort((a, b) => b.intersection! - a.intersection! || a.union! - b.union! || b.length - a.length || a.start - b.start);
  return rows.slice(0, opts.topK);
}

/** Categorical colours for selected cells (Tableau 10, then lighter partners). */
const CELL_COLORS = [
  "#4c78a8", "#f58518", "#e45756", "#54a24b", "#b279a2", "#eeca3b", "#72b7b2", "#ff9da6", "#9d755d", "#bab0ac",
  "#2f5f8a", "#c45f00", "#a8322f", "#2f7a3a", "#7d4f74", "#b89a10", "#3f8f8a", "#d66f7b", "#6e4f3a", "#7f7a76",
];

export function cellColor(rank: number): string {
  return CELL_COLORS[rank % CELL_COLORS.length];
}

/** Name of cell c: its label when the states carry labels, else "cell c". */
export function cellName(labels: string[], c: number): string {
  return labels.length > c ? labels[c] : `cell ${c}`;
}
