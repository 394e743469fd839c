import { describe, expect, it } from "vitest";
import { bytesOf, decode, extent, UINT8_NAN } from "../lib/codec";

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

describe("decode", () => {
  it("reads float32 through a DataView with a non-zero byteOffset", () => {
    // Two payloads sharing one ArrayBuffer, as ipywidgets delivers them.
    const shared = new Uint8Array(4 + 16);
    shared.set([9, 9, 9, 9]);
    shared.set(f32Bytes([1.5, -2, 3.25, 0]), 4);
    const view = new DataView(shared.buffer, 4, 16);
    const { values, shape } = decode({ buffer: view, dtype: "float32", shape: [2, 2] });
    expect(shape).toEqual([2, 2]);
    expect(Array.from(values)).toEqual([1.5, -2, 3.25, 0]);
  });

  it("copies when the offset is not aligned to the item size", () => {
    const shared = new Uint8Array(3 + 8);
    shared.set(f32Bytes([7, 8]), 3);
    const { values } = decode({ buffer: new DataView(shared.buffer, 3, 8), dtype: "float32", shape: [2] });
    expect(Array.from(values)).toEqual([7, 8]);
  });

  it("decodes float16 including subnormals, infinities and NaN", () => {
    // 1.0, -2.0, 65504 (max), 2^-24 (smallest subnormal), +inf, NaN
    const halves = new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x7e00]);
    const { values } = decode({ buffer: new DataView(halves.buffer), dtype: "float16", shape: [6] });
    expect(values[0]).toBe(1);
    expect(values[1]).toBe(-2);
    expect(values[2]).toBe(65504);
    expect(values[3]).toBeCloseTo(2 ** -24, 12);
    expect(values[4]).toBe(Infinity);
    expect(Number.isNaN(values[5])).toBe(true);
  });

  it("dequantizes uint8 with scale and offset, 255 meaning NaN", () => {
    const q = new Uint8Array([0, 127, 254, UINT8_NAN]);
    const { values } = decode({ buffer: q, dtype: "uint8", shape: [4], scale: 0.5, offset: -1 });
    expect(values[0]).toBe(-1);
    expect(values[1]).toBe(62.5);
    expect(values[2]).toBe(126);
    expect(Number.isNaN(values[3])).toBe(true);
  });

  it("reads int32", () => {
    const ints = new Int32Array([-5, 0, 2 ** 31 - 1]);
    const { values } = decode({ buffer: new DataView(ints.buffer), dtype: "int32", shape: [3] });
    expect(values).toBeInstanceOf(Int32Array);
    expect(Array.from(values)).toEqual([-5, 0, 2 ** 31 - 1]);
  });

  it("rejects a byte count that does not match the shape", () => {
    expect(() => decode({ buffer: new Uint8Array(12), dtype: "float32", shape: [2, 2] })).toThrow(/12 bytes for shape \[2,2\]/);
  });

  it("rejects unknown dtypes and non-buffers", () => {
    expect(() => decode({ buffer: new Uint8Array(4), dtype: "float64" as never, shape: [1] })).toThrow(/unknown dtype/);
    expect(() => bytesOf([1, 2, 3] as never)).toThrow(/expected a DataView/);
  });
});

describe("extent", () => {
  it("ignores NaN and infinities", () => {
    expect(extent([NaN, 3, -Infinity, -1, Infinity])).toEqual([-1, 3]);
  });
  it("is [0, 0] when nothing is finite", () => {
    expect(extent([NaN, NaN])).toEqual([0, 0]);
    expect(extent([])).toEqual([0, 0]);
  });
});
