// happy-dom has no canvas backend (getContext returns null without a canvas
// adapter), so tests that check painted pixels install this minimal 2D
// context: it hands out ImageData-shaped buffers and records what each
// canvas was last given by putImageData.

export interface FakeImageData {
  width: number;
  height: number;
  data: Uint8ClampedArray;
}

const painted = new WeakMap<HTMLCanvasElement, FakeImageData>();
let original: HTMLCanvasElement["getContext"] | null = null;

export function installCanvasStub(): void {
  original ??= HTMLCanvasElement.prototype.getContext;
  (HTMLCanvasElement.prototype as any).getContext = function (this: HTMLCanvasElement) {
    const canvas = this;
    return {
      createImageData: (width: number, height: number): FakeImageData => ({ width, height, data: new Uint8ClampedArray(width * height * 4) }),
      putImageData: (img: FakeImageData) => painted.set(canvas, img),
    };
  };
}

export function removeCanvasStub(): void {
  if (original) HTMLCanvasElement.prototype.getContext = original;
  original = null;
}

/** RGBA of pixel (x, y) as last painted into `canvas`. */
export function pixel(canvas: HTMLCanvasElement, x: number, y: number): number[] {
  const img = painted.get(canvas);
  if (!img) throw new Error("canvas was never painted");
  const o = (y * img.width + x) * 4;
  return Array.from(img.data.slice(o, o + 4));
}

export function wasPainted(canvas: HTMLCanvasElement): boolean {
  return painted.has(canvas);
}
