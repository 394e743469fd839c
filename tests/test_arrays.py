"""The binary encoder (deepvis_widgets/_arrays.py) and its JS twin (js/lib/codec.ts)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from deepvis_widgets._arrays import UINT8_NAN, as_numpy, decode_array, encode_array

from .conftest import ROOT


@pytest.mark.parametrize("shape", [(0,), (7,), (3, 5), (2, 3, 4)])
def test_float32_round_trip_is_exact(shape: tuple[int, ...]) -> None:
    a = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    p = encode_array(a)
    assert p["dtype"] == "float32" and p["shape"] == list(shape)
    assert isinstance(p["buffer"], memoryview) and p["buffer"].nbytes == a.nbytes
    np.testing.assert_array_equal(decode_array(p), a)


def test_float16_keeps_three_significant_digits() -> None:
    a = np.random.default_rng(1).normal(size=(50, 40)) * 100
    back = decode_array(encode_array(a, "float16"))
    np.testing.assert_allclose(back, a, rtol=1e-3, atol=1e-3)


def test_uint8_error_is_within_half_a_step_and_keeps_nan_and_infinities() -> None:
    a = np.random.default_rng(2).uniform(-3, 5, size=1000)
    a[:3] = [np.nan, np.inf, -np.inf]
    p = encode_array(a, "uint8")
    q = np.frombuffer(p["buffer"], np.uint8)
    assert q[0] == UINT8_NAN and q[1] == 254 and q[2] == 0
    back = decode_array(p)
    assert np.isnan(back[0])
    finite = np.isfinite(a)
    step = p["scale"]
    assert np.max(np.abs(back[finite] - a[finite])) <= step / 2 + 1e-6
    assert back[1] == pytest.approx(a[finite].max(), abs=1e-5)
    assert back[2] == pytest.approx(a[finite].min(), abs=1e-5)


def test_uint8_of_a_constant_array() -> None:
    back = decode_array(encode_array(np.full((2, 2), 4.0), "uint8"))
    np.testing.assert_array_equal(back, np.full((2, 2), 4.0, np.float32))


def test_int32_round_trip_and_range_checks() -> None:
    a = np.array([[-(2**31), 0, 2**31 - 1]], dtype=np.int64)
    np.testing.assert_array_equal(decode_array(encode_array(a, "int32")), a)
    with pytest.raises(ValueError, match="ids: values outside the int32 range"):
        encode_array(np.array([2**40]), "int32", name="ids")
    with pytest.raises(ValueError, match="NaN"):
        encode_array(np.array([np.nan]), "int32")


def test_torch_tensors_with_grad_bfloat16_and_non_contiguous() -> None:
    t = torch.randn(4, 6, requires_grad=True)
    np.testing.assert_array_equal(decode_array(encode_array(t)), t.detach().numpy())
    b = torch.randn(3, 3).to(torch.bfloat16)
    np.testing.assert_array_equal(decode_array(encode_array(b)), b.float().numpy())
    nc = torch.arange(12.0).reshape(3, 4).T  # transposed view: not contiguous
    np.testing.assert_array_equal(decode_array(encode_array(nc)), nc.numpy())


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.array(["a", "b"]), "weights: expected a numeric array, got dtype <U1"),
        (np.array([{}, 1], dtype=object), "weights: expected a numeric array, got dtype object"),
        (np.array([1j]), "weights: expected real numbers"),
        ([[1, 2], [3]], "weights: expected a numeric array"),
    ],
)
def test_bad_arrays_name_the_argument(value: object, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        as_numpy(value, "weights")


def test_unknown_wire_dtype() -> None:
    with pytest.raises(ValueError, match="dtype: expected one of float32, float16, uint8, int32"):
        encode_array([1.0], "float64")  # type: ignore[arg-type]


def test_javascript_decoder_reads_what_python_encodes(tmp_path) -> None:
    """Cross-language round trip: payloads encoded here, decoded by js/lib/codec.ts in node."""
    node = shutil.which("node")
    esbuild = ROOT / "node_modules" / ".bin" / "esbuild"
    assert node and esbuild.exists(), "node and npm packages are needed: run `make env`"
    bundle = tmp_path / "codec.mjs"
    subprocess.run(
        [str(esbuild), str(ROOT / "js/lib/codec.ts"), "--bundle", "--format=esm", f"--outfile={bundle}", "--log-level=error"],
        check=True,
    )
    rng = np.random.default_rng(3)
    arrays = {
        "float32": rng.normal(size=(3, 4)).astype(np.float32),
        "float16": rng.normal(size=(5,)).astype(np.float32),
        "uint8": np.array([0.0, 0.5, np.nan, 2.0]),
        "int32": np.array([[1, -2], [3, 2**31 - 1]]),
    }
    payloads = {}
    for dtype, a in arrays.items():
        p = encode_array(a, dtype)  # type: ignore[arg-type]
        payloads[dtype] = {**{k: v for k, v in p.items() if k != "buffer"}, "b64": base64.b64encode(p["buffer"]).decode()}
    script = tmp_path / "decode.mjs"
    script.write_text(
        f"""
import {{ decode }} from {json.dumps(str(bundle))};
const payloads = JSON.parse(await new Promise(r => {{ let s = ""; process.stdin.on("data", d => s += d).on("end", () => r(s)); }}));
const out = {{}};
for (const [k, p] of Object.entries(payloads)) {{
  const raw = Buffer.from(p.b64, "base64");
  // Put the bytes at an odd offset of a larger buffer, as a shared ArrayBuffer would.
  const shared = new Uint8Array(raw.length + 5);
  shared.set(raw, 5);
  const {{ values, shape }} = decode({{ ...p, buffer: new DataView(shared.buffer, 5, raw.length) }});
  out[k] = {{ shape, values: Array.from(values, v => Number.isNaN(v) ? null : v) }};
}}
console.log(JSON.stringify(out));
"""
    )
    res = subprocess.run([node, str(script)], input=json.dumps(payloads), capture_output=True, text=True, check=True)
    decoded = json.loads(res.stdout)
    for dtype, a in arrays.items():
        expected = decode_array(encode_array(a, dtype))  # type: ignore[arg-type]
        got = np.array([np.nan if v is None else v for v in decoded[dtype]["values"]], dtype=np.float64)
        assert decoded[dtype]["shape"] == list(a.shape)
        np.testing.assert_array_equal(got.reshape(a.shape), expected.astype(np.float64))
