"""The one place where arrays become binary payloads for the front end.

Every view sends arrays as ``{"buffer": memoryview, "dtype": str, "shape": [...]}``
(plus ``scale``/``offset`` for ``uint8``). ipywidgets moves the memoryview as a
binary buffer (base64 in saved notebooks), never as a JSON list. The JavaScript
twin is ``js/lib/codec.ts``; both are round-trip tested.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

WireDType = Literal["float32", "float16", "uint8", "int32"]
WIRE_DTYPES: tuple[str, ...] = ("float32", "float16", "uint8", "int32")
#: uint8 payloads quantize to 0..254; 255 marks NaN.
UINT8_NAN = 255
UINT8_LEVELS = 254

__all__ = ["UINT8_NAN", "WIRE_DTYPES", "as_numpy", "command_reply", "decode_array", "encode_array"]


def as_numpy(value: Any, name: str = "array") -> np.ndarray:
    """Converts a numpy array, torch tensor or nested sequence to a numeric ndarray.

    Parameters
    ----------
    value
        ``numpy.ndarray``, ``torch.Tensor`` (any device, with or without grad),
        or a nested list of numbers.
    name
        Argument name used in error messages.

    Raises
    ------
    TypeError
        For object, string or complex data.

    Example
    -------
    >>> as_numpy([[1, 2], [3, 4]]).shape
    (2, 2)
    """
    if type(value).__module__.startswith("torch"):
        import torch

        if isinstance(value, torch.Tensor):
            t = value.detach()
            if t.is_complex():
                raise TypeError(f"{name}: expected real numbers, got a complex tensor ({t.dtype})")
            if t.dtype == torch.bfloat16:  # numpy has no bfloat16
                t = t.to(torch.float32)
            return t.cpu().numpy()
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise TypeError(f"{name}: expected a numeric array, got {type(value).__name__} ({exc})") from None
    if arr.dtype == object or arr.dtype.kind in "USVOMm":
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if arr.dtype.kind == "c":
        raise TypeError(f"{name}: expected real numbers, got complex dtype {arr.dtype}")
    return arr


def encode_array(value: Any, dtype: WireDType = "float32", *, name: str = "array") -> dict[str, Any]:
    """Encodes an array as a binary payload for a view.

    Parameters
    ----------
    value
        Array-like (numpy, torch, nested lists).
    dtype
        Wire type: ``"float32"`` (exact for float32 data), ``"float16"`` (half
        the bytes, ~3 significant digits), ``"uint8"`` (a quarter of the bytes,
        254 levels between the finite min and max, NaN kept) or ``"int32"``.
    name
        Argument name used in error messages.

    Returns
    -------
    dict
        ``{"buffer": memoryview, "dtype": str, "shape": list[int]}``, plus
        ``"scale"`` and ``"offset"`` for uint8 (value = offset + q * scale).

    Example
    -------
    >>> payload = encode_array(np.eye(3), "float16")
    >>> payload["dtype"], payload["shape"], payload["buffer"].nbytes
    ('float16', [3, 3], 18)
    """
    if dtype not in WIRE_DTYPES:
        raise ValueError(f"dtype: expected one of {', '.join(WIRE_DTYPES)}, got {dtype!r}")
    arr = as_numpy(value, name)
    shape = [int(s) for s in arr.shape]
    out: dict[str, Any] = {"dtype": dtype, "shape": shape}
    if dtype == "int32":
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: cannot send NaN or infinity as int32")
        info = np.iinfo(np.int32)
        if arr.size and arr.dtype.kind in "iuf" and (arr.min() < info.min or arr.max() > info.max):
            raise ValueError(f"{name}: values outside the int32 range")
        data = np.ascontiguousarray(arr, dtype="<i4")
    elif dtype == "uint8":
        data, scale, offset = _quantize_uint8(arr.astype(np.float64, copy=False))
        out["scale"] = scale
        out["offset"] = offset
    else:
        data = np.ascontiguousarray(arr, dtype="<f4" if dtype == "float32" else "<f2")
    out["buffer"] = data.reshape(-1).data.cast("B") if data.size else memoryview(b"")
    return out


def _quantize_uint8(arr: np.ndarray) -> tuple[np.ndarray, float, float]:
    finite = np.isfinite(arr)
    if finite.any():
        lo = float(arr[finite].min())
        hi = float(arr[finite].max())
    else:
        lo = hi = 0.0
    scale = (hi - lo) / UINT8_LEVELS if hi > lo else 1.0
    q = np.empty(arr.shape, dtype=np.uint8)
    clipped = np.clip(np.where(finite, arr, lo), lo, hi)
    q[...] = np.rint((clipped - lo) / scale).astype(np.uint8)
    q[np.isnan(arr)] = UINT8_NAN
    q[np.isposinf(arr)] = UINT8_LEVELS
    q[np.isneginf(arr)] = 0
    return np.ascontiguousarray(q), scale, lo


def decode_array(payload: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_array` (float32 for float wire types).

    Example
    -------
    >>> decode_array(encode_array([1.5, 2.5])).tolist()
    [1.5, 2.5]
    """
    dtype = payload["dtype"]
    buf = payload["buffer"]
    raw = np.frombuffer(buf, dtype={"float32": "<f4", "float16": "<f2", "uint8": "u1", "int32": "<i4"}[dtype])
    shape = tuple(payload["shape"])
    if dtype == "uint8":
        values = payload["offset"] + raw.astype(np.float32) * np.float32(payload["scale"])
        values = values.astype(np.float32)
        values[raw == UINT8_NAN] = np.nan
        return values.reshape(shape)
    if dtype == "float16":
        return raw.astype(np.float32).reshape(shape)
    return raw.reshape(shape)


def command_reply(payload: Any) -> tuple[Any, list[memoryview]]:
    """Splits encoded arrays out of a command reply: each memoryview becomes ``{"$buffer": i}``.

    anywidget command replies carry binary buffers beside their JSON; ``withBuffers`` in
    ``js/lib/codec.ts`` puts them back. Dicts and lists are walked at any depth.

    Example
    -------
    >>> reply, buffers = command_reply({"row": encode_array(np.zeros(2), "float32")})
    >>> reply["row"]["buffer"], len(buffers)
    ({'$buffer': 0}, 1)
    """
    buffers: list[memoryview] = []

    def lift(value: Any) -> Any:
        if isinstance(value, memoryview):
            buffers.append(value)
            return {"$buffer": len(buffers) - 1}
        if isinstance(value, dict):
            return {k: lift(v) for k, v in value.items()}
        if isinstance(value, list):
            return [lift(v) for v in value]
        return value

    return lift(payload), buffers
