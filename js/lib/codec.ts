// Twin of deepvis_widgets/_arrays.py: decodes {buffer, dtype, shape} payloads.
//
// Bytes reach a view as a DataView (ipywidgets and our standalone page both
// deliver one) whose byteOffset is often non-zero because several buffers
// share one ArrayBuffer. Every typed array here is built from the view's
// byteOffset/byteLength, never from `.buffer` alone.

export type DType = "float32" | "float16" | "uint8" | "int32";

export interface Encoded {
  buffer: DataView | ArrayBuffer | ArrayBufferView;
  dtype: DType;
  shape: number[];
  /** uint8 only: value = offset + q * scale; q == 255 means NaN. */
  scale?: number;
  offset?: number;
}

export interface Decoded {
  values: Float32Array | Int32Array;
  shape: number[];
}

export const UINT8_NAN = 255;

/** The bytes of any buffer-like, honouring byteOffset and byteLength. */
export function bytesOf(buf: Encoded["buffer"]): Uint8Array {
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf);
  if (ArrayBuffer.isView(buf)) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  throw new TypeError(`array payload: expected a DataView or ArrayBuffer, got ${Object.prototype.toString.call(buf)}`);
}

export function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

const ITEMSIZE: Record<DType, number> = { float32: 4, float16: 2, uint8: 1, int32: 4 };

/** Reads `n` elements of `size` bytes, copying only when the offset is misaligned. */
function aligned(bytes: Uint8Array, size: number): Uint8Array {
  if (bytes.byteOffset % size === 0) return bytes;
  return bytes.slice();
}

// float16 -> float32 by table: exponent/mantissa handled per half value.
let HALF_TABLE: Float32Array | null = null;
function halfTable(): Float32Array {
  if (HALF_TABLE) return HALF_TABLE;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    let v: number;
    if (e === 0) v = m * 2 ** -24;
    else if (e === 31) v = m ? NaN : Infinity;
    else v = (1 + m / 1024) * 2 ** (e - 15);
    t[h] = s * v;
  }
  HALF_TABLE = t;
  return t;
}

export function decode(enc: Encoded): Decoded {
  if (!enc || typeof enc !== "object") throw new TypeError("array payload: expected an object {buffer, dtype, shape}");
  const { dtype, shape } = enc;
  if (!(dtype in ITEMSIZE)) throw new TypeError(`array payload: unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape)) throw new TypeError("array payload: shape must be an array");
  const n = sizeOf(shape);
  const size = ITEMSIZE[dtype];
  const bytes = aligned(bytesOf(enc.buffer), size);
  if (bytes.byteLength !== n * size) {
    throw new RangeError(`array payload: ${bytes.byteLength} bytes for shape [${shape}] of ${dtype} (expected ${n * size})`);
  }
  switch (dtype) {
    case "float32":
      return { values: new Float32Array(bytes.buffer, bytes.byteOffset, n), shape };
    case "int32":
      return { values: new Int32Array(bytes.buffer, bytes.byteOffset, n), shape };
    case "float16": {
      const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
      const table = halfTable();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[halves[i]];
      return { values: out, shape };
    }
    case "uint8": {
      const scale = enc.scale ?? 1;
      const offset = enc.offset ?? 0;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const q = bytes[i];
        out[i] = q === UINT8_NAN ? NaN : offset + q * scale;
      }
      return { values: out, shape };
    }
  }
}

/** Finite min and max, ignoring NaN; [0, 0] for an all-NaN or empty array. */
export function extent(values: ArrayLike<number>): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : [0, 0];
}

/** Puts the buffers of a command reply back where Python took them out ({"$buffer": i}); mirrors command_reply() in _arrays.py. */
export function withBuffers(value: any, buffers: DataView[]): any {
  if (value && typeof value === "object") {
    if (typeof value.$buffer === "number") return buffers[value.$buffer];
    if (Array.isArray(value)) return value.map((v) => withBuffers(v, buffers));
    const out: Record<string, any> = {};
    for (const [k, v] of Object.entries(value)) out[k] = withBuffers(v, buffers);
    return out;
  }
  return value;
}
