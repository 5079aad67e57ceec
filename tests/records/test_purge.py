"""The records policy on SQLite and on a real PostgreSQL: what is purged, what is kept, the export."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.records import RecordError
from bot.retention import RecordsConfig, before, export_client, purge, run_records
from storage.db import make_engine
from storage.migrate import upgrade_url
from storage.tables import (
    Alert,
    Appointment,
    AuditLog,
    Client,
    Conversation,
    Feedback,
    InboundSeen,
    Message,
    Outbox,
    Timer,
)
from storage.writeback_table import ImportItem, SlotOffer, WaitlistEntry, WritebackEvent

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=8 * 365)  # past the default 7 years
RECENT = NOW - timedelta(days=30)
ANCIENT = NOW - timedelta(days=12 * 365)


@pytest.fixture
def db(db_url: str) -> Iterator[Engine]:
    upgrade_url(db_url)
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def seed(db: Engine) -> None:
    with Session(db) as s:
        for cid in ("c1", "c2"):
            s.add(Client(id=cid, name=cid.upper(), phone=f"+1555123000{cid[1]}", created_at=ANCIENT))
        s.commit()
        s.add(Appointment(id="old", client_id="c1", start=OLD, status="attended", history=[]))
        s.add(Appointment(id="old-upcoming-bug", client_id="c1", start=OLD, status="scheduled", history=[]))
        s.add(Appointment(id="new", client_id="c1", start=RECENT, status="attended", history=[]))
        s.add(Appointment(id="next", client_id="c1", start=NOW + timedelta(days=2), status="scheduled", history=[]))
        s.add(Appointment(id="c2-old", client_id="c2", start=OLD, status="attended", history=[]))
        for at, tag in ((OLD, "old"), (RECENT, "new")):
            s.add(Message(client_id="c1", direction="in", channel="sms", body=f"{tag} text", created_at=at))
        s.flush()
        stuck = Message(client_id="c1", direction="out", channel="sms", body="old, unsent", created_at=OLD)
        sent = Message(client_id="c1", direction="out", channel="sms", body="old, sent", created_at=OLD)
        s.add(stuck)
        s.add(sent)
        s.flush()
        assert stuck.id is not None and sent.id is not None
        s.add(Outbox(message_id=stuck.id, channel="sms", to="+15551230001", body="x", status="pending", created_at=OLD))
        s.add(Outbox(message_id=sent.id, channel="sms", to="+15551230001", body="x", status="sent", created_at=OLD))
        s.add(Conversation(client_id="c1", dialogue="feedback", step="x", active=False, started_at=OLD, ended_at=OLD))
        s.add(Conversation(client_id="c1", dialogue="human", step="x", active=True, started_at=OLD, updated_at=OLD))
        s.add(Conversation(client_id="c1", dialogue="feedback", step="x", active=False, started_at=RECENT))
        s.add(Feedback(client_id="c1", appointment_id="old", rating=4, takeaway="old", created_at=OLD))
        s.add(Feedback(client_id="c1", appointment_id="new", rating=5, takeaway="new", created_at=RECENT))
        s.add(Timer(kind="reminder", appointment_id="old", due_at=OLD, done=True))
        s.add(Timer(kind="reminder", appointment_id="old-upcoming-bug", due_at=OLD, done=False))
        s.add(InboundSeen(channel="sms", provider_id="SMold", at=OLD))
        s.add(InboundSeen(channel="sms", provider_id="SMnew", at=RECENT))
        s.add(Alert(client_id="c1", level="high", status="resolved", created_at=OLD, resolved_at=OLD))
        s.add(Alert(client_id="c1", level="high", status="open", created_at=OLD))
        s.add(ImportItem(source="csv:a.csv", external_id="old", appointment_id="old", fingerprint="f"))
        s.add(WaitlistEntry(client_id="c1", appointment_id="old", status="booked", created_at=OLD, updated_at=OLD))
        s.add(SlotOffer(freed_appointment_id="x", start=OLD, status="taken"))
        wb = {"event": "confirmed", "appointment_id": "old", "client_id": "c1", "payload": {}}
        s.add(WritebackEvent(event_id="e1", status="sent", created_at=OLD, **wb))
        s.add(WritebackEvent(event_id="e2", status="pending", created_at=OLD, **wb))
        for at, action, cid in (
            (ANCIENT, "consent", "c1"),  # c1's latest consent record: kept however old
            (ANCIENT, "consent", "c2"),
            (OLD, "opted_out", "c2"),  # c2's latest: kept
            (ANCIENT, "created", "c1"),  # past 7 years: purged
            (OLD, "updated", "c1"),  # 8 years: purged
            (RECENT, "updated", "c1"),
            (ANCIENT, "consent", "gone"),  # a client no longer held: purged
        ):
            s.add(AuditLog(at=at, actor="api", entity="client", entity_id=cid, action=action))
        s.commit()


EXPECTED = {
    "outbox": 1,
    "messages": 2,
    "conversations": 1,
    "feedback": 1,
    "timers": 1,
    "inbound_seen": 1,
    "alerts": 1,
    "import_items": 1,
    "waitlist": 1,
    "slot_offers": 1,
    "appointments": 2,
    "writeback_events": 1,
    "audit_log": 4,
}


def test_purge_deletes_what_is_older_and_keeps_what_the_policy_keeps(db: Engine) -> None:
    seed(db)
    cfg = RecordsConfig()
    assert purge(db, NOW, cfg, dry_run=True) == EXPECTED
    assert purge(db, NOW, cfg) == EXPECTED
    with Session(db) as s:
        assert sorted(m.body for m in s.exec(select(Message))) == ["new text", "old, unsent"]
        assert [o.status for o in s.exec(select(Outbox))] == ["pending"]
        assert sorted(a.id for a in s.exec(select(Appointment))) == ["new", "next", "old-upcoming-bug"]
        assert sorted(c.dialogue for c in s.exec(select(Conversation))) == ["feedback", "human"]
        assert [f.takeaway for f in s.exec(select(Feedback))] == ["new"]
        assert [a.status for a in s.exec(select(Alert))] == ["open"]
        assert [w.event_id for w in s.exec(select(WritebackEvent))] == ["e2"]
        assert [i.provider_id for i in s.exec(select(InboundSeen))] == ["SMnew"]
        assert sorted(c.id for c in s.exec(select(Client))) == ["c1", "c2"]
        audit = [
            (e.entity_id, e.action) for e in s.exec(select(AuditLog).order_by(col(AuditLog.id))) if e.entity == "client"
        ]
        assert audit == [("c1", "consent"), ("c2", "opted_out"), ("c1", "updated")]
        (record,) = s.exec(select(AuditLog).where(AuditLog.entity == "records"))
        assert record.detail["messages"] == 2 and record.actor == "system:retention"
    again = purge(db, NOW, cfg)
    assert sum(again.values()) == 0


def test_a_longer_policy_keeps_everything_here(db: Engine) -> None:
    seed(db)
    # only the 12-year-old audit rows that are not a held client's latest consent record
    assert purge(db, NOW, RecordsConfig(keep_for="10y")) == {k: 3 if k == "audit_log" else 0 for k in EXPECTED}


def test_a_short_policy_still_keeps_the_audit_log_six_years(db: Engine) -> None:
    seed(db)
    counts = purge(db, NOW, RecordsConfig(keep_for="10w"))
    assert counts["messages"] == 2 and counts["audit_log"] == 4
    with Session(db) as s:
        assert any(e.action == "updated" and e.at == RECENT for e in s.exec(select(AuditLog)))


def test_export_holds_one_clients_data_only(db: Engine) -> None:
    seed(db)
    data = export_client(db, "c1")
    json.dumps(data)  # JSON-ready
    assert data["client"]["id"] == "c1"
    assert sorted(a["id"] for a in data["appointments"]) == ["new", "next", "old", "old-upcoming-bug"]
    assert sorted(m["body"] for m in data["messages"]) == ["new text", "old text", "old, sent", "old, unsent"]
    assert len(data["feedback"]) == 2 and len(data["alerts"]) == 2 and len(data["conversations"]) == 3
    assert {e["entity_id"] for e in data["audit"]} == {"c1"}
    assert [w["event_id"] for w in data["writeback_events"]] == ["e1", "e2"]
    assert data["waitlist"][0]["appointment_id"] == "old"
    other = export_client(db, "c2")
    assert [a["id"] for a in other["appointments"]] == ["c2-old"] and other["messages"] == []
    with pytest.raises(RecordError, match="unknown client"):
        export_client(db, "nobody")


def test_records_command_line(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    upgrade_url(db_url)
    eng = make_engine(db_url)
    seed(eng)
    eng.dispose()
    out, err = io.StringIO(), io.StringIO()
    assert run_records(db_url, RecordsConfig(), "purge", out, err, dry_run=True, now=NOW) == 0
    assert f"would delete {sum(EXPECTED.values())} rows: 1 outbox, 2 messages" in out.getvalue()
    target = tmp_path / "c1.json"
    assert run_records(db_url, RecordsConfig(), "export", out, err, client="c1", output=str(target)) == 0
    assert json.loads(target.read_text())["client"]["id"] == "c1"
    assert run_records(db_url, RecordsConfig(), "export", out, err, client="zz") == 1
    assert "unknown client 'zz'" in err.getvalue()


def test_rotate_key_without_a_key_is_a_clear_error(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAPPORT_DATA_KEY", raising=False)
    out, err = io.StringIO(), io.StringIO()
    assert run_records(db_url, RecordsConfig(), "rotate-key", out, err) == 1
    assert err.getvalue().startswith("rapport records rotate-key: RAPPORT_DATA_KEY is not set")


PERIODS = [
    ("7y", datetime(2019, 11, 26, 12, 0, tzinfo=UTC)),
    ("90d", NOW - timedelta(days=90)),
    ("52w", NOW - timedelta(weeks=52)),
]


@pytest.mark.parametrize(("period", "cut"), PERIODS)
def test_periods(period: str, cut: datetime) -> None:
    assert RecordsConfig(keep_for=period).cutoff(NOW) == cut


def test_leap_day_steps_back_to_the_28th() -> None:
    assert before(datetime(2028, 2, 29, tzinfo=UTC), "1y") == datetime(2027, 2, 28, tzinfo=UTC)


BAD = [("7 years", "not a duration"), ("1d", "at least 30 days"), ("y", "not a duration"), ("-1y", "not a duration")]


@pytest.mark.parametrize(("value", "message"), BAD)
def test_bad_keep_for(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RecordsConfig(keep_for=value)
