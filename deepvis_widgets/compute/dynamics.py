"""Training dynamics: scalar series, per-example loss trajectories, layer statistics.

Three recorders, all plain numpy (no widget code):

- :class:`ScalarLog` keeps ``(step, value)`` series per ``(split, name)``
  (``train/loss``, ``val/acc``...).
- :class:`ExampleLog` keeps, for every tracked example, the sequence of its
  losses (and optional predictions) with the step of each observation. An
  example's k-th observation goes to column k, so logging a whole dataset
  every epoch and logging each mini-batch as it is trained both give one
  column per pass, and examples may be seen at different steps (ragged logs).
- :func:`track_layers` hooks a model during training and records, every
  ``every`` training forward passes, each layer's activation mean and
  standard deviation, fraction of dead units and gradient norm.

Documented behaviour for odd input: NaN or infinite losses are kept (views
draw them as gaps) and counted in ``nan_count``; an id never declared when
the log was created with fixed ids is an error naming it; steps must not go
back in time per series / per example (logging the same step again replaces
that observation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ExampleLog",
    "LayerStats",
    "LayerTracker",
    "ScalarLog",
    "example_groups",
    "track_layers",
]

#: Metrics recorded by :func:`track_layers`, in display order.
LAYER_METRICS = ("grad_norm", "act_mean", "act_std", "dead_fraction")


def _scalar(value: Any, name: str) -> float:
    if type(value).__module__.startswith("torch"):
        if value.numel() != 1:
            raise ValueError(f"{name}: expected a single number, got a tensor of shape {tuple(value.shape)}")
        value = value.detach().cpu().item()
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}") from None


def _vector(value: Any, name: str, kind: str = "f") -> np.ndarray:
    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu()
        if value.dtype.is_floating_point and kind == "f":
            value = value.float()
        value = value.numpy()
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected numbers, got dtype {arr.dtype}")
    if arr.ndim == 2 and 1 in arr.shape:  # (n, 1) columns, e.g. a loss with keepdim
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence (one value per example), got shape {arr.shape}")
    return arr


# --- scalars -----------------------------------------------------------------------


@dataclass
class _Series:
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


class ScalarLog:
    """``(step, value)`` series per split and metric name.

    Example
    -------
    >>> log = ScalarLog()
    >>> log.add(0, "train", loss=2.3, acc=0.1)
    >>> log.add(10, "train", loss=1.1)
    >>> steps, values = log.series("train", "loss")
    >>> steps.tolist(), values.tolist()
    ([0, 10], [2.3, 1.1])
    """

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], _Series] = {}
        self.nan_count: dict[tuple[str, str], int] = {}
        self.version = 0

    def add(self, step: int, split: str = "train", **scalars: Any) -> None:
        """Records ``scalars`` (name=value) at ``step`` for ``split``.

        Raises
        ------
        ValueError
            When ``step`` is below the last step logged for one of the series,
            or no scalar is given.
        """
        step = self._step(step)
        if not isinstance(split, str) or not split:
            raise TypeError(f"split: expected a non-empty string such as 'train' or 'val', got {split!r}")
        if not scalars:
            raise ValueError("log: expected at least one scalar, e.g. log(step, loss=0.3)")
        values = {name: _scalar(v, name) for name, v in scalars.items()}
        for name in values:
            s = self._series.get((split, name))
            if s is not None and s.steps and step < s.steps[-1]:
                raise ValueError(
                    f"step: expected {s.steps[-1]} or later (the last step logged for {split}/{name}), got {step}"
                )
        for name, v in values.items():
            s = self._series.setdefault((split, name), _Series())
            if s.steps and s.steps[-1] == step:
                s.values[-1] = v  # the same step again replaces it
            else:
                s.steps.append(step)
                s.values.append(v)
            if not math.isfinite(v):
                self.nan_count[(split, name)] = self.nan_count.get((split, name), 0) + 1
        self.version += 1

    @staticmethod
    def _step(step: Any) -> int:
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise TypeError(f"step: expected an int, got {type(step).__name__}")
        return int(step)

    @property
    def keys(self) -> list[tuple[str, str]]:
        """``(split, name)`` of every series, in the order they first appeared."""
        return list(self._series)

    def series(self, split: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Steps (int64) and values (float64) of one series."""
        s = self._series.get((split, name))
        if s is None:
            raise KeyError(f"no series {split}/{name}; logged: {[f'{a}/{b}' for a, b in self._series]}")
        return np.asarray(s.steps, dtype=np.int64), np.asarray(s.values, dtype=np.float64)

    def __len__(self) -> int:
        return len(self._series)


# --- per-example trajectories -----------------------------------------------------------


class ExampleLog:
    """Per-example loss trajectories, one row per example, one column per observation.

    Parameters
    ----------
    ids
        The ids of every example that will be logged, in display order. With
        ``None`` (default) the set grows as new ids are logged.
    max_examples
        Refuse to track more examples than this (memory guard).

    Example
    -------
    >>> log = ExampleLog()
    >>> log.add(0, [3, 7], [2.0, 1.5])
    >>> log.add(5, [7], [0.4])
    >>> log.ids.tolist(), log.counts.tolist()
    ([3, 7], [1, 2])
    >>> log.final_loss().tolist()
    [2.0, 0.4000000059604645]
    """

    def __init__(self, ids: Sequence[int] | np.ndarray | None = None, *, max_examples: int = 1_000_000) -> None:
        self.max_examples = int(max_examples)
        self._ids = np.zeros(0, dtype=np.int64)
        self._index: dict[int, int] = {}
        self._n = 0
        self._loss = np.full((0, 0), np.nan, dtype=np.float32)
        self._steps = np.full((0, 0), -1, dtype=np.int64)
        self._preds: np.ndarray | None = None
        self._count = np.zeros(0, dtype=np.int64)
        self.fixed = ids is not None
        self.nan_count = 0
        self.version = 0
        if ids is not None:
            arr = _vector(ids, "ids")
            if arr.dtype.kind not in "iu":
                raise TypeError(f"ids: expected integer example ids, got dtype {arr.dtype}")
            self._add_rows(self._check_unique(arr.astype(np.int64), "ids"))

    # -- storage --
    def _check_unique(self, ids: np.ndarray, name: str) -> np.ndarray:
        uniq, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"{name}: each example id may appear once per call; repeated: {uniq[counts > 1][:5].tolist()}")
        return ids

    def _add_rows(self, new_ids: np.ndarray) -> None:
        n_new = len(new_ids)
        if self._n + n_new > self.max_examples:
            raise ValueError(
                f"ids: tracking {self._n + n_new} examples would exceed max_examples={self.max_examples}"
            )
        need = self._n + n_new
        if need > self._loss.shape[0]:
            rows = max(need, 2 * self._loss.shape[0], 64)
            self._resize(rows, max(self._loss.shape[1], 4))
        self._ids = np.concatenate([self._ids, new_ids])
        for k, i in enumerate(new_ids.tolist()):
            self._index[i] = self._n + k
        self._n = need

    def _resize(self, rows: int, cols: int) -> None:
        def grow(a: np.ndarray, fill: float) -> np.ndarray:
            out = np.full((rows, cols), fill, dtype=a.dtype)
            out[: a.shape[0], : a.shape[1]] = a
            return out

        self._loss = grow(self._loss, np.nan)
        self._steps = grow(self._steps, -1)
        if self._preds is not None:
            self._preds = grow(self._preds, np.nan)
        count = np.zeros(rows, dtype=np.int64)
        count[: len(self._count)] = self._count
        self._count = count

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        index = self._index
        rows = np.fromiter((index.get(i, -1) for i in ids.tolist()), dtype=np.int64, count=len(ids))
        unknown = rows < 0
        if unknown.any():
            new = ids[unknown]
            if self.fixed:
                raise ValueError(
                    f"ids: {len(new)} id(s) were not declared when the monitor was created, e.g. {new[:5].tolist()} "
                    f"(known ids: {len(self._ids)}, from {self._ids.min()} to {self._ids.max()})"
                )
            start = self._n
            self._add_rows(new)
            rows[unknown] = np.arange(start, start + len(new))
        return rows

    def add(self, step: int, ids: Any, losses: Any, preds: Any = None) -> None:
        """Records the losses (and optionally predictions) of examples ``ids`` at ``step``.

        Parameters
        ----------
        step
            Training step (int). Per example it must not go back in time; the
            same step again replaces that example's last observation.
        ids
            1-D integer ids (list, numpy array or tensor), no repeats.
        losses
            One loss per id. NaN/inf are kept and counted in :attr:`nan_count`.
        preds
            Optional prediction per id (class index or value), shown with the example.
        """
        step = ScalarLog._step(step)
        id_arr = _vector(ids, "ids")
        if id_arr.dtype.kind not in "iu":
            raise TypeError(f"ids: expected integer example ids, got dtype {id_arr.dtype}")
        id_arr = self._check_unique(id_arr.astype(np.int64), "ids")
        loss = _vector(losses, "losses").astype(np.float32)
        if loss.shape[0] != id_arr.shape[0]:
            raise ValueError(f"losses: expected {len(id_arr)} values (one per id), got {loss.shape[0]}")
        pred = None
        if preds is not None:
            pred = _vector(preds, "preds").astype(np.float32)
            if pred.shape[0] != id_arr.shape[0]:
                raise ValueError(f"preds: expected {len(id_arr)} values (one per id), got {pred.shape[0]}")
        if len(id_arr) == 0:
            return
        rows = self._rows(id_arr)
        cnt = self._count[rows]
        last = np.where(cnt > 0, self._steps[rows, np.maximum(cnt - 1, 0)], -(2**62))
        back = last > step
        if back.any():
            k = int(np.argmax(back))
            raise ValueError(
                f"step: expected {int(last[k])} or later for example {int(id_arr[k])} (its last logged step), got {step}"
            )
        cols = np.where(last == step, cnt - 1, cnt)
        if cols.max() >= self._loss.shape[1]:
            self._resize(self._loss.shape[0], max(int(cols.max()) + 1, 2 * self._loss.shape[1]))
        if pred is not None and self._preds is None:
            self._preds = np.full(self._loss.shape, np.nan, dtype=np.float32)
        self._loss[rows, cols] = loss
        self._steps[rows, cols] = step
        if self._preds is not None:
            self._preds[rows, cols] = np.nan if pred is None else pred
        self._count[rows] = np.maximum(cnt, cols + 1)
        self.nan_count += int((~np.isfinite(loss)).sum())
        self.version += 1

    # -- views of the data --
    @property
    def ids(self) -> np.ndarray:
        """Example ids (int64), one per row."""
        return self._ids.copy()

    @property
    def counts(self) -> np.ndarray:
        """Observations per example."""
        return self._count[: self._n].copy()

    @property
    def n_columns(self) -> int:
        """Longest trajectory (observations)."""
        return int(self._count[: self._n].max(initial=0))

    def __len__(self) -> int:
        return self._n

    def row_of(self, example_id: int) -> int:
        """Row of an example id (KeyError naming it when unknown)."""
        try:
            return self._index[int(example_id)]
        except KeyError:
            raise KeyError(f"example id {example_id} was never logged") from None

    def losses(self) -> np.ndarray:
        """``(n_examples, n_columns)`` float32, NaN where an example has no observation."""
        return self._loss[: self._n, : self.n_columns].copy()

    def steps(self) -> np.ndarray:
        """``(n_examples, n_columns)`` int64 step of each observation, -1 where none."""
        return self._steps[: self._n, : self.n_columns].copy()

    def preds(self) -> np.ndarray | None:
        """``(n_examples, n_columns)`` float32 predictions, or None if never logged."""
        return None if self._preds is None else self._preds[: self._n, : self.n_columns].copy()

    def uniform_steps(self) -> np.ndarray | None:
        """The steps of each column when every example was observed at the same steps, else None."""
        c = self.n_columns
        if self._n == 0 or c == 0:
            return np.zeros(0, dtype=np.int64)
        s = self._steps[: self._n, :c]
        first = s[0]
        if (first < 0).any() or not (s == first[None, :]).all():
            return None
        return first.copy()

    def _last(self, values: np.ndarray) -> np.ndarray:
        n = self._n
        cnt = self._count[:n]
        out = np.full(n, np.nan, dtype=np.float32)
        has = cnt > 0
        out[has] = values[:n][has, cnt[has] - 1]
        return out

    def final_loss(self) -> np.ndarray:
        """Each example's latest loss (NaN if never observed)."""
        return self._last(self._loss)

    def final_pred(self) -> np.ndarray | None:
        """Each example's latest prediction, or None."""
        return None if self._preds is None else self._last(self._preds)

    def loss_at(self, step: int | None = None) -> np.ndarray:
        """Each example's loss at its first observation at or after ``step`` (default: its first one)."""
        n = self._n
        c = self.n_columns
        out = np.full(n, np.nan, dtype=np.float32)
        if c == 0:
            return out
        ok = np.arange(c)[None, :] < self._count[:n, None]
        if step is not None:
            ok &= self._steps[:n, :c] >= step
        col = np.where(ok.any(1), ok.argmax(1), -1)
        has = col >= 0
        out[has] = self._loss[:n][has, col[has]]
        return out


def example_groups(early: Any, final: Any, threshold: float) -> np.ndarray:
    """Sorts examples by when they were learned, from an early and a final loss.

    Parameters
    ----------
    early, final
        Per-example losses early in training (e.g. after the first epoch) and at the end.
    threshold
        A loss below it counts as learned (e.g. ``-log(0.5)`` for "more than
        even odds on the right class").

    Returns
    -------
    numpy.ndarray
        One of ``'early'`` (learned early, still learned), ``'late'`` (learned
        by the end only), ``'never'`` (still not learned), ``'forgotten'``
        (learned early, lost by the end) or ``'unknown'`` (NaN) per example.

    Example
    -------
    >>> example_groups([0.1, 2.0, 2.0, 0.1], [0.1, 0.1, 2.0, 2.0], 0.7).tolist()
    ['early', 'late', 'never', 'forgotten']
    """
    e = np.asarray(early, dtype=np.float64).reshape(-1)
    f = np.asarray(final, dtype=np.float64).reshape(-1)
    if e.shape != f.shape:
        raise ValueError(f"final: expected {e.shape[0]} losses like early, got {f.shape[0]}")
    out = np.full(e.shape, "unknown", dtype=object)
    ok = np.isfinite(e) & np.isfinite(f)
    el, fl = e < threshold, f < threshold
    out[ok & el & fl] = "early"
    out[ok & ~el & fl] = "late"
    out[ok & ~el & ~fl] = "never"
    out[ok & el & ~fl] = "forgotten"
    return out.astype(str)


# --- layer statistics ---------------------------------------------------------------


@dataclass
class LayerStats:
    """Per-layer statistics over training.

    Attributes
    ----------
    layers
        Layer names (rows).
    steps
        ``(S,)`` training forward passes at which statistics were recorded.
    metrics
        ``{name: (L, S) float64}`` for ``grad_norm`` (L2 norm of the layer's own
        parameter gradients; NaN for layers without parameters), ``act_mean``,
        ``act_std`` and ``dead_fraction`` (share of units whose output is never
        positive in the batch).
    """

    layers: list[str]
    steps: np.ndarray
    metrics: dict[str, np.ndarray]


def _unit_dim(out: Any) -> int:
    # (batch, channels, ...) for images and volumes; features last otherwise.
    return 1 if out.ndim >= 4 else out.ndim - 1


def _skip(module: Any) -> bool:
    from torch import nn

    return isinstance(module, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity, nn.Flatten))


def _inert(*_args: Any) -> None:
    return None


def _make_inert() -> Callable[..., None]:
    return _inert


class _Hook:
    """A tracker hook that copies of the model do not inherit.

    ``copy.deepcopy(model)`` (e.g. to keep a checkpoint) or pickling it while
    a tracker is attached would otherwise copy the tracker and whatever its
    callback holds (a widget, which refuses to be copied); the copy gets an
    inert hook instead.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    def __deepcopy__(self, memo: dict[int, Any]) -> Callable[..., None]:
        return _inert

    def __reduce__(self) -> tuple[Any, ...]:
        return (_make_inert, ())


class LayerTracker:
    """Records layer statistics during training; made by :func:`track_layers`.

    Use as a context manager, or call :meth:`remove` when training ends; the
    model's hooks are gone afterwards and nothing else about it changed.

    Attributes
    ----------
    step
        Training forward passes seen so far.
    """

    def __init__(
        self,
        model: Any,
        every: int = 10,
        layers: Sequence[str] | None = None,
        on_record: Callable[[LayerStats], None] | None = None,
    ) -> None:
        import torch

        from ._hooks import ModelSession

        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every: expected a positive int (record every N training steps), got {every!r}")
        modules = dict(model.named_modules())
        if layers is None:
            names = [n for n, m in modules.items() if not list(m.children()) and not _skip(m)]
        else:
            names = list(layers)
            missing = [n for n in names if n not in modules]
            if missing:
                raise ValueError(f"layers: {missing} are not modules of the model; it has e.g. {list(modules)[1:12]}")
        if not names:
            raise ValueError("layers: the model has no layers to track")
        self.model = model
        self.every = every
        self.layers = names
        self.on_record = on_record
        self.step = 0
        self._recording: int | None = None
        self._row: dict[str, list[float]] = {}
        self._grad_sq: dict[str, float] = {}
        self._steps: list[int] = []
        self._rows: list[dict[str, list[float]]] = []
        self._has_params = {n: any(True for _ in modules[n].parameters(recurse=False)) for n in names}
        # ModelSession (compute/_hooks.py) owns every hook and removes them all
        # in close(). Not preserved_model: a tracker lives through training, and
        # restoring the train/eval mode or .grad on exit would undo the user's work.
        self._session = ModelSession(model)
        self._session.forward_pre_hook(model, _Hook(self._on_model_forward))
        for name in names:
            self._session.forward_hook(modules[name], _Hook(self._activation_hook(name)))
            for p in modules[name].parameters(recurse=False):
                if p.requires_grad:
                    self._session.on_exit(p.register_hook(_Hook(self._grad_hook(name))).remove)
        self.closed = False

    # -- hooks --
    def _on_model_forward(self, module: Any, _args: Any) -> None:
        import torch

        if not (module.training and torch.is_grad_enabled()):
            return  # evaluation passes are not training steps
        self._finish()
        if self.step % self.every == 0:
            self._recording = self.step
            self._row = {m: [math.nan] * len(self.layers) for m in LAYER_METRICS}
            self._grad_sq = {}
        self.step += 1

    def _activation_hook(self, name: str) -> Callable[..., None]:
        idx = self.layers.index(name)

        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            import torch

            if self._recording is None or not torch.is_grad_enabled():
                return
            out = output[0] if isinstance(output, (tuple, list)) else output
            out = getattr(out, "data", out) if not isinstance(out, torch.Tensor) else out
            if not isinstance(out, torch.Tensor) or not out.is_floating_point() or out.numel() == 0:
                return
            with torch.no_grad():
                o = out.detach().float()
                self._row["act_mean"][idx] = float(o.mean())
                self._row["act_std"][idx] = float(o.std()) if o.numel() > 1 else 0.0
                d = _unit_dim(o)
                units = o.movedim(d, -1).reshape(-1, o.shape[d])
                self._row["dead_fraction"][idx] = float((units.amax(0) <= 0).float().mean())

        return hook

    def _grad_hook(self, name: str) -> Callable[[Any], None]:
        def hook(grad: Any) -> None:
            if self._recording is not None:
                self._grad_sq[name] = self._grad_sq.get(name, 0.0) + float(grad.detach().float().pow(2).sum())

        return hook

    def _finish(self) -> None:
        if self._recording is None:
            return
        for i, name in enumerate(self.layers):
            if name in self._grad_sq:
                self._row["grad_norm"][i] = math.sqrt(self._grad_sq[name])
            elif self._has_params[name]:
                self._row["grad_norm"][i] = math.nan  # no backward for this step (yet)
        self._steps.append(self._recording)
        self._rows.append(self._row)
        self._recording = None
        if self.on_record is not None:
            self.on_record(self.stats)

    # -- results --
    @property
    def stats(self) -> LayerStats:
        """What has been recorded so far (the step in progress excluded)."""
        metrics = {
            m: (np.array([r[m] for r in self._rows], dtype=np.float64).T if self._rows else np.zeros((len(self.layers), 0)))
            for m in LAYER_METRICS
        }
        return LayerStats(list(self.layers), np.asarray(self._steps, dtype=np.int64), metrics)

    def remove(self) -> LayerStats:
        """Finishes the step in progress, removes every hook, and returns the statistics."""
        if not self.closed:
            self._finish()
            self._session.close()
            self.closed = True
        return self.stats

    def __enter__(self) -> LayerTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def track_layers(
    model: Any,
    every: int = 10,
    layers: Sequence[str] | None = None,
    *,
    on_record: Callable[[LayerStats], None] | None = None,
) -> LayerTracker:
    """Records per-layer activation and gradient statistics while a model trains.

    Every ``every``-th training forward pass (``model.training`` and grad
    enabled; evaluation passes are ignored), each tracked layer's output mean,
    standard deviation and dead-unit fraction are recorded, and the following
    backward pass adds the L2 norm of the layer's parameter gradients. A layer
    that never learns shows up as a row of near-zero gradient norms; a layer
    of dying ReLUs as a dead fraction climbing to 1.

    Parameters
    ----------
    model
        The ``torch.nn.Module`` being trained.
    every
        Record every N training steps (forward passes).
    layers
        Module names (``model.named_modules()``); default every leaf module
        except dropout, identity and flatten.
    on_record
        Called with the :class:`LayerStats` so far after each recorded step
        (``TrainingMonitor.track_layers`` uses it to update its view).

    Returns
    -------
    LayerTracker
        A context manager; ``.remove()`` removes the hooks; ``.stats`` holds the numbers.

    Example
    -------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> with track_layers(net, every=2) as tracker:
    ...     for _ in range(4):
    ...         opt.zero_grad(); net(torch.randn(16, 4)).pow(2).mean().backward(); opt.step()
    >>> tracker.stats.steps.tolist(), tracker.stats.metrics["grad_norm"].shape
    ([0, 2], (3, 2))
    """
    return LayerTracker(model, every, layers, on_record)
