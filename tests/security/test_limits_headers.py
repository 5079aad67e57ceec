"""Body-size caps on every route that takes a body; security headers and cookie flags on every page.

Both come from bot/web/security.py, mounted in front of the whole app: the walk below covers every
registered route, so one added later is checked too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot.web.security import LIMITS, inline_hashes, limit_for
from tests.admin.conftest import PASSWORD, csrf_of, make_user
from tests.channels.fakes import FakeTelegram, FakeTwilio
from tests.security.conftest import API_TOKEN, TG_SECRET, concrete, routes, serve, settings, signed_in

BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


def credentials(path: str, csrf: str) -> dict[str, str]:
    if path.startswith("/api/"):
        return {"Authorization": f"Bearer {API_TOKEN}"}
    if path == "/webhooks/telegram":
        return {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
    return {}


@pytest.mark.parametrize(("path", "limit"), [("/webhooks/twilio", 64 * 1024), ("/admin/login", 32 * 1024)])
def test_limits_by_path(path: str, limit: int) -> None:
    assert limit_for(path) == limit
    assert all(limit_for(prefix + "x") == n for prefix, n in LIMITS)


@pytest.mark.parametrize("providers", [True, False], ids=["providers", "simulator"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_every_body_route_refuses_an_oversized_body(
    tmp_path: Path, fakes: tuple[FakeTwilio, FakeTelegram], providers: bool, chunked: bool
) -> None:
    tw, tg = fakes
    st = settings(tw, tg) if providers else settings(None, None)
    with serve(tmp_path, st) as (rt, c):
        csrf = signed_in(rt.svc, c)
        seen = 0
        for method, path in routes(c.app):
            if method not in BODY_METHODS:
                continue
            size = limit_for(path) + 1

            def body(n: int = size) -> Iterator[bytes]:
                for _ in range(n // 1024):
                    yield b"a" * 1024
                yield b"a" * (n % 1024)

            content = body() if chunked else b"a" * size
            r = c.request(method, concrete(path), content=content, headers=credentials(path, csrf))
            assert r.status_code == 413, f"{method} {path} took {size} bytes ({r.status_code})"
            seen += 1
        assert seen >= 10
        # just under the cap is not refused for its size
        r = c.put("/api/clients/c1", content=b'{"name": "' + b"a" * 1000 + b'"}', headers=credentials("/api/", csrf))
        assert r.status_code != 413


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    with serve(tmp_path, settings(None, None)) as (rt, c):
        yield c, signed_in(rt.svc, c)


@pytest.mark.parametrize(
    "path", ["/", "/admin/login", "/admin/appointments", "/admin/inbox", "/admin/alerts", "/admin/scripts", "/healthz"]
)
def test_pages_set_the_security_headers(web: tuple[TestClient, str], path: str) -> None:
    c, _csrf = web
    r = c.get(path, follow_redirects=False)
    assert r.status_code == 200, path
    for k, v in HEADERS.items():
        assert r.headers.get(k) == v, (path, k)
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers.get("strict-transport-security"), "RAPPORT_PUBLIC_URL is https: HSTS expected"


def test_the_simulator_page_runs_under_its_csp(web: tuple[TestClient, str]) -> None:
    """The page's inline script and style are allowed by hash, and nothing else inline is."""
    c, _csrf = web
    r = c.get("/")
    csp = r.headers["content-security-policy"]
    rendered = inline_hashes(r.text)
    assert rendered["script"] and rendered["style"]
    for kind, hashes in rendered.items():
        directive = re.search(rf"{kind}-src ([^;]*)", csp)
        assert directive, kind
        assert set(hashes) <= set(directive.group(1).split()), f"the page's inline {kind} is not allowed by the CSP"
    assert "onclick=" not in r.text.lower(), "inline event handlers do not run under this CSP"


def test_cookies_are_httponly_samesite_and_secure(tmp_path: Path) -> None:
    with serve(tmp_path, settings(None, None)) as (rt, c):
        make_user(rt.svc, username="cookie", role="clinician")
        login = c.get("/admin/login")
        form = {"csrf": csrf_of(login.text), "username": "cookie", "password": PASSWORD, "next": "/admin/inbox"}
        session = c.post("/admin/login", data=form, follow_redirects=False)
        assert session.status_code == 303
        cookies = login.headers.get_list("set-cookie") + session.headers.get_list("set-cookie")
        assert any(k.startswith("rapport_session=") for k in cookies)
        for cookie in cookies:
            low = cookie.lower()
            assert "httponly" in low and "samesite=lax" in low and "secure" in low, cookie


def test_the_api_says_no_store(web: tuple[TestClient, str]) -> None:
    c, _csrf = web
    r = c.get("/api/alerts", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
