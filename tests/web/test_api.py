"""The practice API: bearer token, error shapes, clients, appointments, attendance, alerts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.server import Runtime
from channels.base import Inbound
from tests.channels.helpers import CLIENT_PHONE, make_service, now
from tests.web.conftest import API_TOKEN, settings_for

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Any, TestClient]]:
    svc = make_service(tmp_path)
    rt = Runtime(svc, settings_for(), timer_interval=0.2)  # no providers: the simulator is the channel
    with TestClient(rt.app()) as client:
        yield rt, client


def client_body(**kw: Any) -> dict[str, Any]:
    body = {
        "name": "Ana",
        "phone": CLIENT_PHONE,
        "lang": "pt_BR",
        "tz": "America/Sao_Paulo",
        "country": "BR",
        "channel": "sms",
    }
    body.update(kw)
    return body


def start_in(days: int) -> str:
    return (now() + timedelta(days=days)).replace(microsecond=0).isoformat()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": API_TOKEN}, {"Authorization": f"Basic {API_TOKEN}"}],
)
def test_without_a_valid_token_is_401(api: tuple[Any, TestClient], headers: dict[str, str]) -> None:
    _, client = api
    for method, path in (
        ("put", "/api/clients/c1"),
        ("get", "/api/alerts"),
        ("get", "/api/appointments/a1"),
        ("get", "/api/nothing-here"),
    ):
        r = client.request(method, path, json=client_body(), headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["field"] == "authorization"


def test_an_api_without_a_configured_token_is_closed(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    rt = Runtime(svc, settings_for(RAPPORT_API_TOKEN=""))
    with TestClient(rt.app()) as client:
        r = client.get("/api/alerts", headers={"Authorization": "Bearer "})
        assert r.status_code == 401


def test_clients_and_appointments_round_trip(api: tuple[Any, TestClient]) -> None:
    _, client = api
    r = client.put("/api/clients/c1", json=client_body(), headers=AUTH)
    assert r.status_code == 200 and r.json()["id"] == "c1" and r.json()["phone"] == CLIENT_PHONE
    assert client.put("/api/clients/c1", json=client_body(), headers=AUTH).status_code == 200  # idempotent
    start = start_in(3)
    r = client.put("/api/appointments/a1", json={"client": "c1", "clinician": "rivera", "start": start}, headers=AUTH)
    assert r.status_code == 200
    a = r.json()
    assert a["status"] == "scheduled" and a["minutes"] == 50 and a["client"] == "c1"
    again = client.put(
        "/api/appointments/a1", json={"client": "c1", "clinician": "rivera", "start": start}, headers=AUTH
    ).json()
    assert again["status"] == "scheduled" and len(again["history"]) == 1
    moved = client.put("/api/appointments/a1", json={"client": "c1", "start": start_in(4)}, headers=AUTH).json()
    assert moved["status"] == "rescheduled"
    got = client.get("/api/appointments/a1", headers=AUTH).json()
    assert [h["status"] for h in got["history"]] == ["scheduled", "rescheduled"]
    r = client.post("/api/appointments/a1/attendance", json={"status": "missed"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "missed"
    r = client.put("/api/appointments/a2", json={"client": "c1", "start": start_in(5)}, headers=AUTH)
    r = client.delete("/api/appointments/a2", headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/api/clients/c1", {"phone": "not a phone"}, "phone"),
        ("/api/clients/c1", {"tz": "Mars/Olympus"}, "tz"),
        ("/api/clients/c1", {"colour": "blue"}, "colour"),
        ("/api/clients/c1", {"id": "c2"}, "id"),
        ("/api/appointments/a1", {"client": "c1", "start": "2026-12-03T15:00:00"}, "start"),
        ("/api/appointments/a1", {"client": "nobody", "start": "2026-12-03T15:00:00+00:00"}, "client"),
        ("/api/appointments/a1", {"client": "c1", "start": "2026-12-03T15:00:00+00:00", "minutes": 1}, "minutes"),
        ("/api/appointments/a1", {"start": "2026-12-03T15:00:00+00:00"}, "client"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(
    api: tuple[Any, TestClient], path: str, body: dict[str, Any], field: str
) -> None:
    _, client = api
    client.put("/api/clients/c1", json=client_body(), headers=AUTH)
    data = client_body(**body) if path.startswith("/api/clients") else body
    r = client.put(path, json=data, headers=AUTH)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["field"] == field and isinstance(err["message"], str) and err["message"]


def test_bad_bodies(api: tuple[Any, TestClient]) -> None:
    _, client = api
    r = client.put("/api/clients/c1", content=b"{nope", headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "(body)"
    r = client.put("/api/clients/c1", json=[1, 2], headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["field"] == "(body)"
    r = client.post("/api/appointments/a1/attendance", json={"status": "maybe"}, headers=AUTH)
    assert r.status_code in (404, 422)


def test_unknown_ids_are_404(api: tuple[Any, TestClient]) -> None:
    _, client = api
    for method, path, body in (
        ("get", "/api/appointments/zz", None),
        ("delete", "/api/appointments/zz", None),
        ("post", "/api/appointments/zz/attendance", {"status": "attended"}),
        ("get", "/api/alerts/999", None),
        ("get", "/api/alerts/abc", None),
        ("post", "/api/alerts/999/ack", {"by": "dr_rivera"}),
        ("get", "/api/clients/zz", None),
    ):
        r = client.request(method, path, json=body, headers=AUTH)
        assert r.status_code == 404, (method, path, r.text)
        assert set(r.json()["error"]) == {"field", "message"}


def test_alerts_list_show_ack_resolve(api: tuple[Any, TestClient]) -> None:
    rt, client = api
    client.put("/api/clients/c1", json=client_body(lang="en", country="US"), headers=AUTH)
    rt.svc.handle_inbound(Inbound("sms", "I want to kill myself", address=CLIENT_PHONE, provider_id="SMc"), now())
    alerts = client.get("/api/alerts", headers=AUTH).json()["alerts"]
    assert len(alerts) == 1 and alerts[0]["status"] == "open" and alerts[0]["client"] == "c1"
    aid = alerts[0]["id"]
    one = client.get(f"/api/alerts/{aid}", headers=AUTH).json()
    assert one["conversation"][0]["direction"] == "in" and one["conversation"][0]["text"] == "I want to kill myself"
    assert client.post(f"/api/alerts/{aid}/ack", json={}, headers=AUTH).json()["error"]["field"] == "by"
    acked = client.post(f"/api/alerts/{aid}/ack", json={"by": "dr_rivera"}, headers=AUTH).json()
    assert acked["status"] == "acked" and acked["acked_by"] == "dr_rivera"
    resolved = client.post(f"/api/alerts/{aid}/resolve", json={"by": "dr_rivera"}, headers=AUTH).json()
    assert resolved["status"] == "resolved"
    assert client.get("/api/alerts", headers=AUTH).json()["alerts"] == []
    assert len(client.get("/api/alerts?status=all", headers=AUTH).json()["alerts"]) == 1
    assert client.get("/api/alerts?status=bogus", headers=AUTH).status_code == 422
