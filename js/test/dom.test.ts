// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { Disposer, Tooltip, h } from "../lib/dom";
import { drawLegend, setupCanvas } from "../lib/canvas";
import { lut, makeScale, formatValue } from "../lib/colors";

const HOSTILE = "<img src=x onerror=alert(1)>";

describe("h", () => {
  it("puts strings in as text, never markup", () => {
    const el = h("div", { class: "a" }, HOSTILE, h("span", {}, "</script>"));
    expect(el.textContent).toBe(`${HOSTILE}</script>`);
    expect(el.querySelector("img")).toBeNull();
    expect(el.children.length).toBe(1);
  });
  it("refuses inline event-handler attributes", () => {
    expect(() => h("div", { onclick: "alert(1)" })).toThrow(/listen\(\)/);
  });
});

describe("Disposer", () => {
  it("removes every listener it added, in reverse order", () => {
    const d = new Disposer();
    const target = new EventTarget();
    let hits = 0;
    d.listen(target, "ping", () => hits++);
    const order: number[] = [];
    d.add(() => order.push(1));
    d.add(() => order.push(2));
    target.dispatchEvent(new Event("ping"));
    d.dispose();
    target.dispatchEvent(new Event("ping"));
    expect(hits).toBe(1);
    expect(order).toEqual([2, 1]);
  });
});

describe("Tooltip", () => {
  it("shows rows as text", () => {
    const host = document.createElement("div");
    const tip = new Tooltip(host);
    tip.show([["row", HOSTILE]], 5, 5);
    expect(tip.node.textContent).toBe(`row${HOSTILE}`);
    expect(tip.node.querySelector("img")).toBeNull();
    tip.hide();
    expect(tip.node.style.display).toBe("none");
  });
});

describe("setupCanvas", () => {
  it("sizes the backing store by the device pixel ratio", () => {
    (globalThis as any).devicePixelRatio = 2;
    const c = document.createElement("canvas");
    expect(setupCanvas(c, 100, 40)).toBe(2);
    expect([c.width, c.height, c.style.width, c.style.height]).toEqual([200, 80, "100px", "40px"]);
  });
});

describe("drawLegend", () => {
  it("labels max, middle and min of the scale and paints the table top-down", () => {
    // happy-dom has no 2D context: a minimal stand-in records what is painted.
    let painted: Uint8ClampedArray | null = null;
    (HTMLCanvasElement.prototype as any).getContext = () => ({
      createImageData: (w: number, hgt: number) => ({ data: new Uint8ClampedArray(w * hgt * 4) }),
      putImageData: (img: { data: Uint8ClampedArray }) => (painted = img.data),
    });
    const host = document.createElement("div");
    drawLegend(host, lut("rdbu"), makeScale("diverging", -2, 1), 100, formatValue);
    const ticks = Array.from(host.querySelectorAll(".dv-legend-ticks span"), (s) => s.textContent);
    expect(ticks).toEqual(["2", "0", "-2"]);
    const table = lut("rdbu");
    expect(Array.from(painted!.slice(0, 4))).toEqual(Array.from(table.slice(255 * 4, 256 * 4)));
    expect(Array.from(painted!.slice(255 * 4))).toEqual(Array.from(table.slice(0, 4)));
  });
});
