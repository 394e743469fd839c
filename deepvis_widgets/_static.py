"""Locates the built front-end bundle inside the installed package."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

STATIC = Path(__file__).parent / "static"

# Shown instead of a view when the bundle is missing, so the output is never blank.
MISSING_BUNDLE_ESM = """
export default { render({ el }) {
  const d = document.createElement("div");
  d.className = "dv-error";
  d.style.cssText = "display:block;border:1px solid #d32f2f;padding:8px;color:#d32f2f;font:13px sans-serif";
  d.textContent = "deepvis_widgets: the front-end bundle is missing. Reinstall the package " +
    "(pip install -e . builds it with npm) or run `npm run build` in the repository.";
  el.append(d);
} };
"""


def static_path(name: str) -> Path:
    """Path of a file in the bundle (it may not exist in a source tree never built)."""
    return STATIC / name


def esm_source(entry: str) -> str | Path:
    """The ES module of a view: the bundled file, or an error-panel module if missing."""
    path = STATIC / f"{entry}.js"
    return path if path.exists() else MISSING_BUNDLE_ESM


def css_source() -> str | Path:
    path = STATIC / "style.css"
    return path if path.exists() else ""


@cache
def read_static(name: str) -> str:
    """Text of a bundled file, with a clear error when the bundle was not built."""
    path = STATIC / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the front-end bundle was not built. "
            "Run `npm ci && npm run build` in the repository, or reinstall deepvis-widgets."
        )
    return path.read_text(encoding="utf-8")


def manifest() -> dict:
    return json.loads(read_static("manifest.json"))
