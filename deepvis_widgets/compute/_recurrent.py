"""Per-timestep states and gates of ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``, and module lookup.

PyTorch's recurrent modules return only the last layer's ``h`` per step and
the final ``(h, c)`` of each layer. Everything else (cell states, gates, inner
layers) is recomputed here by unrolling the module's own weights over the
input it received, and checked against what the module returned.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from ._hooks import preserved_model

__all__ = ["GateTrace", "gate_trace"]

GATES = {"GRU": ("z", "r", "n"), "LSTM": ("i", "f", "g", "o")}
TRACE_NAMES = {"GRU": ("z", "r", "n", "h"), "LSTM": ("i", "f", "g", "o", "c", "h"), "RNN": ("h",)}
CHECK_ATOL = 1e-4
"""Largest difference allowed between unrolled and module outputs (cell states: relative to their size)."""


def cell_type(module: nn.RNNBase) -> str:
    return "LSTM" if module.mode == "LSTM" else "GRU" if module.mode == "GRU" else "RNN"


def _module_names(model: nn.Module) -> list[str]:
    return [name for name, _ in model.named_modules() if name]


def find_module(model: nn.Module, layer: str | nn.Module | None, *, arg: str = "layer") -> tuple[str, nn.Module]:
    """Resolves ``layer`` (a name, a submodule, or ``None`` for the first RNN) to ``(name, module)``."""
    if isinstance(layer, nn.Module):
        for name, mod in model.named_modules():
            if mod is layer:
                return name or type(model).__name__, mod
        raise ValueError(f"{arg}: the module given is not part of the model ({type(model).__name__})")
    rnns = [name or type(model).__name__ for name, mod in model.named_modules() if isinstance(mod, nn.RNNBase)]
    if layer is None:
        for name, mod in model.named_modules():
            if isinstance(mod, nn.RNNBase):
                return name or type(model).__name__, mod
        names = _module_names(model)
        raise ValueError(
            f"{arg}: no nn.RNN/nn.LSTM/nn.GRU in {type(model).__name__}; pass {arg}=<module name> "
            f"for another layer. Modules: {_preview(names)}"
        )
    if not isinstance(layer, str):
        raise TypeError(f"{arg}: expected a module name (str), a submodule or None, got {type(layer).__name__}")
    modules = dict(model.named_modules())
    if layer in modules and layer:
        return layer, modules[layer]
    names = _module_names(model)
    close = difflib.get_close_matches(layer, names, n=5)
    hint = f" Did you mean {_preview(close)}?" if close else ""
    rnn_hint = f" Recurrent modules: {_preview(rnns)}." if rnns else ""
    raise ValueError(
        f"{arg}: no module named {layer!r} in {type(model).__name__}.{hint}{rnn_hint} Modules: {_preview(names)}"
    )


def _preview(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "") if names else "(none)"


def _run_direction(
    kind: str,
    nonlinearity: Callable[[Tensor], Tensor],
    xp: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    w_hr: Tensor | None,
    h: Tensor,
    c: Tensor | None,
    reverse: bool,
) -> dict[str, Tensor]:
    """Unrolls one layer in one direction; ``xp`` is the input projection ``(B, T, G*H)``."""
    batch, steps, _ = xp.shape
    hidden = w_hh.shape[1] if w_hr is None else w_hr.shape[0]
    size = w_hh.shape[0] // (4 if kind == "LSTM" else 3 if kind == "GRU" else 1)
    out = {name: xp.new_empty(steps, batch, hidden if name == "h" else size) for name in TRACE_NAMES[kind]}
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    for t in order:
        gh = F.linear(h, w_hh, b_hh)
        if kind == "LSTM":
            gates = xp[:, t] + gh
            i, f, g, o = gates.chunk(4, dim=1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            assert c is not None  # an LSTM layer always gets its cell state
            c = f * c + i * g
            h = o * torch.tanh(c)
            if w_hr is not None:
                h = F.linear(h, w_hr)
            out["i"][t], out["f"][t], out["g"][t], out["o"][t], out["c"][t] = i, f, g, o, c
        elif kind == "GRU":
            xr, xz, xn = xp[:, t].chunk(3, dim=1)
            hr, hz, hn = gh.chunk(3, dim=1)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = (1 - z) * n + z * h
            out["r"][t], out["z"][t], out["n"][t] = r, z, n
        else:
            h = nonlinearity(xp[:, t] + gh)
        out["h"][t] = h
    return {name: v.transpose(0, 1) for name, v in out.items()}  # (B, T, .)


@dataclass
class Unrolled:
    """Traces per layer and direction (``traces[layer][direction][name]`` is ``(B, T, H)``)."""

    traces: list[list[dict[str, Tensor]]]
    max_error: float
    kind: str


def _split_input(module: nn.RNNBase, args: tuple, kwargs: dict) -> tuple[Tensor, Any, bool]:
    x = args[0] if args else kwargs.get("input")
    assert x is not None  # recorded by a hook around a call that ran, so it had an input
    hx = args[1] if len(args) > 1 else kwargs.get("hx")
    if isinstance(x, PackedSequence):
        x, lengths = pad_packed_sequence(x, batch_first=True)
        if len(set(lengths.tolist())) > 1:
            raise ValueError(
                "sequences: the recurrent module received a packed batch of different lengths; "
                "pass sequences that the model runs unpadded (from_model batches equal lengths)"
            )
        return x, hx, False
    if x.dim() == 2:  # unbatched (T, F)
        return x.unsqueeze(0), hx, True
    return (x if module.batch_first else x.transpose(0, 1)), hx, False


def _output_tensor(module: nn.RNNBase, output: Any, unbatched: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    seq, state = output
    if isinstance(seq, PackedSequence):
        seq, _ = pad_packed_sequence(seq, batch_first=True)
    elif unbatched:
        seq = seq.unsqueeze(0)
    elif not module.batch_first:
        seq = seq.transpose(0, 1)
    h_n, c_n = state if isinstance(state, tuple) else (state, None)
    if unbatched:
        h_n = h_n.unsqueeze(1)
        c_n = None if c_n is None else c_n.unsqueeze(1)
    return seq, h_n, c_n


def unroll(module: nn.RNNBase, args: tuple, kwargs: dict, output: Any, upto: int) -> Unrolled:
    """Recomputes layers ``0..upto`` of ``module`` from one call's inputs and checks them."""
    kind = cell_type(module)
    x, hx, unbatched = _split_input(module, args, kwargs)
    seq_out, h_n, c_n = _output_tensor(module, output, unbatched)
    batch = x.shape[0]
    dirs = 2 if module.bidirectional else 1
    hidden = module.hidden_size
    h_out = module.proj_size or hidden if kind == "LSTM" else hidden
    if hx is None:
        h0 = x.new_zeros(module.num_layers * dirs, batch, h_out)
        c0 = x.new_zeros(module.num_layers * dirs, batch, hidden) if kind == "LSTM" else None
    else:
        h0, c0 = hx if isinstance(hx, tuple) else (hx, None)
        if unbatched:
            h0 = h0.unsqueeze(1)
            c0 = None if c0 is None else c0.unsqueeze(1)
    act = torch.relu if module.mode == "RNN_RELU" else torch.tanh
    traces: list[list[dict[str, Tensor]]] = []
    err = 0.0
    layer_in = x
    with torch.no_grad():
        for layer in range(upto + 1):
            per_dir = []
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                b_ih = getattr(module, "bias_ih" + sfx) if module.bias else None
                b_hh = getattr(module, "bias_hh" + sfx) if module.bias else None
                w_hr = getattr(module, "weight_hr" + sfx) if kind == "LSTM" and module.proj_size else None
                xp = F.linear(layer_in, getattr(module, "weight_ih" + sfx), b_ih)
                idx = layer * dirs + d
                tr = _run_direction(
                    kind, act, xp, getattr(module, "weight_hh" + sfx), b_hh, w_hr,
                    h0[idx], None if c0 is None else c0[idx], reverse=bool(d),
                )
                last = 0 if d else -1
                err = max(err, float((tr["h"][:, last] - h_n[idx]).abs().max()))
                if c_n is not None:
                    # Cell states grow without bound (±20 is common), so compare them relative to their size.
                    scale = max(1.0, float(c_n[idx].abs().max()))
                    err = max(err, float((tr["c"][:, last] - c_n[idx]).abs().max()) / scale)
                per_dir.append(tr)
            traces.append(per_dir)
            layer_in = torch.cat([tr["h"] for tr in per_dir], dim=-1)
        if upto == module.num_layers - 1:
            err = max(err, float((layer_in - seq_out).abs().max()))
    if not err <= CHECK_ATOL:
        raise RuntimeError(
            f"the unrolled {kind} differs from the module's own outputs by {err:.3g} (> {CHECK_ATOL}); "
            f"{type(module).__name__} may be a customised subclass whose forward this code cannot reproduce"
        )
    return Unrolled(traces, err, kind)


def layer_index(module: nn.RNNBase, rnn_layer: Any, arg: str = "rnn_layer") -> int:
    n = module.num_layers
    if isinstance(rnn_layer, bool) or not isinstance(rnn_layer, (int, np.integer)):
        raise TypeError(f"{arg}: expected an int in [-{n}, {n}) or 'all', got {rnn_layer!r}")
    if not -n <= rnn_layer < n:
        raise ValueError(f"{arg}: {rnn_layer} is out of range for a {n}-layer {cell_type(module)} (expected -{n}..{n - 1})")
    return int(rnn_layer) % n


def capture_calls(model: nn.Module, module: nn.Module, run: Callable[[], Any]) -> list[tuple[tuple, dict, Any]]:
    """Runs ``run()`` with a forward hook on ``module``; returns every (args, kwargs, output)."""
    calls: list[tuple[tuple, dict, Any]] = []

    def hook(_mod: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        calls.append((args, kwargs, output))

    with preserved_model(model) as session, torch.no_grad():
        session.forward_hook(module, hook, with_kwargs=True)
        run()
    return calls


@dataclass(frozen=True, eq=False)
class GateTrace:
    """Gates and states of one GRU/LSTM layer and direction over one sequence.

    Attributes
    ----------
    cell_type
        ``"GRU"`` or ``"LSTM"``.
    arrays
        Name to ``(T, H)`` float32 array, in display order. GRU: ``z`` (update
        gate), ``r`` (reset gate), ``n`` (candidate state), ``h``; the step is
        ``h_t = (1 - z_t) * n_t + z_t * h_{t-1}``. LSTM: ``i``, ``f``, ``g``
        (cell candidate), ``o``, ``c``, ``h``; ``c_t = f_t * c_{t-1} + i_t * g_t``
        and ``h_t = o_t * tanh(c_t)`` (projected by ``weight_hr`` when ``proj_size > 0``).
    h0, c0
        Initial states ``(H,)`` (``c0`` is ``None`` for a GRU).
    layer, direction
        Which layer (0-based) and direction (0 forward, 1 backward; the
        backward arrays are still indexed by input position).
    max_error
        Largest absolute difference between the unrolled states and the
        module's own outputs for this call (must be <= 1e-4, else an error is raised).

    Example
    -------
    >>> gru = torch.nn.GRU(3, 4)
    >>> tr = gate_trace(gru, torch.randn(5, 3))
    >>> tr.names, tr["z"].shape
    (('z', 'r', 'n', 'h'), (5, 4))
    """

    cell_type: str
    arrays: dict[str, np.ndarray]
    h0: np.ndarray
    c0: np.ndarray | None
    layer: int
    direction: int
    max_error: float

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.arrays)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def __len__(self) -> int:
        return len(self.arrays["h"])


def gate_trace(
    model_or_module: nn.Module,
    sequence: Any,
    layer: str | nn.Module | None = None,
    *,
    rnn_layer: int = -1,
    direction: int = 0,
    forward_fn: Callable[[nn.Module, Tensor], Any] | None = None,
) -> GateTrace:
    """Per-step gates and states of a GRU or LSTM over one sequence, for the gate view.

    The gates are recomputed by unrolling the module's own weights over the
    input it receives during a normal forward pass (hooked, then removed; the
    model comes back unchanged), and checked against the module's outputs.

    Parameters
    ----------
    model_or_module
        An ``nn.GRU``/``nn.LSTM`` (then ``sequence`` is its input, ``(T, input_size)``
        float), or a model containing one (then ``sequence`` is a 1-D token-id
        tensor or list, run as a batch of one: ``model(sequence[None])``).
    sequence
        See above.
    layer
        Name of the recurrent module in the model, or the module; default the first one.
    rnn_layer
        Which stacked layer (negative counts from the end).
    direction
        0 forward, 1 backward (bidirectional modules only).
    forward_fn
        ``forward_fn(model, batch)`` replaces ``model(batch)`` for models that take other arguments.

    Returns
    -------
    GateTrace

    Example
    -------
    >>> lstm = torch.nn.LSTM(3, 4, num_layers=2)
    >>> tr = gate_trace(lstm, torch.randn(6, 3), rnn_layer=0)
    >>> tr.names, tr.max_error < 1e-5
    (('i', 'f', 'g', 'o', 'c', 'h'), True)
    """
    if not isinstance(model_or_module, nn.Module):
        raise TypeError(f"model_or_module: expected a torch.nn.Module, got {type(model_or_module).__name__}")
    name, module = find_module(model_or_module, layer)
    if not isinstance(module, nn.RNNBase):
        raise ValueError(f"layer: {name!r} is a {type(module).__name__}; gate_trace needs an nn.GRU or nn.LSTM")
    kind = cell_type(module)
    if kind == "RNN":
        raise ValueError(f"model_or_module: {name!r} is an nn.RNN, which has no gates; gate_trace needs an nn.GRU or nn.LSTM")
    dirs = 2 if module.bidirectional else 1
    if direction not in range(dirs):
        raise ValueError(f"direction: expected {' or '.join(map(str, range(dirs)))} for this module, got {direction!r}")
    li = layer_index(module, rnn_layer)
    if model_or_module is module:
        x = torch.as_tensor(sequence)
        if x.dim() != 2 or not x.is_floating_point() or x.shape[1] != module.input_size:
            raise ValueError(
                f"sequence: expected a float tensor of shape (T, {module.input_size}) for the bare "
                f"{kind}, got {tuple(x.shape)} {x.dtype}"
            )
        x = x.to(next(module.parameters()).dtype)
        calls = capture_calls(module, module, lambda: module(x))
    else:
        ids = torch.as_tensor(sequence)
        if ids.dim() != 1 or len(ids) == 0:
            raise ValueError(f"sequence: expected a non-empty 1-D sequence of token ids, got shape {tuple(ids.shape)}")
        batch = ids[None].to(_device(model_or_module))
        fwd = forward_fn or (lambda m, b: m(b))
        calls = capture_calls(model_or_module, module, lambda: fwd(model_or_module, batch))
    if len(calls) != 1:
        raise ValueError(f"layer: {name!r} ran {len(calls)} times in one forward pass; expected exactly once")
    un = unroll(module, *calls[0], upto=li)
    tr = un.traces[li][direction]
    if tr["h"].shape[0] != 1:
        raise ValueError(f"sequence: the module saw a batch of {tr['h'].shape[0]}; pass one sequence")
    arrays = {n: tr[n][0].float().numpy() for n in TRACE_NAMES[kind]}
    args, kwargs, _ = calls[0]
    _, hx, unbatched = _split_input(module, args, kwargs)
    idx = li * dirs + direction
    h0 = np.zeros(arrays["h"].shape[1], np.float32)
    c0 = np.zeros(arrays["c"].shape[1], np.float32) if kind == "LSTM" else None
    if hx is not None:
        h_init, c_init = hx if isinstance(hx, tuple) else (hx, None)
        h0 = (h_init[idx] if unbatched else h_init[idx, 0]).float().numpy()
        if c_init is not None:
            c0 = (c_init[idx] if unbatched else c_init[idx, 0]).float().numpy()
    return GateTrace(kind, arrays, h0, c0, li, direction, un.max_error)


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
