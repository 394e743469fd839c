"""Hatch build hook: bundle the TypeScript front end into deepvis_widgets/static/.

Runs for wheels and editable installs. It rebuilds only when a source under
js/ (or package.json) is newer than the bundle, so installing from a wheel or
from an sdist that already carries the bundle needs no Node.js.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ROOT = Path(__file__).parent
STAMP = ROOT / "deepvis_widgets" / "static" / "manifest.json"


def _newest_source_mtime() -> float:
    paths = [ROOT / "package.json", ROOT / "package-lock.json", ROOT / "build.mjs"]
    paths += [p for p in (ROOT / "js").rglob("*") if p.is_file() and "test" not in p.parts]
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


def bundle_is_fresh() -> bool:
    return STAMP.exists() and STAMP.stat().st_mtime >= _newest_source_mtime()


def build_bundle() -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            "deepvis_widgets/static/ has no front-end bundle and npm is not on PATH: "
            "install Node.js >= 18 to build from source, or install the published wheel."
        )
    if not (ROOT / "node_modules" / ".package-lock.json").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True)
    subprocess.run([npm, "run", "build"], cwd=ROOT, check=True)


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if os.environ.get("DEEPVIS_SKIP_JS") == "1" or (self.target_name == "sdist" and not (ROOT / "js").exists()):
            return
        if (ROOT / "js").exists() and not bundle_is_fresh():
            build_bundle()
