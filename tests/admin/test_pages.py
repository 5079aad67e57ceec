"""The admin pages driven through the app: appointments, inbox, takeover, alerts, dashboard,
script editor, clients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bot.service import Service
from bot.web.admin import overrides
from channels.base import Inbound
from storage.admin_tables import ScriptOverride, Takeover, taken_over
from storage.tables import Alert, AuditLog, Outbox
from tests.channels.helpers import CLIENT_PHONE, add_client, make_service, messages

NY = ZoneInfo("America/New_York")


def now() -> datetime:
    return datetime.now(UTC)


def sms(svc: Service, text: str, pid: str) -> str:
    return svc.handle_inbound(Inbound("sms", text, address=CLIENT_PHONE, provider_id=pid), now())


def tomorrow_at(hour: int) -> datetime:
    d = now().astimezone(NY).date() + timedelta(days=1)
    return datetime(d.year, d.month, d.day, hour, tzinfo=NY)


def test_appointments_today_and_tomorrow_with_confirmation(svc: Service, web: TestClient, admin: str) -> None:
    add_client(svc)
    svc.upsert_appointment(
        {"id": "a1", "client": "c1", "clinician": "rivera", "start": tomorrow_at(10).isoformat()}, now()
    )
    svc.upsert_appointment(
        {"id": "a2", "client": "c1", "start": (tomorrow_at(10) + timedelta(days=5)).isoformat()}, now()
    )
    page = web.get("/admin/appointments").text
    assert "Today" in page and "Tomorrow" in page
    assert 'data-appointment="a1"' in page and 'data-appointment="a2"' not in page  # only two days
    assert "not yet" in page
    sms(svc, "yes I'll be there", "SM1")  # the client answers with nothing pending: confirms the next one
    page = web.get("/admin/appointments").text
    row = page.split('data-appointment="a1"')[1].split("</tr>")[0]
    assert "confirmed by client" in row and "Dr. Rivera" in row and "10:00" in row


def test_inbox_reply_goes_through_the_outbox_with_the_author(svc: Service, web: TestClient, admin: str) -> None:
    add_client(svc)
    sms(svc, "hello, can someone call me back?", "SM1")
    inbox = web.get("/admin/inbox").text
    assert '/admin/inbox/c1"' in inbox
    conv = web.get("/admin/inbox/c1").text
    assert "can someone call me back" in conv
    r = web.post(
        "/admin/inbox/c1/reply", data={"csrf": admin, "text": "Hi Ana, I'll call you at 3."}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/inbox/c1?done=sent"
    sent = [m for m in messages(svc, "out") if m.body == "Hi Ana, I'll call you at 3."]
    assert len(sent) == 1 and sent[0].reason == "staff:Dr Rivera" and sent[0].dialogue == "staff"
    with Session(svc.db) as s:
        box = s.exec(select(Outbox).where(Outbox.message_id == sent[0].id)).one()
        audit = s.exec(select(AuditLog).where(AuditLog.action == "staff_reply")).one()
    assert box.to == CLIENT_PHONE and box.channel == "sms"
    assert audit.actor == "staff:Dr Rivera"
    page = web.get("/admin/inbox/c1?done=sent").text
    assert "Message queued" in page and "Dr Rivera (practice)" in page
    assert web.post("/admin/inbox/c1/reply", data={"csrf": admin, "text": "  "}).status_code == 422
    assert web.post("/admin/inbox/nobody/reply", data={"csrf": admin, "text": "hi"}).status_code == 404


def test_no_reply_to_an_opted_out_client(svc: Service, web: TestClient, admin: str) -> None:
    add_client(svc)
    sms(svc, "STOP", "SM1")
    r = web.post("/admin/inbox/c1/reply", data={"csrf": admin, "text": "hello?"})
    assert r.status_code == 422 and "opted out" in r.text
    assert not [m for m in messages(svc, "out") if m.body == "hello?"]


def test_take_over_and_hand_back(svc: Service, web: TestClient, admin: str) -> None:
    add_client(svc)
    sms(svc, "hi", "SM1")
    web.post("/admin/inbox/c1/takeover", data={"csrf": admin})
    with Session(svc.db) as s:
        assert taken_over(s, "c1") and s.get(Takeover, "c1").by == "Dr Rivera"  # type: ignore[union-attr]
    page = web.get("/admin/inbox/c1").text
    assert "Taken over by Dr Rivera" in page and "Hand back" in page
    assert "taken over by Dr Rivera" in web.get("/admin/inbox").text
    web.post("/admin/inbox/c1/handback", data={"csrf": admin})
    with Session(svc.db) as s:
        assert not taken_over(s, "c1")
        actions = [a.action for a in s.exec(select(AuditLog).where(AuditLog.entity == "conversation"))]
    assert actions == ["taken_over", "handed_back"]


def test_acknowledge_and_resolve_a_crisis_alert(svc: Service, web: TestClient, admin: str) -> None:
    add_client(svc)
    assert sms(svc, "I want to kill myself", "SM1") == "crisis"
    with Session(svc.db) as s:
        alert = s.exec(select(Alert)).one()
    page = web.get("/admin/alerts").text
    assert f'data-alert="{alert.id}"' in page and "Acknowledge" in page
    assert "crisis alert open" in web.get("/admin/inbox").text
    r = web.post(f"/admin/alerts/{alert.id}/ack", data={"csrf": admin}, follow_redirects=False)
    assert r.headers["location"] == "/admin/alerts?done=acked"
    with Session(svc.db) as s:
        a = s.get(Alert, alert.id)
        assert a is not None and a.status == "acked" and a.acked_by == "Dr Rivera"
    web.post(f"/admin/alerts/{alert.id}/resolve", data={"csrf": admin})
    with Session(svc.db) as s:
        a = s.get(Alert, alert.id)
        assert a is not None and a.status == "resolved" and a.resolved_by == "Dr Rivera"
    page = web.get("/admin/alerts").text
    assert "No open alerts" in page and "Recently resolved" in page


def test_dashboard_charts_and_the_welcome_back_message(svc: Service, web: TestClient, admin: str) -> None:
    add_client(svc, lang="es")
    past = now() - timedelta(weeks=10)
    svc.upsert_appointment(
        {"id": "old", "client": "c1", "clinician": "rivera", "start": past.isoformat()}, past - timedelta(days=3)
    )
    svc.mark_attendance("old", "attended", past + timedelta(hours=1))
    page = web.get("/admin/dashboard").text
    assert page.count("<svg") >= 2 and "reference 65%" in page and "reference 50%" in page
    assert 'data-client="c1"' in page  # at risk: one session, ten weeks ago, nothing booked
    # the message id ships with the catalogs; without it the page says so instead of sending nothing silently
    with Session(svc.db) as s:
        s.add(
            ScriptOverride(
                lang="es", msg_id="retention.welcome_back", text="Hola {name}, nos encantaría verte de nuevo."
            )
        )
        s.commit()
    overrides.apply(svc)
    r = web.post("/admin/clients/c1/welcome-back", data={"csrf": admin}, follow_redirects=False)
    assert r.headers["location"] == "/admin/inbox/c1?done=sent"
    sent = [m for m in messages(svc, "out") if m.dialogue == "retention"]
    assert [m.body for m in sent] == ["Hola Ana, nos encantaría verte de nuevo."]


def test_script_override_is_used_and_checked(svc: Service, web: TestClient, admin: str) -> None:
    listing = web.get("/admin/scripts?lang=en").text
    assert "help.fallback" in listing
    msg_id = "help.fallback"
    edit = web.get(f"/admin/scripts/en/{msg_id}").text
    assert "SMS segment" in edit
    catalog = svc.scripts.text("en", msg_id)
    assert overrides.placeholders(catalog) == {"practice"}
    new = "Sorry, I didn't get that. A person from {practice} will read this."
    bad = web.post(f"/admin/scripts/en/{msg_id}", data={"csrf": admin, "text": "Hi {nobody}"})
    assert bad.status_code == 422 and "placeholders must match" in bad.text
    r = web.post(f"/admin/scripts/en/{msg_id}", data={"csrf": admin, "text": new}, follow_redirects=False)
    assert r.status_code == 303
    assert svc.scripts.text("en", msg_id) == new
    add_client(svc)
    sms(svc, "blue elephants", "SM1")  # nothing the scripts understand: the fallback answers
    assert "Sorry, I didn't get that. A person from Clinica Test will read this." in [
        m.body for m in messages(svc, "out")
    ]
    web.post(f"/admin/scripts/en/{msg_id}/reset", data={"csrf": admin})
    assert svc.scripts.text("en", msg_id) == catalog
    preview = web.get("/admin/scripts-preview", params={"text": "ação " * 20}).json()
    assert preview == {"encoding": "UCS-2", "segments": 2, "characters": 100}


def test_clients_page(svc: Service, web: TestClient, admin: str) -> None:
    add_client(svc)
    add_client(svc, "c2", phone=None, telegram="700002", channel="telegram", lang="pt_BR")
    page = web.get("/admin/clients").text
    c1 = page.split('data-client="c1"')[1].split("</tr>")[0]
    c2 = page.split('data-client="c2"')[1].split("</tr>")[0]
    assert "not linked" in c1 and "sms" in c1 and "en" in c1
    assert "linked" in c2 and "not linked" not in c2 and "pt_BR" in c2 and "telegram" in c2


def test_the_simulator_points_to_the_admin(tmp_path: Path) -> None:
    from bot.server import Runtime
    from tests.web.conftest import settings_for

    svc = make_service(tmp_path)
    rt = Runtime(svc, settings_for(), timer_interval=60)
    with TestClient(rt.app()) as c:
        page = c.get("/").text
    assert 'href="/admin/login"' in page and "rapport admin create-user" in page


def test_unknown_or_malformed_alert_ids(svc: Service, web: TestClient, admin: str) -> None:
    assert web.post("/admin/alerts/abc/ack", data={"csrf": admin}).status_code == 404
    assert web.post("/admin/alerts/abc/ack", data={}).status_code == 403  # no token: refused before anything
    assert web.post("/admin/alerts/999/resolve", data={"csrf": admin}).status_code == 404
