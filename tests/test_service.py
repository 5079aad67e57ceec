"""The service on both engines: idempotence, audit, consent, timers fired once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from bot.config import parse_config
from bot.records import RecordError
from bot.service import Service
from bot.unit import Note
from channels.base import Inbound
from storage import make_engine
from storage.migrate import upgrade_url
from storage.tables import Appointment, AuditLog, Client, Message, Timer

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CFG = parse_config(
    {
        "reminders": {"offsets": ["24h", "2h"]},
        "quiet_hours": {"start": "22:00", "end": "07:00"},
        "crisis": {"oncall": [{"name": "oc", "phone": "+15555550101"}]},
    }
)


@pytest.fixture
def svc(db_url: str):  # type: ignore[no-untyped-def]
    upgrade_url(db_url)
    eng = make_engine(db_url)
    service = Service(CFG, eng)
    yield service
    eng.dispose()


def collect(svc: Service) -> list[Note]:
    notes: list[Note] = []
    svc.observers.append(notes.extend)
    return notes


def client(svc: Service, **kw: Any) -> None:
    data = {"id": "c1", "name": "Ana", "phone": "+12125550123", "lang": "en", "tz": "America/New_York"}
    svc.upsert_client({**data, **kw}, T0)


def test_a_provider_id_is_processed_once(svc: Service) -> None:
    client(svc)
    first = svc.handle_inbound(Inbound("sms", "hello?", address="+12125550123", provider_id="SM1"), T0)
    again = svc.handle_inbound(Inbound("sms", "hello?", address="+12125550123", provider_id="SM1"), T0)
    assert first != "duplicate" and again == "duplicate"
    with Session(svc.db) as s:
        assert len(list(s.exec(select(Message).where(Message.direction == "in")))) == 1


def test_state_changes_are_audited_with_who_caused_them(svc: Service) -> None:
    client(svc)
    svc.upsert_appointment({"id": "a1", "client": "c1", "start": (T0 + timedelta(days=2)).isoformat()}, T0, "api")
    svc.handle_inbound(Inbound("sms", "yes", address="+12125550123"), T0 + timedelta(minutes=1))
    svc.mark_attendance("a1", "attended", T0 + timedelta(days=2, hours=1), "staff:front_desk")
    svc.handle_inbound(Inbound("sms", "STOP", address="+12125550123"), T0 + timedelta(days=3))
    with Session(svc.db) as s:
        rows = [
            (r.actor, r.entity, r.action, r.detail.get("status"))
            for r in s.exec(select(AuditLog).order_by(col(AuditLog.id)))
        ]
    assert ("api", "appointment", "status", "scheduled") in rows
    assert ("client:c1", "appointment", "status", "confirmed") in rows
    assert ("staff:front_desk", "appointment", "status", "attended") in rows
    assert ("client:c1", "client", "opted_out", None) in rows
    assert ("api", "client", "consent", None) in rows


def test_without_consent_reminders_are_held(svc: Service) -> None:
    notes = collect(svc)
    client(svc, consent=False)
    svc.upsert_appointment({"id": "a1", "client": "c1", "start": (T0 + timedelta(hours=30)).isoformat()}, T0, "api")
    svc.fire_due(T0 + timedelta(hours=7))
    held = [n.data for n in notes if n.type == "held"]
    assert held == [{"to": "c1", "reason": "no_consent", "dialogue": "appointment_reminder"}]
    with Session(svc.db) as s:
        m = s.exec(select(Message).where(Message.status == "held")).one()
        assert m.reason == "no_consent"


def test_bad_records_name_the_field(svc: Service) -> None:
    with pytest.raises(RecordError) as e:
        svc.upsert_client({"id": "c1", "phone": "not a phone"}, T0)
    assert e.value.field == "phone"
    client(svc)
    with pytest.raises(RecordError) as e:
        svc.upsert_appointment({"id": "a1", "client": "c1", "start": "2026-12-03T10:00:00"}, T0)
    assert e.value.field == "start"
    with pytest.raises(RecordError) as e:
        svc.upsert_appointment({"id": "a1", "client": "zz", "start": "2026-12-03T10:00:00Z"}, T0)
    assert e.value.field == "client"


def test_moving_an_appointment_moves_its_reminders(svc: Service) -> None:
    client(svc)
    svc.upsert_appointment({"id": "a1", "client": "c1", "start": (T0 + timedelta(days=5)).isoformat()}, T0)
    svc.upsert_appointment({"id": "a1", "client": "c1", "start": (T0 + timedelta(days=9)).isoformat()}, T0)
    with Session(svc.db) as s:
        pending = s.exec(select(Timer).where(Timer.kind == "reminder", Timer.done == False)).all()  # noqa: E712
        assert sorted(t.due_at for t in pending) == [T0 + timedelta(days=8), T0 + timedelta(days=9, hours=-2)]
        assert s.get(Appointment, "a1").status == "rescheduled"  # type: ignore[union-attr]
    svc.cancel_appointment("a1", T0)
    with Session(svc.db) as s:
        assert s.exec(select(Timer).where(Timer.kind == "reminder", Timer.done == False)).all() == []  # noqa: E712


def test_concurrent_pollers_fire_each_timer_once(svc: Service) -> None:
    for i in range(20):
        svc.upsert_client(
            {"id": f"c{i}", "name": "X", "phone": f"+1212555{i:04d}", "lang": "en", "tz": "America/New_York"}, T0
        )
        svc.upsert_appointment({"id": f"a{i}", "client": f"c{i}", "start": (T0 + timedelta(hours=30)).isoformat()}, T0)
    notes = collect(svc)
    due = T0 + timedelta(hours=7)  # 07:00 New York: past quiet hours, the 24h reminders are due
    threads = [threading.Thread(target=svc.fire_due, args=(due,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = [n.data["to"] for n in notes if n.type == "message"]
    assert sorted(sent) == sorted(f"c{i}" for i in range(20))
    with Session(svc.db) as s:
        assert s.exec(select(Timer).where(Timer.kind == "reminder", Timer.done == True)).all()  # noqa: E712
        assert all(c.opted_out is False for c in s.exec(select(Client)))
