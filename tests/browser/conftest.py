"""A real browser on a real server: Playwright for Python driving Debian's Chromium.

Never a browser download: the tests use ``/usr/bin/chromium`` (``apt-get install chromium``), or
``RAPPORT_CHROMIUM``. Where it (or Playwright) is missing they skip and say why; in CI
(``CI=true``) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.server import Runtime
from bot.service import Service
from tests.channels.helpers import make_service
from tests.web.conftest import settings_for

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    pytest.skip(reason)


def chromium_path() -> str:
    path = os.environ.get("RAPPORT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        _unavailable("Chromium not found (apt-get install chromium, or set RAPPORT_CHROMIUM)")
    return path


@dataclass
class Server:
    base: str
    svc: Service
    rt: Runtime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """`rapport serve` without provider credentials (the web simulator is the channel), on 127.0.0.1."""
    import uvicorn

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    svc = make_service(tmp_path)
    rt = Runtime(svc, settings_for(RAPPORT_PUBLIC_URL=base), timer_interval=0.5)
    srv = uvicorn.Server(uvicorn.Config(rt.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    t = threading.Thread(target=srv.run, name="uvicorn-browser-test", daemon=True)
    t.start()
    deadline = time.time() + 60  # a loaded CI machine can take a while to import and start
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        srv.should_exit = True
        raise RuntimeError("the server did not become healthy")
    try:
        yield Server(base, svc, rt)
    finally:
        srv.should_exit = True
        t.join(timeout=30)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    exe = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install playwright; never `playwright install`)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=exe, headless=True, args=CHROMIUM_ARGS
        )
        try:
            pg = ctx.new_page()
            pg.set_default_timeout(15000)
            yield pg
        finally:
            ctx.close()
