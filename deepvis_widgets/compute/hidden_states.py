"""Hidden states over a token corpus: LSTMVis select and match, cell-over-text ranking, gates.

:class:`HiddenStates` holds an ``(n_tokens, n_cells)`` float16 matrix (in
memory or memory-mapped from disk), the tokens as int32 ids plus a
vocabulary, and where each document starts. Build one from arrays, from a
model (:meth:`HiddenStates.from_model`: RNN/LSTM/GRU states, cell states and
gates, or any layer's output), or open a saved one.

Example
-------
>>> import numpy as np
>>> hs = HiddenStates(np.random.default_rng(0).normal(size=(1000, 16)), ["x"] * 1000)
>>> sel = hs.select(10, 13, threshold=0.2)
>>> matches = hs.match(sel, top_k=5) if len(sel) else None
"""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from . import _bitindex as bx
from ._hooks import preserved_model
from ._indicators import bracket_depth, indentation_depth, inside_quotes
from ._match import Matches, Selection, _BitBackend, _DenseBackend, match_cells, select_cells
from ._recurrent import (
    GATES,
    GateTrace,
    _device,
    _output_tensor,
    _split_input,
    cell_type,
    find_module,
    gate_trace,
    layer_index,
    unroll,
)

__all__ = [
    "CellRanking",
    "GateTrace",
    "HiddenStates",
    "Matches",
    "Selection",
    "bracket_depth",
    "gate_trace",
    "indentation_depth",
    "inside_quotes",
]

_FORMAT = "deepvis_widgets.HiddenStates"
_F16_MAX = 65504.0
_CHUNK_BYTES = 1 << 25


@dataclass(frozen=True, eq=False)
class CellRanking:
    """Cells ranked by the absolute Pearson correlation of their state with an indicator.

    Attributes
    ----------
    cells
        Cell ids (int64), strongest first.
    r
        Pearson r of each ranked cell (float64; 0 for a constant cell).

    Example
    -------
    >>> hs = HiddenStates(np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 1.1]]), list("abc"))
    >>> ranking = hs.rank_cells([0, 1, 0])
    >>> ranking.cells.tolist(), round(float(ranking.r[0]), 3)
    ([0, 1], 1.0)
    """

    cells: np.ndarray
    r: np.ndarray

    def __len__(self) -> int:
        return len(self.cells)

    def top(self, n: int = 10) -> list[tuple[int, float]]:
        """The first ``n`` as ``(cell, r)`` pairs."""
        return [(int(c), float(r)) for c, r in zip(self.cells[:n], self.r[:n], strict=True)]


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    return int(value)


def _as_float16(states: Any) -> np.ndarray:
    if isinstance(states, Tensor):
        states = states.detach().cpu()
        if states.dtype == torch.bfloat16:
            states = states.float()
        states = states.numpy()
    arr = states if isinstance(states, np.ndarray) else np.asarray(states)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"states: expected a 2-D (n_tokens, n_cells) array with both sizes >= 1, got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"states: expected a numeric array, got dtype {arr.dtype}")
    if arr.dtype == np.float16 and arr.flags.c_contiguous:
        return arr  # no copy: a np.memmap stays on disk
    out = np.empty(arr.shape, dtype=np.float16)
    rows = max(1, _CHUNK_BYTES // (4 * arr.shape[1]))
    for r0 in range(0, arr.shape[0], rows):
        chunk = arr[r0 : r0 + rows]
        if chunk.dtype.kind == "f" and chunk.dtype.itemsize > 2:
            big = np.abs(chunk[np.isfinite(chunk)]).max(initial=0.0)
            if big > _F16_MAX:
                raise ValueError(f"states: a value of magnitude {big:.6g} overflows float16 (max {_F16_MAX:g}); rescale the states")
        elif chunk.dtype.kind in "iu" and chunk.size and np.abs(chunk).max() > _F16_MAX:
            raise ValueError(f"states: integer values beyond {_F16_MAX:g} overflow float16")
        out[r0 : r0 + rows] = chunk
    return out


def _encode_tokens(tokens: Any, vocab: Sequence[str] | None, n: int) -> tuple[np.ndarray, list[str]]:
    if vocab is not None:
        vocab = list(vocab)
        if not all(isinstance(v, str) for v in vocab):
            raise TypeError("vocab: expected a sequence of str")
        ids = np.asarray(tokens.detach().cpu() if isinstance(tokens, Tensor) else tokens)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise TypeError(f"tokens: with vocab=, expected a 1-D integer array of token ids, got {ids.dtype} with shape {ids.shape}")
        if len(ids) != n:
            raise ValueError(f"tokens: expected {n} token ids (one per row of states), got {len(ids)}")
        if n and (ids.min() < 0 or ids.max() >= len(vocab)):
            raise ValueError(f"tokens: ids must be in [0, {len(vocab)}) for a vocabulary of {len(vocab)}; got {int(ids.min())}..{int(ids.max())}")
        return np.ascontiguousarray(ids, dtype=np.int32), vocab
    if isinstance(tokens, str) or (isinstance(tokens, np.ndarray) and tokens.dtype.kind in "iu"):
        raise TypeError("tokens: expected a sequence of str (one per token), or integer ids together with vocab=")
    try:
        length = len(tokens)
    except TypeError:
        raise TypeError(f"tokens: expected a sequence of str, got {type(tokens).__name__}") from None
    if length != n:
        raise ValueError(f"tokens: expected {n} tokens (one per row of states), got {length}")
    lookup: dict[str, int] = {}
    ids = np.empty(n, dtype=np.int32)
    for i, tok in enumerate(tokens):
        if not isinstance(tok, str):
            raise TypeError(f"tokens: expected str tokens, got {type(tok).__name__} at position {i}")
        ids[i] = lookup.setdefault(tok, len(lookup))
    return ids, list(lookup)


def _check_doc_starts(doc_starts: Any, n: int) -> np.ndarray:
    if doc_starts is None:
        return np.zeros(1, dtype=np.int64)
    d = np.asarray(doc_starts)
    if d.ndim != 1 or len(d) == 0 or d.dtype.kind not in "iu":
        raise ValueError(f"doc_starts: expected a non-empty 1-D array of int token positions, got {d.dtype} {d.shape}")
    d = d.astype(np.int64)
    if d[0] != 0 or np.any(np.diff(d) <= 0) or d[-1] >= n:
        raise ValueError(f"doc_starts: expected strictly increasing positions starting at 0 and below {n}, got {d[:8].tolist()}...")
    return d


class HiddenStates:
    """Per-token hidden states of a corpus, stored as float16, with LSTMVis select and match.

    Parameters
    ----------
    states
        ``(n_tokens, n_cells)`` array or tensor. Converted to float16 (values
        beyond +-65504 are an error). A C-contiguous float16 array, e.g. a
        ``np.memmap``, is used as is, without a copy (do not modify it afterwards).
    tokens
        One string per token; or, with ``vocab``, one integer id per token.
    doc_starts
        Token position where each document starts (first 0); default one document.
    vocab
        Vocabulary for integer ``tokens``.
    cell_labels
        Optional name per cell (``from_model`` sets e.g. ``"l1.bwd.z17"``).

    Example
    -------
    >>> hs = HiddenStates(np.zeros((4, 2)), list("abcd"), doc_starts=[0, 2])
    >>> len(hs), hs.n_cells, hs.tokens_in(1, 3), hs.doc_bounds(3)
    (4, 2, ['b', 'c'], (2, 4))
    """

    max_indexes = 2  # bit indexes kept per object (one per threshold), least recently used dropped

    def __init__(
        self,
        states: Any,
        tokens: Any,
        doc_starts: Any = None,
        *,
        vocab: Sequence[str] | None = None,
        cell_labels: Sequence[str] | None = None,
    ) -> None:
        values = _as_float16(states)
        ids, vocab_list = _encode_tokens(tokens, vocab, values.shape[0])
        docs = _check_doc_starts(doc_starts, values.shape[0])
        if cell_labels is not None:
            cell_labels = [str(c) for c in cell_labels]
            if len(cell_labels) != values.shape[1]:
                raise ValueError(f"cell_labels: expected {values.shape[1]} labels (one per cell), got {len(cell_labels)}")
        self._init(values, ids, vocab_list, docs, cell_labels, None)

    def _init(
        self, values: np.ndarray, ids: np.ndarray, vocab: list[str], docs: np.ndarray,
        labels: list[str] | None, path: Path | None,
    ) -> None:
        self._values = values
        self._ids = ids
        self._vocab = vocab
        self._docs = docs
        self._labels = labels
        self._path = path
        self._indexes: OrderedDict[float, bx.BitIndex] = OrderedDict()
        self.index_stats: dict[float, dict[str, float | int]] = {}
        """Per threshold: ``seconds`` to build the bit index and its ``nbytes``."""

    # ---- shape and data access -------------------------------------------------
    def __len__(self) -> int:
        return self._values.shape[0]

    def __repr__(self) -> str:
        where = f", memory-mapped from {str(self._path)!r}" if self._path else ""
        return f"HiddenStates({self.n_tokens} tokens x {self.n_cells} cells, {self.n_docs} documents{where})"

    @property
    def n_tokens(self) -> int:
        return self._values.shape[0]

    @property
    def n_cells(self) -> int:
        return self._values.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        return self._values.shape

    @property
    def n_docs(self) -> int:
        return len(self._docs)

    @property
    def values(self) -> np.ndarray:
        """The float16 ``(n_tokens, n_cells)`` matrix (read-only; may be a memory map)."""
        v = self._values.view()
        v.flags.writeable = False
        return v

    @property
    def token_ids(self) -> np.ndarray:
        """int32 id of each token in :attr:`vocab` (read-only)."""
        v = self._ids.view()
        v.flags.writeable = False
        return v

    @property
    def vocab(self) -> tuple[str, ...]:
        return tuple(self._vocab)

    @property
    def doc_starts(self) -> np.ndarray:
        return self._docs.copy()

    @property
    def cell_labels(self) -> tuple[str, ...] | None:
        return None if self._labels is None else tuple(self._labels)

    @property
    def path(self) -> Path | None:
        """The folder this object was opened from, if any."""
        return self._path

    def _range(self, start: Any, end: Any) -> tuple[int, int]:
        start, end = _int("start", start), _int("end", end)
        n = self.n_tokens
        if start >= end:
            raise ValueError(f"start, end: expected start < end, got start={start}, end={end}")
        if start < 0 or start >= n:
            raise ValueError(f"start: {start} is out of range for {n} tokens (expected 0..{n - 1})")
        if end > n:
            raise ValueError(f"end: {end} is out of range for {n} tokens (expected 1..{n})")
        return start, end

    def _cells(self, cells: Any, name: str = "cells") -> np.ndarray:
        arr = np.asarray(cells.detach().cpu() if isinstance(cells, Tensor) else cells)
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise TypeError(f"{name}: expected a 1-D sequence of int cell ids, got {arr.dtype} with shape {arr.shape}")
        arr = arr.astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= self.n_cells):
            bad = arr[(arr < 0) | (arr >= self.n_cells)][0]
            raise ValueError(f"{name}: cell {bad} is out of range for {self.n_cells} cells (expected 0..{self.n_cells - 1})")
        return arr

    def token(self, i: int) -> str:
        """The token at position ``i``.

        Example
        -------
        >>> HiddenStates(np.zeros((2, 1)), ["<s>", "hi"]).token(1)
        'hi'
        """
        i = _int("i", i)
        if not 0 <= i < self.n_tokens:
            raise ValueError(f"i: {i} is out of range for {self.n_tokens} tokens (expected 0..{self.n_tokens - 1})")
        return self._vocab[int(self._ids[i])]

    def tokens_in(self, start: int, end: int) -> list[str]:
        """Tokens at positions ``[start, end)``.

        Example
        -------
        >>> HiddenStates(np.zeros((3, 1)), list("abc")).tokens_in(0, 2)
        ['a', 'b']
        """
        start, end = self._range(start, end)
        vocab = self._vocab
        return [vocab[i] for i in np.asarray(self._ids[start:end]).tolist()]

    def window(self, start: int, end: int, cells: Any = None) -> np.ndarray:
        """States at tokens ``[start, end)`` as float32 ``(end - start, n)``, all cells or ``cells``.

        Example
        -------
        >>> HiddenStates(np.eye(3), list("abc")).window(1, 3, cells=[1]).ravel().tolist()
        [1.0, 0.0]
        """
        start, end = self._range(start, end)
        block = self._values[start:end]
        if cells is not None:
            block = block[:, self._cells(cells)]
        return np.asarray(block, dtype=np.float32)

    def doc_bounds(self, i: int) -> tuple[int, int]:
        """``(start, end)`` of the document containing token ``i``.

        Example
        -------
        >>> HiddenStates(np.zeros((5, 1)), list("abcde"), doc_starts=[0, 3]).doc_bounds(4)
        (3, 5)
        """
        i = _int("i", i)
        if not 0 <= i < self.n_tokens:
            raise ValueError(f"i: {i} is out of range for {self.n_tokens} tokens (expected 0..{self.n_tokens - 1})")
        d = int(np.searchsorted(self._docs, i, side="right")) - 1
        end = int(self._docs[d + 1]) if d + 1 < len(self._docs) else self.n_tokens
        return int(self._docs[d]), end

    # ---- storage ---------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Writes a folder that :meth:`open` memory-maps: ``states.npy`` (float16),
        ``token_ids.npy`` (int32), ``doc_starts.npy`` and ``meta.json`` (vocabulary, labels).

        Copies in chunks, so memory-mapped states larger than RAM can be saved.

        Example
        -------
        >>> import tempfile
        >>> folder = HiddenStates(np.ones((3, 2)), list("abc")).save(tempfile.mkdtemp() + "/hs")
        >>> HiddenStates.open(folder).shape
        (3, 2)
        """
        folder = Path(path)
        if self._path is not None and folder.resolve() == self._path.resolve():
            raise ValueError(f"path: {str(folder)!r} is the folder these states are memory-mapped from")
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())) and not overwrite:
            raise FileExistsError(f"path: {str(folder)!r} exists and is not an empty folder; pass overwrite=True")
        folder.mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(folder / "states.npy", mode="w+", dtype=np.float16, shape=self.shape)
        rows = max(1, _CHUNK_BYTES // (2 * self.n_cells))
        for r0 in range(0, self.n_tokens, rows):
            out[r0 : r0 + rows] = self._values[r0 : r0 + rows]
        out.flush()
        del out
        np.save(folder / "token_ids.npy", np.asarray(self._ids, dtype=np.int32))
        np.save(folder / "doc_starts.npy", self._docs)
        meta = {
            "format": _FORMAT, "version": 1, "n_tokens": self.n_tokens, "n_cells": self.n_cells,
            "vocab": self._vocab, "cell_labels": self._labels,
        }
        (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        return folder

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> HiddenStates:
        """Opens a folder written by :meth:`save`, memory-mapping states and token ids.

        Example
        -------
        >>> import tempfile
        >>> folder = HiddenStates(np.ones((3, 2)), list("abc")).save(tempfile.mkdtemp() + "/hs")
        >>> HiddenStates.open(folder).token(2)
        'c'
        """
        folder = Path(path)
        for name in ("meta.json", "states.npy", "token_ids.npy", "doc_starts.npy"):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"path: {str(folder)!r} has no {name}; expected a folder written by HiddenStates.save")
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != _FORMAT:
            raise ValueError(f"path: {str(folder / 'meta.json')!r} is not a {_FORMAT} file")
        values = np.load(folder / "states.npy", mmap_mode="r")
        ids = np.load(folder / "token_ids.npy", mmap_mode="r")
        docs = np.load(folder / "doc_starts.npy")
        if values.dtype != np.float16 or values.ndim != 2 or ids.shape != (values.shape[0],):
            raise ValueError(f"path: {str(folder)!r} is inconsistent: states {values.dtype} {values.shape}, token ids {ids.shape}")
        hs = cls.__new__(cls)
        hs._init(values, ids, list(meta["vocab"]), docs.astype(np.int64), meta.get("cell_labels"), folder)
        return hs

    # ---- LSTMVis select and match ----------------------------------------------
    def select(self, start: int, end: int, threshold: float) -> Selection:
        """Cells on (``>= threshold``) at every token of ``[start, end)`` and off just outside.

        LSTMVis's rule: a cell is selected when its state is ``>= threshold`` at
        each token in the range and ``< threshold`` at ``start - 1`` and at
        ``end`` (each only where that token exists). Ranked by the mean margin
        ``state - threshold`` inside the range, largest first (ties: lower id).
        The result may be empty; :meth:`match` rejects an empty selection.

        Returns
        -------
        Selection

        Example
        -------
        >>> hs = HiddenStates(np.array([[0, 0], [1, 1], [1, 0.6], [0, 0]]), list("abcd"))
        >>> hs.select(1, 3, threshold=0.5).cells.tolist()
        [0, 1]
        """
        start, end = self._range(start, end)
        bx.f16_threshold(threshold)  # validates
        return select_cells(self._values, start, end, float(threshold))

    def build_index(self, threshold: float) -> dict[str, float | int]:
        """Builds (or returns the cached) bit index for ``threshold``; returns its build ``seconds`` and ``nbytes``.

        :meth:`match` builds it on first use; call this to pay the cost up
        front. The states are read once, in chunks. Memory: the on/off bits
        twice (per cell over time, and per token over cells: ``n_tokens *
        n_cells / 4`` bytes) plus run tables of 16 counts per token (1 byte
        each below 256 cells, else 2): 160 MB for 1M tokens x 512 cells.

        Example
        -------
        >>> info = HiddenStates(np.zeros((100, 64)), ["a"] * 100).build_index(0.3)
        >>> info["nbytes"]  # 1024 + 808 bytes of bits, 16 x 101 bytes of run tables
        3448
        """
        h = bx.f16_threshold(threshold)
        self._bits(h)
        return dict(self.index_stats[float(h)])

    def _bits(self, h: np.float16) -> bx.BitIndex:
        key = float(h)
        if key in self._indexes:
            self._indexes.move_to_end(key)
            return self._indexes[key]
        while len(self._indexes) >= self.max_indexes:
            self._indexes.popitem(last=False)
        t0 = time.perf_counter()
        index = bx.build_bits(self._values, h)
        self.index_stats[key] = {"seconds": time.perf_counter() - t0, "nbytes": int(index.nbytes)}
        self._indexes[key] = index
        return index

    def match(
        self,
        cells: Selection | Sequence[int] | np.ndarray,
        length: int | None = None,
        top_k: int | None = 50,
        threshold: float | None = None,
        *,
        min_length: int = 2,
        constrain_left: bool = False,
        constrain_right: bool = False,
        method: str = "index",
    ) -> Matches:
        """Token ranges where the selected cells switch on together, ranked as LSTMVis ranks them.

        The rule (LSTMVis ``query_similar_activations``, without its caps):

        1. A cell is on at token ``t`` when its state is ``>= threshold``.
           ``count(t)`` = number of selected cells on at ``t``.
        2. Candidates: for every ``k`` in ``1..len(cells)``, every maximal run of
           tokens with ``count >= k``, of length ``>= min_length`` (LSTMVis:
           2), or exactly ``length`` when given. The same range found at
           several ``k`` is one candidate. Runs span document boundaries, as in
           LSTMVis's single concatenated corpus.
        3. For a candidate ``[s, e)``, the active cells are all cells (selected
           or not) on at every token of ``[s, e)`` and, with
           ``constrain_left``/``constrain_right``, off at ``s - 1``/``e`` where
           that token exists. ``intersection`` = selected active cells,
           ``union`` = ``len(cells)`` + other active cells.
        4. Order: largest intersection, then smallest union, then longest,
           then earliest start. The first ``top_k`` are returned (all if ``None``).

        LSTMVis's "fast" mode scans only the first 500,000 tokens and ranks only
        the first 1,000 candidates found; this ranks every candidate of the
        whole corpus. LSTMVis also thresholds ``tanh`` of the stored states by
        default; here the stored values are compared as they are.

        How (``method="index"``): the on/off bits at this threshold are packed
        per cell and per token (built once, cached). Counts over the selected
        cells are added as bit planes, runs come from bit masks, and levels
        ``k`` below ``m`` are skipped once ``top_k`` candidates with
        intersection ``>= m`` exist (no lower level can hold a better one).
        Tables of "cells on throughout the next d tokens" bound every
        candidate's union in O(1) (exactly when its length is a tabled d); the
        union is computed only for candidates whose bounds leave them a chance
        of reaching the top ``top_k``. None of this changes the result, which
        equals ``method="scan"`` and a brute-force enumeration.

        Parameters
        ----------
        cells
            Selected cell ids, or a :class:`Selection` (then its threshold is the default).
        length
            Only runs of exactly this many tokens (LSTMVis's phrase length).
        top_k
            Number of matches to return, or ``None`` for all.
        threshold
            On/off threshold; default the selection's, else 0.3 (LSTMVis's default).
        min_length
            Shortest run considered when ``length`` is not given.
        constrain_left, constrain_right
            Require active cells to be off just before / just after the range.
        method
            ``"index"`` (bit index, built once per threshold and cached) or
            ``"scan"`` (plain numpy over the float16 states; the baseline).

        Returns
        -------
        Matches

        Example
        -------
        >>> st = np.zeros((8, 2)); st[1:4, 0] = st[2:4, 1] = st[5:7] = 1
        >>> m = HiddenStates(st, list("abcdefgh")).match([0, 1], threshold=0.5)
        >>> m.starts.tolist(), m.intersection.tolist(), m.union.tolist()
        ([2, 5, 1], [2, 2, 1], [2, 2, 2])
        """
        if isinstance(cells, Selection):
            if threshold is None:
                threshold = cells.threshold
            what = f" (no cell is on across [{cells.start}, {cells.end}) and off just outside at threshold {cells.threshold:g})"
            cells = cells.cells
        else:
            what = ""
        sel = np.unique(self._cells(cells))
        if sel.size == 0:
            raise ValueError(f"cells: the selection is empty{what}; select at least one cell")
        if threshold is None:
            threshold = 0.3
        h = bx.f16_threshold(threshold)
        if top_k is not None and _int("top_k", top_k) < 1:
            raise ValueError(f"top_k: expected a positive int or None, got {top_k}")
        if length is not None and _int("length", length) < 1:
            raise ValueError(f"length: expected a positive int or None, got {length}")
        if _int("min_length", min_length) < 1:
            raise ValueError(f"min_length: expected a positive int, got {min_length}")
        backend: _BitBackend | _DenseBackend
        if method == "index":
            backend = _BitBackend(self._bits(h), sel)
        elif method == "scan":
            backend = _DenseBackend(self._values, float(threshold), sel)
        else:
            raise ValueError(f"method: expected 'index' or 'scan', got {method!r}")
        return match_cells(
            backend, sel, float(threshold), top_k=top_k, length=length, min_length=min_length,
            constrain_left=bool(constrain_left), constrain_right=bool(constrain_right),
        )

    # ---- cell-over-text --------------------------------------------------------
    def rank_cells(self, indicator: Any, start: int = 0, end: int | None = None) -> CellRanking:
        """Cells ranked by ``|Pearson r|`` between their state and a per-token indicator.

        Parameters
        ----------
        indicator
            One number per token of ``[start, end)`` (e.g. :func:`inside_quotes`).
        start, end
            Token range to correlate over; default the whole corpus.

        Returns
        -------
        CellRanking

        Example
        -------
        >>> text = 'x = "ab" + c'
        >>> st = np.stack([inside_quotes(text), np.arange(len(text))], axis=1)
        >>> HiddenStates(st, list(text)).rank_cells(inside_quotes(text)).cells.tolist()
        [0, 1]
        """
        start, end = self._range(start, self.n_tokens if end is None else end)
        y = np.asarray(indicator.detach().cpu() if isinstance(indicator, Tensor) else indicator, dtype=np.float64)
        if y.shape != (end - start,):
            raise ValueError(f"indicator: expected {end - start} values (one per token of [{start}, {end})), got shape {y.shape}")
        if not np.isfinite(y).all():
            raise ValueError("indicator: expected finite values")
        y = y - y.mean()
        syy = float(y @ y)
        if syy == 0.0:
            raise ValueError("indicator: is constant, so no cell can correlate with it")
        c = self.n_cells
        sx = np.zeros(c)
        sxx = np.zeros(c)
        sxy = np.zeros(c)
        rows = max(1, _CHUNK_BYTES // (8 * c))
        for r0 in range(start, end, rows):
            x = np.asarray(self._values[r0 : min(r0 + rows, end)], dtype=np.float64)
            sx += x.sum(axis=0)
            sxx += np.einsum("ij,ij->j", x, x)
            sxy += y[r0 - start : r0 - start + len(x)] @ x
        n = end - start
        var = sxx - sx * sx / n
        with np.errstate(invalid="ignore", divide="ignore"):
            r = sxy / np.sqrt(np.maximum(var, 0.0) * syy)
        r[~np.isfinite(r) | (var <= 1e-12 * np.maximum(sxx, 1.0))] = 0.0
        order = np.lexsort((np.arange(c), -np.abs(r)))
        return CellRanking(order.astype(np.int64), r[order])

    # ---- from a model ----------------------------------------------------------
    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        sequences: Any,
        layer: str | nn.Module | None = None,
        kind: str = "h",
        tokens: Sequence[str] | Callable[[int], str] | None = None,
        *,
        rnn_layer: int | str = -1,
        batch_size: int = 32,
        forward_fn: Callable[[nn.Module, Tensor], Any] | None = None,
    ) -> HiddenStates:
        """Runs ``model`` over ``sequences`` and records one layer's per-token states.

        The model runs in eval mode under ``torch.no_grad`` with a forward hook
        on the chosen module; mode, hooks and ``requires_grad`` are restored
        afterwards, also after an error. Sequences of equal length are batched
        (``model(batch)`` with ``batch`` a ``(B, T)`` LongTensor); the result is
        one corpus with a document per sequence.

        Parameters
        ----------
        model
            Any ``nn.Module``.
        sequences
            A list of 1-D token-id sequences, a ``(B, T)`` integer tensor, or
            float inputs (a list of ``(T, F)`` tensors or a ``(B, T, F)`` tensor).
        layer
            Module name (e.g. ``"rnn"``, ``"encoder.layer.3"``) or the module; default the first RNN/LSTM/GRU.
        kind
            For ``nn.RNN``/``nn.LSTM``/``nn.GRU``: ``"h"`` hidden states, ``"c"``
            LSTM cell states, ``"gates"`` (GRU: z, r, n; LSTM: i, f, g, o per
            unit), computed by unrolling the module's weights and checked
            against its outputs. For any other module: ``"h"`` its output (a
            transformer layer's hidden states), ``"input"`` its first input (e.g.
            the MLP neurons entering a down-projection).
        tokens
            For integer sequences: a vocabulary (``tokens[id]``) or a function
            ``id -> str``; default the id as text. For float sequences: one
            string per step of the corpus, or ``None`` for the step index.
        rnn_layer
            Stacked layer of the RNN to record (negative from the end), or
            ``"all"`` to concatenate every layer. Both directions are always
            included (forward then backward), labelled in :attr:`cell_labels`.
        batch_size
            Sequences per forward pass.
        forward_fn
            ``forward_fn(model, batch)`` replaces ``model(batch)``.

        Returns
        -------
        HiddenStates

        Example
        -------
        >>> net = nn.Sequential(nn.Embedding(10, 4), nn.GRU(4, 8, batch_first=True))
        >>> hs = HiddenStates.from_model(net, [torch.tensor([1, 2, 3]), torch.tensor([4, 5])], kind="gates")
        >>> hs.shape, hs.doc_starts.tolist(), hs.cell_labels[0]
        ((5, 24), [0, 3], 'z0')
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        seqs, is_int = _as_sequences(sequences)
        if _int("batch_size", batch_size) < 1:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size}")
        name, module = find_module(model, layer)
        rnn = module if isinstance(module, nn.RNNBase) else None
        kinds = _kinds(rnn) if rnn is not None else ("h", "input")
        if kind not in kinds:
            what = f"a {cell_type(rnn)}" if rnn is not None else f"{name!r} ({type(module).__name__}, not a recurrent module)"
            raise ValueError(f"kind: expected one of {', '.join(map(repr, kinds))} for {what}, got {kind!r}")
        if rnn is not None:
            layers = list(range(rnn.num_layers)) if rnn_layer == "all" else [layer_index(rnn, rnn_layer)]
        device = _device(model)
        fwd = forward_fn or (lambda m, b: m(b))
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, s in enumerate(seqs):
            groups.setdefault(tuple(s.shape), []).append(i)
        results: list[np.ndarray | None] = [None] * len(seqs)
        calls: list[tuple[tuple, dict, Any]] = []

        def hook(_mod: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            calls.append((args, kwargs, output))

        labels: list[str] | None = None
        with preserved_model(model) as session, torch.no_grad():
            session.forward_hook(module, hook, with_kwargs=True)
            for idxs in groups.values():
                for b0 in range(0, len(idxs), batch_size):
                    chunk = idxs[b0 : b0 + batch_size]
                    batch = torch.stack([seqs[i] for i in chunk]).to(device)
                    calls.clear()
                    fwd(model, batch)
                    if len(calls) != 1:
                        raise ValueError(f"layer: {name!r} ran {len(calls)} times in one forward pass; expected exactly once")
                    steps = batch.shape[1]
                    if rnn is not None:
                        arr, labels = _rnn_states(rnn, calls[0], kind, layers, len(chunk), steps)
                    else:
                        arr = _layer_states(name, calls[0], kind, len(chunk), steps)
                    arr_np = arr.float().cpu().numpy()
                    for j, i in enumerate(chunk):
                        results[i] = arr_np[j].astype(np.float16)
                    calls.clear()
        states = np.concatenate(cast("list[np.ndarray]", results))  # every index is in one group
        lengths = [len(s) for s in seqs]
        docs = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        ids, vocab = _model_tokens(seqs, is_int, tokens, len(states))
        return cls(states, ids, docs, vocab=vocab, cell_labels=labels)


def _kinds(module: nn.RNNBase) -> tuple[str, ...]:
    kind = cell_type(module)
    return ("h", "c", "gates") if kind == "LSTM" else ("h", "gates") if kind == "GRU" else ("h",)


def _as_sequences(sequences: Any) -> tuple[list[Tensor], bool]:
    if isinstance(sequences, (Tensor, np.ndarray)):
        t = torch.as_tensor(sequences)
        floating = t.is_floating_point()
        if t.dim() == (2 if floating else 1):
            seqs = [t]
        elif t.dim() == (3 if floating else 2):
            seqs = list(t)
        else:
            raise ValueError(
                f"sequences: expected (B, T) token ids or (B, T, F) float inputs (or one sequence), got shape {tuple(t.shape)}"
            )
    elif isinstance(sequences, (list, tuple)):
        seqs = [torch.as_tensor(s) for s in sequences]
    else:
        raise TypeError(f"sequences: expected a list of sequences or a batch tensor, got {type(sequences).__name__}")
    if not seqs:
        raise ValueError("sequences: expected at least one sequence")
    is_int = not seqs[0].is_floating_point()
    for i, s in enumerate(seqs):
        if s.is_floating_point() == is_int or s.dtype == torch.bool or s.is_complex():
            raise TypeError(f"sequences: expected all integer token ids or all float inputs; sequence {i} is {s.dtype}")
        if s.dim() != (1 if is_int else 2) or len(s) == 0:
            want = "1-D token ids" if is_int else "(T, F) float inputs"
            raise ValueError(f"sequences: sequence {i} has shape {tuple(s.shape)}; expected non-empty {want}")
    return [s.long() if is_int else s for s in seqs], is_int


def _rnn_labels(module: nn.RNNBase, kind: str, layers: list[int], widths: list[int]) -> list[str]:
    dirs = ["fwd", "bwd"] if module.bidirectional else [""]
    names = GATES[cell_type(module)] if kind == "gates" else (kind,)
    labels = []
    w = iter(widths)
    for layer in layers:
        for d in dirs:
            prefix = (f"l{layer}." if module.num_layers > 1 else "") + (f"{d}." if d else "")
            for gate in names:
                labels += [f"{prefix}{gate}{u}" for u in range(next(w))]
    return labels


def _rnn_states(module: nn.RNNBase, call: tuple, kind: str, layers: list[int], batch: int, steps: int) -> tuple[Tensor, list[str]]:
    args, kwargs, output = call
    if kind == "h" and layers == [module.num_layers - 1]:
        x, _, unbatched = _split_input(module, args, kwargs)
        parts = [_output_tensor(module, output, unbatched)[0]]
    else:
        un = unroll(module, args, kwargs, output, upto=max(layers))
        names = GATES[un.kind] if kind == "gates" else (kind,)
        parts = [tr[n] for layer in layers for tr in un.traces[layer] for n in names]
        x = parts[0]
    if tuple(x.shape[:2]) != (batch, steps):
        raise ValueError(
            f"sequences: the recurrent module saw input of {tuple(x.shape[:2])} (batch, steps) for a batch of "
            f"{batch} sequences of {steps} tokens; from_model needs one RNN step per token"
        )
    dirs = 2 if module.bidirectional else 1
    if len(parts) == 1 and kind == "h" and len(layers) == 1:
        widths = [parts[0].shape[-1] // dirs] * dirs
    else:
        widths = [p.shape[-1] for p in parts]
    return torch.cat(parts, dim=-1), _rnn_labels(module, kind, layers, widths)


def _first_tensor(obj: Any) -> Tensor | None:
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        for item in obj:
            t = _first_tensor(item)
            if t is not None:
                return t
    return None


def _layer_states(name: str, call: tuple, kind: str, batch: int, steps: int) -> Tensor:
    args, kwargs, output = call
    t = _first_tensor(output if kind == "h" else (list(args) + list(kwargs.values())))
    if t is None:
        raise ValueError(f"layer: {name!r} has no tensor {'output' if kind == 'h' else 'input'} to record")
    if t.dim() >= 3 and tuple(t.shape[:2]) == (batch, steps):
        return t.reshape(batch, steps, -1)
    if t.dim() >= 3 and tuple(t.shape[:2]) == (steps, batch):
        return t.transpose(0, 1).reshape(batch, steps, -1)
    if t.dim() == 2 and batch == 1 and t.shape[0] == steps:
        return t.unsqueeze(0)
    raise ValueError(
        f"layer: {name!r} gave a tensor of shape {tuple(t.shape)}; expected (batch={batch}, steps={steps}, ...) "
        "with one step per token"
    )


def _model_tokens(seqs: list[Tensor], is_int: bool, tokens: Any, n: int) -> tuple[np.ndarray, list[str]]:
    if not is_int:
        if tokens is None:
            longest = max(len(s) for s in seqs)
            return np.concatenate([np.arange(len(s)) for s in seqs]), [str(i) for i in range(longest)]
        if callable(tokens):
            raise TypeError("tokens: a function of token ids needs integer sequences; pass one string per step")
        return _encode_tokens(tokens, None, n)
    ids = torch.cat(seqs).cpu().numpy()
    if ids.min() < 0:
        raise ValueError(f"sequences: token ids must be >= 0, got {int(ids.min())}")
    if tokens is None:
        return ids, [str(i) for i in range(int(ids.max()) + 1)]
    if callable(tokens):
        uniq, inverse = np.unique(ids, return_inverse=True)
        return inverse.astype(np.int32), [str(tokens(int(u))) for u in uniq]
    if isinstance(tokens, str):
        raise TypeError("tokens: expected a vocabulary (sequence of str) or a function id -> str, got a str")
    return ids, list(tokens)

