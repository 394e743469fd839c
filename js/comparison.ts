// ModelComparison. Mirrors deepvis_widgets/widgets/comparison.py.
//
// One SVG table: a row per true class (plus "all classes"), a column per
// outcome (both right, only A right, only B right, both wrong), each cell a
// count and a bar of its share of the row. Counts are computed here from the
// per-example int32 arrays, so the drill-down works without a kernel.

import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { decode, type Encoded } from "./lib/codec";
import { h, setText, standaloneSvg, svg } from "./lib/dom";
import { Examples, type ExamplesPayload } from "./lib/examples";

export interface ComparisonTraits extends BaseTraits {
  _y_true: Encoded;
  _pred_a: Encoded;
  _pred_b: Encoded;
  _example_index: Encoded;
  _examples: ExamplesPayload;
  class_names: string[];
  model_names: string[];
  p_value: number;
  sort_by: "class" | "disagreement" | "errors";
  selected: [number, string] | null;
  selected_ids: number[];
}

export const CATEGORIES = ["both_right", "only_a", "only_b", "both_wrong"] as const;
const CAT_CLASS = ["dv-cmp-both", "dv-cmp-a", "dv-cmp-b", "dv-cmp-wrong"];
const MAX_CARDS = 120;
const ROW_H = 22;
const HEAD_H = 34;
const LABEL_W = 150;
const COL_W = 118;

/** Per-class counts (classes x 4) and each example's category, from the three int arrays. */
export function tally(y: ArrayLike<number>, a: ArrayLike<number>, b: ArrayLike<number>, classes: number): { counts: Int32Array[]; category: Uint8Array } {
  const counts = Array.from({ length: classes }, () => new Int32Array(4));
  const category = new Uint8Array(y.length);
  for (let i = 0; i < y.length; i++) {
    const ra = a[i] === y[i];
    const rb = b[i] === y[i];
    const c = ra && rb ? 0 : ra ? 1 : rb ? 2 : 3;
    category[i] = c;
    counts[y[i]][c]++;
  }
  return { counts, category };
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

function pText(p: number): string {
  if (!(p >= 0)) return "n/a";
  return p < 1e-4 ? p.toExponential(1) : p.toFixed(4).replace(/0+$/, "").replace(/\.$/, "");
}

function build(ctx: ViewContext<ComparisonTraits>): void {
  const { model, body } = ctx;
  const y = decode(model.get("_y_true")).values;
  const a = decode(model.get("_pred_a")).values;
  const b = decode(model.get("_pred_b")).values;
  const exIndex = decode(model.get("_example_index")).values;
  const n = y.length;
  if (a.length !== n || b.length !== n || exIndex.length !== n) throw new RangeError(`comparison: ${n} labels but ${a.length} / ${b.length} predictions`);
  const names = model.get("class_names") ?? [];
  const [nameA, nameB] = model.get("model_names") ?? ["A", "B"];
  const examples = new Examples(model.get("_examples"), 0);
  const { counts, category } = tally(y, a, b, names.length);
  const total = new Int32Array(4);
  for (const row of counts) for (let c = 0; c < 4; c++) total[c] += row[c];
  const heads = ["both right", `only ${nameA} right`, `only ${nameB} right`, "both wrong"];
  const short = (text: string) => (text.length > 12 ? `${text.slice(0, 11)}…` : text);
  const colHeads = ["both right", `only ${short(nameA)}`, `only ${short(nameB)}`, "both wrong"];
  const name = (k: number) => names[k] ?? String(k);

  // --- DOM ---------------------------------------------------------------------------
  const summary = h("div", { class: "dv-cmp-summary" });
  const controls = h("div", { class: "dv-proj-controls" });
  const tableBox = h("div", { class: "dv-cmp-table" });
  const detailHead = h("div", { class: "dv-cmp-detailhead" });
  const grid = h("div", { class: "dv-example-grid dv-cmp-grid" });
  body.append(summary, controls, tableBox, detailHead, grid);

  const accA = (total[0] + total[1]) / Math.max(n, 1);
  const accB = (total[0] + total[2]) / Math.max(n, 1);
  setText(
    summary,
    `${nameA}: ${pct(accA)} accurate · ${nameB}: ${pct(accB)} · on ${(total[1] + total[2]).toLocaleString("en-US")} of ${n.toLocaleString("en-US")} examples only one is right ` +
      `(only ${nameA} ${total[1].toLocaleString("en-US")}, only ${nameB} ${total[2].toLocaleString("en-US")}); McNemar exact p = ${pText(model.get("p_value"))}`,
  );

  const sorts: [ComparisonTraits["sort_by"], string][] = [["class", "class"], ["disagreement", "most disagreement"], ["errors", "most errors"]];
  const sortButtons = sorts.map(([value, label]) => {
    const btn = h("button", { class: "dv-button", type: "button", "data-sort": value }, label);
    ctx.disposer.listen(btn, "click", () => {
      model.set("sort_by", value);
      model.save_changes();
    });
    return btn;
  });
  controls.append(h("span", { class: "dv-proj-label" }, "sort rows by"), ...sortButtons);

  const order = (): number[] => {
    const ks = counts.map((_, k) => k).filter((k) => counts[k].reduce((s, v) => s + v, 0) > 0);
    const key = model.get("sort_by");
    if (key === "disagreement") ks.sort((p, q) => counts[q][1] + counts[q][2] - (counts[p][1] + counts[p][2]) || p - q);
    else if (key === "errors") ks.sort((p, q) => counts[q][3] - counts[p][3] || p - q);
    return ks;
  };

  let svgEl: SVGSVGElement | null = null;
  const drawTable = () => {
    const rows = order();
    const width = LABEL_W + 4 * COL_W;
    const height = HEAD_H + (rows.length + 1) * ROW_H + 6;
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "dv-cmp-svg", role: "table" }) as SVGSVGElement;
    root.append(svg("rect", { x: 0, y: 0, width, height, class: "dv-cmp-bg" }));
    colHeads.forEach((label, c) => {
      const x = LABEL_W + c * COL_W;
      root.append(svg("rect", { x: x + 4, y: HEAD_H - 12, width: 10, height: 10, class: `dv-cmp-key ${CAT_CLASS[c]}` }));
      const text = svg("text", { x: x + 18, y: HEAD_H - 3, class: "dv-cmp-head" }, label);
      text.append(svg("title", {}, heads[c]));
      root.append(text);
    });
    root.append(svg("text", { x: LABEL_W - 8, y: HEAD_H - 3, class: "dv-cmp-head", "text-anchor": "end" }, "true class"));
    const sel = model.get("selected");
    const drawRow = (cls: number, cnt: Int32Array, r: number, label: string) => {
      const y0 = HEAD_H + r * ROW_H + (r > 0 ? 4 : 0);
      const support = cnt[0] + cnt[1] + cnt[2] + cnt[3];
      const g = svg("g", { "data-class": cls });
      g.append(svg("text", { x: LABEL_W - 8, y: y0 + 15, class: "dv-cmp-label", "text-anchor": "end" }, label));
      for (let c = 0; c < 4; c++) {
        const x = LABEL_W + c * COL_W;
        const cell = svg("g", { class: "dv-cmp-cell", "data-class": cls, "data-category": CATEGORIES[c], role: "button" });
        const share = support ? cnt[c] / support : 0;
        cell.append(svg("title", {}, `${heads[c]}: ${cnt[c].toLocaleString("en-US")} of ${support.toLocaleString("en-US")} examples (${label})`));
        cell.append(svg("rect", { x: x + 2, y: y0 + 2, width: COL_W - 6, height: ROW_H - 4, class: "dv-cmp-hit" }));
        cell.append(svg("rect", { x: x + 2, y: y0 + 2, width: Math.max(cnt[c] ? 1 : 0, share * (COL_W - 6)), height: ROW_H - 4, class: `dv-cmp-bar ${CAT_CLASS[c]}` }));
        cell.append(svg("text", { x: x + 6, y: y0 + 15, class: "dv-cmp-count" }, `${cnt[c].toLocaleString("en-US")}${support ? ` · ${Math.round(100 * share)}%` : ""}`));
        if (sel && sel[0] === cls && sel[1] === CATEGORIES[c]) {
          cell.append(svg("rect", { x: x + 1, y: y0 + 1, width: COL_W - 4, height: ROW_H - 2, class: "dv-cmp-selected" }));
        }
        g.append(cell);
      }
      root.append(g);
    };
    drawRow(-1, total, 0, "all classes");
    root.append(svg("line", { x1: 8, x2: width - 4, y1: HEAD_H + ROW_H + 2, y2: HEAD_H + ROW_H + 2, class: "dv-cmp-rule" }));
    rows.forEach((k, r) => drawRow(k, counts[k], r + 1, name(k)));
    tableBox.replaceChildren(root);
    svgEl = root;
    for (const btn of sortButtons) btn.setAttribute("aria-pressed", String(btn.dataset.sort === model.get("sort_by")));
  };

  const drawDetail = () => {
    const sel = model.get("selected");
    if (!sel) {
      setText(detailHead, "Click a cell to see its examples.");
      grid.replaceChildren();
      return;
    }
    const [cls, catName] = sel;
    const c = CATEGORIES.indexOf(catName as (typeof CATEGORIES)[number]);
    const ids: number[] = [];
    for (let i = 0; i < n; i++) if (category[i] === c && (cls < 0 || y[i] === cls)) ids.push(i);
    const shown = examples.available ? ids.filter((i) => exIndex[i] >= 0).slice(0, MAX_CARDS) : [];
    const where = cls < 0 ? "all classes" : `true class ${name(cls)}`;
    const note = examples.available ? ` (showing ${shown.length}${shown.length < ids.length ? ", spread over the cell" : ""})` : "";
    setText(detailHead, `${heads[c]} · ${where} · ${ids.length.toLocaleString("en-US")} examples${note}`);
    if (!examples.available) {
      const list = ids.slice(0, 400).join(", ") + (ids.length > 400 ? `, … ${ids.length - 400} more` : "");
      grid.replaceChildren(h("div", { class: "dv-cmp-ids" }, ids.length ? `example indices: ${list}` : "no examples"));
      return;
    }
    grid.replaceChildren(
      ...shown.map((i) => {
        const card = examples.card(exIndex[i], [["#", String(i)], ["true", name(y[i])], [nameA, name(a[i])], [nameB, name(b[i])]], 64);
        card.dataset.id = String(i);
        return card;
      }),
    );
  };

  // one delegated listener: the table is rebuilt on every change
  ctx.disposer.listen(tableBox, "click", ctx.guard((ev: MouseEvent) => {
    const cell = (ev.target as Element).closest?.(".dv-cmp-cell");
    if (!cell) return;
    const cls = Number(cell.getAttribute("data-class"));
    const cat = cell.getAttribute("data-category") ?? "";
    const cur = model.get("selected");
    model.set("selected", cur && cur[0] === cls && cur[1] === cat ? null : [cls, cat]);
    model.save_changes();
  }));

  const redraw = ctx.guard(() => {
    drawTable();
    drawDetail();
  });
  redraw();
  ctx.on("change:selected", redraw);
  ctx.on("change:sort_by", redraw);
  ctx.setExporter("svg", () => standaloneSvg(svgEl!));
  ctx.markDrawn();
}

export default defineView<ComparisonTraits>("comparison", build);
