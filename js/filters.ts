// FilterGrid view. Mirrors deepvis_widgets/widgets/filters.py.
//
// Every filter is painted once, one pixel per weight, into an atlas canvas;
// the visible grid copies atlas tiles in display order (index or norm), so
// re-sorting and hover only cost drawImage calls.

import { defineView, type BaseTraits, type ViewContext } from "./lib/base";
import { decode, type Encoded } from "./lib/codec";
import { formatValue } from "./lib/colors";
import { Tooltip, h, setText } from "./lib/dom";
import { setupCanvas } from "./lib/canvas";
import {
  kernelGeometry, offscreen, paintKernel, pixelScale, rangeOf, tileAt, tileLayout, tileOrigin,
  type KernelGeometry, type KernelMode, type TileLayout,
} from "./lib/tiles";

export interface FilterTraits extends BaseTraits {
  layer: string;
  layers: string[];
  weights: Encoded;
  norms: Encoded;
  mode: "rgb" | "channels" | "summary";
  in_channels: number;
  groups: number;
  sort: "index" | "norm";
  normalize: "filter" | "layer";
  tile_size: number;
  selected: number | null;
}

const MAX_WIDTH = 760;

interface Geometry extends KernelGeometry {
  n: number;
}

function geometry(shape: number[], mode: KernelMode): Geometry {
  if (shape.length !== 4) throw new RangeError(`weights: expected (filters, k, kh, kw), got shape [${shape}]`);
  const [n, k, kh, kw] = shape;
  return { n, ...kernelGeometry(k, kh, kw, mode) };
}

function build(ctx: ViewContext<FilterTraits>): void {
  const { model, body, disposer } = ctx;
  let values: ArrayLike<number> = new Float32Array(0);
  let norms: ArrayLike<number> = new Float32Array(0);
  let g: Geometry = geometry([0, 1, 1, 1], "channels");
  let atlas = offscreen(1, 1);
  let atlasCols = 1;
  let layout: TileLayout = tileLayout(1, 1, 1, MAX_WIDTH);
  let order: number[] = [];
  let hover = -1;

  // --- DOM ---------------------------------------------------------------------------
  const layerSelect = h("select", { class: "dv-filters-select", "aria-label": "layer" });
  const sortSelect = h("select", { class: "dv-filters-select", "aria-label": "sort" },
    h("option", { value: "index" }, "by index"), h("option", { value: "norm" }, "by norm"));
  const normSelect = h("select", { class: "dv-filters-select", "aria-label": "colour range" },
    h("option", { value: "filter" }, "range per filter"), h("option", { value: "layer" }, "range per layer"));
  const note = h("span", { class: "dv-filters-note" });
  const controls = h("div", { class: "dv-filters-controls" },
    h("label", {}, "layer ", layerSelect), sortSelect, normSelect, note);
  const info = h("div", { class: "dv-filters-info" });
  const canvas = h("canvas", { class: "dv-filters-canvas", role: "img", "aria-label": "filters" });
  const plot = h("div", { class: "dv-filters-plot" }, canvas);
  const detailCanvas = h("canvas", { class: "dv-filters-detail-canvas", role: "img", "aria-label": "selected filter" });
  const detailText = h("div", { class: "dv-filters-detail-text" });
  const detail = h("div", { class: "dv-filters-detail" }, detailCanvas, detailText);
  body.append(controls, info, h("div", { class: "dv-filters-main" }, plot, detail));
  const tooltip = new Tooltip(plot);

  // --- painting ------------------------------------------------------------------------
  const filterRange = (i: number) => {
    const size = g.k * g.kh * g.kw;
    return rangeOf(values, i * size, (i + 1) * size);
  };

  const paintAtlas = () => {
    const size = g.k * g.kh * g.kw;
    const mode = model.get("mode");
    atlasCols = Math.max(1, Math.ceil(Math.sqrt(g.n)));
    atlas = offscreen(atlasCols * g.w, Math.max(1, Math.ceil(g.n / atlasCols)) * g.h);
    const a = atlas.getContext("2d")!;
    const img = a.createImageData(atlas.width, atlas.height);
    for (let p = 0; p < img.data.length; p += 4) img.data.set([128, 128, 128, 255], p);
    const layerAbs = rangeOf(values, 0, values.length).abs;
    for (let i = 0; i < g.n; i++) {
      const m = model.get("normalize") === "layer" ? layerAbs : filterRange(i).abs;
      paintKernel(img, (i % atlasCols) * g.w, Math.floor(i / atlasCols) * g.h, values, i * size, g, mode, m);
    }
    a.putImageData(img, 0, 0);
  };

  const sortOrder = () => {
    order = Array.from({ length: g.n }, (_, i) => i);
    if (model.get("sort") === "norm") order.sort((a, b) => norms[b] - norms[a] || a - b);
  };

  const doLayout = () => {
    const fixed = model.get("tile_size");
    const target = fixed > 0 ? fixed : g.n <= 32 ? 56 : g.n <= 96 ? 40 : g.n <= 400 ? 28 : 20;
    const s = fixed > 0 ? fixed / Math.max(g.w, g.h) : pixelScale(Math.max(g.w, g.h), target);
    layout = tileLayout(g.n, Math.max(1, Math.round(g.w * s)), Math.max(1, Math.round(g.h * s)), MAX_WIDTH, g.n > 400 ? 1 : 2);
    setupCanvas(canvas, layout.width, layout.height);
  };

  const blit = (c2: CanvasRenderingContext2D, i: number, dx: number, dy: number, w: number, hh: number) => {
    c2.drawImage(atlas, (i % atlasCols) * g.w, Math.floor(i / atlasCols) * g.h, g.w, g.h, dx, dy, w, hh);
  };

  const draw = () => {
    const c2 = canvas.getContext("2d")!;
    const dpr = canvas.width / Math.max(layout.width, 1);
    c2.setTransform(dpr, 0, 0, dpr, 0, 0);
    c2.clearRect(0, 0, layout.width, layout.height);
    c2.imageSmoothingEnabled = false;
    order.forEach((f, slot) => {
      const [x, y] = tileOrigin(layout, slot);
      blit(c2, f, x, y, layout.tw, layout.th);
    });
    const outline = (f: number | null, color: string, width: number) => {
      if (f === null || f < 0) return;
      const slot = order.indexOf(f);
      if (slot < 0) return;
      const [x, y] = tileOrigin(layout, slot);
      c2.strokeStyle = color;
      c2.lineWidth = width;
      c2.strokeRect(x + width / 2, y + width / 2, layout.tw - width, layout.th - width);
    };
    outline(hover, ctx.cssVar("--dv-hover", "#888"), 1);
    outline(model.get("selected"), ctx.cssVar("--dv-accent", "#1976d2"), 2);
  };

  const drawDetail = () => {
    const f = model.get("selected");
    if (f === null || f < 0 || f >= g.n) {
      detail.style.display = "none";
      return;
    }
    detail.style.display = "block";
    const s = Math.max(1, Math.floor(200 / Math.max(g.w, g.h)));
    const w = Math.max(g.w * s, 1);
    const hh = Math.max(g.h * s, 1);
    setupCanvas(detailCanvas, w, hh);
    const c2 = detailCanvas.getContext("2d")!;
    const dpr = detailCanvas.width / w;
    c2.setTransform(dpr, 0, 0, dpr, 0, 0);
    c2.imageSmoothingEnabled = false;
    blit(c2, f, 0, 0, w, hh);
    const rank = Array.from(norms).filter((v) => v > norms[f]).length + 1;
    const r = filterRange(f);
    const lines = [
      `filter ${f}`,
      `norm ${formatValue(norms[f])} (rank ${rank} of ${g.n})`,
      `weights ${formatValue(r.lo)} … ${formatValue(r.hi)}`,
    ];
    if (model.get("mode") === "channels" && g.k > 1) {
      // The input channels this filter weighs most (per-channel kernel norm).
      const per = Array.from({ length: g.k }, (_, c) => {
        let s2 = 0;
        for (let p = 0; p < g.kh * g.kw; p++) s2 += values[(f * g.k + c) * g.kh * g.kw + p] ** 2;
        return [c, Math.sqrt(s2)] as [number, number];
      }).sort((a, b) => b[1] - a[1]);
      const offset = model.get("groups") > 1 ? Math.floor(f / (g.n / model.get("groups"))) * g.k : 0;
      lines.push(`strongest inputs: ${per.slice(0, 3).map(([c, v]) => `${c + offset} (${formatValue(v)})`).join(", ")}`);
    }
    detailText.replaceChildren(...lines.map((l) => h("div", {}, l)));
  };

  const describe = () => {
    const mode = model.get("mode");
    const what = mode === "rgb" ? "RGB, grey = 0"
      : mode === "summary" ? `L2 norm over ${g.k === 1 ? model.get("in_channels") / model.get("groups") : g.k} input channels`
      : g.k === 1 ? "blue < 0 < red" : `${g.k} input channels per filter, blue < 0 < red`;
    const dw = model.get("groups") > 1 && model.get("groups") === model.get("in_channels") ? " · depthwise" : "";
    setText(info, `${model.get("layer") || "conv"} · ${g.n} filters · ${g.kh}×${g.kw}${dw} · ${what}`);
  };

  const syncControls = () => {
    const names = model.get("layers") ?? [];
    layerSelect.replaceChildren(...names.map((n) => h("option", { value: n }, n)));
    layerSelect.value = model.get("layer");
    layerSelect.parentElement!.style.display = names.length > 1 ? "" : "none";
    sortSelect.value = model.get("sort");
    normSelect.value = model.get("normalize");
  };

  const full = ctx.guard(() => {
    values = decode(model.get("weights")).values;
    norms = decode(model.get("norms")).values;
    g = geometry(model.get("weights").shape, model.get("mode"));
    if (norms.length !== g.n) throw new RangeError(`norms: expected ${g.n} values, got ${norms.length}`);
    paintAtlas();
    sortOrder();
    doLayout();
    draw();
    drawDetail();
    describe();
    syncControls();
  });

  // --- interaction ---------------------------------------------------------------------
  const filterAt = (ev: MouseEvent): number => {
    const r = canvas.getBoundingClientRect();
    const slot = tileAt(layout, g.n, ev.clientX - r.left, ev.clientY - r.top);
    return slot < 0 ? -1 : order[slot];
  };
  disposer.listen(canvas, "mousemove", ctx.guard((ev: MouseEvent) => {
    const f = filterAt(ev);
    if (f !== hover) {
      hover = f;
      draw();
    }
    if (f < 0) return tooltip.hide();
    const pr = plot.getBoundingClientRect();
    tooltip.show([["filter", String(f)], ["norm", formatValue(norms[f])]], ev.clientX - pr.left, ev.clientY - pr.top);
  }));
  disposer.listen(canvas, "mouseleave", () => {
    hover = -1;
    tooltip.hide();
    draw();
  });
  disposer.listen(canvas, "click", ctx.guard((ev: MouseEvent) => {
    const f = filterAt(ev);
    if (f < 0) return;
    model.set("selected", model.get("selected") === f ? null : f);
    model.save_changes();
    draw();
    drawDetail();
  }));
  disposer.listen(sortSelect, "change", ctx.guard(() => {
    model.set("sort", sortSelect.value as FilterTraits["sort"]);
    model.save_changes();
    sortOrder();
    draw();
  }));
  disposer.listen(normSelect, "change", ctx.guard(() => {
    model.set("normalize", normSelect.value as FilterTraits["normalize"]);
    model.save_changes();
    full();
  }));
  disposer.listen(layerSelect, "change", ctx.guard(() => {
    const wanted = layerSelect.value;
    setText(note, `loading ${wanted}…`);
    ctx.invoke<{ ok: boolean; error?: string }>("_load_layer", { layer: wanted }).then(
      ([res]) => setText(note, res.ok ? "" : res.error ?? "could not load the layer"),
      () => {
        setText(note, "another layer needs a live kernel; this page shows the saved layer");
        layerSelect.value = model.get("layer");
      },
    );
  }));

  ctx.on("change:sort", ctx.guard(() => { sortOrder(); draw(); syncControls(); }));
  ctx.on("change:selected", ctx.guard(() => { draw(); drawDetail(); }));
  for (const name of ["weights", "norms", "mode", "layer", "layers", "normalize", "tile_size"]) ctx.on(`change:${name}`, full);

  ctx.setExporter("png", () => {
    const titleText = model.get("title") || model.get("layer");
    const pad = 16;
    const head = 24;
    const k = 2;
    const out = offscreen((layout.width + 2 * pad) * k, (layout.height + head + 2 * pad) * k);
    const o = out.getContext("2d")!;
    o.scale(k, k);
    o.fillStyle = ctx.cssVar("--dv-bg", "#fff");
    o.fillRect(0, 0, out.width, out.height);
    o.fillStyle = ctx.cssVar("--dv-fg", "#222");
    o.font = "bold 14px sans-serif";
    o.fillText(titleText, pad, pad + 12);
    o.imageSmoothingEnabled = false;
    order.forEach((f, slot) => {
      const [x, y] = tileOrigin(layout, slot);
      blit(o, f, pad + x, pad + head + y, layout.tw, layout.th);
    });
    return out;
  });

  full();
  ctx.markDrawn();
}

export default defineView<FilterTraits>("filters", build);
