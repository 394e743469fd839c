"""Per-token indicators of character text, to rank cells against (Karpathy et al. 2015).

Each function takes a string (one token per character) or a list of token
strings; for a multi-character token the value is the one at its last
character (an empty token repeats the previous value, 0 at the start).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["bracket_depth", "indentation_depth", "inside_quotes"]


def _per_token(text: str | Sequence[str], per_char: list[float]) -> np.ndarray:
    if isinstance(text, str):
        return np.asarray(per_char, dtype=np.float32)
    out = np.empty(len(text), dtype=np.float32)
    pos, value = 0, 0.0
    for i, tok in enumerate(text):
        pos += len(tok)
        if tok:
            value = per_char[pos - 1]
        out[i] = value
    return out


def _chars(text: str | Sequence[str], arg: str = "text") -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray)) or not all(isinstance(t, str) for t in text):
        raise TypeError(f"{arg}: expected a str or a sequence of str tokens")
    return "".join(text)


def inside_quotes(text: str | Sequence[str], quotes: str = "\"'", escape: str | None = "\\") -> np.ndarray:
    """1.0 for characters inside a quoted string (the quote marks included), else 0.0.

    A string opened by one quote character is closed only by the same one; a
    character after ``escape`` inside a string never closes it. The rule is
    purely character-based: an unclosed quote runs on, across lines, to the
    next matching quote.

    Parameters
    ----------
    text
        A string, or a list of tokens.
    quotes
        Characters that open and close strings.
    escape
        Escape character inside strings, or ``None``.

    Returns
    -------
    numpy.ndarray
        float32, one value per character (or per token).

    Example
    -------
    >>> inside_quotes('a "b\\\\"c" d').tolist()
    [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    """
    chars = _chars(text)
    out: list[float] = []
    open_q: str | None = None
    escaped = False
    for ch in chars:
        if open_q is None:
            if ch in quotes:
                open_q = ch
                out.append(1.0)
            else:
                out.append(0.0)
            continue
        out.append(1.0)
        if escaped:
            escaped = False
        elif escape is not None and ch == escape:
            escaped = True
        elif ch == open_q:
            open_q = None
    return _per_token(text, out)


def indentation_depth(text: str | Sequence[str], tab_size: int = 4) -> np.ndarray:
    """Indentation (leading spaces, a tab counting ``tab_size``) of the line each character is on.

    The newline that ends a line belongs to that line.

    Example
    -------
    >>> indentation_depth("a\\n  b\\n").tolist()
    [0.0, 0.0, 2.0, 2.0, 2.0, 2.0]
    """
    if isinstance(tab_size, bool) or not isinstance(tab_size, int) or tab_size < 1:
        raise ValueError(f"tab_size: expected a positive int, got {tab_size!r}")
    chars = _chars(text)
    out: list[float] = []
    for line in chars.splitlines(keepends=True):
        stripped = line.lstrip(" \t")
        lead = line[: len(line) - len(stripped)]
        depth = float(sum(tab_size if c == "\t" else 1 for c in lead))
        out.extend([depth] * len(line))
    return _per_token(text, out)


def bracket_depth(text: str | Sequence[str], pairs: Sequence[str] = ("()", "[]", "{}")) -> np.ndarray:
    """Bracket nesting depth at each character; brackets count as inside their own pair.

    Unbalanced closing brackets never take the depth below 0.

    Example
    -------
    >>> bracket_depth("f(a[1])").tolist()
    [0.0, 1.0, 1.0, 2.0, 2.0, 2.0, 1.0]
    """
    if any(len(p) != 2 for p in pairs):
        raise ValueError(f"pairs: expected two-character strings like '()', got {list(pairs)!r}")
    opens = {p[0] for p in pairs}
    closes = {p[1] for p in pairs}
    chars = _chars(text)
    out: list[float] = []
    depth = 0
    for ch in chars:
        if ch in opens:
            depth += 1
            out.append(float(depth))
        elif ch in closes:
            out.append(float(depth))
            depth = max(depth - 1, 0)
        else:
            out.append(float(depth))
    return _per_token(text, out)
