// ErrorGallery. Mirrors deepvis_widgets/widgets/error_gallery.py.
//
// A thin histogram of the metric with a tick per shown example, then one row
// of cards per group (worst / median / best ...). Hovering a card lights its
// tick and the other way round; clicking a card sets `selected`.

import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { formatValue } from "./lib/colors";
import { h, setText, svg } from "./lib/dom";
import { Examples, type ExamplesPayload } from "./lib/examples";

export interface ErrorGalleryTraits extends BaseTraits {
  _examples: ExamplesPayload;
  sample_ids: number[];
  sample_values: number[];
  sample_labels: string[];
  sample_preds: string[];
  groups: { name: string; rows: number[] }[];
  _hist: { edges: number[]; counts: number[] };
  n_nonfinite: number;
  metric_name: string;
  higher_is_worse: boolean;
  thumb_size: number;
  selected: number | null;
}

const HIST_W = 560;
const HIST_H = 64;
const PAD_L = 8;
const PAD_R = 8;
const TICK_H = 12;

/** Tick colour of a group: red at the worst end, blue at the best, grey between. */
export function groupColor(name: string): string {
  if (name === "worst") return "#e45756";
  if (name === "best") return "#4c78a8";
  const q = name.startsWith("q") ? Number(name.slice(1)) : 0.5;
  // Grey strictly inside (0.3, 0.7). Not |q - 0.5| < 0.2: in floats that greys 0.7 but not 0.3.
  if (!(q >= 0 && q <= 1) || (q > 0.3 && q < 0.7)) return "#8c8c8c";
  return q > 0.5 ? "#e45756" : "#4c78a8";
}

function groupTitle(name: string): string {
  return name.startsWith("q") && !Number.isNaN(Number(name.slice(1))) ? `around quantile ${name.slice(1)} (0 = best, 1 = worst)` : name;
}

function build(ctx: ViewContext<ErrorGalleryTraits>): void {
  const { model, body } = ctx;
  const ids = model.get("sample_ids");
  const values = model.get("sample_values");
  const labels = model.get("sample_labels");
  const preds = model.get("sample_preds");
  const groups = model.get("groups");
  const { edges, counts } = model.get("_hist");
  const metric = model.get("metric_name") || "metric";
  const examples = new Examples(model.get("_examples"), ids.length);
  if (values.length !== ids.length) throw new RangeError(`error gallery: ${ids.length} examples but ${values.length} values`);

  // --- summary and histogram ----------------------------------------------------------
  const total = counts.reduce((s, c) => s + c, 0);
  const nonfinite = model.get("n_nonfinite");
  const note = h(
    "div",
    { class: "dv-eg-note" },
    `${ids.length} of ${(total + nonfinite).toLocaleString("en-US")} examples sampled across ${metric} (${model.get("higher_is_worse") ? "higher" : "lower"} is worse)` +
      (nonfinite ? `; ${nonfinite.toLocaleString("en-US")} NaN or infinite values are never sampled` : ""),
  );
  const lo = edges[0] ?? 0;
  const hi = edges[edges.length - 1] ?? 1;
  const xOf = (v: number) => PAD_L + ((v - lo) / (hi - lo || 1)) * (HIST_W - PAD_L - PAD_R);
  const hist = svg("svg", { width: HIST_W, height: HIST_H + TICK_H + 16, class: "dv-eg-hist", role: "img" }) as SVGSVGElement;
  const maxLog = Math.log1p(Math.max(1, ...counts));
  counts.forEach((c, k) => {
    if (!c) return;
    const x0 = xOf(edges[k]);
    const x1 = xOf(edges[k + 1]);
    const bh = (Math.log1p(c) / maxLog) * (HIST_H - 4);
    hist.append(svg("rect", { x: x0, y: HIST_H - bh, width: Math.max(1, x1 - x0 - 0.5), height: bh, class: "dv-eg-bar" }, undefined));
  });
  hist.append(svg("line", { x1: PAD_L, x2: HIST_W - PAD_R, y1: HIST_H + 0.5, y2: HIST_H + 0.5, class: "dv-eg-axis" }));
  const ticks: SVGElement[] = [];
  groups.forEach((g) => {
    for (const r of g.rows) {
      const x = xOf(values[r]);
      const tick = svg("line", { x1: x, x2: x, y1: HIST_H + 2, y2: HIST_H + TICK_H, stroke: groupColor(g.name), class: "dv-eg-tick", "data-row": r });
      ticks[r] = tick;
      hist.append(tick);
    }
  });
  hist.append(svg("text", { x: PAD_L, y: HIST_H + TICK_H + 13, class: "dv-eg-axislabel" }, formatValue(lo)));
  hist.append(svg("text", { x: HIST_W - PAD_R, y: HIST_H + TICK_H + 13, class: "dv-eg-axislabel", "text-anchor": "end" }, formatValue(hi)));
  hist.append(svg("text", { x: HIST_W / 2, y: HIST_H + TICK_H + 13, class: "dv-eg-axislabel", "text-anchor": "middle" }, `${metric} (bar height: log count)`));

  // --- rows of cards ------------------------------------------------------------------
  const cards: HTMLElement[] = [];
  const size = model.get("thumb_size");
  const rowsBox = h("div", { class: "dv-eg-rows" });
  for (const g of groups) {
    const vals = g.rows.map((r) => values[r]);
    const range = vals.length ? `${metric} ${formatValue(Math.min(...vals))} – ${formatValue(Math.max(...vals))}` : "no examples";
    const head = h("div", { class: "dv-eg-grouphead" }, h("span", { class: "dv-eg-groupname" }, groupTitle(g.name)), ` · ${range}`);
    head.style.borderLeftColor = groupColor(g.name);
    const row = h("div", { class: "dv-example-grid dv-eg-row", "data-group": g.name });
    for (const r of g.rows) {
      const caption: [string, string][] = [[metric, formatValue(values[r])]];
      if (labels[r]) caption.push(["label", labels[r]]);
      if (preds[r]) caption.push(["pred", preds[r]]);
      const card = examples.available
        ? examples.card(r, caption, size, () => select(r))
        : h("div", { class: "dv-example-card dv-clickable" }, h("div", { class: "dv-example-caption" }, `#${ids[r]}`), ...caption.map(([k, v]) => h("div", { class: "dv-example-caption" }, `${k} ${v}`)));
      if (!examples.available) ctx.disposer.listen(card, "click", () => select(r));
      card.dataset.id = String(ids[r]);
      if (labels[r] && preds[r] && labels[r] !== preds[r]) card.classList.add("dv-eg-wrong");
      ctx.disposer.listen(card, "mouseenter", () => light(r, true));
      ctx.disposer.listen(card, "mouseleave", () => light(r, false));
      cards[r] = card;
      row.append(card);
    }
    rowsBox.append(head, row);
  }
  body.append(note, h("div", { class: "dv-eg-histbox" }, hist), rowsBox);

  function light(r: number, on: boolean): void {
    ticks[r]?.classList.toggle("dv-eg-tick-on", on);
    cards[r]?.classList.toggle("dv-eg-hot", on);
    if (on && ticks[r]) hist.append(ticks[r]); // draw on top
  }
  function select(r: number): void {
    model.set("selected", model.get("selected") === ids[r] ? null : ids[r]);
    model.save_changes();
  }
  // hovering the histogram lights the nearest tick's card
  ctx.disposer.listen(hist, "mousemove", (ev: MouseEvent) => {
    const box = hist.getBoundingClientRect();
    const x = ev.clientX - box.left;
    let best = -1;
    let dist = 6;
    ticks.forEach((t, r) => {
      const d = Math.abs(Number(t.getAttribute("x1")) - x);
      if (d < dist) [best, dist] = [r, d];
    });
    ticks.forEach((_, r) => light(r, r === best));
  });
  ctx.disposer.listen(hist, "mouseleave", () => ticks.forEach((_, r) => light(r, false)));

  const showSelected = () => {
    const sel = model.get("selected");
    cards.forEach((c, r) => c?.classList.toggle("dv-eg-selected", ids[r] === sel));
  };
  showSelected();
  ctx.on("change:selected", ctx.guard(showSelected));

  ctx.setExporter("png", () => sheet(groups, cards, examples, examples.kind === "image" ? size : 120, metric, values, ctx.cssVar("--dv-bg", "#ffffff"), ctx.cssVar("--dv-fg", "#222222")));
  ctx.markDrawn();
}

/** One PNG of every group's examples (thumbnails, or texts) with their values (canvas text, never markup). */
/** Lines of `text` wrapped at `width` characters, at most `max` (the last one ends with … when cut). */
export function wrapText(text: string, width: number, max: number): string[] {
  const out: string[] = [];
  for (const line of text.replace(/\t/g, "    ").split(/\r?\n/)) {
    for (let i = 0; i === 0 || i < line.length; i += width) {
      out.push(line.slice(i, i + width).replace(/\s/g, " "));
      if (out.length > max) break;
    }
    if (out.length > max) break;
  }
  if (out.length > max) {
    out.length = max;
    out[max - 1] = `${out[max - 1].slice(0, width - 1)}…`;
  }
  return out;
}

function sheet(
  groups: ErrorGalleryTraits["groups"],
  cards: HTMLElement[],
  examples: Examples,
  size: number,
  metric: string,
  values: number[],
  bg: string,
  fg: string,
): HTMLCanvasElement {
  const image = examples.kind === "image";
  const LINE = 13;
  const MAX_LINES = 6;
  const perRow = Math.max(1, ...groups.map((g) => g.rows.length));
  const cellW = (image ? size : 200) + 8;
  const boxH = image ? size : MAX_LINES * LINE + 2;
  const cellH = boxH + 22;
  const headH = 18;
  const out = document.createElement("canvas");
  out.width = perRow * cellW + 8;
  out.height = groups.length * (cellH + headH) + 8;
  const c = out.getContext("2d")!;
  c.fillStyle = bg;
  c.fillRect(0, 0, out.width, out.height);
  c.imageSmoothingEnabled = false;
  groups.forEach((g, gi) => {
    const y0 = 4 + gi * (cellH + headH);
    c.font = "11px sans-serif";
    c.fillStyle = groupColor(g.name);
    c.fillText(groupTitle(g.name), 4, y0 + 12);
    g.rows.forEach((r, k) => {
      const x0 = 4 + k * cellW;
      if (image) {
        const thumb = examples.thumbnail(r, size);
        const w = parseFloat(thumb.style.width) || size;
        const hh = parseFloat(thumb.style.height) || size;
        c.drawImage(thumb, x0, y0 + headH, w, hh);
      } else {
        // texts as canvas text (never markup), monospaced, wrapped
        c.font = "10px monospace";
        c.fillStyle = fg;
        const lines = wrapText(examples.kind === "text" ? examples.text(r) : `#${cards[r]?.dataset.id ?? r}`, Math.floor((cellW - 10) / 6), MAX_LINES);
        lines.forEach((line, l) => c.fillText(line, x0, y0 + headH + 10 + l * LINE, cellW - 8));
        c.font = "11px sans-serif";
      }
      c.fillStyle = cards[r]?.classList.contains("dv-eg-wrong") ? "#e45756" : fg;
      c.fillText(`${metric} ${formatValue(values[r])}`, x0, y0 + headH + boxH + 14, cellW - 4);
    });
  });
  return out;
}

export default defineView<ErrorGalleryTraits>("error_gallery", build);
