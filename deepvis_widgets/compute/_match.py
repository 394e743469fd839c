"""LSTMVis select and match on float16 hidden states.

The rules follow LSTMVis (Strobelt et al. 2017), ``lstmdata/data_handler.py``
``query_similar_activations``; see :meth:`HiddenStates.match` for the exact
statement. Two implementations share one driver: ``_BitBackend`` reads the
packed bit index of :mod:`._bitindex`, ``_DenseBackend`` thresholds the float16
states directly (the plain numpy scan the benchmark compares against).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from . import _bitindex as bx

__all__ = ["Matches", "Selection"]


@dataclass(frozen=True, eq=False)
class Selection:
    """Cells that are on over a token range and off just outside it (LSTMVis's select).

    Attributes
    ----------
    start, end
        The token range ``[start, end)``.
    threshold
        A cell is "on" at a token when its state is ``>= threshold``.
    cells
        Cell ids (int64), best first.
    scores
        Mean of ``state - threshold`` over the range for each cell (float32), same order.

    Example
    -------
    >>> import numpy as np
    >>> from deepvis_widgets.compute.hidden_states import HiddenStates
    >>> hs = HiddenStates(np.array([[0.0], [0.9], [0.8], [0.1]]), list("abcd"))
    >>> sel = hs.select(1, 3, threshold=0.5)
    >>> sel.cells.tolist(), round(float(sel.scores[0]), 2)
    ([0], 0.35)
    """

    start: int
    end: int
    threshold: float
    cells: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.cells)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (JSON-ready), for widget traits."""
        return {
            "start": self.start,
            "end": self.end,
            "threshold": self.threshold,
            "cells": self.cells.tolist(),
            "scores": [float(s) for s in self.scores],
        }


@dataclass(frozen=True, eq=False)
class Matches:
    """Ranked matches of a cell selection (LSTMVis's match); arrays are in rank order.

    Attributes
    ----------
    cells
        The selected cells that were matched (sorted, unique).
    threshold
        The on/off threshold used.
    starts, lengths
        Token ranges ``[start, start + length)`` of the matches (int64).
    intersection
        Selected cells on over the whole range (and off at the constrained
        borders), per match.
    union
        ``len(cells)`` plus the other cells that satisfy the same condition.

    Example
    -------
    >>> import numpy as np
    >>> from deepvis_widgets.compute.hidden_states import HiddenStates
    >>> hs = HiddenStates(np.array([[1.0], [1.0], [0.0], [1.0], [1.0], [1.0]]), list("abcdef"))
    >>> m = hs.match([0], threshold=0.5)
    >>> m.starts.tolist(), m.lengths.tolist()
    ([3, 0], [3, 2])
    """

    cells: np.ndarray
    threshold: float
    starts: np.ndarray
    lengths: np.ndarray
    intersection: np.ndarray
    union: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ends(self) -> np.ndarray:
        """Exclusive ends of the matched ranges."""
        return self.starts + self.lengths

    @property
    def jaccard(self) -> np.ndarray:
        """``intersection / union`` per match (LSTMVis shows it as the match quality)."""
        return self.intersection / np.maximum(self.union, 1)

    def __len__(self) -> int:
        return len(self.starts)

    def to_records(self) -> list[dict[str, int]]:
        """One dict per match, in rank order: start, end, length, intersection, union."""
        return [
            {"start": int(s), "end": int(s + n), "length": int(n), "intersection": int(i), "union": int(u)}
            for s, n, i, u in zip(self.starts, self.lengths, self.intersection, self.union, strict=True)
        ]


def select_cells(values: Any, start: int, end: int, threshold: float) -> Selection:
    """LSTMVis's select on a float16 ``(n_tokens, n_cells)`` array; arguments already checked."""
    n_tokens = values.shape[0]
    h = bx.f16_threshold(threshold)
    lo, hi = max(start - 1, 0), min(end + 1, n_tokens)
    window = np.ascontiguousarray(values[lo:hi], dtype=np.float16)
    on = bx.on_mask(window, h)
    inside = on[start - lo : end - lo]
    keep = inside.all(axis=0)
    if start > 0:
        keep &= ~on[0]
    if end < n_tokens:
        keep &= ~on[-1]
    cells = np.flatnonzero(keep)
    margin = window[start - lo : end - lo, cells].astype(np.float64).mean(axis=0) - float(threshold)
    order = np.lexsort((cells, -margin))
    return Selection(int(start), int(end), float(threshold), cells[order].astype(np.int64), margin[order].astype(np.float32))


class _Backend(Protocol):
    n_tokens: int
    n_cells: int

    def max_count(self) -> int:
        """The largest number of selected cells on at one token."""
        ...

    def count_runs(self, m: int, min_length: int) -> tuple[np.ndarray, np.ndarray]:
        """Maximal runs of at least ``min_length`` tokens where at least ``m`` selected cells are on."""
        ...

    def n_active(
        self, selected_only: bool, s: np.ndarray, e: np.ndarray, left: bool, right: bool
    ) -> np.ndarray:
        """Per range: cells on over ``[s, e)`` (and off at the constrained borders)."""
        ...

    def bounds(
        self, s: np.ndarray, e: np.ndarray, left: bool, right: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cheap lower and upper bounds on ``n_active(False, ...)``."""
        ...


class _BitBackend:
    """Reads the packed index: counts as bit planes, ranges as word gathers."""

    def __init__(self, index: bx.BitIndex, cells: np.ndarray) -> None:
        self.n_tokens = index.n_tokens
        self.n_cells = index.cells.shape[0]
        self._index = index
        self._cells = cells
        self._planes = bx.count_planes(index.cells, cells)

    def max_count(self) -> int:
        lo, hi = 0, len(self._cells)  # binary search: count >= lo somewhere, never > hi
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if bx.at_least(self._planes, mid).any():
                lo = mid
            else:
                hi = mid - 1
        return lo

    def count_runs(self, m: int, min_length: int) -> tuple[np.ndarray, np.ndarray]:
        return bx.runs(bx.at_least(self._planes, m), min_length)

    def n_active(
        self, selected_only: bool, s: np.ndarray, e: np.ndarray, left: bool, right: bool
    ) -> np.ndarray:
        if selected_only:  # few rows of the cell-major layout
            bits = self._index.cells
            ok = bx.all_on(bits, self._cells, s, e)
            if left and (has := s > 0).any():
                ok[:, has] &= ~bx.bit_at(bits, self._cells, s[has] - 1)
            if right and (has := e < self.n_tokens).any():
                ok[:, has] &= ~bx.bit_at(bits, self._cells, e[has])
            return ok.sum(axis=0)
        return bx.count_on_throughout(self._index, s, e, left, right)

    def bounds(
        self, s: np.ndarray, e: np.ndarray, left: bool, right: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        return bx.bounds(self._index, s, e, left, right)


class _DenseBackend:
    """Thresholds the float16 states with plain numpy, no index (the baseline)."""

    def __init__(self, values: Any, threshold: float, cells: np.ndarray) -> None:
        self.n_tokens, self.n_cells = values.shape
        self._values = values
        self._threshold = np.float32(threshold)
        self._cells = cells
        on = np.asarray(values[:, cells], dtype=np.float32) >= self._threshold
        self._count = on.sum(axis=1)

    def max_count(self) -> int:
        return int(self._count.max())

    def count_runs(self, m: int, min_length: int) -> tuple[np.ndarray, np.ndarray]:
        ge = np.concatenate([[False], self._count >= m, [False]])
        edges = np.flatnonzero(ge[1:] != ge[:-1])
        starts, ends = edges[0::2], edges[1::2]
        keep = ends - starts >= min_length
        return starts[keep], ends[keep]

    def _on(self, selected_only: bool, idx: np.ndarray) -> np.ndarray:
        block = self._values[idx]
        if selected_only:
            block = block[:, self._cells]
        return np.asarray(block, dtype=np.float32) >= self._threshold

    def n_active(
        self, selected_only: bool, s: np.ndarray, e: np.ndarray, left: bool, right: bool
    ) -> np.ndarray:
        out = np.empty(len(s), dtype=np.int64)
        lengths = e - s
        cum = np.cumsum(lengths)
        i = 0
        while i < len(s):  # batches of about 64k gathered rows
            j = max(int(np.searchsorted(cum, (cum[i - 1] if i else 0) + (1 << 16), side="right")), i + 1)
            bs, be, bl = s[i:j], e[i:j], lengths[i:j]
            offs = np.concatenate([[0], np.cumsum(bl)[:-1]])
            idx = np.repeat(bs - offs, bl) + np.arange(int(bl.sum()))
            ok = np.logical_and.reduceat(self._on(selected_only, idx), offs, axis=0)
            if left and (has := bs > 0).any():
                ok[has] &= ~self._on(selected_only, bs[has] - 1)
            if right and (has := be < self.n_tokens).any():
                ok[has] &= ~self._on(selected_only, be[has])
            out[i:j] = ok.sum(axis=1)
            i = j
        return out

    def bounds(
        self, s: np.ndarray, e: np.ndarray, left: bool, right: bool
    ) -> tuple[np.ndarray, np.ndarray]:  # none: the plain scan computes every union
        return np.zeros(len(s), dtype=np.int64), np.full(len(s), self.n_cells, dtype=np.int64)


def _isin_sorted(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys


def match_cells(
    backend: _Backend,
    cells: np.ndarray,
    threshold: float,
    *,
    top_k: int | None,
    length: int | None,
    min_length: int,
    constrain_left: bool,
    constrain_right: bool,
) -> Matches:
    """The LSTMVis match on either backend; arguments already checked (cells sorted, unique)."""
    k = len(cells)
    n1 = backend.n_tokens + 1
    found_s: list[np.ndarray] = []
    found_e: list[np.ndarray] = []
    found_i: list[np.ndarray] = []
    hist = np.zeros(k + 1, dtype=np.int64)
    prev_keys = np.empty(0, dtype=np.int64)
    stop = 0
    levels = 0
    for m in range(backend.max_count(), 0, -1):  # levels above the maximum have no runs
        levels += 1
        s, e = backend.count_runs(m, min_length if length is None else length)
        if length is not None:
            keep = e - s == length
            s, e = s[keep], e[keep]
        keys = s * n1 + e
        # a run that is also a run one level up was already collected there
        dup = _isin_sorted(keys, prev_keys)
        prev_keys = keys
        s, e = s[~dup], e[~dup]
        if len(s):
            if m == k and not (constrain_left or constrain_right):
                inter = np.full(len(s), k, dtype=np.int64)  # count == k: every selected cell is on
            else:
                inter = backend.n_active(True, s, e, constrain_left, constrain_right)
            found_s.append(s)
            found_e.append(e)
            found_i.append(inter)
            hist += np.bincount(inter, minlength=k + 1)
        # every candidate with intersection >= m is a run at a level >= m
        if top_k is not None and hist[m:].sum() >= top_k:
            stop = m
            break
    starts = np.concatenate(found_s) if found_s else np.empty(0, dtype=np.int64)
    ends = np.concatenate(found_e) if found_e else np.empty(0, dtype=np.int64)
    inter = np.concatenate(found_i) if found_i else np.empty(0, dtype=np.int64)
    n_candidates = len(starts)
    keep = inter >= stop
    starts, ends, inter = starts[keep], ends[keep], inter[keep]
    n_out = len(starts) if top_k is None else min(top_k, len(starts))
    if n_out == 0:
        empty = np.empty(0, dtype=np.int64)
        return Matches(cells, float(threshold), empty, empty, empty, empty, {"levels": levels, "candidates": n_candidates})
    # Exact unions only where needed: at least n_out candidates have a key
    # (-intersection, union) at most their upper-bound key, so the n_out-th
    # smallest upper-bound key caps the answer; candidates whose lower-bound
    # key exceeds it are out, and equal bounds are already exact.
    width = k + backend.n_cells + 1
    lower, upper = backend.bounds(starts, ends, constrain_left, constrain_right)
    lower = np.maximum(lower, inter)
    upper = np.maximum(upper, lower)
    key_hi = -inter * width + upper
    kth = np.partition(key_hi, n_out - 1)[n_out - 1]
    need = np.flatnonzero(-inter * width + lower <= kth)
    starts, ends, inter, lower, upper = starts[need], ends[need], inter[need], lower[need], upper[need]
    active = lower.copy()
    open_ = np.flatnonzero(lower < upper)
    if len(open_):
        active[open_] = backend.n_active(False, starts[open_], ends[open_], constrain_left, constrain_right)
    union = active + k - inter
    order = np.lexsort((starts, -(ends - starts), union, -inter))[:n_out]
    stats = {"levels": levels, "candidates": n_candidates, "ranked": len(starts), "exact": len(open_)}
    return Matches(
        cells,
        float(threshold),
        starts[order].astype(np.int64),
        (ends - starts)[order].astype(np.int64),
        inter[order].astype(np.int64),
        union[order].astype(np.int64),
        stats,
    )
