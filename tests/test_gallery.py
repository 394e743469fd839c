"""The gallery (make demo): every notebook executes, every exported page renders offline, every view draws.

Builds the gallery into a temporary folder (or checks build/gallery when
DEEPVIS_GALLERY points at a built one), opens each page in headless Chromium
with the network blocked and asserts that every view on it drew and none shows
an error panel. With DEEPVIS_SCREENSHOTS=1 it also writes one PNG per kind of
view to docs/screenshots/ (the pictures the README shows).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, open_offline_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> Path:
    built = os.environ.get("DEEPVIS_GALLERY")
    if built:
        return Path(built)
    out = tmp_path_factory.mktemp("gallery")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_gallery
    finally:
        sys.path.pop(0)
    assert build_gallery.main(["--out", str(out)]) == 0
    return out


def test_index_links_every_notebook(gallery: Path) -> None:
    index = (gallery / "index.html").read_text()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f'href="{nb.stem}.html"' in index, f"{nb.name} missing from the gallery index"
        assert (gallery / f"{nb.stem}.html").exists()


def test_every_view_on_every_page_draws_offline(gallery: Path, browser) -> None:
    shots = os.environ.get("DEEPVIS_SCREENSHOTS") == "1"
    if shots:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    seen_kinds: set[str] = set()
    pages = sorted(p for p in gallery.glob("*.html") if p.name != "index.html")
    assert pages, "the gallery has no pages"
    for page_path in pages:
        page, log = open_offline_page(browser)
        page.set_default_timeout(90_000)
        page.goto(page_path.as_uri())
        page.wait_for_function(
            "() => { const v = document.querySelectorAll('.dv-root'); return v.length > 0 &&"
            " Array.from(v).every(e => e.dataset.dvDrawn === 'true' || e.dataset.dvState === 'error'); }"
        )
        errors = page.eval_on_selector_all("[data-dv-state=error] .dv-error", "els => els.map(e => e.textContent)")
        assert errors == [], f"{page_path.name}: views show errors: {errors}"
        n_views = page.eval_on_selector_all(".dv-root", "els => els.length")
        assert n_views > 0, f"{page_path.name} shows no view"
        assert log.blocked == [], f"{page_path.name} asked the network for {log.blocked}"
        assert log.dialogs == []
        if shots:
            for i, kind in enumerate(page.eval_on_selector_all(".dv-root", "els => els.map(e => e.dataset.dvView)")):
                if kind not in seen_kinds:
                    seen_kinds.add(kind)
                    page.locator(".dv-root").nth(i).screenshot(path=str(SCREENSHOTS / f"{kind}.png"))
        page.context.close()
