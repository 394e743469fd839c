"""Python standard-library source as a corpus: text, character and line labels.

Both text models (the character LSTM and the line classifier) learn from the
running interpreter's own standard library, so nothing is downloaded. The
corpus is a fixed, sorted list of modules present in Python 3.10 to 3.13;
every tenth module (``STDLIB_MODULES[9::10]``) is held out for testing.
Figures measured on one Python version can shift slightly on another, since
the module texts differ between versions.
"""

from __future__ import annotations

import ast
import io
import sysconfig
import tokenize
from functools import lru_cache
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

__all__ = [
    "LINE_LABELS",
    "STDLIB_MODULES",
    "CharLabels",
    "char_labels",
    "labelled_lines",
    "stdlib_sources",
]

#: Modules of the corpus (``X.py`` or the package ``X/__init__.py``), sorted.
STDLIB_MODULES: tuple[str, ...] = (
    "abc", "argparse", "ast", "base64", "bdb", "bisect", "calendar", "cmd", "code",
    "codecs", "colorsys", "configparser", "contextlib", "copy", "csv", "dataclasses",
    "difflib", "dis", "enum", "filecmp", "fileinput", "fnmatch", "fractions", "ftplib",
    "functools", "getopt", "gettext", "glob", "graphlib", "gzip", "heapq", "hmac",
    "inspect", "ipaddress", "linecache", "locale", "mimetypes", "netrc", "numbers",
    "operator", "optparse", "os", "pickle", "pkgutil", "platform", "plistlib", "poplib",
    "pprint", "queue", "random", "reprlib", "sched", "shlex", "shutil", "smtplib",
    "socket", "socketserver", "statistics", "string", "subprocess", "tarfile", "tempfile",
    "textwrap", "threading", "timeit", "tokenize", "traceback", "types", "uuid",
    "warnings", "wave", "weakref", "zipfile",
)  # fmt: skip

#: Class names of :func:`labelled_lines`, index = label.
LINE_LABELS: tuple[str, ...] = ("code", "comment", "docstring")
Split = Literal["train", "test", "all"]


def _module_path(stdlib: Path, name: str) -> Path | None:
    for candidate in (stdlib / f"{name}.py", stdlib / name / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=4)
def _sources(split: Split) -> tuple[tuple[str, str], ...]:
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for i, name in enumerate(STDLIB_MODULES):
        held_out = i % 10 == 9
        if (split == "train" and held_out) or (split == "test" and not held_out):
            continue
        path = _module_path(stdlib, name)
        if path is None:
            continue
        text = path.read_text(encoding="utf-8").expandtabs(8)
        out.append((name, text if text.endswith("\n") else text + "\n"))
    if not out:
        raise FileNotFoundError(f"none of the corpus modules were found under {stdlib}")
    return tuple(out)


def stdlib_sources(split: Split = "all") -> list[tuple[str, str]]:
    """``(module name, source text)`` pairs of the corpus, in a fixed order.

    Tabs are expanded to 8 columns; every text ends with a newline.

    Parameters
    ----------
    split
        ``"train"`` (9 modules in 10), ``"test"`` (``STDLIB_MODULES[9::10]``) or ``"all"``.

    Example
    -------
    >>> names = [name for name, _ in stdlib_sources("test")]
    >>> names[:2]
    ['codecs', 'filecmp']
    """
    return list(_sources(split))


class CharLabels(NamedTuple):
    """Per-character annotations of a source text (arrays of ``len(text)``)."""

    indent: np.ndarray
    """Leading spaces of the line the character is on (int32)."""
    in_comment: np.ndarray
    """True from a ``#`` comment's ``#`` to the end of its line."""
    in_string: np.ndarray
    """True inside a string literal, quotes included (docstrings too)."""


def _offsets(text: str) -> list[int]:
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def char_labels(text: str) -> CharLabels:
    """Indentation depth, inside-comment and inside-string labels for each character.

    Comment and string spans come from :mod:`tokenize`; if the text does not
    tokenize (a cut-off chunk), spans up to the error are kept.

    Parameters
    ----------
    text
        Python source.

    Example
    -------
    >>> labels = char_labels("if x:\\n    y = 'a'  # c\\n")
    >>> labels.indent.tolist()[5:7], int(labels.in_comment.sum()), int(labels.in_string.sum())
    ([0, 4], 3, 3)
    """
    n = len(text)
    indent = np.zeros(n, dtype=np.int32)
    starts = _offsets(text)
    for row, line in enumerate(text.splitlines(keepends=True)):
        stripped = line.lstrip(" ")
        depth = len(line) - len(stripped) if stripped.strip() else 0
        indent[starts[row] : starts[row] + len(line)] = depth
    in_comment = np.zeros(n, dtype=bool)
    in_string = np.zeros(n, dtype=bool)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type not in (tokenize.COMMENT, tokenize.STRING):
                continue
            (r0, c0), (r1, c1) = tok.start, tok.end
            a, b = starts[r0 - 1] + c0, starts[r1 - 1] + c1
            (in_comment if tok.type == tokenize.COMMENT else in_string)[a:b] = True
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return CharLabels(indent, in_comment, in_string)


def _docstring_lines(tree: ast.AST) -> set[int]:
    rows: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        body = node.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            end = body[0].end_lineno or body[0].lineno
            rows.update(range(body[0].lineno, end + 1))
    return rows


def _file_lines(text: str) -> list[tuple[str, int]]:
    lines = text.splitlines()
    docstrings = _docstring_lines(ast.parse(text))
    comment_rows: set[int] = set()
    string_rows: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT and not lines[tok.start[0] - 1][: tok.start[1]].strip():
            comment_rows.add(tok.start[0])
        elif tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
            string_rows.update(range(tok.start[0] + 1, tok.end[0] + 1))
    out = []
    for row, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if row in docstrings:
            out.append((line, 2))
        elif row in comment_rows:
            out.append((line, 1))
        elif row not in string_rows:  # lines inside other multi-line strings are ambiguous
            out.append((line, 0))
    return out


def labelled_lines(split: Split = "all") -> tuple[list[str], np.ndarray]:
    """Non-blank source lines labelled code (0), comment (1) or docstring (2).

    A line is a *docstring* line if it lies within the first-statement string of
    a module, class or function (found with :mod:`ast`), a *comment* line if its
    first token is a ``#`` comment, and *code* otherwise (lines with a trailing
    comment are code). Lines inside other multi-line strings are left out as
    ambiguous. Indentation is kept; trailing newlines are stripped.

    Parameters
    ----------
    split
        ``"train"``, ``"test"`` or ``"all"``, as in :func:`stdlib_sources`.

    Returns
    -------
    lines : list of str
    labels : numpy.ndarray
        ``int64`` indices into :data:`LINE_LABELS`.

    Example
    -------
    >>> lines, labels = labelled_lines("test")
    >>> sorted(set(labels.tolist()))
    [0, 1, 2]
    """
    lines: list[str] = []
    labels: list[int] = []
    for _, text in _sources(split):
        for line, label in _file_lines(text):
            lines.append(line)
            labels.append(label)
    return lines, np.asarray(labels, dtype=np.int64)
