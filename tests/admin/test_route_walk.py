"""Every registered route refuses an unauthenticated request.

The walk covers whatever is registered, so a route added later is checked without editing this
file. Public on purpose: / (the simulator, or a status page naming the channels), /healthz,
/metrics (counts only, for Prometheus), the sign-in page, static assets, and the web simulator (a
demo anyone may play, registered only when it is the channel). The webhooks are refused by their
own signature checks, or do not exist when their provider is not configured.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from bot.server import Runtime
from tests.channels.fakes import FakeTelegram, FakeTwilio
from tests.channels.helpers import make_service
from tests.web.conftest import settings_for

PUBLIC = {("GET", "/"), ("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/admin/login"), ("POST", "/admin/login")}
SIMULATOR = re.compile(r"^/sim/")
REFUSED = {401, 403}


def routes(app: object) -> Iterator[tuple[str, str]]:
    """(method, path) of every route, descending into included routers (FastAPI may keep an
    included router as one lazy entry whose ``original_router`` holds the routes)."""
    for r in app.routes:  # type: ignore[attr-defined]
        inner = getattr(r, "original_router", None)
        if inner is not None:
            yield from routes(inner)
        elif isinstance(r, Mount):
            continue  # static files: public by design
        elif isinstance(r, APIRoute | Route):
            for m in sorted(r.methods or ()):
                if m != "HEAD":
                    yield m, r.path


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def refused(resp: object) -> bool:
    status = resp.status_code  # type: ignore[attr-defined]
    if status in REFUSED:
        return True
    return status in (302, 303, 307) and resp.headers["location"].startswith("/admin/login")  # type: ignore[attr-defined]


@pytest.mark.parametrize("providers", [True, False], ids=["providers", "simulator"])
def test_every_route_refuses_the_unauthenticated(
    tmp_path: Path, fake_twilio: FakeTwilio, fake_telegram: FakeTelegram, providers: bool
) -> None:
    svc = make_service(tmp_path)
    settings = settings_for(fake_twilio, fake_telegram) if providers else settings_for()
    rt = Runtime(svc, settings, timer_interval=60)
    app = rt.app()
    seen = []
    with TestClient(app, base_url="https://testserver") as c:
        for method, path in routes(app):
            if (method, path) in PUBLIC or (not providers and SIMULATOR.match(path)):
                continue
            url = concrete(path)
            if not providers and path.startswith("/webhooks/"):
                # no provider configured: the webhook does not exist
                assert c.request(method, url, follow_redirects=False).status_code == 404, path
                seen.append((method, path))
                continue
            resp = c.request(method, url, data={"csrf": "x", "text": "hi"}, follow_redirects=False)
            assert refused(resp), f"{method} {path} answered {resp.status_code} without credentials"
            # a wrong cookie and a wrong bearer token are no better than none
            c.cookies.set("rapport_session", "forged", domain="testserver")
            resp = c.request(
                method, url, headers={"authorization": "Bearer wrong"}, data={"csrf": "x"}, follow_redirects=False
            )
            c.cookies.clear()
            assert refused(resp), f"{method} {path} answered {resp.status_code} to forged credentials"
            seen.append((method, path))
    paths = {p for _m, p in seen}
    # the walk really covered the admin, the API and the webhooks
    assert {"/admin/inbox/{client_id}/reply", "/admin/alerts/{alert_id}/ack", "/admin/scripts/{lang}/{msg_id}"} <= paths
    assert {"/api/alerts", "/api/appointments/{appointment_id}"} <= paths
    if providers:
        assert {"/webhooks/twilio", "/webhooks/twilio/status", "/webhooks/telegram"} <= paths
