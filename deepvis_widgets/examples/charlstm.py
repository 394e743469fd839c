"""A character-level LSTM language model on Python standard-library source.

Karpathy-style: it reads source one character at a time and predicts the next
one. Some of its cells track things no one told it about, such as how deep the
current line is indented or whether it is inside a ``#`` comment; the LSTMVis
notebook looks for them. ``scripts/train_char_lstm.py`` trains it with
truncated back-propagation through time on contiguous streams of the training
modules (:func:`~deepvis_widgets.examples.pysource.stdlib_sources`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ._common import load_weights, save_weights, seed_everything, weights_path
from .pysource import stdlib_sources

__all__ = [
    "CHAR_VOCAB",
    "CharLSTM",
    "CharLSTMBundle",
    "char_lstm",
    "char_lstm_loss",
    "char_lstm_states",
    "decode_chars",
    "encode_chars",
    "stdlib_text",
    "train_char_lstm",
]

UNKNOWN = "\ufffd"
#: Newline, the 95 printable ASCII characters, and one "unknown" character (97).
CHAR_VOCAB: tuple[str, ...] = ("\n", *(chr(i) for i in range(32, 127)), UNKNOWN)
_INDEX = {c: i for i, c in enumerate(CHAR_VOCAB)}
_UNK = _INDEX[UNKNOWN]
WEIGHTS = "char_lstm.pt"


def encode_chars(text: str) -> torch.Tensor:
    """Character ids (``int64``, shape ``(len(text),)``); other characters map to ``\\ufffd``.

    Example
    -------
    >>> encode_chars("a\\n").tolist()
    [66, 0]
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return torch.tensor([_INDEX.get(c, _UNK) for c in text], dtype=torch.int64)


def decode_chars(ids: torch.Tensor | np.ndarray | list[int]) -> str:
    """Text from character ids (inverse of :func:`encode_chars` for known characters).

    Example
    -------
    >>> decode_chars(encode_chars("def f():"))
    'def f():'
    """
    flat = np.asarray(ids.detach().cpu() if isinstance(ids, torch.Tensor) else ids).reshape(-1)
    if flat.size and (flat.min() < 0 or flat.max() >= len(CHAR_VOCAB)):
        raise ValueError(f"ids must lie in [0, {len(CHAR_VOCAB)}), got {flat.min()}..{flat.max()}")
    return "".join(CHAR_VOCAB[i] for i in flat.tolist())


def stdlib_text(n_chars: int | None = None, split: str = "test") -> str:
    """Concatenated standard-library source, the char LSTM's corpus.

    Parameters
    ----------
    n_chars
        Keep only the first ``n_chars`` characters (``None``: everything).
    split
        ``"test"`` (held-out modules, default: what the model never saw),
        ``"train"`` or ``"all"``.

    Example
    -------
    >>> len(stdlib_text(100)), stdlib_text(split="train")[:10]
    (100, '# Copyrigh')
    """
    if n_chars is not None and (not isinstance(n_chars, int) or n_chars < 1):
        raise ValueError(f"n_chars must be a positive int or None, got {n_chars!r}")
    text = "".join(t for _, t in stdlib_sources(split))  # type: ignore[arg-type]
    return text if n_chars is None else text[:n_chars]


class CharLSTM(nn.Module):
    """Embedding -> one-layer LSTM -> linear over :data:`CHAR_VOCAB`.

    Parameters
    ----------
    hidden_size
        LSTM width (256 for the shipped model).
    embedding_dim
        Size of the character embedding.

    Example
    -------
    >>> logits, (h, c) = CharLSTM()(encode_chars("def")[None])
    >>> logits.shape, c.shape
    (torch.Size([1, 3, 97]), torch.Size([1, 1, 256]))
    """

    def __init__(self, hidden_size: int = 256, embedding_dim: int = 64) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(len(CHAR_VOCAB), embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, len(CHAR_VOCAB))

    def forward(
        self, ids: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Next-character logits ``(batch, time, 97)`` and the final ``(h, c)``."""
        if ids.ndim != 2:
            raise ValueError(f"ids must have shape (batch, time), got {tuple(ids.shape)}")
        out, state = self.lstm(self.embedding(ids), state)
        return self.head(out), state


@torch.no_grad()
def char_lstm_states(model: CharLSTM, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every time step's hidden state, cell state and gates for one sequence.

    Unrolls the LSTM by hand with its own weights (``nn.LSTM`` returns only the
    hidden states), starting from zeros.

    Parameters
    ----------
    model
        A :class:`CharLSTM`.
    ids
        ``(time,)`` character ids from :func:`encode_chars`.

    Returns
    -------
    dict
        ``h``, ``c`` (cell), ``i``, ``f``, ``g``, ``o`` (gates), each ``(time, hidden)``.

    Example
    -------
    >>> states = char_lstm_states(CharLSTM(), encode_chars("if x:"))
    >>> states["c"].shape
    torch.Size([5, 256])
    """
    if ids.ndim != 1:
        raise ValueError(f"ids must have shape (time,), got {tuple(ids.shape)}")
    lstm = model.lstm
    x = model.embedding(ids) @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + lstm.bias_hh_l0
    w_hh = lstm.get_parameter("weight_hh_l0").T
    h = torch.zeros(model.hidden_size)
    c = torch.zeros(model.hidden_size)
    out: dict[str, list[torch.Tensor]] = {k: [] for k in "hcifgo"}
    for t in range(len(ids)):
        i, f, g, o = (x[t] + h @ w_hh).chunk(4)
        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
        c = f * c + i * g
        h = o * c.tanh()
        for key, value in zip("hcifgo", (h, c, i, f, g, o), strict=True):
            out[key].append(value)
    return {k: torch.stack(v) for k, v in out.items()}


class CharLSTMBundle(NamedTuple):
    """What :func:`char_lstm` returns: the model and its text helpers."""

    model: CharLSTM
    vocab: tuple[str, ...]
    encode: Callable[[str], torch.Tensor]
    decode: Callable[[Any], str]


def _streams(text: str, batch_size: int) -> torch.Tensor:
    ids = encode_chars(text)
    per_stream = len(ids) // batch_size
    return ids[: per_stream * batch_size].view(batch_size, per_stream)


@torch.no_grad()
def char_lstm_loss(model: CharLSTM, text: str, window: int = 256) -> float:
    """Mean next-character cross-entropy (nats) on ``text``, state carried across windows.

    Example
    -------
    >>> char_lstm_loss(char_lstm().model, stdlib_text(20000)) < 1.3
    True
    """
    was_training = model.training
    model.eval()
    try:
        ids = encode_chars(text)[None]
        state = None
        total = 0.0
        for start in range(0, ids.shape[1] - 1, window):
            x = ids[:, start : start + window + 1]
            logits, state = model(x[:, :-1], state)
            total += float(F.cross_entropy(logits[0], x[0, 1:], reduction="sum"))
        return total / (ids.shape[1] - 1)
    finally:
        model.train(was_training)


def train_char_lstm(
    steps: int = 2500,
    seed: int = 0,
    *,
    batch_size: int = 32,
    window: int = 128,
    hidden_size: int = 256,
    lr: float = 4e-3,
    n_eval_chars: int = 20000,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[CharLSTM, dict[str, Any]]:
    """Trains :class:`CharLSTM` with truncated BPTT; deterministic for a seed.

    The training modules are cut into ``batch_size`` contiguous streams that are
    read ``window`` characters at a time, carrying the LSTM state between
    windows (reset when a stream wraps around).

    Parameters
    ----------
    steps
        Optimizer steps (2,500 published; ~4.7 passes over the 2.2 M characters).
    seed
        Seeds the weights (the data order is fixed).
    batch_size, window, hidden_size
        Streams per batch, characters per step, LSTM width.
    lr
        Adam peak learning rate (warm-up, then cosine to 10%).
    n_eval_chars
        Characters of held-out text for the final loss.
    progress
        Optional ``callback(step, loss)``.

    Returns
    -------
    model : CharLSTM
        Trained, in eval mode.
    metrics : dict
        ``test_loss`` (nats/char on held-out modules), ``train_loss`` (last 50
        steps' mean), ``losses`` (per step), ``seconds``.

    Example
    -------
    >>> model, metrics = train_char_lstm(steps=5)  # doctest: +SKIP
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    seed_everything(seed)
    streams = _streams(stdlib_text(split="train"), batch_size)
    n_windows = (streams.shape[1] - 1) // window
    model = CharLSTM(hidden_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    warmup = max(steps // 20, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress_ = (step - warmup) / max(steps - warmup, 1)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    losses = np.empty(steps, dtype=np.float32)
    state: tuple[torch.Tensor, torch.Tensor] | None = None
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        w = step % n_windows
        if w == 0:
            state = None
        chunk = streams[:, w * window : (w + 1) * window + 1]
        logits, state = model(chunk[:, :-1], state)
        state = (state[0].detach(), state[1].detach())
        loss = F.cross_entropy(logits.flatten(0, 1), chunk[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses[step] = loss.item()
        if progress is not None:
            progress(step, losses[step].item())
    seconds = time.perf_counter() - start
    model.eval()
    metrics = {
        "test_loss": char_lstm_loss(model, stdlib_text(n_eval_chars)),
        "train_loss": float(losses[-50:].mean()),
        "losses": losses,
        "seconds": seconds,
    }
    return model, metrics


def save_char_lstm(model: CharLSTM, path: Any) -> int:
    """Writes the weights (float16); returns the file size in bytes.

    Example
    -------
    >>> save_char_lstm(model, "char_lstm.pt")  # doctest: +SKIP
    """
    return save_weights(model.state_dict(), path)


def char_lstm() -> CharLSTMBundle:
    """The shipped character LSTM (eval mode) with its vocabulary and helpers.

    Measured on the first 30,000 characters of the held-out modules (Python
    3.11's stdlib): 1.10 nats/char (1.16 on the first 20,000; uniform guessing
    is 4.57). Cells of ``c`` track indentation depth: cell 21 (r = -0.85 over
    the first 6,000 characters, -0.73 over 30,000) and cell 213 (-0.76 over
    30,000). Cell 117 is a "prose" cell:
    it is on inside comments and strings alike (|r| = 0.72 against
    inside-comment-or-string); among characters outside strings it separates
    comments from code (|r| = 0.71). No single cell separates comments from
    docstrings. Trained by ``scripts/train_char_lstm.py`` in 2,500 steps
    (30 min on a heavily shared core, roughly 8-10 min on an idle one).

    Returns
    -------
    CharLSTMBundle
        ``model`` (:class:`CharLSTM`, hidden 256), ``vocab`` (:data:`CHAR_VOCAB`),
        ``encode`` (:func:`encode_chars`) and ``decode`` (:func:`decode_chars`).
        Use :func:`char_lstm_states` for per-character cell states and gates.

    Example
    -------
    >>> model, vocab, encode, decode = char_lstm()
    >>> logits, _ = model(encode("    def __init__(sel")[None])
    >>> decode(logits[0, -1].argmax())
    'f'
    """
    model = CharLSTM()
    model.load_state_dict(load_weights(weights_path(WEIGHTS)))
    return CharLSTMBundle(model.eval(), CHAR_VOCAB, encode_chars, decode_chars)
