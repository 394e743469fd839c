// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { TokenColumn, displayToken, tokenWidth, type Row } from "../lib/token_column";

const HOSTILE = "<img src=x onerror=alert(1)>";

describe("displayToken", () => {
  it("turns byte-level (\u0120) and sentencepiece (\u2581) space markers into spaces", () => {
    expect(displayToken("\u0120the")).toBe(" the");
    expect(displayToken("\u2581the")).toBe(" the");
    expect(displayToken("a\u2581b\u0120c")).toBe("a b c");
  });

  it("shows newlines (raw and byte-level \u010a) and tabs as arrows", () => {
    expect(displayToken("\n")).toBe("\u21b5");
    expect(displayToken("\u010a\u010a")).toBe("\u21b5\u21b5");
    expect(displayToken("x\ty")).toBe("x\u21e5y");
  });

  it("shows all-space tokens as up to three visible space marks", () => {
    expect(displayToken(" ")).toBe("\u2423");
    expect(displayToken("\u0120\u0120")).toBe("\u2423\u2423");
    expect(displayToken("\u2581".repeat(8))).toBe("\u2423\u2423\u2423");
  });

  it("shows the empty token as the empty-set sign", () => {
    expect(displayToken("")).toBe("\u2205");
  });

  it("leaves markup-looking tokens as they are", () => {
    expect(displayToken(HOSTILE)).toBe(HOSTILE);
    expect(displayToken("\u0120</script>")).toBe(" </script>");
  });
});

describe("tokenWidth", () => {
  it("falls back to the cap when there is no 2D context (happy-dom has none)", () => {
    expect(document.createElement("canvas").getContext("2d")).toBeNull();
    expect(tokenWidth(["a", "bb"], "12px monospace", 80)).toBe(80);
  });
});

function rows(n: number): Row[] {
  return Array.from({ length: n }, (_, i) => ({ token: i, text: i === 3 ? HOSTILE : `\u0120t${i}`, special: i === 0 }));
}

function shownIndices(col: TokenColumn): number[] {
  return Array.from(col.el.children, (c) => Number((c as HTMLElement).dataset.token)).sort((a, b) => a - b);
}

describe("TokenColumn", () => {
  it("renders only rows near the viewport and sizes the column for all of them", () => {
    const col = new TokenColumn("dv-q", 10, 5);
    col.setRows(rows(1000), 12);
    expect(col.el.style.height).toBe("12000px");
    col.render(0, 120); // rows 0..10 visible, +5 overscan
    expect(shownIndices(col)).toEqual(Array.from({ length: 16 }, (_, i) => i));
    col.render(6000, 120); // rows 500..510, overscan 495..515; the first batch is removed
    expect(shownIndices(col)).toEqual(Array.from({ length: 21 }, (_, i) => 495 + i));
  });

  it("positions labels, marks special tokens and keeps token text as text", () => {
    const col = new TokenColumn("dv-k", 10, 0);
    col.setRows(rows(5), 10);
    col.render(0, 50);
    const nodes = Array.from(col.el.children) as HTMLElement[];
    expect(nodes[0].classList.contains("dv-att-special")).toBe(true);
    expect(nodes[1].classList.contains("dv-att-special")).toBe(false);
    expect(nodes[2].style.top).toBe("20px");
    expect(nodes[1].textContent).toBe(" t1");
    expect(nodes[3].textContent).toBe(HOSTILE);
    expect(nodes[3].getAttribute("title")).toBe(HOSTILE);
    expect(col.el.querySelector("img")).toBeNull();
  });

  it("applies the styler to new labels and again on restyle", () => {
    const col = new TokenColumn("dv-k", 10, 0);
    col.setRows(rows(4), 10);
    let calls = 0;
    col.setStyler((node, row) => {
      calls++;
      node.dataset.mark = `r${row.token}`;
    });
    col.render(0, 40);
    expect(calls).toBe(4);
    col.render(0, 40); // nothing new
    expect(calls).toBe(4);
    col.restyle();
    expect(calls).toBe(8);
    expect((col.el.children[2] as HTMLElement).dataset.mark).toBe("r2");
  });

  it("setRows drops every label", () => {
    const col = new TokenColumn("dv-k", 10, 0);
    col.setRows(rows(4), 10);
    col.render(0, 40);
    col.setRows(rows(2), 10);
    expect(col.el.children.length).toBe(0);
    col.render(0, 40);
    expect(shownIndices(col)).toEqual([0, 1]);
  });

  it("rowAt maps a client y to a row and -1 outside", () => {
    const col = new TokenColumn("dv-k", 10, 0);
    col.setRows(rows(5), 10);
    // happy-dom lays nothing out: the column's rect top is 0.
    expect(col.rowAt(0)).toBe(0);
    expect(col.rowAt(25)).toBe(2);
    expect(col.rowAt(49.9)).toBe(4);
    expect(col.rowAt(50)).toBe(-1);
    expect(col.rowAt(-1)).toBe(-1);
  });
});
