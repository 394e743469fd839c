// HiddenStateExplorer view (LSTMVis). Mirrors deepvis_widgets/widgets/hidden_state_explorer.py.
//
// Only the visible window of tokens is drawn: one canvas for the cell lines,
// a pool of token labels as wide as the window (reused while scrolling), one
// canvas for the selected cells' heatmap. Tokens come from the part saved
// with the widget or, with a kernel, from `_hs_window` in blocks of 256.
// Brushing selects cells at once with LSTMVis's rule on the window data;
// with a kernel Python confirms the selection and sends the matches, without
// one the view matches inside the saved part itself.

import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { setupCanvas } from "./lib/canvas";
import { decode, type Encoded } from "./lib/codec";
import { formatValue, lut, makeScale, toIndex } from "./lib/colors";
import { Tooltip, h, setText } from "./lib/dom";
import { withBuffers } from "./lib/codec";
import { CorpusStore, cellColor, cellName, matchCells, selectCells, type MatchRecord, type WindowPayload } from "./lib/hidden_states";
import { showToken } from "./lib/tokens";

export interface SelectionValue {
  start: number;
  end: number;
  threshold: number;
  cells: number[];
  scores: number[];
}

export interface HiddenStateExplorerTraits extends BaseTraits {
  n_tokens: number;
  n_cells: number;
  cell_labels: string[];
  embed_tokens: number;
  _embedded: WindowPayload;
  y_range: [number, number];
  position: number;
  token_width: number;
  threshold: number;
  top_k: number;
  match_length: number | null;
  selection: SelectionValue | null;
  matches: MatchRecord[];
  _match_data: { cells: number[]; items: { lo: number; hi: number; tokens: string[] }[]; values: Encoded } | Record<string, never>;
  _match_note: string;
  _match_serial: number;
}

interface Snippets {
  cells: number[];
  items: { lo: number; hi: number; tokens: string[] }[];
  values: Float32Array;
}

const AXIS_W = 64;
const PLOT_H = 180;
const HEAT_ROW = 10;
const HEAT_MAX_ROWS = 24;
const SNIP_ROW = 6;
const PAD = 6;

function build(ctx: ViewContext<HiddenStateExplorerTraits>): void {
  const { model, body, disposer } = ctx;
  const N = model.get("n_tokens");
  const C = model.get("n_cells");
  const labels = model.get("cell_labels") ?? [];
  const store = new CorpusStore(N, C, model.get("_embedded"), null);
  const name = (c: number) => cellName(labels, c);

  // --- state ------------------------------------------------------------------------------
  let pos = model.get("position") ?? 0;
  let threshold = model.get("threshold");
  let brush: [number, number] | null = null; // [start, end) while dragging or committed
  let preview: { cells: number[]; scores: number[] } | null = null;
  let focus: [number, number] | null = null; // a clicked match
  let kernel: boolean | null = null; // unknown until the ping answers
  let waiting = false; // a selection was sent, matches not back yet
  let local: { records: MatchRecord[]; snippets: Snippets } | null = null;
  let width = 900;
  let V = 60;
  let loadError = ""; // the last failed window request, shown under the plot

  // --- DOM ----------------------------------------------------------------------------------
  const thrInput = h("input", { class: "dv-hse-input", type: "number", step: "0.01", "aria-label": "threshold" });
  const slider = h("input", { class: "dv-hse-slider", type: "range", min: "0", step: "1", "aria-label": "scroll through the corpus" });
  const prev = h("button", { class: "dv-button", type: "button", title: "previous window" }, "◀");
  const next = h("button", { class: "dv-button", type: "button", title: "next window" }, "▶");
  const goto = h("input", { class: "dv-hse-input dv-hse-goto", type: "number", min: "0", max: String(N - 1), step: "1", "aria-label": "go to token" });
  const where = h("span", { class: "dv-hse-where" });
  const controls = h(
    "div", { class: "dv-hse-controls" },
    h("label", { class: "dv-control" }, "threshold", thrInput),
    prev, slider, next,
    h("label", { class: "dv-control" }, "go to token", goto),
    where,
  );
  const plot = h("canvas", { class: "dv-hse-plot", tabindex: "0", role: "img", "aria-label": "cell activations over the tokens; drag to select a range, drag the dashed line to set the threshold" });
  const strip = h("div", { class: "dv-hse-tokens" });
  const heat = h("canvas", { class: "dv-hse-heat", role: "img", "aria-label": "selected cells over the tokens" });
  const stage = h("div", { class: "dv-hse-stage" }, plot, strip, heat);
  const note = h("div", { class: "dv-hse-note" });
  const summary = h("div", { class: "dv-hse-summary" });
  const matchHead = h("div", { class: "dv-hse-match-head" });
  const matchList = h("div", { class: "dv-hse-matches", role: "list" });
  body.append(controls, stage, note, summary, h("div", { class: "dv-hse-match-panel" }, matchHead, matchList));
  const tooltip = new Tooltip(stage);
  ctx.root.dataset.dvKernel = "unknown";

  const [ylo, yhi] = model.get("y_range");
  const yOf = (v: number) => PAD + (1 - (v - ylo) / (yhi - ylo)) * (PLOT_H - 2 * PAD);
  const vOf = (y: number) => ylo + (1 - (y - PAD) / (PLOT_H - 2 * PAD)) * (yhi - ylo);
  const heatScale = makeScale("diverging", ylo, yhi);
  const rdbu = lut("rdbu");
  const tw = () => model.get("token_width");

  // --- layout -------------------------------------------------------------------------------
  let tokenCells: HTMLDivElement[] = [];
  const layout = () => {
    V = Math.max(8, Math.floor((width - AXIS_W - 8) / tw()));
    slider.max = String(Math.max(0, N - V));
    strip.style.marginLeft = `${AXIS_W}px`;
    strip.style.height = "20px";
    if (tokenCells.length !== V) {
      tokenCells = Array.from({ length: V }, (_, i) => h("div", { class: "dv-hse-tok", "data-slot": i }));
      strip.replaceChildren(...tokenCells);
    }
    for (const d of tokenCells) d.style.width = `${tw()}px`;
  };

  // --- drawing ------------------------------------------------------------------------------
  const selection = () => model.get("selection");
  const shownCells = (): number[] => preview?.cells ?? selection()?.cells ?? [];
  let frame = 0;
  const schedule = () => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      guardedDraw();
    });
  };
  disposer.add(() => frame && cancelAnimationFrame(frame));

  const draw = () => {
    const t0 = performance.now();
    pos = Math.max(0, Math.min(pos, Math.max(0, N - 1)));
    const end = Math.min(N, pos + V);
    if (!store.hasRange(pos - 1, end + 1) && store.canFetch) {
      store.ensure(pos - 1, end + 1).then(
        () => {
          loadError = "";
          schedule();
        },
        (err) => {
          const message = `could not load tokens ${pos}–${end - 1} from the kernel: ${err instanceof Error ? err.message : String(err)}`;
          if (message !== loadError) {
            loadError = message;
            schedule();
          }
        },
      );
    }
    const W = AXIS_W + V * tw();
    const dpr = setupCanvas(plot, W, PLOT_H);
    const c = plot.getContext("2d")!;
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.clearRect(0, 0, W, PLOT_H);
    const fg2 = ctx.cssVar("--dv-fg2", "#666");
    const fg = ctx.cssVar("--dv-fg", "#222");
    const accent = ctx.cssVar("--dv-accent", "#1976d2");
    const border = ctx.cssVar("--dv-border", "#bbb");
    const x = (t: number) => AXIS_W + (t - pos + 0.5) * tw();
    // axis
    c.font = "10px sans-serif";
    c.fillStyle = fg2;
    c.textAlign = "right";
    c.textBaseline = "middle";
    c.strokeStyle = border;
    c.lineWidth = 1;
    for (const v of [ylo, 0, yhi]) {
      if (v < ylo || v > yhi) continue;
      c.fillText(formatValue(v), AXIS_W - 6, Math.min(PLOT_H - 6, Math.max(6, yOf(v))));
      c.beginPath();
      c.moveTo(AXIS_W, Math.round(yOf(v)) + 0.5);
      c.lineTo(W, Math.round(yOf(v)) + 0.5);
      c.globalAlpha = v === 0 ? 0.6 : 0.3;
      c.stroke();
      c.globalAlpha = 1;
    }
    // brushed range and focused match
    const band = (r: [number, number] | null, fill: boolean) => {
      if (!r) return;
      const a = Math.max(r[0], pos);
      const b = Math.min(r[1], end);
      if (b <= a) return;
      const x0 = AXIS_W + (a - pos) * tw();
      const x1 = AXIS_W + (b - pos) * tw();
      if (fill) {
        c.fillStyle = accent;
        c.globalAlpha = 0.14;
        c.fillRect(x0, 0, x1 - x0, PLOT_H);
        c.globalAlpha = 1;
      } else {
        c.strokeStyle = accent;
        c.setLineDash([2, 2]);
        c.strokeRect(x0 + 0.5, 0.5, x1 - x0 - 1, PLOT_H - 1);
        c.setLineDash([]);
      }
    };
    const sel = selection();
    band(brush ?? (sel ? [sel.start, sel.end] : null), true);
    band(focus, false);
    // document boundaries
    c.strokeStyle = fg2;
    c.setLineDash([3, 3]);
    for (let t = pos; t < end; t++) {
      if (t > 0 && store.isDocStart(t)) {
        const xx = Math.round(AXIS_W + (t - pos) * tw()) + 0.5;
        c.beginPath();
        c.moveTo(xx, 0);
        c.lineTo(xx, PLOT_H);
        c.stroke();
      }
    }
    c.setLineDash([]);
    // every cell as a faint line, one path
    const chosen = shownCells();
    const isChosen = new Uint8Array(C);
    for (const cc of chosen) isChosen[cc] = 1;
    const path = new Path2D();
    // one cell's line over the window, broken where a value is missing
    const trace = (p: Path2D | CanvasRenderingContext2D, cc: number) => {
      let pen = false;
      for (let t = pos; t < end; t++) {
        const v = store.value(t, cc);
        if (v !== v) {
          pen = false;
          continue;
        }
        const yy = yOf(Math.max(ylo, Math.min(yhi, v)));
        if (pen) p.lineTo(x(t), yy);
        else p.moveTo(x(t), yy);
        pen = true;
      }
    };
    for (let cc = 0; cc < C; cc++) if (!isChosen[cc]) trace(path, cc);
    c.strokeStyle = fg2;
    c.globalAlpha = Math.min(0.5, 3 / Math.sqrt(Math.max(C, 1)));
    c.lineWidth = 1;
    c.stroke(path);
    c.globalAlpha = 1;
    // selected cells on top, in their colours
    c.lineWidth = 1.8;
    chosen.slice(0, 64).forEach((cc, rank) => {
      c.strokeStyle = cellColor(rank);
      c.beginPath();
      trace(c, cc);
      c.stroke();
    });
    // threshold
    const ty = Math.round(yOf(Math.max(ylo, Math.min(yhi, threshold)))) + 0.5;
    c.strokeStyle = accent;
    c.lineWidth = 1.5;
    c.setLineDash([6, 4]);
    c.beginPath();
    c.moveTo(AXIS_W - 4, ty);
    c.lineTo(W, ty);
    c.stroke();
    c.setLineDash([]);
    c.fillStyle = accent;
    c.textAlign = "left";
    c.fillText(`≥ ${formatValue(threshold)}`, 2, Math.max(8, Math.min(PLOT_H - 8, ty - 8)));
    // missing part
    let missing = 0;
    for (let t = pos; t < end; t++) if (!store.has(t)) missing++;
    if (missing) {
      c.fillStyle = fg2;
      c.textAlign = "center";
      c.fillText(loadError ? "could not load" : store.canFetch ? "loading…" : "not saved with this page", AXIS_W + (V * tw()) / 2, PLOT_H / 2);
    }
    // token labels
    const inRange = brush ?? (sel ? [sel.start, sel.end] : null);
    for (let i = 0; i < V; i++) {
      const t = pos + i;
      const d = tokenCells[i];
      const tok = t < N ? store.token(t) : undefined;
      const text = tok === undefined ? "" : showToken(tok);
      if (d.textContent !== text) d.textContent = text;
      d.dataset.t = String(t);
      d.title = tok === undefined ? "" : `${t}: ${tok}`;
      d.classList.toggle("dv-hse-in", !!inRange && t >= inRange[0] && t < inRange[1]);
      d.classList.toggle("dv-hse-focus", !!focus && t >= focus[0] && t < focus[1]);
      d.classList.toggle("dv-hse-doc", t > 0 && store.isDocStart(t));
      d.style.visibility = t < N ? "" : "hidden";
    }
    drawHeat(chosen, end);
    // position read-outs
    slider.value = String(pos);
    setText(where, `tokens ${pos.toLocaleString()}–${(end - 1).toLocaleString()} of ${N.toLocaleString()}`);
    stage.dataset.position = String(pos);
    stage.dataset.visible = String(V);
    if (missing && loadError) {
      setText(note, loadError);
      note.style.display = "";
    } else if (missing && !store.canFetch) {
      setText(note, kernel === null
        ? "asking the kernel for these tokens…"
        : `Tokens from ${store.saved.toLocaleString()} on were not saved with this page (it holds the first ${store.saved.toLocaleString()} of ${N.toLocaleString()} tokens); run the notebook to scroll through all of them.`);
      note.style.display = "";
    } else {
      note.style.display = "none";
    }
    ctx.root.dataset.dvDrawMs = (performance.now() - t0).toFixed(2);
  };

  const drawHeat = (chosen: number[], end: number) => {
    const rows = Math.min(chosen.length, HEAT_MAX_ROWS);
    const W = AXIS_W + V * tw();
    const H = rows ? rows * HEAT_ROW + (chosen.length > rows ? 12 : 0) : 0;
    heat.style.display = rows ? "" : "none";
    if (!rows) return;
    const dpr = setupCanvas(heat, W, H);
    const c = heat.getContext("2d")!;
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.clearRect(0, 0, W, H);
    c.font = "9px sans-serif";
    c.textBaseline = "middle";
    c.textAlign = "right";
    for (let r = 0; r < rows; r++) {
      const cc = chosen[r];
      c.fillStyle = cellColor(r);
      c.fillText(name(cc).slice(0, 12), AXIS_W - 4, r * HEAT_ROW + HEAT_ROW / 2);
      for (let t = pos; t < end; t++) {
        const v = store.value(t, cc);
        if (v !== v) continue;
        const k = toIndex(v, heatScale) * 4;
        c.fillStyle = `rgb(${rdbu[k]},${rdbu[k + 1]},${rdbu[k + 2]})`;
        c.fillRect(AXIS_W + (t - pos) * tw(), r * HEAT_ROW, tw() - 0.5, HEAT_ROW - 1);
      }
    }
    if (chosen.length > rows) {
      c.fillStyle = ctx.cssVar("--dv-fg2", "#666");
      c.textAlign = "left";
      c.fillText(`… ${chosen.length - rows} more cells`, AXIS_W, rows * HEAT_ROW + 6);
    }
  };
  const guardedDraw = ctx.guard(draw);

  // --- selection summary and matches ------------------------------------------------------------
  const renderSummary = () => {
    const sel = selection();
    const cells = preview?.cells ?? sel?.cells ?? [];
    const range = brush ?? (sel ? [sel.start, sel.end] : null);
    summary.dataset.cells = cells.join(",");
    if (!range) {
      summary.replaceChildren(h("span", { class: "dv-hse-hint" }, "Drag across the plot or the text to select a token range; drag the dashed line to change the threshold."));
      return;
    }
    const head = `${cells.length} cell${cells.length === 1 ? "" : "s"} on (≥ ${formatValue(threshold)}) at every token of [${range[0]}, ${range[1]}) and off around it`;
    const chips = cells.slice(0, 64).map((cc, rank) => {
      const sw = h("span", { class: "dv-hse-swatch" });
      sw.style.background = cellColor(rank);
      return h("span", { class: "dv-hse-chip", "data-cell": cc }, sw, name(cc));
    });
    summary.replaceChildren(h("span", {}, cells.length ? `${head}:` : `${head}.`), ...chips, cells.length > 64 ? h("span", {}, ` … ${cells.length - 64} more`) : "");
  };

  const pythonSnippets = (): Snippets | null => {
    const d = model.get("_match_data") as HiddenStateExplorerTraits["_match_data"];
    if (!d || !("items" in d)) return null;
    return { cells: d.cells, items: d.items, values: decode(d.values).values as Float32Array };
  };

  const renderMatches = () => {
    const fromPython = local === null;
    const records = fromPython ? model.get("matches") ?? [] : local!.records;
    const snippets = fromPython ? pythonSnippets() : local!.snippets;
    const sel = selection();
    matchList.replaceChildren();
    matchHead.dataset.source = fromPython ? "python" : "page";
    if (waiting) {
      setText(matchHead, "Matching in the kernel…");
      return;
    }
    if (!records.length) {
      const pyNote = model.get("_match_note");
      setText(matchHead, fromPython && pyNote ? pyNote : sel ? (sel.cells.length ? "No matches." : `No cell is on at every token of [${sel.start}, ${sel.end}) and off just outside it: lower the threshold or brush another range.`) : "Matches appear here once cells are selected.");
      return;
    }
    const scope = fromPython ? `all ${N.toLocaleString()} tokens` : `the first ${store.saved.toLocaleString()} tokens saved with this page (no kernel)`;
    setText(matchHead, `Top ${records.length} matches in ${scope}: ranges where the selected cells switch on together (most selected cells on, then fewest other cells, then longest). Click one to scroll there.`);
    records.forEach((rec, i) => {
      const item = snippets?.items[i];
      const row = h("button", { class: "dv-hse-match", type: "button", role: "listitem", "data-start": rec.start, "data-end": rec.end });
      const inter = rec.intersection ?? "?";
      const union = rec.union ?? "?";
      row.append(h("div", { class: "dv-hse-match-meta" }, `#${i + 1}  tokens ${rec.start}–${rec.end - 1} (${rec.length})  ·  ${inter} selected on, union ${union}`));
      if (item && snippets) {
        const text = h("div", { class: "dv-hse-snip" });
        item.tokens.forEach((tok, j) => {
          const t = item.lo + j;
          const d = h("span", { class: t >= rec.start && t < rec.end ? "dv-hse-stok dv-hse-in" : "dv-hse-stok" }, showToken(tok));
          d.style.width = `${tw()}px`;
          text.append(d);
        });
        row.append(text);
        const nc = snippets.cells.length;
        if (nc) {
          let offset = 0;
          for (let q = 0; q < i; q++) offset += snippets.items[q].hi - snippets.items[q].lo;
          const cv = h("canvas", { class: "dv-hse-snip-heat" });
          const L = item.hi - item.lo;
          const rows = Math.min(nc, 12);
          const dpr = setupCanvas(cv, L * tw(), rows * SNIP_ROW);
          const g = cv.getContext("2d")!;
          g.setTransform(dpr, 0, 0, dpr, 0, 0);
          for (let r = 0; r < rows; r++) {
            for (let j = 0; j < L; j++) {
              const v = snippets.values[(offset + j) * nc + r];
              const k = toIndex(v, heatScale) * 4;
              if (k < 0) continue;
              g.fillStyle = `rgb(${rdbu[k]},${rdbu[k + 1]},${rdbu[k + 2]})`;
              g.fillRect(j * tw(), r * SNIP_ROW, tw() - 0.5, SNIP_ROW - 0.5);
            }
          }
          row.append(cv);
        }
      }
      disposer.listen(row, "click", ctx.guard(() => {
        focus = [rec.start, rec.end];
        scrollTo(rec.start - Math.floor(V / 3));
      }));
      matchList.append(row);
    });
  };

  const matchLocally = (sel: { start: number; end: number; cells: number[] }) => {
    if (!sel.cells.length || sel.end > store.saved) {
      local = { records: [], snippets: { cells: [], items: [], values: new Float32Array(0) } };
      return;
    }
    const n = store.saved;
    const values = store.savedValues();
    const records = matchCells(values, n, C, sel.cells, threshold, { topK: model.get("top_k"), length: model.get("match_length") });
    const cells = sel.cells.slice(0, 16);
    const items: Snippets["items"] = [];
    const vals: number[] = [];
    const toks = store.savedTokens();
    for (const r of records) {
      const lo = Math.max(0, r.start - 4);
      const hi = Math.min(n, Math.min(r.end, r.start + 32) + 4);
      items.push({ lo, hi, tokens: toks.slice(lo, hi) });
      for (let t = lo; t < hi; t++) for (const cc of cells) vals.push(values[t * C + cc]);
    }
    local = { records, snippets: { cells, items, values: Float32Array.from(vals) } };
    model.set("matches", records);
  };

  // --- committing a selection ----------------------------------------------------------------------
  const commit = (start: number, end: number) => {
    const sel = selectCells(store, start, end, threshold);
    if (!sel) return;
    const value: SelectionValue = { start, end, threshold, cells: sel.cells, scores: sel.scores };
    preview = null;
    brush = null;
    focus = null;
    if (kernel) {
      waiting = true;
      local = null;
    }
    model.set("threshold", threshold);
    model.set("selection", value);
    model.save_changes();
    if (!kernel) matchLocally(value);
    renderSummary();
    renderMatches();
    schedule();
  };

  const setThreshold = (v: number, commitNow: boolean) => {
    if (!Number.isFinite(v)) return;
    threshold = Math.round(v * 1000) / 1000;
    thrInput.value = String(threshold);
    const sel = selection();
    if (sel) {
      preview = selectCells(store, sel.start, sel.end, threshold);
      if (commitNow) commit(sel.start, sel.end);
    } else if (commitNow) {
      model.set("threshold", threshold);
      model.save_changes();
    }
    renderSummary();
    schedule();
  };

  // --- scrolling ------------------------------------------------------------------------------------
  let saveTimer = 0;
  const scrollTo = (p: number) => {
    pos = Math.max(0, Math.min(Math.round(p), Math.max(0, N - V)));
    schedule();
    clearTimeout(saveTimer);
    saveTimer = window.setTimeout(() => {
      if (model.get("position") !== pos) {
        model.set("position", pos);
        model.save_changes();
      }
    }, 250);
  };
  disposer.add(() => clearTimeout(saveTimer));

  // --- pointer interaction ----------------------------------------------------------------------------
  const tokenAt = (clientX: number, el: Element, offset: number): number => {
    const r = el.getBoundingClientRect();
    const i = Math.floor((clientX - r.left - offset) / tw());
    return Math.max(pos, Math.min(pos + V - 1, N - 1, pos + i));
  };
  let drag: { mode: "brush" | "threshold"; t0: number; el: Element; offset: number } | null = null;
  const onDown = (el: HTMLElement, offset: number) => ctx.guard((ev: PointerEvent) => {
    if (ev.button !== 0) return;
    const r = el.getBoundingClientRect();
    const px = ev.clientX - r.left;
    const py = ev.clientY - r.top;
    const nearLine = el === plot && Math.abs(py - yOf(Math.max(ylo, Math.min(yhi, threshold)))) <= 6;
    if (el === plot && (nearLine || px < AXIS_W)) {
      drag = { mode: "threshold", t0: 0, el, offset };
      setThreshold(vOf(py), false);
    } else {
      if (px < offset) return;
      const t = tokenAt(ev.clientX, el, offset);
      drag = { mode: "brush", t0: t, el, offset };
      brush = [t, t + 1];
      focus = null;
      preview = selectCells(store, t, t + 1, threshold);
      renderSummary();
      schedule();
    }
    el.setPointerCapture?.(ev.pointerId);
    ev.preventDefault();
  });
  const onMove = ctx.guard((ev: PointerEvent) => {
    if (!drag) return;
    if (drag.mode === "threshold") {
      const r = plot.getBoundingClientRect();
      setThreshold(vOf(ev.clientY - r.top), false);
      return;
    }
    const t = tokenAt(ev.clientX, drag.el, drag.offset);
    const next: [number, number] = [Math.min(drag.t0, t), Math.max(drag.t0, t) + 1];
    if (!brush || next[0] !== brush[0] || next[1] !== brush[1]) {
      brush = next;
      preview = selectCells(store, next[0], next[1], threshold);
      renderSummary();
      schedule();
    }
  });
  const onUp = ctx.guard(() => {
    if (!drag) return;
    const d = drag;
    drag = null;
    if (d.mode === "threshold") {
      const sel = selection();
      if (sel) commit(sel.start, sel.end);
      else setThreshold(threshold, true);
    } else if (brush) {
      commit(brush[0], brush[1]);
    }
  });
  disposer.listen(plot, "pointerdown", onDown(plot, AXIS_W));
  disposer.listen(strip, "pointerdown", onDown(strip, 0));
  for (const el of [plot, strip]) {
    disposer.listen(el, "pointermove", onMove);
    disposer.listen(el, "pointerup", onUp);
    disposer.listen(el, "pointercancel", onUp);
  }
  disposer.listen(plot, "mousemove", ctx.guard((ev: MouseEvent) => {
    if (drag) return tooltip.hide();
    const r = plot.getBoundingClientRect();
    const px = ev.clientX - r.left;
    const py = ev.clientY - r.top;
    if (px < AXIS_W) return tooltip.hide();
    const t = pos + Math.floor((px - AXIS_W) / tw());
    const row = store.row(t);
    if (!row) return tooltip.hide();
    let best = -1;
    let bestD = Infinity;
    for (let cc = 0; cc < C; cc++) {
      const dd = Math.abs(yOf(row[cc]) - py);
      if (dd < bestD) {
        bestD = dd;
        best = cc;
      }
    }
    const sr = stage.getBoundingClientRect();
    tooltip.show([
      ["token", `${t}: ${showToken(store.token(t) ?? "")}`],
      ["nearest line", `${name(best)} = ${formatValue(row[best])}`],
      ["cells on", `${row.filter((v) => v >= threshold).length} of ${C}`],
    ], ev.clientX - sr.left, ev.clientY - sr.top);
  }));
  disposer.listen(plot, "mouseleave", () => tooltip.hide());
  disposer.listen(plot, "wheel", ctx.guard((ev: WheelEvent) => {
    const d = ev.deltaX || (ev.shiftKey ? ev.deltaY : 0);
    if (!d) return;
    ev.preventDefault();
    scrollTo(pos + Math.sign(d) * Math.max(1, Math.round(Math.abs(d) / tw())));
  }), { passive: false });
  disposer.listen(plot, "keydown", ctx.guard((ev: KeyboardEvent) => {
    const step = { ArrowLeft: -1, ArrowRight: 1, PageUp: -V, PageDown: V, Home: -N, End: N }[ev.key];
    if (step === undefined) return;
    ev.preventDefault();
    ev.stopPropagation();
    scrollTo(pos + (ev.shiftKey && Math.abs(step) === 1 ? step * Math.floor(V / 2) : step));
  }));
  disposer.listen(slider, "input", ctx.guard(() => scrollTo(Number(slider.value))));
  disposer.listen(prev, "click", ctx.guard(() => scrollTo(pos - V)));
  disposer.listen(next, "click", ctx.guard(() => scrollTo(pos + V)));
  const goTo = ctx.guard(() => {
    const t = Number(goto.value);
    if (goto.value === "" || !Number.isFinite(t)) return;
    focus = [Math.max(0, Math.min(N - 1, t)), Math.max(0, Math.min(N - 1, t)) + 1];
    scrollTo(t - Math.floor(V / 3));
  });
  const applyThreshold = ctx.guard(() => setThreshold(Number(thrInput.value), true));
  disposer.listen(goto, "change", goTo);
  disposer.listen(thrInput, "change", applyThreshold);
  // Keys typed into our inputs are ours: JupyterLab's notebook shortcuts must not see them.
  for (const [input, apply] of [[goto, goTo], [thrInput, applyThreshold]] as const) {
    disposer.listen(input, "keydown", (ev: KeyboardEvent) => {
      ev.stopPropagation();
      if (ev.key === "Enter") apply();
    });
  }

  // --- from Python -------------------------------------------------------------------------------------
  ctx.on("change:position", ctx.guard(() => {
    const p = model.get("position");
    if (p !== pos) {
      pos = p;
      schedule();
    }
  }));
  ctx.on("change:threshold", ctx.guard(() => {
    threshold = model.get("threshold");
    thrInput.value = String(threshold);
    schedule();
  }));
  ctx.on("change:selection", ctx.guard(() => {
    const sel = selection();
    preview = null;
    if (sel) {
      threshold = sel.threshold;
      thrInput.value = String(threshold);
      if (sel.end <= pos || sel.start >= pos + V) scrollTo(sel.start - Math.floor(V / 3));
    }
    renderSummary();
    schedule();
  }));
  const fromPython = ctx.guard(() => {
    waiting = false;
    local = null;
    renderMatches();
  });
  for (const ev of ["change:matches", "change:_match_data", "change:_match_note", "change:_match_serial"]) {
    ctx.on(ev, () => {
      // Our own model.set("matches") for page-side matches must not drop them.
      if (ev === "change:matches" && local && model.get("matches") === local.records) return;
      fromPython();
    });
  }
  ctx.on("change:error", () => {
    if (model.get("error") && waiting) {
      waiting = false;
      renderMatches();
    }
  });
  ctx.on("change:token_width", ctx.guard(() => {
    layout();
    schedule();
    renderMatches();
  }));
  disposer.observeResize(body, (w) => {
    if (Math.abs(w - width) < 4 || w < 50) return;
    width = w;
    layout();
    schedule();
  });

  // --- the kernel, if any ---------------------------------------------------------------------------------
  ctx.invoke("_hs_ping").then(
    () => {
      kernel = true;
      ctx.root.dataset.dvKernel = "yes";
      store.setFetch(async (start, end) => {
        const [reply, buffers] = await ctx.invoke<WindowPayload>("_hs_window", { start, end });
        return withBuffers(reply, buffers) as WindowPayload;
      });
      schedule();
    },
    () => {
      kernel = false;
      ctx.root.dataset.dvKernel = "no";
      schedule();
    },
  );

  ctx.setExporter("png", () => {
    const Wd = AXIS_W + V * tw();
    const heatH = heat.style.display === "none" ? 0 : heat.height / (heat.width / Math.max(Wd, 1));
    const k = 2;
    const out = document.createElement("canvas");
    out.width = Wd * k;
    out.height = (PLOT_H + 22 + heatH + 8) * k;
    const o = out.getContext("2d")!;
    o.scale(k, k);
    o.fillStyle = ctx.cssVar("--dv-bg", "#fff");
    o.fillRect(0, 0, Wd, PLOT_H + 22 + heatH + 8);
    o.drawImage(plot, 0, 0, Wd, PLOT_H);
    o.fillStyle = ctx.cssVar("--dv-fg", "#222");
    o.font = "11px monospace";
    o.textAlign = "center";
    o.textBaseline = "middle";
    for (let i = 0; i < V; i++) {
      const tok = store.token(pos + i);
      if (tok !== undefined) o.fillText(showToken(tok).slice(0, Math.max(1, Math.floor(tw() / 6))), AXIS_W + (i + 0.5) * tw(), PLOT_H + 11);
    }
    if (heatH) o.drawImage(heat, 0, PLOT_H + 22, Wd, heatH);
    return out;
  });

  // --- first draw -------------------------------------------------------------------------------------------
  width = Math.max(body.clientWidth || 0, 0) || 900;
  thrInput.value = String(threshold);
  const initial = selection();
  if (initial && (initial.end <= pos || initial.start >= pos + 8)) pos = Math.max(0, initial.start - 10);
  layout();
  draw();
  renderSummary();
  renderMatches();
  ctx.markDrawn();
}

export default defineView<HiddenStateExplorerTraits>("hidden_state_explorer", build);
