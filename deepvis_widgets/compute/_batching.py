"""Memory-aware batch sizes and progress bars for attribution methods.

How many examples one forward (and backward) pass may hold is decided from a
memory budget and a measured footprint of one example: one forward pass under
autograd's saved-tensor hooks counts exactly the activations that the
backward pass keeps alive, and forward hooks give the largest activation a
gradient-free pass holds. Footprints are cached per model and input shape, so
only the first call on a model pays for that probe.

The budget caps the memory of the whole process (resident set size on CPU,
``torch.cuda.memory_allocated`` on CUDA), like a ulimit: with
``memory_budget="2GB"`` the process should stay under 2 GB while it runs.
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ._hooks import ModelSession

__all__ = [
    "Footprint",
    "Progress",
    "format_bytes",
    "measure_footprint",
    "memory_available",
    "memory_in_use",
    "parse_budget",
    "plan_examples_per_pass",
]

DEFAULT_FRACTION = 0.5
"""Share of the currently available memory a call may use by default."""
BACKWARD_FACTOR = 1.5
"""Peak of forward+backward over the saved activations (gradient buffers, allocator slack)."""
FORWARD_FACTOR = 3.0
"""Peak of a gradient-free forward over its largest activation (input, output, a skip)."""
FIXED_OVERHEAD = 64 * 2**20
# On one CPU core, examples per second rise with the batch only while a pass's
# largest activation stays in cache-sized memory (ResNet-18 at 224x224: best at
# 8-16 images, slower again at 32); on CUDA only memory limits the batch.
CPU_WORKING_SET = 32 * 2**20
CPU_BATCH_RANGE = (4, 512)
CUDA_CAP = 4096

_UNITS = {
    "": 1,
    "B": 1,
    "K": 1e3,
    "KB": 1e3,
    "M": 1e6,
    "MB": 1e6,
    "G": 1e9,
    "GB": 1e9,
    "T": 1e12,
    "TB": 1e12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


def parse_budget(memory_budget: int | float | str | None) -> int | None:
    """Bytes from ``2e9``, ``"2GB"``, ``"1.5 GiB"`` or ``"500MB"``; None stays None.

    Example
    -------
    >>> parse_budget("2GB"), parse_budget("1 GiB")
    (2000000000, 1073741824)
    """
    if memory_budget is None:
        return None
    if isinstance(memory_budget, bool):
        raise TypeError("memory_budget: expected bytes (int) or a string such as '2GB', got bool")
    if isinstance(memory_budget, (int, float)):
        value = float(memory_budget)
    elif isinstance(memory_budget, str):
        match = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", memory_budget)
        unit = match.group(2).upper() if match else None
        if match is None or unit not in _UNITS:
            raise ValueError(
                f"memory_budget: expected bytes or a string such as '2GB', got {memory_budget!r}"
            )
        value = float(match.group(1)) * _UNITS[unit]
    else:
        raise TypeError(
            f"memory_budget: expected bytes (int) or a string such as '2GB', got {type(memory_budget).__name__}"
        )
    if not value > 0:
        raise ValueError(f"memory_budget: expected a positive size, got {memory_budget!r}")
    return int(value)


def format_bytes(n: float) -> str:
    """``1.23 GB`` style (decimal units)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def memory_in_use(device: torch.device) -> int:
    """Resident set size of this process (CPU) or memory allocated by torch (CUDA)."""
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def memory_available(device: torch.device) -> int:
    """Memory that can still be allocated: MemAvailable (bounded by a cgroup limit) or free CUDA memory."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    available: int | None = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        try:
            import psutil

            available = int(psutil.virtual_memory().available)
        except ImportError:
            available = 4 * 2**30
    limit, used = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if limit is not None and used is not None:
        available = min(available, max(limit - used, 0))
    return available


def default_budget(device: torch.device) -> int:
    """What the process uses now plus half of what is still available."""
    return memory_in_use(device) + int(DEFAULT_FRACTION * memory_available(device))


@dataclass(frozen=True)
class Footprint:
    """Measured memory of one example."""

    saved_bytes: int
    """Activations autograd saves for the backward pass."""
    largest_activation: int
    """The largest single module output."""
    input_bytes: int

    def per_example(self, backward: bool) -> int:
        if backward:
            return int(BACKWARD_FACTOR * self.saved_bytes + 4 * self.input_bytes)
        return int(FORWARD_FACTOR * self.largest_activation + 3 * self.input_bytes)


_FOOTPRINTS: weakref.WeakKeyDictionary[nn.Module, dict[Any, Footprint]] = (
    weakref.WeakKeyDictionary()
)


def measure_footprint(
    model: nn.Module, forward: Callable[[Tensor], Any], example: Tensor, *, key: Any = None
) -> Footprint:
    """Measures (or recalls) the memory one example needs; ``example`` has batch size 1."""
    cache_key = (tuple(example.shape[1:]), example.dtype, example.device, key)
    cached = _FOOTPRINTS.get(model, {}).get(cache_key)
    if cached is not None:
        return cached
    # Weights are saved for the backward of every layer but are already resident.
    resident = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    saved: dict[int, int] = {}
    largest = [0]

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in resident:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    def on_output(module: nn.Module, args: Any, output: Any) -> None:
        if isinstance(output, Tensor):
            largest[0] = max(largest[0], output.nelement() * output.element_size())

    session = ModelSession(model)
    for module in model.modules():
        session.forward_hook(module, on_output)
    x = example.detach().clone()
    if x.is_floating_point():
        x.requires_grad_(True)
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            forward(x)
    finally:
        session.close()
    footprint = Footprint(sum(saved.values()), largest[0], x.nelement() * x.element_size())
    _FOOTPRINTS.setdefault(model, {})[cache_key] = footprint
    return footprint


def plan_examples_per_pass(
    footprint: Footprint,
    *,
    budget: int,
    in_use: int,
    n_examples: int,
    backward: bool,
    device: torch.device,
    budget_given: bool,
    cap: bool = True,
) -> int:
    """How many examples one pass may hold within ``budget``; at least 1.

    With ``cap``, also at most what still pays off per example on the device.
    Raises ``ValueError`` (``MemoryError`` without a user budget) when even
    one example does not fit.
    """
    per_example = max(footprint.per_example(backward), 1)
    fixed = FIXED_OVERHEAD + 4 * n_examples * footprint.input_bytes
    usable = budget - in_use - fixed
    if usable < per_example:
        if budget_given:
            raise ValueError(
                f"memory_budget: {format_bytes(budget)} is too small: the process already uses "
                f"{format_bytes(in_use)} and one example needs about {format_bytes(per_example + fixed)}"
            )
        raise MemoryError(
            f"not enough free memory: one example needs about {format_bytes(per_example + fixed)}, "
            f"{format_bytes(max(budget - in_use, 0))} may be used; free memory or pass memory_budget"
        )
    fits = usable // per_example
    if not cap:
        return max(1, fits)
    if device.type == "cuda":
        limit = CUDA_CAP
    else:
        low, high = CPU_BATCH_RANGE
        limit = min(high, max(low, CPU_WORKING_SET // max(footprint.largest_activation, 1)))
    return max(1, min(fits, limit))


class Progress:
    """A tqdm bar counted in examples evaluated; ``progress=None`` shows it after 2 s.

    Example
    -------
    >>> bar = Progress(False, total=10, desc="saliency")
    >>> bar.update(10); bar.close()
    """

    def __init__(self, progress: bool | None, *, total: int | None, desc: str) -> None:
        if progress is not None and not isinstance(progress, bool):
            raise TypeError(
                f"progress: expected True, False or None, got {type(progress).__name__}"
            )
        self._bar = None
        if progress is False:
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=total, desc=desc, unit="ex", delay=0 if progress else 2.0, leave=False
        )

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
