// TextAttribution view. Mirrors deepvis_widgets/widgets/text_attribution.py.
//
// Each text: a line with the prediction, the true label, the target menu, the
// sum of the attributions and the convergence delta; then its tokens as text
// spans whose background is the attribution (scaled per text, or one scale
// shared by all texts, shown in the legend). Merging sums the scores of a word's pieces.

import { percent } from "./lib/attribution";
import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { decode, type Encoded } from "./lib/codec";
import { formatValue, lut } from "./lib/colors";
import { Tooltip, h, setText } from "./lib/dom";

interface TextInfo {
  tokens: string[];
  words: number[];
  word_text: string[];
  scheme: string;
  predicted: number | null;
  p_predicted: number | null;
  true: number | null;
  p_true: number | null;
}

interface Candidate {
  class: number;
  probability: number | null;
}

interface ScoreEntry {
  data: Encoded;
  total: number;
  delta: number | null;
}

export interface TextAttributionTraits extends BaseTraits {
  texts: TextInfo[];
  class_names: string[];
  methods: string[];
  method_labels: string[];
  signed: boolean[];
  candidates: Candidate[][];
  scores: Record<string, Record<string, ScoreEntry>>;
  live: boolean;
  method: string;
  target: number[];
  merge: boolean;
  scale: "per_text" | "shared";
}

/** Scores per displayed unit: tokens, or words when merging (pieces summed). */
export function unitScores(scores: ArrayLike<number>, words: number[], merge: boolean): Float32Array {
  if (!merge) return Float32Array.from(scores);
  const n = words.length ? words[words.length - 1] + 1 : 0;
  const out = new Float32Array(n);
  for (let i = 0; i < words.length; i++) out[words[i]] += scores[i];
  return out;
}

function build(ctx: ViewContext<TextAttributionTraits>): void {
  const { model, body, disposer } = ctx;
  const table = lut("rdbu");

  const methodSelect = h("select", { class: "dv-select dv-ta-method", "aria-label": "method" });
  const mergeBox = h("input", { type: "checkbox", class: "dv-ta-merge" });
  const mergeLabel = h("label", { class: "dv-control" }, mergeBox, "merge pieces into words");
  const scaleSelect = h(
    "select",
    { class: "dv-select dv-ta-scale", "aria-label": "colour scale" },
    h("option", { value: "per_text" }, "each text"),
    h("option", { value: "shared" }, "shared by all texts"),
  );
  ctx.toolbar.prepend(
    h("label", { class: "dv-control" }, "method ", methodSelect),
    h("label", { class: "dv-control" }, "scale ", scaleSelect),
    mergeLabel,
  );
  const legend = h("div", { class: "dv-ta-legend" });
  const list = h("div", { class: "dv-ta-list" });
  const note = h("div", { class: "dv-ta-note", role: "status" });
  body.append(legend, list, note);
  const tooltip = new Tooltip(body);

  const className = (c: number | null): string => {
    if (c === null || c === undefined || c < 0) return "—";
    const names = model.get("class_names");
    return names[c] !== undefined ? names[c] : `class ${c}`;
  };
  const pct = (p: number | null) => (p === null || p === undefined ? "" : ` (${percent(p)})`);
  const methodIndex = () => Math.max(0, model.get("methods").indexOf(model.get("method")));
  const isSigned = () => model.get("signed")[methodIndex()] !== false;

  const entryOf = (r: number): ScoreEntry | undefined => model.get("scores")[`${r}:${model.get("target")[r]}`]?.[model.get("method")];
  const cache = new Map<string, Float32Array>();
  const scoresOf = (r: number): Float32Array | null => {
    const key = `${r}:${model.get("target")[r]}/${model.get("method")}`;
    if (cache.has(key)) return cache.get(key)!;
    const entry = entryOf(r);
    if (!entry) return null;
    const d = decode(entry.data);
    const n = model.get("texts")[r].tokens.length;
    if (d.values.length !== n) throw new RangeError(`scores[${key}]: expected ${n} values (one per token), got ${d.values.length}`);
    const v = Float32Array.from(d.values);
    cache.set(key, v);
    return v;
  };

  /** RGB of a score on the shared scale: diverging for signed methods, white-to-red for absolute ones. */
  const colorOf = (v: number, m: number): [number, number, number, number] => {
    let t = m > 0 && Number.isFinite(v) ? v / m : 0;
    t = t > 1 ? 1 : t < -1 ? -1 : t;
    const pos = isSigned() ? (t + 1) / 2 : 0.5 + Math.max(t, 0) / 2;
    const k = Math.round(pos * 255) * 4;
    return [table[k], table[k + 1], table[k + 2], Math.abs(t)];
  };

  let units: { spans: HTMLSpanElement[]; values: Float32Array }[] = [];
  let scaleMax = 1;
  const maxAbs = (v: Float32Array | null): number => {
    let m = 0;
    if (v) for (const x of v) if (Number.isFinite(x)) m = Math.max(m, Math.abs(x));
    return m;
  };

  const drawLegendBar = () => {
    const c = document.createElement("canvas");
    c.width = 128;
    c.height = 1;
    c.className = "dv-ta-legend-bar";
    const c2 = c.getContext("2d")!;
    const img = c2.createImageData(128, 1);
    for (let i = 0; i < 128; i++) {
      const v = isSigned() ? -scaleMax + (2 * scaleMax * i) / 127 : (scaleMax * i) / 127;
      const [r, g, b] = colorOf(v, scaleMax);
      img.data.set([r, g, b, 255], i * 4);
    }
    c2.putImageData(img, 0, 0);
    const perText = model.get("scale") !== "shared";
    const lo = isSigned() ? (perText ? "−max" : formatValue(-scaleMax)) : "0";
    const hi = perText ? "+max" : formatValue(scaleMax);
    legend.replaceChildren(
      h("span", { class: "dv-ta-legend-label" }, isSigned() ? "against" : "attribution"),
      h("span", { class: "dv-ta-legend-tick" }, lo),
      c,
      h("span", { class: "dv-ta-legend-tick" }, hi),
      h("span", { class: "dv-ta-legend-label" }, isSigned() ? "for the class explained" : "(absolute)"),
      h("span", { class: "dv-ta-legend-note" }, perText ? "each text scaled to its largest |attribution|; hover a token for its value" : "one scale for all texts"),
    );
  };

  const render = () => {
    cache.clear();
    const texts = model.get("texts");
    const merge = model.get("merge");
    const cands = model.get("candidates");
    const target = model.get("target");
    methodSelect.replaceChildren(...model.get("methods").map((m, j) => h("option", { value: m }, model.get("method_labels")[j] ?? m)));
    methodSelect.value = model.get("method");
    methodSelect.disabled = model.get("methods").length < 2;
    mergeBox.checked = merge;
    mergeLabel.style.display = texts.some((t) => t.words.length !== new Set(t.words).size) ? "" : "none";
    // One scale for every text: the largest |unit score| shown.
    const perText = texts.map((t, r) => {
      const s = scoresOf(r);
      return s ? unitScores(s, t.words, merge) : null;
    });
    const shared = model.get("scale") === "shared";
    scaleSelect.value = shared ? "shared" : "per_text";
    scaleMax = Math.max(0, ...perText.map(maxAbs)) || 1;
    drawLegendBar();
    units = [];
    list.replaceChildren(
      ...texts.map((t, r) => {
        const entry = entryOf(r);
        const select = h("select", { class: "dv-select dv-ta-target", "data-row": r, "aria-label": `class explained in text ${r}` });
        select.replaceChildren(...(cands[r] ?? []).map((c) => h("option", { value: String(c.class) }, `${className(c.class)}${pct(c.probability)}`)));
        select.value = String(target[r]);
        select.disabled = (cands[r] ?? []).length < 2 && !model.get("live");
        const facts: (string | HTMLElement)[] = [];
        if (t.predicted !== null && t.predicted !== undefined) facts.push(h("span", { class: "dv-ta-pred" }, `predicted ${className(t.predicted)}${pct(t.p_predicted)}`));
        if (t.true !== null && t.true !== undefined) {
          const right = t.predicted === t.true;
          facts.push(h("span", { class: `dv-ta-true ${right ? "dv-ta-right" : "dv-ta-wrong"}` }, `true ${className(t.true)}${pct(t.p_true)} ${right ? "✓" : "✗"}`));
        }
        const head = h("div", { class: "dv-ta-head" }, ...facts, h("label", { class: "dv-ta-explain" }, "explaining ", select));
        if (entry) {
          head.append(h("span", { class: "dv-ta-sum" }, `sum ${formatValue(entry.total)}`));
          if (entry.delta !== null && entry.delta !== undefined) head.append(h("span", { class: "dv-ta-delta" }, `δ ${formatValue(entry.delta)}`));
        }
        const values = perText[r];
        const m = shared ? scaleMax : maxAbs(values) || 1;
        const labels = merge ? t.word_text : t.tokens;
        const tokenBox = h("div", { class: `dv-ta-tokens dv-ta-scheme-${t.scheme}`, "data-row": r });
        const spans = labels.map((text, i) => {
          const s = h("span", { class: "dv-ta-token", "data-row": r, "data-i": i });
          String(text).split("\n").forEach((part, k) => {
            if (k > 0) s.append("⏎", h("br"));
            s.append(part);
          });
          if (!text) s.append("∅");
          if (values) {
            const [cr, cg, cb, a] = colorOf(values[i], m);
            s.style.background = `rgb(${cr},${cg},${cb})`;
            s.style.color = a > 0.6 ? "#fff" : "#111";
          }
          tokenBox.append(s);
          return s;
        });
        if (!values) tokenBox.append(h("div", { class: "dv-ta-missing" }, "no scores for this class and method"));
        units.push({ spans, values: values ?? new Float32Array(spans.length) });
        return h("div", { class: "dv-ta-text", "data-row": r }, head, tokenBox);
      }),
    );
  };

  disposer.listen(list, "mousemove", ctx.guard((ev: MouseEvent) => {
    const s = (ev.target as HTMLElement).closest(".dv-ta-token") as HTMLElement | null;
    if (!s) return tooltip.hide();
    const r = Number(s.dataset.row);
    const i = Number(s.dataset.i);
    const t = model.get("texts")[r];
    const merge = model.get("merge");
    const rows: [string, string][] = [[merge ? "word" : "token", `${i}: ${merge ? t.word_text[i] : t.tokens[i]}`]];
    if (merge) rows.push(["pieces", String(t.words.filter((w) => w === i).length)]);
    rows.push(["attribution", formatValue(units[r].values[i])]);
    const br = body.getBoundingClientRect();
    tooltip.show(rows, ev.clientX - br.left, ev.clientY - br.top);
  }));
  disposer.listen(list, "mouseleave", () => tooltip.hide());
  disposer.listen(methodSelect, "change", ctx.guard(() => {
    model.set("method", methodSelect.value);
    model.save_changes();
  }));
  disposer.listen(scaleSelect, "change", ctx.guard(() => {
    model.set("scale", scaleSelect.value as TextAttributionTraits["scale"]);
    model.save_changes();
  }));
  disposer.listen(mergeBox, "change", ctx.guard(() => {
    model.set("merge", mergeBox.checked);
    model.save_changes();
  }));
  disposer.listen(list, "change", ctx.guard((ev: Event) => {
    const s = ev.target as HTMLSelectElement;
    if (!s.classList.contains("dv-ta-target")) return;
    const r = Number(s.dataset.row);
    const cls = Number(s.value);
    const previous = model.get("target")[r];
    if (model.get("scores")[`${r}:${cls}`]) {
      const target = [...model.get("target")];
      target[r] = cls;
      setText(note, "");
      model.set("target", target);
      model.save_changes();
      return;
    }
    setText(note, `computing attributions for ${className(cls)}…`);
    ctx.invoke<{ ok: boolean; error?: string }>("_compute_target", { row: r, target: cls }).then(
      ([res]) => {
        setText(note, res.ok ? "" : res.error ?? "could not compute the attributions");
        if (!res.ok) s.value = String(previous);
      },
      () => {
        setText(note, `attributions for ${className(cls)} need a live kernel; this page shows the classes saved with it`);
        s.value = String(previous);
      },
    );
  }));
  for (const name of ["texts", "class_names", "methods", "method_labels", "signed", "candidates", "scores", "method", "target", "merge", "scale"]) {
    ctx.on(`change:${name}`, ctx.guard(render));
  }

  ctx.setExporter("png", () => {
    // Texts redrawn on canvas with their colours, wrapped to 760 px.
    const out = document.createElement("canvas");
    const k = 2, W = 760, lineH = 22, pad = 10;
    const probe = out.getContext("2d")!;
    probe.font = "14px monospace";
    type Box = { x: number; y: number; w: number; text: string; bg: string; fg: string };
    const boxes: Box[] = [];
    const heads: { y: number; text: string }[] = [];
    let y = pad;
    const titleText = model.get("title");
    if (titleText) { heads.push({ y, text: titleText }); y += lineH; }
    list.querySelectorAll<HTMLElement>(".dv-ta-text").forEach((block) => {
      heads.push({ y, text: block.querySelector(".dv-ta-head")?.textContent ?? "" });
      y += lineH;
      let x = pad;
      block.querySelectorAll<HTMLElement>(".dv-ta-token").forEach((s) => {
        const text = s.textContent ?? "";
        const w = probe.measureText(text).width + 2;
        if (x + w > W - pad) { x = pad; y += lineH; }
        boxes.push({ x, y, w, text, bg: s.style.background, fg: s.style.color });
        x += w;
      });
      y += lineH + 6;
    });
    out.width = W * k;
    out.height = (y + pad) * k;
    const o = out.getContext("2d")!;
    o.scale(k, k);
    o.fillStyle = ctx.cssVar("--dv-bg", "#fff");
    o.fillRect(0, 0, W, y + pad);
    o.textBaseline = "top";
    o.font = "12px sans-serif";
    o.fillStyle = ctx.cssVar("--dv-fg", "#222");
    for (const hd of heads) o.fillText(hd.text, pad, hd.y + 4, W - 2 * pad);
    o.font = "14px monospace";
    for (const b of boxes) {
      if (b.bg) { o.fillStyle = b.bg; o.fillRect(b.x, b.y, b.w, lineH - 4); }
      o.fillStyle = b.fg || ctx.cssVar("--dv-fg", "#222");
      o.fillText(b.text, b.x + 1, b.y + 2);
    }
    return out;
  });

  render();
  ctx.markDrawn();
}

export default defineView<TextAttributionTraits>("text_attribution", build);
