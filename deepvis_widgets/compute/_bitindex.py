"""Packed on/off bits of float16 hidden states at one threshold (the index behind ``match``).

Layout: one row of little-endian ``uint64`` words per cell; bit ``t % 64`` of
word ``t // 64`` is 1 when the cell's state at token ``t`` is ``>= threshold``.
A row holds at least ``n_tokens + 1`` bits and every bit from ``n_tokens`` on
is 0, so a run of "on" always ends inside the row. Memory: ``n_cells *
ceil((n_tokens + 1) / 64) * 8`` bytes, about ``n_tokens * n_cells / 8``.

Everything here is internal to :mod:`deepvis_widgets.compute.hidden_states`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

WORD = np.dtype("<u8")
ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_F16_MAX = 65504.0
_F16_INF_BITS = 0x7C00


def f16_threshold(threshold: float) -> np.float16:
    """The smallest float16 ``h`` with ``float(h) >= threshold``.

    Then ``x >= h`` computed on float16 values equals ``float(x) >= threshold``,
    whatever rounding ``np.float16(threshold)`` would do.
    """
    t = float(threshold)
    if math.isnan(t):
        raise ValueError("threshold: expected a number, got nan")
    if t > _F16_MAX:
        return np.float16(np.inf)
    if t == -math.inf:
        return np.float16(-np.inf)
    if t < -_F16_MAX:
        return np.float16(-_F16_MAX)
    h = np.float16(t)
    if float(h) < t:
        h = np.nextafter(h, np.float16(np.inf))
    return h


def on_mask(values: np.ndarray, h: np.float16) -> np.ndarray:
    """``values >= h`` for a float16 array, computed on the int16 bit patterns.

    numpy compares float16 about 20x slower than int16 (it converts each
    element); the bit patterns of non-negative float16 values are ordered like
    the values, and negative ones in reverse. NaN is never on.
    """
    b = values.view(np.int16)
    hb = int(np.array(h, dtype=np.float16).view(np.int16))
    if hb > 0:  # h > 0: on <=> h <= x <= +inf
        on = b >= hb
        on &= b <= _F16_INF_BITS
        return on
    # h <= 0: every non-negative number, and negatives whose magnitude is <= |h|
    hmag = hb & 0x7FFF
    on = b >= 0
    on &= b <= _F16_INF_BITS
    on |= b <= -32768 + hmag
    return on


def _transpose8(x: np.ndarray) -> np.ndarray:
    """Transposes the 8x8 bit matrix in each uint64 (byte i = row i, bit j = column j)."""
    u = np.uint64
    t = (x ^ (x >> u(7))) & u(0x00AA00AA00AA00AA)
    x = x ^ t ^ (t << u(7))
    t = (x ^ (x >> u(14))) & u(0x0000CCCC0000CCCC)
    x = x ^ t ^ (t << u(14))
    t = (x ^ (x >> u(28))) & u(0x00000000F0F0F0F0)
    return x ^ t ^ (t << u(28))


def pack_time_major(on: np.ndarray) -> np.ndarray:
    """Packs a ``(rows, cells)`` bool array into ``(cells, rows // 8)`` bytes along time.

    ``rows`` must be a multiple of 8. Packing along the contiguous cell axis and
    transposing 8x8 bit blocks is ~4x faster than transposing the bools.
    """
    rows, cells = on.shape
    if cells % 8:
        on = np.concatenate([on, np.zeros((rows, 8 - cells % 8), dtype=bool)], axis=1)
    packed = np.packbits(on, axis=1, bitorder="little")  # (rows, cells8)
    c8 = packed.shape[1]
    blocks = np.ascontiguousarray(packed.reshape(rows // 8, 8, c8).transpose(2, 0, 1))
    words = _transpose8(blocks.view(WORD)[..., 0])  # (cells8, rows // 8)
    out = np.ascontiguousarray(words[..., None].view(np.uint8).transpose(0, 2, 1))
    return out.reshape(c8 * 8, rows // 8)[:cells]


def n_words(n_tokens: int) -> int:
    return (n_tokens + 1 + 63) // 64


# Window sizes for the run tables, about sqrt(2) apart (1 is n_on).
WINDOWS = np.array([1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256], dtype=np.int64)
# For a length L (clipped to WINDOWS[-1] + 1): index of the largest window <= L and
# of the smallest window >= L (clamped to the last; unused when L > WINDOWS[-1]).
_CLIP = int(WINDOWS[-1]) + 1
_BELOW = np.searchsorted(WINDOWS, np.arange(_CLIP + 1), side="right") - 1
_ABOVE_CLAMPED = np.minimum(np.searchsorted(WINDOWS, np.arange(_CLIP + 1), side="left"), len(WINDOWS) - 1)


@dataclass(frozen=True, eq=False)
class BitIndex:
    """One threshold's on/off bits in two layouts, plus run tables.

    ``cells``: ``(n_cells, n_words(n_tokens))`` words, a row per cell (counts
    over time, per-cell range tests). ``tokens``: ``(ceil(n_cells / 64),
    n_tokens + 1)`` words, bit ``c % 64`` of ``tokens[c // 64, t]`` for cell
    ``c`` at token ``t``, plus an all-zero last column ("which cells are on
    throughout a range": 8 words per token at 512 cells, word-major so every
    reduction runs over a contiguous 1-D array). ``runs[t, i]``: the number of
    cells on at every token of ``[t, t + WINDOWS[i])`` (0 past the end), which
    bounds, and for those lengths gives, the count for any range (:func:`bounds`);
    token-major, so the lookups for sorted ranges walk memory in order.
    """

    cells: np.ndarray
    tokens: np.ndarray
    runs: np.ndarray
    n_tokens: int

    @property
    def nbytes(self) -> int:
        return self.cells.nbytes + self.tokens.nbytes + self.runs.nbytes


def _popcount_rows(words: np.ndarray, dtype: type) -> np.ndarray:
    """Sum of set bits down each column of a word-major ``(n_words, n)`` array."""
    out = np.bitwise_count(words[0]).astype(dtype)
    for row in words[1:]:
        out += np.bitwise_count(row)
    return out


def _window_counts(tokens: np.ndarray, r0: int, r1: int, dtype: type) -> np.ndarray:
    """``runs[:, r0:r1]`` from the token words (reads up to ``WINDOWS[-1] - 1`` tokens past r1)."""
    wmax = int(WINDOWS[-1])
    block = tokens[:, r0 : min(r1 + wmax, tokens.shape[1])]
    if block.shape[1] < r1 - r0 + wmax:  # past the end every cell is off
        pad = np.zeros((block.shape[0], r1 - r0 + wmax - block.shape[1]), dtype=WORD)
        block = np.concatenate([block, pad], axis=1)
    n = r1 - r0
    out: np.ndarray = np.empty((len(WINDOWS), n), dtype=dtype)
    power = block  # AND over windows of `size` tokens, for every start in the block
    size = 1
    for i, d in enumerate(WINDOWS):
        while size * 2 <= d:
            power = power[:, : power.shape[1] - size] & power[:, size:]
            size *= 2
        shift = int(d) - size  # [t, t+d) = [t, t+size) and [t+d-size, t+d)
        win = power[:, :n] & power[:, shift : shift + n] if shift else power[:, :n]
        out[i] = _popcount_rows(win, dtype)
    return out


def build_bits(values: Any, h: np.float16, chunk_rows: int | None = None) -> BitIndex:
    """Builds the index from a float16 ``(n_tokens, n_cells)`` array.

    ``values`` may be a memory map: it is read once, in chunks of rows.
    """
    n_tokens, n_cells = values.shape
    if chunk_rows is None:  # ~32 MB of float16 per chunk
        chunk_rows = max(64, (1 << 24) // max(n_cells, 1) // 64 * 64)
    cells = np.zeros((n_cells, n_words(n_tokens)), dtype=WORD)
    n_cell_words = (n_cells + 63) // 64
    tokens = np.zeros((n_cell_words, n_tokens + 1), dtype=WORD)
    cell_bytes = cells.view(np.uint8)
    for r0 in range(0, n_tokens, chunk_rows):
        chunk = np.ascontiguousarray(values[r0 : r0 + chunk_rows], dtype=np.float16)
        on = on_mask(chunk, h)
        rows = on.shape[0]
        row_bytes = np.zeros((rows, n_cell_words * 8), dtype=np.uint8)
        row_bytes[:, : (n_cells + 7) // 8] = np.packbits(on, axis=1, bitorder="little")
        tokens[:, r0 : r0 + rows] = row_bytes.view(WORD).T
        if rows % 8:
            on = np.concatenate([on, np.zeros((8 - rows % 8, n_cells), dtype=bool)], axis=0)
        packed = pack_time_major(on)
        cell_bytes[:, r0 // 8 : r0 // 8 + packed.shape[1]] = packed
    dtype = np.uint8 if n_cells < 256 else np.uint16 if n_cells < 65536 else np.uint32
    runs = np.zeros((n_tokens + 1, len(WINDOWS)), dtype=dtype)
    step = max(1024, (1 << 22) // n_cell_words)
    for r0 in range(0, n_tokens, step):
        r1 = min(r0 + step, n_tokens)
        runs[r0:r1] = _window_counts(tokens, r0, r1, dtype).T
    return BitIndex(cells, tokens, runs, n_tokens)


def count_planes(bits: np.ndarray, cells: np.ndarray) -> list[np.ndarray]:
    """Per-token number of ``cells`` that are on, as bit planes (plane j = bit j of the count)."""
    planes: list[np.ndarray] = []
    tmp = np.empty(bits.shape[1], dtype=WORD)
    for i, c in enumerate(cells, start=1):
        if i.bit_length() > len(planes):
            planes.append(np.zeros(bits.shape[1], dtype=WORD))
        carry = bits[c].copy()
        for plane in planes:  # ripple-carry add of one bit row
            np.bitwise_and(plane, carry, out=tmp)
            np.bitwise_xor(plane, carry, out=plane)
            carry, tmp = tmp, carry
    return planes


def at_least(planes: list[np.ndarray], m: int) -> np.ndarray:
    """Bit mask of tokens whose count (given as bit planes) is ``>= m``; ``m >= 1``."""
    if m >= 1 << len(planes):
        return np.zeros_like(planes[0])
    less = np.zeros_like(planes[0])
    equal = np.full_like(planes[0], ALL_ONES)
    for j in reversed(range(len(planes))):
        if (m >> j) & 1:
            less |= equal & ~planes[j]
            equal &= planes[j]
        else:
            equal &= ~planes[j]
    return ~less


def set_bits(words: np.ndarray) -> np.ndarray:
    """Sorted positions of the 1 bits in a little-endian word array."""
    nz = np.flatnonzero(words)
    if nz.size == 0:
        return np.empty(0, dtype=np.int64)
    if nz.size * 4 > words.size:  # dense: unpack everything, positions come out directly
        return np.flatnonzero(np.unpackbits(words.view(np.uint8), bitorder="little").view(bool))
    unpacked = np.unpackbits(words[nz].view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    idx = np.flatnonzero(unpacked.view(bool))
    return nz[idx >> 6].astype(np.int64) * 64 + (idx & 63)


def shift_down(words: np.ndarray, k: int) -> np.ndarray:
    """Bit ``t`` of the result is bit ``t + k`` of ``words`` (0 past the end)."""
    q, r = divmod(k, 64)
    out = np.zeros_like(words)
    if q >= len(words):
        return out
    src = words[q:]
    out[: len(src)] = src >> np.uint64(r)
    if r:
        out[: len(src) - 1] |= src[1:] << np.uint64(64 - r)
    return out


def runs(mask: np.ndarray, min_length: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Maximal runs of 1 bits at least ``min_length`` long, as ``(starts, ends)``, ends exclusive.

    Shorter runs are removed in the bit domain first: the runs of
    ``mask[t] & ... & mask[t + L - 1]`` are those of length >= L, shortened by L - 1.
    """
    if min_length > 1:
        size = 1
        while size * 2 <= min_length:
            mask = mask & shift_down(mask, size)
            size *= 2
        if min_length > size:
            mask = mask & shift_down(mask, min_length - size)
    shifted = mask << np.uint64(1)
    shifted[1:] |= mask[:-1] >> np.uint64(63)
    edges = set_bits(mask ^ shifted)
    return edges[0::2], edges[1::2] + (min_length - 1)


def bit_at(bits: np.ndarray, rows: np.ndarray | None, pos: np.ndarray) -> np.ndarray:
    """``(n_rows, len(pos))`` bool: the bits of the cells ``rows`` (``None`` = all) at ``pos``."""
    words = bits[:, pos >> 6] if rows is None else bits[np.ix_(rows, pos >> 6)]
    return ((words >> (pos & 63).astype(np.uint64)) & np.uint64(1)).astype(bool)


def _batches(starts: np.ndarray, ends: np.ndarray, n_rows: int) -> Iterator[slice]:
    """Slices of candidates whose gathered words stay under ~32 MB."""
    spans = ((ends - 1) >> 6) - (starts >> 6) + 1
    budget = max(1, (1 << 22) // max(n_rows, 1))
    cum = np.cumsum(spans)
    i = 0
    while i < len(starts):
        base = cum[i - 1] if i else 0
        j = int(np.searchsorted(cum, base + budget, side="right"))
        j = max(j, i + 1)
        yield slice(i, j)
        i = j


def all_on(bits: np.ndarray, rows: np.ndarray | None, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``(n_rows, n_ranges)`` bool: is the cell on at every token of ``[start, end)``?

    ``rows`` selects cells (``None`` = all). Ranges must be non-empty.
    """
    n_rows = bits.shape[0] if rows is None else len(rows)
    out = np.empty((n_rows, len(starts)), dtype=bool)
    for sl in _batches(starts, ends, n_rows):
        s, e = starts[sl], ends[sl]
        w0 = s >> 6
        nw = ((e - 1) >> 6) - w0 + 1
        offs = np.zeros(len(s), dtype=np.int64)
        np.cumsum(nw[:-1], out=offs[1:])
        total = int(nw.sum())
        widx = np.repeat(w0 - offs, nw) + np.arange(total)
        # bits outside [s, e) in the first and last word are forced to 1
        force = np.zeros(total, dtype=WORD)
        one = np.uint64(1)
        force[offs] |= (one << (s & 63).astype(np.uint64)) - one
        last = offs + nw - 1
        hi = ((e - 1) & 63).astype(np.uint64)
        force[last] |= ~((one << hi << one) - one)
        gathered = bits[:, widx] if rows is None else bits[np.ix_(rows, widx)]
        gathered |= force
        out[:, sl] = np.bitwise_and.reduceat(gathered, offs, axis=1) == ALL_ONES
    return out


def count_on_throughout(
    index: BitIndex, starts: np.ndarray, ends: np.ndarray, left: bool, right: bool
) -> np.ndarray:
    """Per range: cells on at every token of ``[start, end)`` (and, if constrained,
    off at ``start - 1`` / ``end`` where those exist). int64, one per range.

    One 1-D ``reduceat`` per 64 cells. With the ranges sorted by start and
    passed as interleaved ``start, end`` indices, the odd segments (gaps, or a
    single row where ranges overlap) are computed and dropped: no gather, each
    token row read about once. When the ranges cover little of their span, the
    rows are gathered first instead.
    """
    total = np.zeros(len(starts), dtype=np.int64)
    if len(starts) == 0:
        return total
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    lengths = e - s
    covered = int(lengths.sum())
    lo, hi = int(s[0]), int(e.max()) + 1
    # per 64 cells: a gather costs ~5 ns per covered token, an interleaved
    # reduceat ~0.3 ns per spanned token plus ~18 ns per extra index
    if hi - lo <= 16 * covered + 64 * len(s):
        pairs = np.empty(2 * len(s), dtype=np.int64)
        pairs[0::2] = s - lo
        pairs[1::2] = e - lo
        gather = None
    else:
        offs = np.zeros(len(s), dtype=np.int64)
        np.cumsum(lengths[:-1], out=offs[1:])
        gather = np.repeat(s - offs, lengths) + np.arange(covered)
    has_left = s > 0
    counts = np.zeros(len(s), dtype=np.int64)
    for col in index.tokens:
        if gather is None:
            words = np.bitwise_and.reduceat(col[lo:hi], pairs)[0::2]
        else:
            words = np.bitwise_and.reduceat(np.take(col, gather), offs)
        if left:
            words[has_left] &= ~np.take(col, s[has_left] - 1)
        if right:  # the last column is all zero, so end == n_tokens needs no test
            words &= ~np.take(col, e)
        counts += np.bitwise_count(words)
    total[order] = counts
    return total


def bounds(
    index: BitIndex, starts: np.ndarray, ends: np.ndarray, left: bool, right: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds on :func:`count_on_throughout`, O(1) per range.

    A cell on throughout a window that contains the range is on throughout the
    range; one on throughout the range is on throughout any window inside it.
    Windows starting at ``start`` of the tabled sizes just above and below the
    length give the bounds (both in one cache line); they are equal (exact)
    when the length is a tabled size. A constrained border can only remove
    cells that are on there. (Windows ending at ``end`` tighten the bounds a
    little but cost a second scattered read per range.)
    """
    runs = index.runs
    flat = runs.reshape(-1)
    lengths = ends - starts
    clipped = np.minimum(lengths, _CLIP)
    row = starts * runs.shape[1]  # runs[t, i] is flat[t * n_windows + i]: one cache line per token
    upper = np.take(flat, row + np.take(_BELOW, clipped)).astype(np.int64)
    lower = np.take(flat, row + np.take(_ABOVE_CLAMPED, clipped)).astype(np.int64)
    lower *= lengths <= WINDOWS[-1]
    if left or right:
        n_on = runs[:, 0]
        if left:
            inside = starts > 0
            lower[inside] -= n_on[starts[inside] - 1]
        if right:  # n_on[n_tokens] is 0
            lower -= n_on[ends]
        np.maximum(lower, 0, out=lower)
    return lower, upper
