"""GateView: a GRU's or LSTM's gates and states over one sequence, one heatmap per component.

After the "Visualizing GRU mechanics" panels of Sankaran's talk "Visualization
in Deep Learning: Theme and Variations" (2023). Front end: ``js/gate_view.ts``.
Compute: :func:`~deepvis_widgets.compute.hidden_states.gate_trace`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import traitlets as t
from torch import Tensor, nn

from .._arrays import as_numpy, encode_array
from ..compute.hidden_states import GateTrace, gate_trace
from ._base import DeepVisWidget, progress_bar

__all__ = ["COMPONENTS", "GateView"]

#: How each component is named and coloured: (label, 'gate' in [0, 1] or 'state' around 0, hue).
COMPONENTS: dict[str, tuple[str, str, str]] = {
    "z": ("z_t update gate", "gate", "#e6550d"),
    "r": ("r_t reset gate", "gate", "#756bb1"),
    "n": ("n_t candidate state", "state", "#31a354"),
    "i": ("i_t input gate", "gate", "#e6550d"),
    "f": ("f_t forget gate", "gate", "#756bb1"),
    "g": ("g_t cell candidate", "state", "#31a354"),
    "o": ("o_t output gate", "gate", "#de2d26"),
    "c": ("c_t cell state", "state", "#8c6d31"),
    "h": ("h_t hidden state", "state", "#3182bd"),
}
EQUATIONS = {
    "GRU": "h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1},  n_t = tanh(W_n x_t + r_t ⊙ (U_n h_{t−1}) + b)",
    "LSTM": "c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t,  h_t = o_t ⊙ tanh(c_t)",
}
#: Most steps x units x components shown (float16 values in the page).
MAX_VALUES = 4_000_000


class GateView(DeepVisWidget, entry="gate_view"):
    """Gates and states of a GRU or LSTM over one sequence: units x steps heatmaps, one per component.

    For a GRU the heatmaps are the update gate ``z_t``, the reset gate ``r_t``,
    the candidate ``n_t`` and the state ``h_t`` (PyTorch's convention:
    ``h_t = (1 - z_t) * n_t + z_t * h_{t-1}``, so ``z`` near 1 keeps the old
    state); for an LSTM ``i, f, g, o, c, h``. Gates are coloured from white
    (0) to their hue (1); states from grey (negative) through white (0) to
    their hue (positive). Hover for every component's value at a step and
    unit; click a unit to plot its components over time.

    Parameters
    ----------
    trace
        A :class:`~deepvis_widgets.compute.hidden_states.GateTrace` (from
        :func:`~deepvis_widgets.compute.hidden_states.gate_trace`), or use :meth:`from_model`.
    tokens
        Optional label per step (e.g. the characters read).
    inputs
        Optional number per step, drawn as a line above the heatmaps (e.g. a time series).
    input_lines
        Reference values drawn across the input plot (e.g. ``(0, 1)`` for a band).
    units
        Which units to show, in this order (default all, by index).
    unit
        The unit whose components are plotted over time (default none).
    title
        Optional title.

    Example
    -------
    >>> import torch, deepvis_widgets as dv
    >>> gru = torch.nn.GRU(1, 8)
    >>> x = torch.randn(50, 1)
    >>> view = dv.GateView(dv.gate_trace(gru, x), inputs=x[:, 0])
    >>> view.components
    ['z', 'r', 'n', 'h']
    """

    # --- data (set at construction) ---------------------------------------------------------
    cell_type = t.Unicode("GRU", help="'GRU' or 'LSTM' (read-only).").tag(sync=True)
    components = t.List(t.Unicode(), help="Component names in display order, e.g. ['z', 'r', 'n', 'h'] (read-only).").tag(sync=True)
    labels = t.Dict(value_trait=t.Unicode(), help="Component name -> label (read-only).").tag(sync=True)
    kinds = t.Dict(value_trait=t.Unicode(), help="Component name -> 'gate' (in [0, 1]) or 'state' (read-only).").tag(sync=True)
    hues = t.Dict(value_trait=t.Unicode(), help="Component name -> CSS colour (read-only).").tag(sync=True)
    equation = t.Unicode("", help="The update rule, as text (read-only).").tag(sync=True)
    n_steps = t.Int(0, help="Steps in the sequence (read-only).").tag(sync=True)
    n_units = t.Int(0, help="Units of the layer (read-only).").tag(sync=True)
    caption = t.Unicode("", help="Which layer and direction, and the check against the module (read-only).").tag(sync=True)
    _arrays = t.Dict(help="Component name -> (n_steps, len(units)) float16, columns in `units` order.").tag(sync=True)
    tokens = t.List(t.Unicode(), help="Label per step, or [].").tag(sync=True)
    inputs = t.Dict(help="(n_steps,) float32 input per step, or {}.").tag(sync=True)
    input_lines = t.List(t.Float(), help="Reference values across the input plot.").tag(sync=True)
    units = t.List(t.Int(), help="Units shown, in display order (read-only; pass units= to choose).").tag(sync=True)

    # --- view state ----------------------------------------------------------------------------
    unit = t.Int(None, allow_none=True, help="Unit plotted over time below the heatmaps, or None.").tag(sync=True)

    def __init__(
        self,
        trace: GateTrace,
        *,
        tokens: Sequence[str] | None = None,
        inputs: Any = None,
        input_lines: Sequence[float] = (),
        units: Sequence[int] | np.ndarray | None = None,
        unit: int | None = None,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(trace, GateTrace):
            raise TypeError(f"trace: expected a GateTrace (gate_trace(...) or GateView.from_model), got {type(trace).__name__}")
        names = list(trace.names)
        T, H = trace.arrays["h"].shape
        unknown = [n for n in names if n not in COMPONENTS]
        if unknown:
            raise ValueError(f"trace: unknown components {unknown}; expected GRU (z, r, n, h) or LSTM (i, f, g, o, c, h)")
        for n in names:
            if trace.arrays[n].shape != (T, H):
                raise ValueError(f"trace: component {n!r} has shape {trace.arrays[n].shape}, expected ({T}, {H}) like h")
        if units is None:
            order = list(range(H))
        else:
            arr = as_numpy(units, "units")
            if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
                raise ValueError(f"units: expected a non-empty 1-D sequence of unit ids, got {arr.dtype} shape {arr.shape}")
            order = [int(u) for u in arr]
            bad = [u for u in order if not 0 <= u < H]
            if bad:
                raise ValueError(f"units: {bad[0]} is out of range for {H} units (expected 0..{H - 1})")
            if len(set(order)) != len(order):
                raise ValueError("units: expected each unit at most once")
        if T * len(order) * len(names) > MAX_VALUES:
            raise ValueError(
                f"trace: {T} steps x {len(order)} units x {len(names)} components is more than {MAX_VALUES:,} values; "
                "pass a shorter sequence or fewer units="
            )
        tok_list: list[str] = []
        if tokens is not None:
            if isinstance(tokens, str):
                tokens = list(tokens)
            tok_list = [str(x) for x in tokens]
            if len(tok_list) != T:
                raise ValueError(f"tokens: expected {T} labels (one per step), got {len(tok_list)}")
        inputs_payload: dict[str, Any] = {}
        if inputs is not None:
            x = as_numpy(inputs, "inputs").astype(np.float32)
            if x.ndim == 2 and x.shape[1] == 1:
                x = x[:, 0]
            if x.shape != (T,):
                raise ValueError(f"inputs: expected {T} numbers (one per step), got shape {x.shape}")
            inputs_payload = encode_array(x, "float32", name="inputs")
        lines = [float(v) for v in input_lines]
        if any(not math.isfinite(v) for v in lines):
            raise ValueError("input_lines: expected finite numbers")
        self._trace = trace
        layer = f"layer {trace.layer}" + (f", direction {trace.direction}" if trace.direction else "")
        super().__init__(
            cell_type=trace.cell_type,
            components=names,
            labels={n: COMPONENTS[n][0] for n in names},
            kinds={n: COMPONENTS[n][1] for n in names},
            hues={n: COMPONENTS[n][2] for n in names},
            equation=EQUATIONS.get(trace.cell_type, ""),
            n_steps=T,
            n_units=H,
            caption=f"{trace.cell_type} {layer}: {T} steps x {H} units; recomputed gates reproduce the module's outputs to {trace.max_error:.1e}",
            tokens=tok_list,
            inputs=inputs_payload,
            input_lines=lines,
            units=order,
            title="" if title is None else str(title),
            **kwargs,
        )
        self._arrays = {n: encode_array(trace.arrays[n][:, order], "float16", name=n) for n in names}
        if unit is not None:
            self.unit = unit

    @property
    def trace(self) -> GateTrace:
        """The gate trace shown (numpy arrays)."""
        return self._trace

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        sequence: Any,
        layer: str | nn.Module | None = None,
        *,
        rnn_layer: int = -1,
        direction: int = 0,
        forward_fn: Callable[[nn.Module, Tensor], Any] | None = None,
        **kwargs: Any,
    ) -> GateView:
        """Runs :func:`~deepvis_widgets.compute.hidden_states.gate_trace` and shows it.

        ``model`` is an ``nn.GRU``/``nn.LSTM`` (``sequence`` its ``(T, input_size)`` input) or a
        model containing one (``sequence`` one input, run as a batch of one). ``kwargs`` go to
        the view (``tokens=``, ``inputs=``, ``units=``, ``title=``...).

        Example
        -------
        >>> view = GateView.from_model(model, walk, inputs=walk, input_lines=(0, 1))  # doctest: +SKIP
        """
        with progress_bar("gate trace") as report:
            report("unrolling the recurrent layer", None)
            trace = gate_trace(model, sequence, layer, rnn_layer=rnn_layer, direction=direction, forward_fn=forward_fn)
        return cls(trace, **kwargs)

    @t.validate("unit")
    def _check_unit(self, proposal: t.Bunch) -> int | None:
        u = proposal["value"]
        if u is None:
            return None
        if u not in self.units:
            raise t.TraitError(f"unit: expected None or one of the shown units (0..{self.n_units - 1}, see .units), got {u}")
        return int(u)
