"""Every registered route needs its own credential, and only a documented allow-list is public.

The walk covers whatever the app registers, so a route added later fails here until it is given
a credential class below (and in SECURITY.md). For each route: no credential is refused, a forged
one is refused, and the real one is accepted, which shows the route checks *its* credential.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from storage.tables import Message
from tests.channels.fakes import FakeTelegram, FakeTwilio
from tests.channels.helpers import CLIENT_PHONE, CLIENT_TG, add_client
from tests.security.conftest import (
    API_TOKEN,
    METRICS_TOKEN,
    PUBLIC,
    TG_SECRET,
    TWILIO_TOKEN,
    concrete,
    routes,
    serve,
    settings,
    signed_in,
)

# Public on purpose (SECURITY.md, "What is public"): nothing here reads or changes a client's data.
PUBLIC_ROUTES = {
    ("GET", "/"): "the simulator page, or a status page naming the channels",
    ("GET", "/healthz"): "readiness for load balancers: {status} only",
    ("GET", "/admin/login"): "the sign-in form",
    ("POST", "/admin/login"): "signing in (double-submit CSRF cookie, throttled)",
    ("MOUNT", "/static"): "the admin pages' CSS and JS",
}
# The web simulator is registered only when it is the channel: a demo whose sessions are
# capabilities (a random id per visitor), with demo clients only.
SIMULATOR_ROUTES = {
    ("POST", "/sim/session"),
    ("GET", "/sim/session/{sid}"),
    ("POST", "/sim/session/{sid}/{action}"),
}
REFUSED = {401, 403}


def kind(method: str, path: str) -> str:
    if (method, path) in PUBLIC_ROUTES:
        return "public"
    if (method, path) in SIMULATOR_ROUTES:
        return "simulator"
    if path == "/metrics":
        return "metrics"
    if path.startswith("/webhooks/twilio"):
        return "twilio"
    if path == "/webhooks/telegram":
        return "telegram"
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/admin"):
        return "admin"
    return "unclassified"


def twilio_form(sid: str, text: str = "hello", sender: str = CLIENT_PHONE) -> dict[str, str]:
    return {"MessageSid": sid, "From": sender, "To": "+15550009999", "Body": text, "MessageStatus": "delivered"}


def twilio_headers(path: str, params: dict[str, str], token: str) -> dict[str, str]:
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": RequestValidator(token).compute_signature(PUBLIC + path, params),
    }


def tg_body(update_id: int, text: str = "hello", chat: str = CLIENT_TG) -> bytes:
    msg = {"message_id": update_id, "date": 1_700_000_000, "chat": {"id": int(chat), "type": "private"}, "text": text}
    msg["from"] = {"id": int(chat), "is_bot": False, "first_name": "A"}
    return json.dumps({"update_id": update_id, "message": msg}).encode()


def refused(r: Any) -> bool:
    if r.status_code in REFUSED:
        return True
    return r.status_code in (302, 303, 307) and r.headers.get("location", "").startswith("/admin/login")


def call(c: TestClient, method: str, path: str, how: str, csrf: str = "") -> Any:
    """One request to ``path`` with no credential, a forged one, or the real one (``how``)."""
    url = concrete(path)
    k = kind(method, path)
    headers: dict[str, str] = {}
    body: bytes | None = None
    if k == "twilio":
        params = twilio_form("SM" + "7" * 32)
        body = urlencode(params).encode()
        token = {"none": None, "forged": "not-the-token", "real": TWILIO_TOKEN}[how]
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        headers = twilio_headers(path, params, token) if token else form
    elif k == "telegram":
        body = tg_body(4242)
        headers = {"Content-Type": "application/json"}
        if how != "none":
            headers["X-Telegram-Bot-Api-Secret-Token"] = TG_SECRET if how == "real" else TG_SECRET[:-1] + "x"
    elif k in ("api", "metrics"):
        token = API_TOKEN if k == "api" else METRICS_TOKEN
        if how != "none":
            headers["Authorization"] = f"Bearer {token if how == 'real' else token + 'x'}"
        body = b'{"status": "attended", "by": "dr_rivera"}' if method in ("PUT", "POST") else None
    elif k == "admin" and method == "POST":
        body = urlencode({"csrf": csrf if how == "real" else "forged", "text": "hi"}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return c.request(method, url, content=body, headers=headers, follow_redirects=False)


@pytest.mark.parametrize("providers", [True, False], ids=["providers", "simulator"])
def test_every_route_needs_its_credential(
    tmp_path: Path, fakes: tuple[FakeTwilio, FakeTelegram], providers: bool
) -> None:
    tw, tg = fakes
    st = settings(tw, tg, RAPPORT_METRICS_TOKEN=METRICS_TOKEN) if providers else settings(None, None)
    with serve(tmp_path, st) as (rt, c):
        app = c.app
        found = list(routes(app))
        assert not [r for r in found if kind(*r) == "unclassified"], "a new route needs a credential class here"
        checked = set()
        for method, path in found:
            k = kind(method, path)
            if k in ("public", "simulator") or method == "MOUNT":
                continue
            if k == "metrics" and not providers:
                continue  # no token configured: covered by test_metrics_is_local_only_without_a_token
            if not providers and path.startswith("/webhooks/"):
                assert call(c, method, path, "real").status_code == 404, path  # no provider: no webhook
                continue
            for how in ("none", "forged"):
                c.cookies.clear()
                if how == "forged":
                    c.cookies.set("rapport_session", "forged-session", domain="testserver")
                r = call(c, method, path, how)
                assert refused(r), f"{method} {path} answered {r.status_code} with {how} credentials"
            c.cookies.clear()
            csrf = signed_in(rt.svc, c) if k == "admin" else ""
            if path == "/admin/logout":
                assert call(c, method, path, "forged").status_code == 403, "signed out without the CSRF token"
                r = call(c, method, path, "real", csrf)
                assert r.status_code == 303 and refused(c.get("/admin/appointments", follow_redirects=False))
                c.cookies.clear()
                checked.add((method, path))
                continue
            r = call(c, method, path, "real", csrf)
            assert not refused(r), f"{method} {path} refused its real credential ({r.status_code})"
            if k == "admin" and method == "POST":
                # a session without the form's CSRF token is not enough
                forged = call(c, method, path, "forged")
                assert forged.status_code == 403, f"{method} {path} took a POST without its CSRF token"
            c.cookies.clear()
            checked.add((method, path))
        kinds = {kind(m, p) for m, p in checked}
        assert {"api", "admin"} <= kinds
        if providers:
            assert {"twilio", "telegram", "metrics"} <= kinds


def test_metrics_is_local_only_without_a_token(tmp_path: Path) -> None:
    with serve(tmp_path, settings(None, None), host="127.0.0.1") as (_rt, c):
        assert c.get("/metrics").status_code == 200
        # through a reverse proxy on the same host: treated as outside
        assert c.get("/metrics", headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 403
        assert c.get("/metrics", headers={"Forwarded": "for=198.51.100.7"}).status_code == 403
    with serve(tmp_path / "remote", settings(None, None)) as (_rt, c):
        assert c.get("/metrics").status_code == 403


def test_metrics_token_is_needed_even_locally(tmp_path: Path) -> None:
    with serve(tmp_path, settings(None, None, RAPPORT_METRICS_TOKEN=METRICS_TOKEN), host="127.0.0.1") as (_rt, c):
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 200


def inbound_count(svc: Any) -> int:
    with Session(svc.db) as s:
        return len(list(s.exec(select(Message).where(Message.direction == "in"))))


@pytest.mark.parametrize("channel", ["sms", "telegram"])
def test_a_replayed_webhook_is_one_message(
    tmp_path: Path, fakes: tuple[FakeTwilio, FakeTelegram], channel: str
) -> None:
    tw, tg = fakes
    with serve(tmp_path, settings(tw, tg)) as (rt, c):
        add_client(rt.svc, phone=CLIENT_PHONE, telegram=CLIENT_TG, channel=channel)
        for _ in range(3):  # an attacker who captured a signed request replays it verbatim
            if channel == "sms":
                params = twilio_form("SM" + "5" * 32, "what time is my appointment?")
                h = twilio_headers("/webhooks/twilio", params, TWILIO_TOKEN)
                r = c.post("/webhooks/twilio", content=urlencode(params).encode(), headers=h)
            else:
                h = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Content-Type": "application/json"}
                r = c.post("/webhooks/telegram", content=tg_body(77, "what time is my appointment?"), headers=h)
            assert r.status_code == 200
        assert inbound_count(rt.svc) == 1
