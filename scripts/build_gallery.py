"""Executes every notebook in notebooks/ and writes the offline HTML gallery.

Usage: python scripts/build_gallery.py [--out build/gallery] [--only PATTERN]

Each notebook runs in a fresh kernel with widget state stored, is exported
with deepvis_widgets.export (require.js, the widget manager and anywidget
inlined, so pages render from file:// with no network), and is linked from
index.html with the question it answers (its first heading and paragraph).
"""

from __future__ import annotations

import argparse
import html
import re
import sys
import time
from pathlib import Path

import nbformat

from deepvis_widgets.export import execute_notebook, export_notebook

ROOT = Path(__file__).resolve().parents[1]

INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>deepvis_widgets gallery</title>
<style>
:root {{ color-scheme: light dark; }}
body {{ font-family: system-ui, sans-serif; max-width: 860px; margin: 40px auto; padding: 0 16px; line-height: 1.5; }}
@media (prefers-color-scheme: dark) {{ body {{ background: #111418; color: #e6e6e6; }} a {{ color: #64b5f6; }} }}
li {{ margin-bottom: 14px; }} .meta {{ color: #888; font-size: 12px; }}
</style></head><body>
<h1>deepvis_widgets gallery</h1>
<p>Every page is a notebook executed by <code>make demo</code> on real, offline models and exported with its
widgets live: hover and click work without a kernel and nothing is fetched from the network.</p>
<ul>
{items}
</ul>
<p class="meta">Built {built} with deepvis_widgets {version}.</p>
</body></html>
"""


def describe(nb: nbformat.NotebookNode, fallback: str) -> tuple[str, str]:
    """The notebook's first heading and the paragraph after it."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            lines = cell.source.strip().splitlines()
            title = re.sub(r"^#+\s*", "", lines[0]) if lines else fallback
            rest = " ".join(
                line.strip() for line in lines[1:] if line.strip() and not line.startswith("#")
            )
            return title, rest
    return fallback, ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "gallery")
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    parser.add_argument("--only", default="", help="substring of the notebook file names to build")
    args = parser.parse_args(argv)

    from deepvis_widgets import __version__

    notebooks = sorted(p for p in args.notebooks.glob("*.ipynb") if args.only in p.name)
    if not notebooks:
        print(f"no notebooks in {args.notebooks} match {args.only!r}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    items = []
    for path in notebooks:
        t0 = time.perf_counter()
        print(
            f"executing {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} ...",
            flush=True,
        )
        nb = execute_notebook(path, cwd=path.parent)
        page = export_notebook(nb, args.out / f"{path.stem}.html", title=path.stem)
        title, blurb = describe(nb, path.stem)
        items.append(
            f'<li><a href="{html.escape(page.name)}">{html.escape(title)}</a><br>{html.escape(blurb)}'
            f'<div class="meta">{html.escape(path.name)} · {page.stat().st_size / 1e6:.1f} MB</div></li>'
        )
        print(f"  -> {page} ({time.perf_counter() - t0:.1f} s)", flush=True)
    index = args.out / "index.html"
    index.write_text(
        INDEX.format(
            items="\n".join(items), built=time.strftime("%Y-%m-%d %H:%M"), version=__version__
        ),
        encoding="utf-8",
    )
    print(f"\nGallery: {index.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
