"""Role scoping: a clinician sees their own clients (an appointment with them) on every page and
cannot reach another clinician's client by URL; admins see everything; everyone sees open
crisis alerts and may act on that client while the alert is open."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bot.service import Service
from bot.web.admin import auth
from bot.web.app import create_app
from channels.base import Inbound
from storage.admin_tables import Takeover
from storage.tables import Alert, Outbox
from tests.admin.conftest import PASSWORD, sign_in
from tests.channels.helpers import CONFIG, make_service
from tests.web.conftest import settings_for

CLINICIANS = [
    *CONFIG["clinicians"],
    {"id": "costa", "name": "Dra. Costa", "tz": "America/Sao_Paulo", "session_minutes": 45},
]
PHONES = {"c1": "+15551230001", "c2": "+15551230002", "c3": "+15551230003"}
# a1 and a2 had one session ten weeks ago and nothing since: at risk on the dashboard.
LAPSED = {"a1": "+15551230011", "a2": "+15551230012"}
ALL_IDS = [*PHONES, *LAPSED]


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def svc(tmp_path: Path) -> Service:
    s = make_service(tmp_path, clinicians=CLINICIANS)
    at = now()
    for cid, phone in PHONES.items():
        s.upsert_client({"id": cid, "name": f"Client {cid}", "phone": phone, "tz": "America/New_York"}, at, "test")
    # c1 and a1 are Rivera's, c2 and a2 Costa's, c3 nobody's yet.
    for cid, phone in LAPSED.items():
        s.upsert_client({"id": cid, "name": f"Client {cid}", "phone": phone, "tz": "America/New_York"}, at, "test")
    for cid, clin in (("a1", "rivera"), ("a2", "costa")):
        s.upsert_appointment(
            {"id": f"{cid}-old", "client": cid, "clinician": clin, "start": at - timedelta(weeks=10)}, at
        )
        s.mark_attendance(f"{cid}-old", "attended", at)
    for cid, clin in (("c1", "rivera"), ("c2", "costa")):
        s.upsert_appointment(
            {"id": f"{cid}-soon", "client": cid, "clinician": clin, "start": at + timedelta(hours=3)}, at
        )
    for cid, phone in PHONES.items():
        s.handle_inbound(Inbound("sms", "hello there", address=phone, provider_id=f"SM-{cid}"), at)
    users: list[tuple[str, str, str | None]] = [
        ("boss", "admin", None),
        ("costa", "clinician", "costa"),
        ("nomap", "clinician", None),
    ]
    for username, role, mapped in users:
        auth.create_user(s.db, username, PASSWORD, role, at, clinician=mapped)
    return s


@pytest.fixture
def web(svc: Service) -> Iterator[TestClient]:
    with TestClient(create_app(svc, settings_for()), base_url="https://testserver") as c:
        yield c


def visible(html: str, ids: Any = ALL_IDS) -> set[str]:
    return {cid for cid in ids if f'/admin/inbox/{cid}"' in html or f'data-client="{cid}"' in html}


PAGES = [
    ("boss", "/admin/clients", {"c1", "c2", "c3", "a1", "a2"}),
    ("boss", "/admin/inbox", {"c1", "c2", "c3"}),
    ("boss", "/admin/appointments", {"c1", "c2"}),
    ("boss", "/admin/dashboard", {"a1", "a2"}),
    ("costa", "/admin/clients", {"c2", "a2"}),
    ("costa", "/admin/inbox", {"c2"}),
    ("costa", "/admin/appointments", {"c2"}),
    ("costa", "/admin/dashboard", {"a2"}),
    ("nomap", "/admin/clients", set()),
    ("nomap", "/admin/inbox", set()),
    ("nomap", "/admin/appointments", set()),
    ("nomap", "/admin/dashboard", set()),
]


@pytest.mark.parametrize(("username", "path", "want"), PAGES, ids=[f"{p[0]} {p[1]}" for p in PAGES])
def test_each_page_shows_the_clients_in_scope(web: TestClient, username: str, path: str, want: set[str]) -> None:
    sign_in(web, username)
    r = web.get(path)
    assert r.status_code == 200
    assert visible(r.text) == want


GUESSES = [
    ("get", "/admin/inbox/c1", {}),
    ("post", "/admin/inbox/c1/reply", {"text": "hello from someone else"}),
    ("post", "/admin/inbox/c1/takeover", {}),
    ("post", "/admin/inbox/c1/handback", {}),
    ("post", "/admin/clients/c1/welcome-back", {}),
    ("get", "/admin/inbox/c3", {}),
    ("get", "/admin/inbox/nobody", {}),
]


@pytest.mark.parametrize(("method", "path", "form"), GUESSES, ids=[f"{g[0]} {g[1]}" for g in GUESSES])
def test_a_clinician_cannot_reach_another_clients_conversation_by_url(
    svc: Service, web: TestClient, method: str, path: str, form: dict[str, str]
) -> None:
    csrf = sign_in(web, "costa")
    before = outbox_count(svc)
    r = web.get(path) if method == "get" else web.post(path, data={"csrf": csrf, **form}, follow_redirects=False)
    assert r.status_code == 404
    assert "Client c1" not in r.text and "hello there" not in r.text
    assert outbox_count(svc) == before
    with Session(svc.db) as s:
        assert s.exec(select(Takeover)).first() is None


def test_the_admin_reaches_every_conversation(web: TestClient) -> None:
    csrf = sign_in(web, "boss")
    for cid in PHONES:
        assert web.get(f"/admin/inbox/{cid}").status_code == 200
    r = web.post("/admin/inbox/c1/takeover", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303


def outbox_count(svc: Service) -> int:
    with Session(svc.db) as s:
        return len(list(s.exec(select(Outbox.id))))


def test_an_open_alert_is_seen_and_answered_by_whoever_is_on_call(svc: Service, web: TestClient) -> None:
    assert (
        svc.handle_inbound(Inbound("sms", "I want to kill myself", address=PHONES["c1"], provider_id="SM-x"), now())
        == "crisis"
    )
    with Session(svc.db) as s:
        alert = s.exec(select(Alert)).one()
    csrf = sign_in(web, "costa")
    assert f'data-alert="{alert.id}"' in web.get("/admin/alerts").text
    assert web.get("/admin/inbox/c1").status_code == 200
    before = outbox_count(svc)
    r = web.post(
        "/admin/inbox/c1/reply", data={"csrf": csrf, "text": "I am here, calling you now"}, follow_redirects=False
    )
    assert r.status_code == 303 and outbox_count(svc) == before + 1
    assert web.post(f"/admin/alerts/{alert.id}/ack", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert web.post(f"/admin/alerts/{alert.id}/resolve", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    # Resolved: c1 is Rivera's client again, out of Costa's reach and off her resolved list.
    assert web.get("/admin/inbox/c1").status_code == 404
    assert f'data-resolved-alert="{alert.id}"' not in web.get("/admin/alerts").text
    web.cookies.clear()
    sign_in(web, "boss")
    assert f'data-resolved-alert="{alert.id}"' in web.get("/admin/alerts").text


def test_a_client_becomes_visible_once_booked_with_the_clinician(svc: Service, web: TestClient) -> None:
    sign_in(web, "costa")
    assert web.get("/admin/inbox/c3").status_code == 404
    svc.upsert_appointment(
        {"id": "c3-a", "client": "c3", "clinician": "costa", "start": now() + timedelta(days=3)}, now()
    )
    assert web.get("/admin/inbox/c3").status_code == 200
    assert "c3" in visible(web.get("/admin/clients").text)
