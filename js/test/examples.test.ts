// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Examples, type ExamplesPayload } from "../lib/examples";
import { installCanvasStub, pixel, removeCanvasStub, wasPainted } from "./canvas_stub";

const HOSTILE = "<img src=x onerror=alert(1)>";

/** uint8 images (n, h, w, c) as the widget sends them, inside a larger shared buffer (non-zero byteOffset). */
function imagePayload(bytes: number[], shape: [number, number, number, number]): ExamplesPayload {
  const shared = new Uint8Array(3 + bytes.length);
  shared.set([7, 7, 7]);
  shared.set(bytes, 3);
  return { kind: "image", images: { buffer: new DataView(shared.buffer, 3, bytes.length), dtype: "uint8", shape } };
}

describe("Examples: construction", () => {
  it("treats a missing payload as no examples", () => {
    for (const p of [null, undefined, { kind: "none" } as const]) {
      const ex = new Examples(p, 4);
      expect(ex.kind).toBe("none");
      expect(ex.available).toBe(false);
      expect(ex.count).toBe(4);
    }
  });

  it("rejects image payloads that are not uint8 (n, h, w, c) or whose bytes do not match the shape", () => {
    expect(() => new Examples({ kind: "image", images: { buffer: new Float32Array(4), dtype: "float32", shape: [1, 2, 2, 1] } }, 1)).toThrow(TypeError);
    expect(() => new Examples({ kind: "image", images: { buffer: new Uint8Array(4), dtype: "uint8", shape: [1, 2, 2] } }, 1)).toThrow(/expected uint8 images/);
    expect(() => new Examples(imagePayload([1, 2, 3], [1, 2, 2, 1]), 1)).toThrow(/3 bytes for shape \[1,2,2,1\]/);
  });
});

describe("Examples: text", () => {
  const ex = new Examples({ kind: "text", texts: ["first", HOSTILE] }, 2);

  it("serves texts by index and an empty string past the end", () => {
    expect(ex.available).toBe(true);
    expect(ex.text(0)).toBe("first");
    expect(ex.text(1)).toBe(HOSTILE);
    expect(ex.text(5)).toBe("");
  });

  it("builds cards whose text and captions stay text", () => {
    const card = ex.card(1, [["label", "</div><script>alert(1)</script>"], [HOSTILE, "7"]], 64);
    expect(card.dataset.index).toBe("1");
    expect(card.querySelector(".dv-example-text")!.textContent).toBe(HOSTILE);
    const captions = Array.from(card.querySelectorAll(".dv-example-caption"), (c) => c.textContent);
    expect(captions).toEqual(["label </div><script>alert(1)</script>", `${HOSTILE} 7`]);
    expect(card.querySelector(".dv-example-key")!.textContent).toBe("label");
    expect(card.querySelectorAll("img, script").length).toBe(0);
    // only the elements card() made itself: text div, two captions, each with one key span
    expect(card.querySelectorAll("*").length).toBe(5);
  });

  it("makes a card clickable only when given a handler", () => {
    expect(ex.card(0, [], 64).classList.contains("dv-clickable")).toBe(false);
    let clicks = 0;
    const card = ex.card(0, [], 64, () => clicks++);
    expect(card.classList.contains("dv-clickable")).toBe(true);
    card.dispatchEvent(new Event("click"));
    expect(clicks).toBe(1);
  });
});

describe("Examples: image thumbnails", () => {
  // Two 2 x 3 grey images: 0, 127, 254 / 255 (NaN), 1, 200; then a second image of 10s.
  const grey = imagePayload([0, 127, 254, 255, 1, 200, ...new Array(6).fill(10)], [2, 2, 3, 1]);

  it("sizes the canvas natively and its CSS box to `size` on the longest side", () => {
    const t = new Examples(grey, 2).thumbnail(0, 60);
    expect([t.width, t.height]).toEqual([3, 2]);
    expect([t.style.width, t.style.height]).toEqual(["60px", "40px"]);
    expect(t.dataset.index).toBe("0");
  });

  it("returns an unpainted canvas when there is no 2D context (happy-dom's own canvas)", () => {
    const t = new Examples(grey, 2).thumbnail(1, 30);
    expect(t.getContext("2d")).toBeNull();
    expect(t.width).toBe(3);
  });

  describe("pixels (stub 2D context)", () => {
    beforeEach(installCanvasStub);
    afterEach(removeCanvasStub);

    it("stretches 0..254 to 0..255 and paints 255 (NaN) mid grey", () => {
      const t = new Examples(grey, 2).thumbnail(0, 60);
      expect(wasPainted(t)).toBe(true);
      expect(pixel(t, 0, 0)).toEqual([0, 0, 0, 255]);
      expect(pixel(t, 1, 0)).toEqual([128, 128, 128, 255]); // 127 * 255 / 254 = 127.5
      expect(pixel(t, 2, 0)).toEqual([255, 255, 255, 255]);
      expect(pixel(t, 0, 1)).toEqual([128, 128, 128, 255]); // NaN
      expect(pixel(t, 1, 1)).toEqual([1, 1, 1, 255]);
      expect(pixel(t, 2, 1)).toEqual([201, 201, 201, 255]); // 200.79
    });

    it("reads image i from its own offset", () => {
      const t = new Examples(grey, 2).thumbnail(1, 60);
      for (let y = 0; y < 2; y++) for (let x = 0; x < 3; x++) expect(pixel(t, x, y)).toEqual([10, 10, 10, 255]);
    });

    it("reads interleaved RGB channels", () => {
      const rgb = imagePayload([254, 0, 0, 0, 254, 255], [1, 1, 2, 3]);
      const t = new Examples(rgb, 1).thumbnail(0, 20);
      expect([t.style.width, t.style.height]).toEqual(["20px", "10px"]);
      expect(pixel(t, 0, 0)).toEqual([255, 0, 0, 255]);
      expect(pixel(t, 1, 0)).toEqual([0, 255, 128, 255]); // a NaN channel is grey on its own
    });

    it("puts a thumbnail, not text, in image cards, captions still as text", () => {
      const card = new Examples(grey, 2).card(1, [["loss", HOSTILE]], 48);
      expect(card.querySelector("canvas.dv-example-thumb")).not.toBeNull();
      expect(card.querySelector(".dv-example-text")).toBeNull();
      expect(card.querySelector(".dv-example-caption")!.textContent).toBe(`loss ${HOSTILE}`);
      expect(card.querySelector("img")).toBeNull();
    });
  });
});
