// GenerationSaliency view. Mirrors deepvis_widgets/widgets/generation_saliency.py.
//
// Tokens as text; hovering or clicking a generated token colours every token
// before it by its attribution (blue negative, red positive, per-row scale).

import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { decode, type Encoded } from "./lib/codec";
import { formatValue, lut, makeScale, toIndex } from "./lib/colors";
import { Tooltip, h, setText } from "./lib/dom";

export interface GenerationSaliencyTraits extends BaseTraits {
  tokens: string[];
  n_prompt: number;
  methods: string[];
  scores: Record<string, Encoded>;
  deltas: Record<string, (number | null)[]>;
  probs: number[];
  method: string;
  generated: number;
}

function build(ctx: ViewContext<GenerationSaliencyTraits>): void {
  const { model, body, disposer } = ctx;
  const tokens = model.get("tokens");
  const nPrompt = model.get("n_prompt");
  const T = tokens.length;
  const G = T - nPrompt;
  const decoded = new Map<string, Float32Array>();
  for (const [m, enc] of Object.entries(model.get("scores"))) {
    const d = decode(enc);
    if (d.shape[0] !== G || d.shape[1] !== T) throw new RangeError(`scores[${m}]: expected ${G}x${T}, got [${d.shape}]`);
    decoded.set(m, d.values as Float32Array);
  }
  const table = lut("rdbu");

  const select = h("select", { class: "dv-select", "aria-label": "method" }, ...model.get("methods").map((m) => h("option", { value: m }, m.replace(/_/g, " "))));
  select.value = model.get("method");
  ctx.toolbar.prepend(h("label", { class: "dv-control" }, "method: ", select));
  const info = h("div", { class: "dv-gs-info" });
  const text = h("div", { class: "dv-gs-text" });
  body.append(info, text, h("div", { class: "dv-gs-note" }, "Hover or click a generated token (underlined) to see which earlier tokens it was attributed to."));
  const tooltip = new Tooltip(body);

  const spans = tokens.map((tok, i) => {
    const s = h("span", { class: i >= nPrompt ? "dv-gs-token dv-gs-generated" : "dv-gs-token", "data-i": i });
    tok.split("\n").forEach((part, k) => {
      if (k > 0) s.append("⏎", h("br"));
      s.append(part);
    });
    if (!tok) s.append("∅");
    text.append(s);
    return s;
  });

  const row = (): Float32Array => {
    const all = decoded.get(model.get("method"));
    if (!all) throw new Error(`method ${JSON.stringify(model.get("method"))} has no scores`);
    const g = model.get("generated");
    return all.subarray(g * T, (g + 1) * T);
  };

  const paint = () => {
    const g = model.get("generated");
    const target = nPrompt + g;
    const r = row();
    let m = 0;
    let sum = 0;
    for (let i = 0; i < target; i++) {
      if (Number.isFinite(r[i])) {
        m = Math.max(m, Math.abs(r[i]));
        sum += r[i];
      }
    }
    const scale = makeScale("diverging", -m, m);
    spans.forEach((s, i) => {
      s.classList.toggle("dv-gs-target", i === target);
      if (i < target && Number.isFinite(r[i])) {
        const k = toIndex(r[i], scale) * 4;
        s.style.background = `rgb(${table[k]},${table[k + 1]},${table[k + 2]})`;
        s.style.color = Math.abs(r[i]) > 0.6 * m ? "#fff" : "#111";
      } else {
        s.style.background = "";
        s.style.color = "";
      }
    });
    const delta = model.get("deltas")[model.get("method")]?.[g];
    setText(
      info,
      `explaining "${tokens[target]}" (p = ${formatValue(model.get("probs")[g])}) with ${model.get("method").replace(/_/g, " ")}: ` +
        `sum of attributions ${formatValue(sum)}` + (delta !== null && delta !== undefined ? `, convergence delta ${formatValue(delta)}` : ""),
    );
  };

  const choose = (ev: Event) => {
    const t = (ev.target as HTMLElement).closest(".dv-gs-token") as HTMLElement | null;
    if (!t) return;
    const i = Number(t.dataset.i);
    if (i >= nPrompt && i - nPrompt !== model.get("generated")) {
      model.set("generated", i - nPrompt);
      model.save_changes();
      paint();
    }
  };
  disposer.listen(text, "mouseover", ctx.guard(choose));
  disposer.listen(text, "click", ctx.guard(choose));
  disposer.listen(text, "mousemove", ctx.guard((ev: MouseEvent) => {
    const t = (ev.target as HTMLElement).closest(".dv-gs-token") as HTMLElement | null;
    if (!t) return tooltip.hide();
    const i = Number(t.dataset.i);
    const r = row();
    const br = body.getBoundingClientRect();
    tooltip.show([["token", `${i}: ${tokens[i]}`], ["attribution", i < nPrompt + model.get("generated") ? formatValue(r[i]) : "—"]], ev.clientX - br.left, ev.clientY - br.top);
  }));
  disposer.listen(text, "mouseleave", () => tooltip.hide());
  disposer.listen(select, "change", ctx.guard(() => {
    model.set("method", select.value);
    model.save_changes();
    paint();
  }));
  ctx.on("change:generated", ctx.guard(paint));
  ctx.on("change:method", ctx.guard(() => { select.value = model.get("method"); paint(); }));

  ctx.setExporter("png", () => {
    // Tokens redrawn on canvas with their colours, wrapped to 720 px.
    const out = document.createElement("canvas");
    const k = 2, W = 720, lineH = 22;
    const probe = out.getContext("2d")!;
    probe.font = "14px monospace";
    let x = 8, y = 8;
    const boxes = spans.map((s) => {
      const w = probe.measureText(s.textContent ?? "").width + 2;
      if (x + w > W - 8) { x = 8; y += lineH; }
      const b = { x, y, w, s };
      x += w;
      return b;
    });
    out.width = W * k;
    out.height = (y + lineH + 8) * k;
    const o = out.getContext("2d")!;
    o.scale(k, k);
    o.fillStyle = ctx.cssVar("--dv-bg", "#fff");
    o.fillRect(0, 0, W, y + lineH + 8);
    o.font = "14px monospace";
    o.textBaseline = "top";
    for (const b of boxes) {
      if (b.s.style.background) { o.fillStyle = b.s.style.background; o.fillRect(b.x, b.y, b.w, lineH - 4); }
      o.fillStyle = b.s.style.color || ctx.cssVar("--dv-fg", "#222");
      o.fillText(b.s.textContent ?? "", b.x + 1, b.y + 2);
    }
    return out;
  });
  paint();
  ctx.markDrawn();
}

export default defineView<GenerationSaliencyTraits>("generation_saliency", build);
