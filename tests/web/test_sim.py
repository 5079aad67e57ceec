"""The web simulator: without provider credentials it is the channel, through the real outbox."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.server import Runtime
from tests.channels.helpers import make_service
from tests.web.conftest import settings_for


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[TestClient]:
    svc = make_service(tmp_path)
    rt = Runtime(svc, settings_for(), timer_interval=0.2)
    assert rt.sim is not None
    with TestClient(rt.app()) as client:
        yield client


def events(client: TestClient, sid: str, kind: str, n: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
    t0 = time.time()
    while time.time() - t0 < timeout:
        evs = [e for e in client.get(f"/sim/session/{sid}").json()["events"] if e["kind"] == kind]
        if len(evs) >= n:
            return evs
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} {kind} events")


def test_page_renders(sim: TestClient) -> None:
    r = sim.get("/")
    assert r.status_code == 200 and "Clinica Test" in r.text and '<option value="en">' in r.text


def test_a_visitor_plays_a_client(sim: TestClient) -> None:
    s = sim.post("/sim/session", json={"name": "Bea", "lang": "en"}).json()
    sid = s["session"]
    assert any("scheduled" in e["text"] for e in events(sim, sid, "event"))
    assert sim.post(f"/sim/session/{sid}/next").json()["outcome"] == "reminder"
    reminder = events(sim, sid, "out")[0]
    assert "Bea" in reminder["text"]
    sim.post(f"/sim/session/{sid}/say", json={"text": "yes"})
    outs = events(sim, sid, "out", n=2)
    assert len(outs) >= 2
    assert any("confirmed" in e["text"] for e in events(sim, sid, "event"))
    assert sim.post(f"/sim/session/{sid}/attended").json()["outcome"] == "attended"


def test_bad_session_and_action(sim: TestClient) -> None:
    assert sim.get("/sim/session/nope").status_code == 404
    sid = sim.post("/sim/session", json={}).json()["session"]
    assert sim.post(f"/sim/session/{sid}/dance").status_code == 404
    assert sim.post(f"/sim/session/{sid}/say", json={"text": "  "}).status_code == 422


def test_with_providers_the_page_is_a_status_page(tmp_path: Path, fake_twilio: Any) -> None:
    svc = make_service(tmp_path)
    rt = Runtime(svc, settings_for(fake_twilio))
    assert rt.sim is None
    with TestClient(rt.app()) as client:
        r = client.get("/")
        assert "Twilio SMS" in r.text and "/sim/" not in r.text
        assert client.post("/sim/session", json={}).status_code in (404, 405)


def test_forced_on_beside_a_real_provider(tmp_path: Path, fake_twilio: Any) -> None:
    from tests.channels.helpers import CLIENT_PHONE, add_client
    from tests.web.test_webhooks import sms, twilio_post, wait_for

    svc = make_service(tmp_path)
    rt = Runtime(svc, settings_for(fake_twilio, RAPPORT_WEB_SIMULATOR="1"), timer_interval=0.2)
    assert rt.sim is not None
    with TestClient(rt.app()) as client:
        sid = client.post("/sim/session", json={"name": "Bea", "lang": "en"}).json()["session"]
        client.post(f"/sim/session/{sid}/next")
        events(client, sid, "out")  # the demo client's reminder reached the page
        add_client(rt.svc)
        twilio_post(client, fake_twilio.auth_token, sms("SM900", "what time is my appointment?"))
        wait_for(lambda: any(m["to"] == CLIENT_PHONE for m in fake_twilio.messages))
        assert all(not str(m["to"]).startswith("sim-") for m in fake_twilio.messages)
