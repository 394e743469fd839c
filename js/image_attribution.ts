// ImageAttribution view. Mirrors deepvis_widgets/widgets/image_attribution.py.
//
// A grid of tiles: rows are images, columns the image and then one map per
// method. A map is composed at its own resolution into an offscreen canvas
// (greyed photo blended with the map colour, alpha = opacity x sqrt(|value| / clip))
// and scaled onto its tile; the opacity and clip sliders only recompose.
// Targets: each row's menu switches between the maps saved with the view; a
// class typed under it is asked from the kernel (ctx.invoke -> _compute_target),
// which fails, with a note, on saved pages.

import { percent, percentileOf } from "./lib/attribution";
import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { setupCanvas, drawLegend } from "./lib/canvas";
import { decode, type Encoded } from "./lib/codec";
import { formatValue, lut } from "./lib/colors";
import { Tooltip, h, setText } from "./lib/dom";

interface MapEntry {
  data: Encoded;
  scale: number;
  delta: number | null;
}

interface Candidate {
  class: number;
  probability: number | null;
}

export interface ImageAttributionTraits extends BaseTraits {
  images: Encoded;
  image_names: string[];
  methods: string[];
  method_labels: string[];
  signed: boolean[];
  class_names: string[];
  candidates: Candidate[][];
  maps: Record<string, Record<string, MapEntry>>;
  live: boolean;
  verdicts: Record<string, { passed: boolean; text: string }>;
  target: number[];
  opacity: number;
  clip: number;
  selected: [number, number] | null;
  tile_size: number;
}

interface DecodedMap {
  values: Float32Array;
  h: number;
  w: number;
  /** |value| (signed maps) or max(value, 0), sorted ascending: percentiles by lookup. */
  sorted: Float32Array;
  delta: number | null;
}

const DIVERGING = "rdbu";
const SEQUENTIAL = "viridis";

function offscreen(w: number, h: number): HTMLCanvasElement {
  const c = document.createElement("canvas");
  c.width = Math.max(1, w);
  c.height = Math.max(1, h);
  return c;
}

function build(ctx: ViewContext<ImageAttributionTraits>): void {
  const { model, body, disposer } = ctx;
  const { values: pixels, shape } = decode(model.get("images"));
  if (shape.length !== 4 || shape[3] !== 3) throw new RangeError(`images: expected (N, H, W, 3), got [${shape}]`);
  const [N, H, W] = shape;

  // --- photos: colour at input size, and grey versions at each map size ------------
  const photos: HTMLCanvasElement[] = [];
  for (let r = 0; r < N; r++) {
    const c = offscreen(W, H);
    const img = c.getContext("2d")!.createImageData(W, H);
    const base = r * H * W * 3;
    for (let i = 0; i < H * W; i++) {
      for (let k = 0; k < 3; k++) img.data[i * 4 + k] = Math.round(255 * pixels[base + i * 3 + k]);
      img.data[i * 4 + 3] = 255;
    }
    c.getContext("2d")!.putImageData(img, 0, 0);
    photos.push(c);
  }
  const greyCache = new Map<string, Float32Array>();
  const grey = (r: number, w: number, h: number): Float32Array => {
    const key = `${r}:${w}x${h}`;
    let g = greyCache.get(key);
    if (g) return g;
    const c = offscreen(w, h);
    const c2 = c.getContext("2d")!;
    c2.imageSmoothingEnabled = true;
    c2.drawImage(photos[r], 0, 0, w, h);
    const d = c2.getImageData(0, 0, w, h).data;
    g = new Float32Array(w * h);
    for (let i = 0; i < w * h; i++) g[i] = 0.299 * d[i * 4] + 0.587 * d[i * 4 + 1] + 0.114 * d[i * 4 + 2];
    greyCache.set(key, g);
    return g;
  };

  // --- maps, decoded on first use ----------------------------------------------------
  let mapCache = new Map<string, DecodedMap | null>();
  const methods = () => model.get("methods");
  const isSigned = (j: number) => model.get("signed")[j] !== false;
  const mapOf = (r: number, j: number): DecodedMap | null => {
    const key = `${r}:${model.get("target")[r]}`;
    const method = methods()[j];
    const id = `${key}/${method}`;
    if (mapCache.has(id)) return mapCache.get(id)!;
    const entry = model.get("maps")[key]?.[method];
    let out: DecodedMap | null = null;
    if (entry) {
      const d = decode(entry.data);
      if (d.shape.length !== 2) throw new RangeError(`maps[${key}][${method}]: expected (H, W), got [${d.shape}]`);
      const values = new Float32Array(d.values.length);
      const signed = isSigned(j);
      const mags = new Float32Array(d.values.length);
      for (let i = 0; i < values.length; i++) {
        const v = d.values[i] * entry.scale;
        values[i] = v;
        mags[i] = Number.isFinite(v) ? (signed ? Math.abs(v) : Math.max(v, 0)) : 0;
      }
      mags.sort();
      out = { values, h: d.shape[0], w: d.shape[1], sorted: mags, delta: entry.delta };
    }
    mapCache.set(id, out);
    return out;
  };
  const clipOf = (m: DecodedMap) => percentileOf(m.sorted, model.get("clip"));

  // --- composing one map over its photo ------------------------------------------
  const compose = (r: number, j: number, m: DecodedMap, opacity: number): HTMLCanvasElement => {
    const c = offscreen(m.w, m.h);
    const c2 = c.getContext("2d")!;
    const img = c2.createImageData(m.w, m.h);
    const g = grey(r, m.w, m.h);
    const signed = isSigned(j);
    const table = lut(signed ? DIVERGING : SEQUENTIAL);
    const clip = clipOf(m);
    const d = img.data;
    for (let i = 0; i < m.values.length; i++) {
      const v = m.values[i];
      const o = i * 4;
      let t = Number.isFinite(v) ? v / clip : 0;
      t = t > 1 ? 1 : t < -1 ? -1 : t;
      let k: number;
      let a: number;
      // Colour is linear in the value; the blend weight rises faster (square root) so that
      // sparse per-pixel maps stay visible while zero still shows the bare photo.
      if (signed) {
        k = Math.round(((t + 1) / 2) * 255) * 4;
        a = opacity * Math.sqrt(Math.abs(t));
      } else {
        t = t < 0 ? 0 : t;
        k = Math.round(t * 255) * 4;
        a = opacity * Math.sqrt(t);
      }
      d[o] = g[i] * (1 - a) + table[k] * a;
      d[o + 1] = g[i] * (1 - a) + table[k + 1] * a;
      d[o + 2] = g[i] * (1 - a) + table[k + 2] * a;
      d[o + 3] = 255;
    }
    c2.putImageData(img, 0, 0);
    return c;
  };

  // --- DOM ---------------------------------------------------------------------------
  const opacityInput = h("input", { type: "range", min: 0, max: 1, step: 0.05, class: "dv-ia-opacity", "aria-label": "map opacity" });
  const clipInput = h("input", { type: "range", min: 50, max: 100, step: 0.5, class: "dv-ia-clip", "aria-label": "clip percentile" });
  const clipText = h("span", { class: "dv-ia-clip-text" });
  ctx.toolbar.prepend(
    h("label", { class: "dv-control" }, "opacity ", opacityInput),
    h("label", { class: "dv-control" }, "clip ", clipInput, clipText),
  );
  const grid = h("div", { class: "dv-ia-grid" });
  const note = h("div", { class: "dv-ia-note", role: "status" });
  const detail = h("div", { class: "dv-ia-detail" });
  const foot = h("div", { class: "dv-ia-foot" });
  body.append(grid, note, detail, foot);
  const tooltip = new Tooltip(body);
  const closeButton = h("button", { class: "dv-button dv-ia-close", type: "button" }, "close");

  let tiles: HTMLCanvasElement[][] = [];
  let selects: HTMLSelectElement[] = [];
  let tileW = 0;
  let tileH = 0;

  const className = (c: number): string => {
    if (c < 0) return "—";
    const names = model.get("class_names");
    return names[c] !== undefined ? names[c] : `class ${c}`;
  };
  const optionText = (cand: Candidate) =>
    cand.probability === null || cand.probability === undefined ? className(cand.class) : `${className(cand.class)} (${percent(cand.probability)})`;

  const miniLegend = (signed: boolean): HTMLElement => {
    const c = offscreen(64, 1);
    const c2 = c.getContext("2d")!;
    const img = c2.createImageData(64, 1);
    const table = lut(signed ? DIVERGING : SEQUENTIAL);
    for (let i = 0; i < 64; i++) img.data.set(table.subarray(Math.round((i / 63) * 255) * 4, Math.round((i / 63) * 255) * 4 + 4), i * 4);
    c2.putImageData(img, 0, 0);
    c.className = "dv-ia-minibar";
    const ticks = signed
      ? h("div", { class: "dv-ia-miniticks" }, h("span", {}, "against"), h("span", {}, "0"), h("span", {}, "for"))
      : h("div", { class: "dv-ia-miniticks" }, h("span", {}, "0"), h("span", {}, "high"));
    return h("div", { class: "dv-ia-minilegend" }, c, ticks);
  };

  const header = (j: number): HTMLElement => {
    const method = methods()[j];
    const label = model.get("method_labels")[j] ?? method;
    const cell = h("div", { class: "dv-ia-colhead", "data-col": j + 1 }, h("div", { class: "dv-ia-colname", title: label }, label));
    const verdict = model.get("verdicts")?.[method];
    if (verdict) {
      cell.append(
        h(
          "span",
          { class: `dv-ia-badge ${verdict.passed ? "dv-ia-pass" : "dv-ia-fail"}`, title: verdict.text },
          `${verdict.passed ? "✓" : "✗"} ${verdict.text || (verdict.passed ? "passed" : "failed")}`,
        ),
      );
    }
    cell.append(miniLegend(isSigned(j)));
    return cell;
  };

  const layout = () => {
    const size = model.get("tile_size");
    tileW = size;
    tileH = Math.max(1, Math.round((size * H) / Math.max(W, 1)));
    const M = methods().length;
    grid.style.gridTemplateColumns = `auto repeat(${M + 1}, ${tileW}px)`;
    grid.replaceChildren(h("div", { class: "dv-ia-corner" }), h("div", { class: "dv-ia-colhead", "data-col": 0 }, h("div", { class: "dv-ia-colname" }, "image")));
    for (let j = 0; j < M; j++) grid.append(header(j));
    tiles = [];
    selects = [];
    const names = model.get("image_names");
    for (let r = 0; r < N; r++) {
      const select = h("select", { class: "dv-select dv-ia-target", "aria-label": `target of image ${r}`, "data-row": r });
      selects.push(select);
      const head = h("div", { class: "dv-ia-rowhead" }, h("div", { class: "dv-ia-rowname" }, names[r] ?? `image ${r}`), h("label", { class: "dv-ia-explain" }, "explaining ", select));
      if (model.get("live")) {
        // Any other class, computed by the kernel (a saved page says it needs one).
        head.append(h("input", { class: "dv-ia-other", type: "text", list: listId, placeholder: "other class…", "aria-label": `another class for image ${r}`, "data-row": r }));
      }
      grid.append(head);
      const row: HTMLCanvasElement[] = [];
      for (let c = 0; c <= M; c++) {
        const canvas = h("canvas", { class: c === 0 ? "dv-ia-tile dv-ia-input" : "dv-ia-tile", "data-row": r, "data-col": c, role: "img" });
        setupCanvas(canvas, tileW, tileH);
        row.push(canvas);
        grid.append(h("div", { class: "dv-ia-cell" }, canvas));
      }
      tiles.push(row);
    }
    syncSelects();
    setText(foot, `Signed methods: blue against the class, red for it; absolute methods: yellow = most important. Each map is scaled to its own clip percentile of |attribution|; hover a map for values, click to enlarge.`);
  };

  // Suggestions for the "other class" inputs: one datalist per view (ids must be unique on the page).
  const listId = `dv-ia-classes-${Math.random().toString(36).slice(2, 10)}`;
  const classList = h("datalist", { id: listId });
  body.append(classList);
  const fillClassList = () => classList.replaceChildren(...model.get("class_names").map((name) => h("option", { value: name })));

  /** A class index from what was typed: a class name, or an index. */
  const parseClass = (text: string): number | null => {
    const t = text.trim();
    const names = model.get("class_names");
    const k = names.indexOf(t);
    if (k >= 0) return k;
    return /^\d+$/.test(t) ? Number(t) : null;
  };

  /** Shows class `cls` for row `r`: saved maps at once, others asked from the kernel. */
  const chooseTarget = (r: number, cls: number, onFail: () => void) => {
    if (model.get("maps")[`${r}:${cls}`]) {
      const target = [...model.get("target")];
      target[r] = cls;
      setText(note, "");
      model.set("target", target);
      model.save_changes();
      return;
    }
    setText(note, `computing the maps for ${className(cls)}…`);
    ctx.invoke<{ ok: boolean; error?: string }>("_compute_target", { row: r, target: cls }).then(
      ([res]) => {
        setText(note, res.ok ? "" : res.error ?? "could not compute the maps");
        if (!res.ok) onFail();
      },
      () => {
        setText(note, `the maps for ${className(cls)} need a live kernel; this page shows the targets saved with it`);
        onFail();
      },
    );
  };

  const askOther = (input: HTMLInputElement, r: number) => {
    const text = input.value.trim();
    if (!text) return;
    const cls = parseClass(text);
    if (cls === null) {
      setText(note, `no class named "${text}"; type a class name or index`);
      return;
    }
    input.value = "";
    chooseTarget(r, cls, () => undefined);
  };

  const syncSelects = () => {
    const cands = model.get("candidates");
    const target = model.get("target");
    selects.forEach((s, r) => {
      s.replaceChildren(...(cands[r] ?? []).map((c) => h("option", { value: String(c.class) }, optionText(c))));
      s.value = String(target[r]);
      s.disabled = (cands[r] ?? []).length < 2 && !model.get("live");
    });
  };

  const drawTile = (r: number, c: number) => {
    const canvas = tiles[r]?.[c];
    if (!canvas) return;
    const c2 = canvas.getContext("2d")!;
    const dpr = canvas.width / Math.max(tileW, 1);
    c2.setTransform(dpr, 0, 0, dpr, 0, 0);
    c2.imageSmoothingEnabled = true;
    c2.clearRect(0, 0, tileW, tileH);
    if (c === 0) {
      c2.drawImage(photos[r], 0, 0, tileW, tileH);
    } else {
      const m = mapOf(r, c - 1);
      if (!m) {
        c2.fillStyle = ctx.cssVar("--dv-bg2", "#eee");
        c2.fillRect(0, 0, tileW, tileH);
        c2.fillStyle = ctx.cssVar("--dv-fg2", "#666");
        c2.font = "11px sans-serif";
        c2.fillText("no map for this class", 6, 16);
      } else {
        c2.drawImage(compose(r, c - 1, m, model.get("opacity")), 0, 0, tileW, tileH);
      }
    }
    const sel = model.get("selected");
    if (sel && sel[0] === r && sel[1] === c) {
      c2.strokeStyle = ctx.cssVar("--dv-accent", "#1976d2");
      c2.lineWidth = 3;
      c2.strokeRect(1.5, 1.5, tileW - 3, tileH - 3);
    }
  };

  const drawAll = () => {
    for (let r = 0; r < N; r++) for (let c = 0; c <= methods().length; c++) drawTile(r, c);
    setText(clipText, ` ${model.get("clip")}th pct`);
    opacityInput.value = String(model.get("opacity"));
    clipInput.value = String(model.get("clip"));
    drawDetail();
  };

  const drawDetail = () => {
    const sel = model.get("selected");
    if (!sel || sel[0] >= N || sel[1] > methods().length) {
      detail.style.display = "none";
      detail.replaceChildren();
      return;
    }
    const [r, c] = sel;
    const size = Math.min(480, 3 * model.get("tile_size"));
    const dw = size;
    const dh = Math.max(1, Math.round((size * H) / Math.max(W, 1)));
    const big = h("canvas", { class: "dv-ia-big", role: "img", "data-row": r, "data-col": c });
    setupCanvas(big, dw, dh);
    const b2 = big.getContext("2d")!;
    b2.setTransform(big.width / dw, 0, 0, big.width / dw, 0, 0);
    b2.imageSmoothingEnabled = true;
    const legend = h("div", { class: "dv-legend" });
    const lines: string[] = [];
    const name = model.get("image_names")[r] ?? `image ${r}`;
    const cls = model.get("target")[r];
    if (c === 0) {
      b2.drawImage(photos[r], 0, 0, dw, dh);
      lines.push(name);
    } else {
      const m = mapOf(r, c - 1);
      const label = model.get("method_labels")[c - 1] ?? methods()[c - 1];
      lines.push(`${label} on ${name}, explaining ${className(cls)}`);
      if (m) {
        b2.drawImage(compose(r, c - 1, m, model.get("opacity")), 0, 0, dw, dh);
        const clip = clipOf(m);
        const signed = isSigned(c - 1);
        drawLegend(legend, lut(signed ? DIVERGING : SEQUENTIAL), { kind: signed ? "diverging" : "sequential", vmin: signed ? -clip : 0, vmax: clip }, dh, formatValue);
        let sum = 0;
        for (const v of m.values) if (Number.isFinite(v)) sum += v;
        lines.push(`colours saturate at ${formatValue(clip)} (${model.get("clip")}th percentile of |attribution|); sum of the map ${formatValue(sum)}`);
        if (m.delta !== null && m.delta !== undefined) lines.push(`convergence delta ${formatValue(m.delta)}`);
      }
    }
    detail.replaceChildren(
      h("div", { class: "dv-ia-detail-plot" }, big, legend),
      h("div", { class: "dv-ia-detail-text" }, ...lines.map((l) => h("div", {}, l)), closeButton),
    );
    detail.style.display = "flex";
  };

  const select = (rc: [number, number] | null) => {
    model.set("selected", rc);
    model.save_changes();
  };

  // --- interaction --------------------------------------------------------------------
  const tileAt = (ev: Event): [number, number] | null => {
    const el = (ev.target as HTMLElement).closest(".dv-ia-tile") as HTMLElement | null;
    return el ? [Number(el.dataset.row), Number(el.dataset.col)] : null;
  };
  disposer.listen(grid, "mousemove", ctx.guard((ev: MouseEvent) => {
    const rc = tileAt(ev);
    if (!rc) return tooltip.hide();
    const [r, c] = rc;
    const rect = (ev.target as HTMLElement).getBoundingClientRect();
    const fx = (ev.clientX - rect.left) / rect.width;
    const fy = (ev.clientY - rect.top) / rect.height;
    const rows: [string, string][] = [["image", model.get("image_names")[r] ?? String(r)]];
    if (c > 0) {
      const m = mapOf(r, c - 1);
      rows.push(["method", model.get("method_labels")[c - 1] ?? methods()[c - 1]], ["class", className(model.get("target")[r])]);
      if (m) {
        const x = Math.min(m.w - 1, Math.max(0, Math.floor(fx * m.w)));
        const y = Math.min(m.h - 1, Math.max(0, Math.floor(fy * m.h)));
        rows.push(["pixel", `(${y}, ${x})`], ["value", formatValue(m.values[y * m.w + x])], ["clip", formatValue(clipOf(m))]);
      }
    }
    const br = body.getBoundingClientRect();
    tooltip.show(rows, ev.clientX - br.left, ev.clientY - br.top);
  }));
  disposer.listen(grid, "mouseleave", () => tooltip.hide());
  disposer.listen(closeButton, "click", ctx.guard(() => select(null)));
  disposer.listen(grid, "click", ctx.guard((ev: MouseEvent) => {
    const rc = tileAt(ev);
    if (!rc) return;
    const sel = model.get("selected");
    select(sel && sel[0] === rc[0] && sel[1] === rc[1] ? null : rc);
  }));
  disposer.listen(opacityInput, "input", ctx.guard(() => {
    model.set("opacity", Number(opacityInput.value));
    model.save_changes();
  }));
  disposer.listen(clipInput, "input", ctx.guard(() => {
    model.set("clip", Number(clipInput.value));
    model.save_changes();
  }));
  disposer.listen(grid, "change", ctx.guard((ev: Event) => {
    const el = ev.target as HTMLElement;
    const r = Number(el.dataset.row);
    if (el.classList.contains("dv-ia-target")) {
      const s = el as HTMLSelectElement;
      const previous = model.get("target")[r];
      chooseTarget(r, Number(s.value), () => { s.value = String(previous); });
    } else if (el.classList.contains("dv-ia-other")) {
      askOther(el as HTMLInputElement, r);
    }
  }));
  // Enter may be taken by the open suggestion list before "change" fires: handle it too.
  disposer.listen(grid, "keydown", ctx.guard((ev: KeyboardEvent) => {
    const el = ev.target as HTMLElement;
    if (ev.key !== "Enter" || !el.classList.contains("dv-ia-other")) return;
    ev.preventDefault();
    askOther(el as HTMLInputElement, Number(el.dataset.row));
  }));

  const refreshMaps = ctx.guard(() => {
    mapCache = new Map();
    syncSelects();
    drawAll();
  });
  ctx.on("change:maps", refreshMaps);
  ctx.on("change:target", refreshMaps);
  ctx.on("change:signed", refreshMaps);
  ctx.on("change:candidates", ctx.guard(syncSelects));
  ctx.on("change:class_names", ctx.guard(() => { fillClassList(); syncSelects(); drawAll(); }));
  for (const name of ["opacity", "clip", "selected"]) ctx.on(`change:${name}`, ctx.guard(drawAll));
  for (const name of ["tile_size", "verdicts", "methods", "method_labels", "image_names", "live"]) ctx.on(`change:${name}`, ctx.guard(() => { mapCache = new Map(); layout(); drawAll(); }));

  ctx.setExporter("png", () => {
    const M = methods().length;
    const pad = 12;
    const left = 140;
    const head = 22 + (model.get("title") ? 22 : 0);
    const k = 2;
    const gap = 4;
    const width = pad * 2 + left + (M + 1) * (tileW + gap);
    const height = pad * 2 + head + N * (tileH + gap);
    const out = offscreen(width * k, height * k);
    const o = out.getContext("2d")!;
    o.scale(k, k);
    o.fillStyle = ctx.cssVar("--dv-bg", "#fff");
    o.fillRect(0, 0, width, height);
    o.fillStyle = ctx.cssVar("--dv-fg", "#222");
    o.textBaseline = "top";
    let y0 = pad;
    if (model.get("title")) {
      o.font = "bold 14px sans-serif";
      o.fillText(model.get("title"), pad, y0);
      y0 += 22;
    }
    o.font = "12px sans-serif";
    const heads = ["image", ...model.get("method_labels")];
    heads.forEach((t, c) => o.fillText(t, pad + left + c * (tileW + gap), y0, tileW));
    y0 += 22;
    for (let r = 0; r < N; r++) {
      const y = y0 + r * (tileH + gap);
      o.fillText(model.get("image_names")[r] ?? `image ${r}`, pad, y, left - 8);
      o.fillText(className(model.get("target")[r]), pad, y + 16, left - 8);
      for (let c = 0; c <= M; c++) o.drawImage(tiles[r][c], pad + left + c * (tileW + gap), y, tileW, tileH);
    }
    return out;
  });

  fillClassList();
  layout();
  drawAll();
  ctx.markDrawn();
}

export default defineView<ImageAttributionTraits>("image_attribution", build);
