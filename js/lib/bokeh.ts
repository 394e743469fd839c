// BokehJS inside our views. Mirrors deepvis_widgets/widgets/bokeh_loader.py.
//
// One BokehLoader model per page carries the library; each chart view holds a
// widget reference to it ("IPY_MODEL_<id>" in its `_bokeh` trait), resolved
// through model.widget_manager.get_model (JupyterLab, the HTML manager of
// exported notebooks, and js/standalone.ts all provide it). The library is
// evaluated once per page and version: the promise lives on globalThis
// because every view entry is a separate ES module with its own module state.

import type { AnyModel, BaseTraits, ViewContext } from "./base";

/** The BokehJS namespace of one version (window.Bokeh[version]). */
export type BokehJS = any;

interface Registry {
  loading: Record<string, Promise<BokehJS>>;
  /** How many times BokehJS was evaluated on this page (tests assert 1). */
  evaluations: number;
}

const REF_PREFIX = "IPY_MODEL_";

function registry(): Registry {
  const g = globalThis as any;
  g.__deepvis_bokeh ??= { loading: {}, evaluations: 0 } satisfies Registry;
  return g.__deepvis_bokeh as Registry;
}

async function resolveLoader(model: AnyModel<any>, trait: string): Promise<any> {
  const ref = model.get(trait);
  if (ref && typeof ref === "object" && typeof ref.get === "function") return ref;
  if (typeof ref !== "string" || !ref.startsWith(REF_PREFIX)) {
    throw new Error(`${trait}: expected a reference to the shared BokehLoader model, got ${JSON.stringify(ref)}`);
  }
  const manager = (model as any).widget_manager;
  if (!manager || typeof manager.get_model !== "function") {
    throw new Error("this page's widget manager cannot resolve widget references, so BokehJS cannot be found");
  }
  return manager.get_model(ref.slice(REF_PREFIX.length));
}

/** The BokehJS of the view's loader, evaluated on first use (once per page). */
export async function loadBokeh(model: AnyModel<any>, trait = "_bokeh"): Promise<BokehJS> {
  const loader = await resolveLoader(model, trait);
  const version: string = loader.get("version");
  const g = globalThis as any;
  if (g.Bokeh?.[version]?.embed) return g.Bokeh[version];
  const reg = registry();
  reg.loading[version] ??= (async () => {
    const source: string = loader.get("_bokeh_js");
    if (!source) throw new Error(`the BokehLoader model carries no BokehJS ${version}`);
    // The bundle is a classic script that attaches itself to `this`; run it
    // with `this` = globalThis, and without AMD's `define` in scope (exported
    // notebooks load require.js).
    new Function("define", source).call(g, undefined);
    reg.evaluations += 1;
    const bokeh = g.Bokeh?.[version];
    if (!bokeh?.embed) throw new Error(`BokehJS ${version} did not register itself`);
    return bokeh;
  })();
  return reg.loading[version];
}

/** Resolves once `el` is in the document (Bokeh refuses detached targets). */
export function whenConnected(el: HTMLElement, ctx: ViewContext<any>): Promise<void> {
  return new Promise((resolve) => {
    let alive = true;
    ctx.disposer.add(() => (alive = false));
    const check = () => {
      if (!alive) return;
      if (el.isConnected) resolve();
      else requestAnimationFrame(check);
    };
    check();
  });
}

export interface Embedded {
  /** Root Bokeh view (a plot or a layout). */
  view: any;
  /** The Bokeh document holding the models. */
  doc: any;
  /** A model of the document by its Python `name`. */
  get(name: string): any;
  remove(): void;
}

/** Renders a `bokeh.embed.json_item` JSON string into `host`, themed from the view's CSS variables. */
export async function embedItem<T extends BaseTraits>(ctx: ViewContext<T>, bokeh: BokehJS, host: HTMLElement, itemJson: string): Promise<Embedded> {
  await whenConnected(host, ctx);
  const item = JSON.parse(itemJson);
  const views = await bokeh.embed.embed_item(item, host);
  const view = views.roots[0];
  if (!view) throw new Error("BokehJS rendered no root view");
  const doc = view.model.document;
  const embedded: Embedded = {
    view,
    doc,
    get(name: string) {
      const m = doc.get_model_by_name(name);
      if (!m) throw new Error(`the figure has no model named ${JSON.stringify(name)}`);
      return m;
    },
    remove() {
      for (const v of views.roots) v.remove();
      host.replaceChildren();
    },
  };
  themeDocument(doc, ctx);
  return embedded;
}

/** A CSS colour as Bokeh understands it (#rrggbb or rgba()). */
let colorCtx: CanvasRenderingContext2D | null = null;
export function cssColor(value: string, fallback: string): string {
  colorCtx ??= document.createElement("canvas").getContext("2d");
  if (!colorCtx) return fallback;
  colorCtx.fillStyle = fallback;
  colorCtx.fillStyle = value;
  return String(colorCtx.fillStyle);
}

export interface Palette {
  bg: string;
  fg: string;
  fg2: string;
  border: string;
  accent: string;
}

export function palette(ctx: ViewContext<any>): Palette {
  return {
    bg: cssColor(ctx.cssVar("--dv-bg", "#ffffff"), "#ffffff"),
    fg: cssColor(ctx.cssVar("--dv-fg", "#222222"), "#222222"),
    fg2: cssColor(ctx.cssVar("--dv-fg2", "#666666"), "#666666"),
    border: cssColor(ctx.cssVar("--dv-border", "#bdbdbd"), "#bdbdbd"),
    accent: cssColor(ctx.cssVar("--dv-accent", "#1976d2"), "#1976d2"),
  };
}

/** Colours every plot, axis, grid, title, legend and colour bar of `doc` from the view's theme. */
export function themeDocument(doc: any, ctx: ViewContext<any>): void {
  const p = palette(ctx);
  for (const m of doc.all_models) {
    const type: string = m.type ?? "";
    const props: Record<string, unknown> = {};
    const want = (name: string, value: unknown) => {
      if (m.properties && name in m.properties) props[name] = value;
    };
    if (type.endsWith("Axis")) {
      for (const k of ["axis_line_color", "major_tick_line_color", "minor_tick_line_color", "major_label_text_color"]) want(k, p.fg2);
      want("axis_label_text_color", p.fg);
    } else if (type === "Grid") {
      want("grid_line_color", p.border);
    } else if (type === "Title") {
      want("text_color", p.fg);
    } else if (type === "Legend" || type === "ColorBar") {
      want("background_fill_color", p.bg);
      want("border_line_color", null);
      want("label_text_color", p.fg);
      want("title_text_color", p.fg);
      want("major_label_text_color", p.fg2);
      want("major_tick_line_color", p.fg2);
    } else if ("background_fill_color" in (m.properties ?? {}) && "border_fill_color" in (m.properties ?? {})) {
      want("background_fill_color", p.bg);
      want("border_fill_color", p.bg);
      want("outline_line_color", p.border);
    }
    if (Object.keys(props).length) m.setv(props);
  }
}

/** Re-runs `fn` when the theme may have changed: the trait, the OS preference, JupyterLab's theme. */
export function watchTheme(ctx: ViewContext<any>, fn: () => void): void {
  ctx.on("change:theme", () => requestAnimationFrame(fn));
  const mq = globalThis.matchMedia?.("(prefers-color-scheme: dark)");
  if (mq) ctx.disposer.listen(mq, "change", fn);
  if (typeof MutationObserver !== "undefined") {
    const mo = new MutationObserver(() => fn());
    mo.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-name", "data-jp-theme-light"] });
    ctx.disposer.add(() => mo.disconnect());
  }
}

/** Calls `cb` with the selected indices whenever the source's selection changes. */
export function onSelection(source: any, ctx: ViewContext<any>, cb: (indices: number[]) => void): void {
  const slot = () => cb([...source.selected.indices]);
  source.selected.change.connect(slot);
  ctx.disposer.add(() => source.selected.change.disconnect(slot));
}

/** Sets a source's selection unless it already holds exactly these indices. */
export function setSelection(source: any, indices: number[]): void {
  const cur: number[] = source.selected.indices;
  if (cur.length === indices.length && cur.every((v, i) => v === indices[i])) return;
  source.selected.indices = indices;
}

/** Calls `cb` with the index under the cursor (or null) as the hover tool inspects. */
export function onHover(hoverTool: any, host: HTMLElement, ctx: ViewContext<any>, cb: (index: number | null) => void): void {
  let last: number | null = null;
  const emit = (i: number | null) => {
    if (i !== last) {
      last = i;
      cb(i);
    }
  };
  hoverTool.callback = (_tool: unknown, data: { index?: { indices: number[] } }) => {
    const hit = data?.index?.indices ?? [];
    emit(hit.length ? hit[0] : null);
  };
  ctx.disposer.add(() => (hoverTool.callback = null));
  ctx.disposer.listen(host, "mouseleave", () => emit(null));
}

/** The PNG export of a Bokeh view (its own compositing of every canvas layer). */
export function exportCanvas(view: any): HTMLCanvasElement {
  return view.export("png", true).canvas as HTMLCanvasElement;
}
