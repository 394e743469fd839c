"""Shared fixtures: an offline headless Chromium and helpers to read views back."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("DEEPVIS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LOCAL_PREFIXES = ("file:", "data:", "blob:", "about:", "http://127.0.0.1", "http://localhost", "ws://127.0.0.1")


@pytest.fixture(autouse=True)
def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)


@dataclass
class PageLog:
    """What happened on a page: requests we blocked, dialogs (script ran!) and errors."""

    blocked: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make env` (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_offline_page(browser: Any, *, color_scheme: str = "light", **kwargs: Any) -> tuple[Any, PageLog]:
    """A page where every non-local request fails, so a CDN dependency breaks the test."""
    context = browser.new_context(color_scheme=color_scheme, viewport={"width": 1100, "height": 900}, accept_downloads=True, **kwargs)
    page = context.new_page()
    log = PageLog()

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(LOCAL_PREFIXES):
            r.continue_()
        else:
            log.blocked.append(url)
            r.abort()

    def on_dialog(d: Any) -> None:
        log.dialogs.append(d.message)
        d.dismiss()

    page.route("**/*", route)
    page.on("dialog", on_dialog)
    page.on("pageerror", lambda e: log.errors.append(str(e)))
    page.on("console", lambda m: log.errors.append(m.text) if m.type == "error" else None)
    return page, log


@pytest.fixture
def offline_page(browser: Any) -> Iterator[tuple[Any, PageLog]]:
    page, log = open_offline_page(browser)
    yield page, log
    page.context.close()


def wait_drawn(page: Any, count: int = 1, timeout: float = 30_000) -> None:
    """Waits until `count` views say they have drawn (data-dv-drawn) or one shows an error."""
    page.wait_for_function(
        "n => document.querySelectorAll('[data-dv-drawn=true]').length >= n"
        " || document.querySelector('[data-dv-state=error]') !== null",
        arg=count,
        timeout=timeout,
    )
    err = page.query_selector("[data-dv-state=error]")
    if err is not None:
        raise AssertionError(f"view shows its error panel: {err.inner_text()}")


def canvas_pixel(page: Any, selector: str, fx: float, fy: float, index: int = 0) -> list[int]:
    """RGBA of the canvas pixel at fractions (fx, fy) of its size."""
    return page.evaluate(
        """([sel, fx, fy, i]) => {
            const c = document.querySelectorAll(sel)[i];
            const x = Math.min(c.width - 1, Math.floor(fx * c.width));
            const y = Math.min(c.height - 1, Math.floor(fy * c.height));
            return Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data);
        }""",
        [selector, fx, fy, index],
    )


def distinct_colors(page: Any, selector: str, index: int = 0) -> int:
    """Number of distinct RGBA values in a canvas (1 means nothing was drawn)."""
    return page.evaluate(
        """([sel, i]) => {
            const c = document.querySelectorAll(sel)[i];
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const seen = new Set();
            for (let k = 0; k < d.length; k += 4) seen.add((d[k] << 24) ^ (d[k+1] << 16) ^ (d[k+2] << 8) ^ d[k+3]);
            return seen.size;
        }""",
        [selector, index],
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyter_lab(root: Path, token: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Runs JupyterLab on a free loopback port with ``root`` as its folder; yields its base URL.

    The app is exposed as ``window.jupyterapp`` so tests can run commands; settings and
    workspaces live in ``root`` so no earlier state leaks in. The server is stopped on exit.
    """
    import subprocess
    import time
    import urllib.request

    port = _free_port()
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
        f"--LabApp.user_settings_dir={root / '.settings'}", f"--LabApp.workspaces_dir={root / '.workspaces'}",
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with open(root / "server.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root, env=env)
        try:
            deadline = time.time() + 90
            while True:
                try:
                    urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                    break
                except OSError:
                    if time.time() > deadline or proc.poll() is not None:
                        raise RuntimeError(f"JupyterLab did not start:\n{(root / 'server.log').read_text()[-3000:]}") from None
                    time.sleep(0.5)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_for_lab_kernel(page: Any, timeout_s: float = 120) -> None:
    """Waits until the open notebook's kernel is idle, accepting a "Select Kernel" dialog if one shows."""
    import time

    deadline = time.time() + timeout_s
    while not page.evaluate(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.status === 'idle'); }"
    ):
        if page.query_selector(".jp-Dialog .jp-mod-accept"):
            page.click(".jp-Dialog .jp-mod-accept")
        assert time.time() < deadline, "kernel never became idle"
        page.wait_for_timeout(500)
