// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { h } from "../lib/dom";
import { showToken } from "../lib/tokens";

describe("showToken", () => {
  it("makes newlines and tabs visible anywhere in the token", () => {
    expect(showToken("\n")).toBe("\u23ce");
    expect(showToken("a\nb\n")).toBe("a\u23ceb\u23ce");
    expect(showToken("\t\tx")).toBe("\u21e5\u21e5x");
  });

  it("marks a leading and a trailing space, leaves inner spaces alone", () => {
    expect(showToken(" the")).toBe("\u2423the");
    expect(showToken("the ")).toBe("the\u2423");
    expect(showToken(" a b ")).toBe("\u2423a b\u2423");
  });

  it("shows whitespace-only tokens as visible marks", () => {
    expect(showToken(" ")).toBe("\u2423");
    expect(showToken("  ")).toBe("\u2423\u2423");
    expect(showToken("\n\t")).toBe("\u23ce\u21e5");
  });

  it("shows the empty token as the empty-set sign", () => {
    expect(showToken("")).toBe("\u2205");
  });

  it("leaves ordinary text and markup-looking tokens untouched", () => {
    expect(showToken("hello")).toBe("hello");
    expect(showToken("<script>alert(1)</script>")).toBe("<script>alert(1)</script>");
    expect(showToken("&amp;")).toBe("&amp;");
  });

  it("stays text when put into the DOM", () => {
    const hostile = "<img src=x onerror=alert(1)>\n";
    const el = h("span", {}, showToken(hostile));
    expect(el.textContent).toBe("<img src=x onerror=alert(1)>\u23ce");
    expect(el.children.length).toBe(0);
  });
});
