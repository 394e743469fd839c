// DOM helpers. Data (tokens, labels, titles) only ever enters the DOM as
// text nodes: there is deliberately no helper here that takes HTML.

type Attrs = Record<string, string | number | boolean | undefined>;

/** Creates an element with attributes and text/element children. Strings become text nodes. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === "class") node.className = String(v);
    else if (k.startsWith("on")) throw new Error("h(): attach listeners with listen(), not attributes");
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(typeof c === "string" ? document.createTextNode(c) : c);
  return node;
}

export const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element with attributes; text goes in as a text node, never markup. */
export function svg(tag: string, attrs: Record<string, string | number> = {}, text?: string): SVGElement {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

export function svgRoot(width: number, height: number, background: string): SVGSVGElement {
  const root = svg("svg", { xmlns: SVG_NS, width, height, viewBox: `0 0 ${width} ${height}` }) as SVGSVGElement;
  root.append(svg("rect", { x: 0, y: 0, width, height, fill: background }));
  return root;
}

/**
 * A copy of a live SVG whose fills, strokes and fonts are written out as attributes,
 * so it looks the same once saved (CSS variables and classes do not travel).
 */
export function standaloneSvg(live: SVGSVGElement): SVGSVGElement {
  const copy = live.cloneNode(true) as SVGSVGElement;
  const src = live.querySelectorAll("*");
  const dst = copy.querySelectorAll("*");
  src.forEach((node, i) => {
    const cs = getComputedStyle(node);
    const out = dst[i] as SVGElement;
    for (const prop of ["fill", "stroke", "fill-opacity", "stroke-width", "opacity", "font-size", "font-family", "font-weight"]) {
      const v = cs.getPropertyValue(prop);
      if (v) out.setAttribute(prop, v);
    }
    out.removeAttribute("class");
    out.removeAttribute("style");
  });
  return copy;
}

/** Replaces all children with text (never parsed as HTML). */
export function setText(node: Element, text: string): void {
  node.textContent = text;
}

/** Collects cleanups (listeners, observers, animation frames) so render() can undo everything. */
export class Disposer {
  private fns: (() => void)[] = [];
  add(fn: () => void): void {
    this.fns.push(fn);
  }
  listen<K extends keyof HTMLElementEventMap>(target: EventTarget, type: K | string, fn: (ev: any) => void, opts?: AddEventListenerOptions): void {
    target.addEventListener(type, fn, opts);
    this.add(() => target.removeEventListener(type, fn, opts));
  }
  observeResize(target: Element, fn: (width: number) => void): void {
    if (typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver((entries) => fn(entries[0].contentRect.width));
    ro.observe(target);
    this.add(() => ro.disconnect());
  }
  frame(fn: () => void): void {
    const id = requestAnimationFrame(fn);
    this.add(() => cancelAnimationFrame(id));
  }
  dispose(): void {
    for (const fn of this.fns.splice(0).reverse()) {
      try {
        fn();
      } catch (e) {
        console.warn("deepvis: cleanup failed", e);
      }
    }
  }
}

/** A floating tooltip inside `host`, filled with label/value rows as text. */
export class Tooltip {
  readonly node: HTMLDivElement;
  constructor(host: HTMLElement) {
    this.node = h("div", { class: "dv-tooltip", role: "tooltip" });
    this.node.style.display = "none";
    host.append(this.node);
  }
  show(rows: [string, string][], x: number, y: number): void {
    this.node.replaceChildren(
      ...rows.map(([k, v]) => h("div", { class: "dv-tooltip-row" }, h("span", { class: "dv-tooltip-key" }, k), h("span", { class: "dv-tooltip-value" }, v))),
    );
    this.node.style.display = "block";
    const host = this.node.parentElement!;
    const maxX = host.clientWidth - this.node.offsetWidth - 4;
    this.node.style.left = `${Math.max(0, Math.min(x + 12, maxX))}px`;
    this.node.style.top = `${y + 12}px`;
  }
  hide(): void {
    this.node.style.display = "none";
  }
}
