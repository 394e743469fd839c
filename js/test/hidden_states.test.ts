import { describe, expect, it } from "vitest";
import { withBuffers } from "../lib/codec";
import { CorpusStore, cellColor, cellName, matchCells, selectCells, type WindowPayload } from "../lib/hidden_states";

/** A (tokens x cells) window payload from per-cell columns, values as float32 bytes. */
function window(start: number, columns: number[][], tokens?: string[], docs: number[] = [start]): WindowPayload {
  const n = columns[0].length;
  const C = columns.length;
  const values = new Float32Array(n * C);
  for (let t = 0; t < n; t++) for (let c = 0; c < C; c++) values[t * C + c] = columns[c][t];
  return {
    start,
    end: start + n,
    tokens: tokens ?? Array.from({ length: n }, (_, i) => `t${start + i}`),
    docs,
    values: { buffer: new DataView(values.buffer), dtype: "float32", shape: [n, C] },
  };
}

// Six tokens, four cells, threshold 0.5 in the tests below.
const CELLS = [
  [0, 1, 1, 1, 0, 0], // 0: on over [1, 4)
  [1, 1, 1, 1, 1, 1], // 1: always on
  [0, 0.9, 0.6, 0.7, 0, 0], // 2: on over [1, 4), weaker
  [0, 1, 1, 1, 0, 0], // 3: same as 0
];
const TOKENS = ["The", " <b>", "cat", "\n", "sat", ""];

function store(nTokens = 6, fetch: ConstructorParameters<typeof CorpusStore>[3] = null): CorpusStore {
  return new CorpusStore(nTokens, 4, window(0, CELLS, TOKENS, [0, 3]), fetch);
}

describe("CorpusStore (saved part only, no kernel)", () => {
  it("serves tokens, values, rows and document starts from the embedded window", () => {
    const s = store();
    expect(s.saved).toBe(6);
    expect(s.canFetch).toBe(false);
    expect(s.token(1)).toBe(" <b>");
    expect(s.value(2, 2)).toBeCloseTo(0.6, 6);
    expect(Array.from(s.row(3)!)).toEqual([1, 1, Math.fround(0.7), 1]);
    expect(s.isDocStart(3)).toBe(true);
    expect(s.isDocStart(2)).toBe(false);
    expect(s.savedTokens()).toBe(TOKENS);
    expect(s.savedValues().length).toBe(24);
  });

  it("answers NaN / undefined / null beyond what it holds", () => {
    const s = store(600);
    expect(s.has(5)).toBe(true);
    expect(s.has(6)).toBe(false);
    expect(s.has(-1)).toBe(false);
    expect(s.value(300, 0)).toBeNaN();
    expect(s.token(300)).toBeUndefined();
    expect(s.row(300)).toBeNull();
    expect(s.hasRange(0, 6)).toBe(true);
    expect(s.hasRange(0, 7)).toBe(false);
  });

  it("rejects an embedded window whose values do not match tokens x cells", () => {
    expect(() => new CorpusStore(6, 3, window(0, CELLS), null)).toThrow(/expected 6 x 3 values, got 24/);
  });

  it("refuses to fetch without a kernel", async () => {
    await expect(store(600).ensure(0, 300)).rejects.toThrow(/no kernel/);
    await expect(store(600).ensure(0, 6)).resolves.toBeUndefined(); // already here
  });
});

describe("CorpusStore (with a kernel)", () => {
  const zeros = (n: number) => new Array(n).fill(0);

  it("fetches the blocks covering a range once and then serves them", async () => {
    const asked: [number, number][] = [];
    const s = store(600, async (a, b) => {
      asked.push([a, b]);
      const n = b - a;
      return window(a, [zeros(n), zeros(n), Array.from({ length: n }, (_, i) => a + i), zeros(n)], undefined, []);
    });
    await s.ensure(250, 300); // blocks 0 and 1
    await s.ensure(260, 270); // nothing new
    expect(asked).toEqual([[0, 256], [256, 512]]);
    expect(s.value(300, 2)).toBe(300);
    expect(s.token(511)).toBe("t511");
    expect(s.value(3, 1)).toBe(1); // the saved part still wins below `saved`
    expect(s.hasRange(250, 512)).toBe(true);
    expect(s.hasRange(250, 513)).toBe(false);
  });

  it("remembers a failed block until fetching is set again", async () => {
    let calls = 0;
    const s = store(600, () => {
      calls++;
      return Promise.reject(new Error("kernel busy"));
    });
    await expect(s.ensure(300, 310)).rejects.toThrow("kernel busy");
    await expect(s.ensure(300, 310)).rejects.toThrow("kernel busy");
    expect(calls).toBe(1);
    s.setFetch(async (a, b) => window(a, [zeros(b - a), zeros(b - a), zeros(b - a), zeros(b - a)], undefined, []));
    await expect(s.ensure(300, 310)).resolves.toBeUndefined();
  });
});

describe("withBuffers", () => {
  it("replaces {$buffer: i} placeholders at any depth and leaves the rest", () => {
    const bufs = [new DataView(new ArrayBuffer(1)), new DataView(new ArrayBuffer(2))];
    const out = withBuffers({ a: { $buffer: 1 }, b: [{ $buffer: 0 }, 3, "x"], c: null }, bufs);
    expect(out.a).toBe(bufs[1]);
    expect(out.b[0]).toBe(bufs[0]);
    expect(out.b.slice(1)).toEqual([3, "x"]);
    expect(out.c).toBeNull();
  });
});

describe("selectCells", () => {
  it("keeps cells on over the whole range and off just outside, best margin first, ties by index", () => {
    // cells 0 and 3: mean 1 - 0.5; cell 2: mean 0.733 - 0.5; cell 1 is on before the range.
    const r = selectCells(store(), 1, 4, 0.5)!;
    expect(r.cells).toEqual([0, 3, 2]);
    expect(r.scores[0]).toBe(0.5);
    expect(r.scores[1]).toBe(0.5);
    expect(r.scores[2]).toBeCloseTo((0.9 + 0.6 + 0.7) / 3 - 0.5, 6);
  });

  it("rejects cells still on just after the range", () => {
    // [1, 3): every candidate is on at token 3 too.
    expect(selectCells(store(), 1, 3, 0.5)!.cells).toEqual([]);
  });

  it("has no outside to check at the corpus ends", () => {
    expect(selectCells(store(), 0, 6, 0.5)!.cells).toEqual([1]);
  });

  it("counts a value equal to the threshold as on, NaN as off", () => {
    const s = new CorpusStore(3, 2, window(0, [[0, 0.5, 0], [0, NaN, 0]]), null);
    expect(selectCells(s, 1, 2, 0.5)!.cells).toEqual([0]);
  });

  it("is null when the token after the range is not loaded", () => {
    expect(selectCells(store(600), 4, 6, 0.5)).toBeNull();
    expect(selectCells(store(600), 1, 4, 0.5)).not.toBeNull();
  });
});

describe("matchCells", () => {
  // Eight tokens: cell 0 on over [1, 5), cell 1 on over [3, 7), cell 2 always on (not selected).
  const n = 8;
  const C = 3;
  const cols = [
    [0, 1, 1, 1, 1, 0, 0, 0],
    [0, 0, 0, 1, 1, 1, 1, 0],
    [1, 1, 1, 1, 1, 1, 1, 1],
  ];
  const values = new Float32Array(n * C);
  for (let t = 0; t < n; t++) for (let c = 0; c < C; c++) values[t * C + c] = cols[c][t];
  const all = { topK: 10, length: null };

  it("finds a run per level, ranked by intersection then union", () => {
    expect(matchCells(values, n, C, [0, 1], 0.5, all)).toEqual([
      { start: 3, end: 5, length: 2, intersection: 2, union: 3 }, // both on; cell 2 on too
      { start: 1, end: 7, length: 6, intersection: 0, union: 3 }, // at least one on; only cell 2 on throughout
    ]);
  });

  it("ignores duplicate and unordered cell lists", () => {
    expect(matchCells(values, n, C, [1, 0, 1], 0.5, all)).toEqual(matchCells(values, n, C, [0, 1], 0.5, all));
  });

  it("applies topK, an exact length, and minLength", () => {
    expect(matchCells(values, n, C, [0, 1], 0.5, { topK: 1, length: null }).map((r) => r.start)).toEqual([3]);
    expect(matchCells(values, n, C, [0, 1], 0.5, { topK: 10, length: 6 }).map((r) => [r.start, r.end])).toEqual([[1, 7]]);
    expect(matchCells(values, n, C, [0, 1], 0.5, { topK: 10, length: 3 })).toEqual([]);
    expect(matchCells(values, n, C, [0, 1], 0.5, { topK: 10, length: null, minLength: 3 }).map((r) => r.start)).toEqual([1]);
  });

  it("lists a run found at several levels once", () => {
    // cells 0 and 3 identical: [1, 4) is the run at level 1 and at level 2.
    // All four cells are on over it, so union = 4 active + 2 selected - 2 in both.
    const v = store().savedValues();
    expect(matchCells(v, 6, 4, [0, 3], 0.5, all)).toEqual([{ start: 1, end: 4, length: 3, intersection: 2, union: 4 }]);
  });

  it("is empty with no cells or no tokens", () => {
    expect(matchCells(values, n, C, [], 0.5, all)).toEqual([]);
    expect(matchCells(values, 0, C, [0], 0.5, all)).toEqual([]);
  });
});

describe("cellName and cellColor", () => {
  it("uses a label when there is one, else 'cell c'; labels are returned verbatim", () => {
    const labels = ["gate", "<script>x</script>"];
    expect(cellName(labels, 0)).toBe("gate");
    expect(cellName(labels, 1)).toBe("<script>x</script>");
    expect(cellName(labels, 2)).toBe("cell 2");
    expect(cellName([], 0)).toBe("cell 0");
  });
  it("cycles 20 distinct colours", () => {
    const first = Array.from({ length: 20 }, (_, i) => cellColor(i));
    expect(new Set(first).size).toBe(20);
    expect(cellColor(20)).toBe(cellColor(0));
    expect(cellColor(47)).toBe(cellColor(7));
  });
});
