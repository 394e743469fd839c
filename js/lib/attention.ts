// Attention layers as the head and model views read them. Mirrors
// deepvis_widgets/widgets/attention.py (_AttentionView): each layer is a
// payload {dense: uint8 (heads, q, k)} or {index: int32, value: uint8}
// (heads, q, top_k), embedded in the `_attention` trait or fetched from the
// kernel with ctx.invoke. Weights stay as uint8 bytes (one byte per weight,
// decoded through a 256-entry table), so a 12 x 12 x 512 x 512 model costs
// 38 MB in the page, not 150 MB of float32.

import { bytesOf, decode, withBuffers, type Encoded } from "./codec";
import type { BaseTraits, ViewContext } from "./base";

/** One stack's description (widgets/attention.py: _stack_meta). */
export interface StackMeta {
  name: string;
  tokens: string[];
  tokens_k: string[];
  sentence_b: number | null;
  special: number[];
  special_k: number[];
  causal: boolean;
  cross: boolean;
  layer_names: string[];
  heads: number;
  mode: "dense" | "top_k";
  top_k: number | null;
  rollout: boolean;
}

export interface LayerPayload {
  dense?: Encoded;
  index?: Encoded;
  value?: Encoded;
}

/** Traits shared by HeadView and ModelView. */
export interface AttentionTraits extends BaseTraits {
  stacks: StackMeta[];
  _attention: Record<string, (LayerPayload | null)[]>;
  stack: string;
  layer: number;
  heads: number[];
  sentence_filter: "all" | "A->A" | "A->B" | "B->A" | "B->B";
  special: "show" | "dim" | "hide";
  max_lines: number;
}

/** One decoded layer: bytes plus the table that turns a byte into a weight. */
export interface Layer {
  heads: number;
  q: number;
  k: number;
  /** Keys per query: k for dense layers, top_k for pruned ones. */
  width: number;
  /** (heads, q, width) quantized weights. */
  bytes: Uint8Array;
  /** (heads, q, width) key indices; null for dense layers (index = position). */
  index: Int32Array | null;
  /** weight of byte b. */
  table: Float32Array;
}

function tableOf(enc: Encoded): Float32Array {
  const t = new Float32Array(256);
  const scale = enc.scale ?? 1;
  const offset = enc.offset ?? 0;
  for (let b = 0; b < 256; b++) t[b] = b === 255 ? NaN : offset + b * scale;
  return t;
}

/** Reads a layer payload without expanding the weights to float32. */
export function layerOf(payload: LayerPayload): Layer {
  const enc = payload.dense ?? payload.value;
  if (!enc) throw new TypeError("attention layer: expected a 'dense' or 'index'/'value' payload");
  if (enc.dtype !== "uint8") throw new TypeError(`attention layer: expected uint8 weights, got ${enc.dtype}`);
  const [heads, q, width] = enc.shape;
  const bytes = bytesOf(enc.buffer);
  if (bytes.length !== heads * q * width) throw new RangeError(`attention layer: ${bytes.length} bytes for shape [${enc.shape}]`);
  let index: Int32Array | null = null;
  let k = width;
  if (!payload.dense) {
    if (!payload.index) throw new TypeError("attention layer: a pruned layer needs 'index'");
    const dec = decode(payload.index);
    index = dec.values as Int32Array;
    if (index.length !== bytes.length) throw new RangeError("attention layer: index and value shapes differ");
    k = -1; // filled by the caller from the stack's tokens_k
  }
  return { heads, q, k, width, bytes, index, table: tableOf(enc) };
}


/** Categorical colours, one per head (Tableau 10 then 10 more), repeated beyond 20 heads. */
export const HEAD_COLORS: [number, number, number][] = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
  [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207], [174, 199, 232], [255, 187, 120],
  [152, 223, 138], [255, 152, 150], [197, 176, 213], [196, 156, 148], [247, 182, 210], [199, 199, 199],
  [219, 219, 141], [158, 218, 229],
];

export function headColor(h: number, alpha = 1): string {
  const [r, g, b] = HEAD_COLORS[h % HEAD_COLORS.length];
  return alpha >= 1 ? `rgb(${r},${g},${b})` : `rgba(${r},${g},${b},${alpha.toFixed(3)})`;
}

/**
 * Layers by (stack, index): embedded ones at once, others from the kernel.
 * The kernel is asked at most once whether it is there (a ping): pages saved
 * without one (save_html, exported notebooks) never wait on a request again.
 */
export class AttentionStore<T extends AttentionTraits> {
  private cache = new Map<string, Layer>();
  private pending = new Map<string, Promise<Layer>>();
  private alive: Promise<boolean> | null = null;

  constructor(private ctx: ViewContext<T>) {}

  meta(stack: string): StackMeta {
    const all = this.ctx.model.get("stacks");
    const m = all.find((s) => s.name === stack) ?? all[0];
    if (!m) throw new Error("stacks: the view received no attention");
    return m;
  }

  private finish(stack: string, layer: Layer): Layer {
    if (layer.index) layer.k = this.meta(stack).tokens_k.length;
    return layer;
  }

  /** The layer if it is already here (embedded or fetched), else null. */
  peek(stack: string, layer: number): Layer | null {
    const key = `${stack}\u0000${layer}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const payload = this.ctx.model.get("_attention")?.[stack]?.[layer];
    if (!payload) return null;
    const decoded = this.finish(stack, layerOf(payload));
    this.cache.set(key, decoded);
    return decoded;
  }

  /** Whether a kernel answers commands (asked once per view). */
  kernel(): Promise<boolean> {
    this.alive ??= this.ctx.invoke("_attention_ping").then(
      () => true,
      () => false,
    );
    return this.alive;
  }

  /** The layer, asking the kernel for it when it was not embedded. */
  async load(stack: string, layer: number): Promise<Layer> {
    const hit = this.peek(stack, layer);
    if (hit) return hit;
    const key = `${stack}\u0000${layer}`;
    let p = this.pending.get(key);
    if (!p) {
      p = (async () => {
        if (!(await this.kernel())) {
          throw new Error(`layer ${this.meta(stack).layer_names[layer] ?? layer} was not saved with this page (embed=False) and no kernel is running`);
        }
        const [reply, buffers] = await this.ctx.invoke("_attention_layer", { stack, layer });
        const decoded = this.finish(stack, layerOf(withBuffers(reply, buffers)));
        this.cache.set(key, decoded);
        return decoded;
      })();
      p.finally(() => this.pending.delete(key)).catch(() => undefined);
      this.pending.set(key, p);
    }
    return p;
  }

  /** Exact float weights of one token over all heads ((heads, n) row-major), or null without a kernel. */
  async row(stack: string, layer: number, side: "query" | "key", index: number): Promise<Float32Array | null> {
    if (!(await this.kernel())) return null;
    try {
      const [reply, buffers] = await this.ctx.invoke("_attention_row", { stack, layer, side, index });
      return decode(withBuffers(reply, buffers).row).values as Float32Array;
    } catch {
      return null;
    }
  }
}
