"""Deleting a client removes them from every table, on SQLite and on PostgreSQL.

The check walks ``SQLModel.metadata.tables`` and reads every column of every row (decrypted, as
the application would), so a table added later is covered without editing this file; and
``bot.erasure.TABLE_POLICY`` must name every table, so a new table also forces a decision about it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from bot import waitlist
from bot.erasure import TABLE_POLICY, ErasureRefused, erase_client
from bot.records import RecordError
from bot.service import Service
from channels.base import Inbound
from channels.telegram import issue_link
from storage.admin_tables import Takeover
from storage.migrate import upgrade_url
from storage.tables import Alert, AuditLog, Client, Feedback, Message, Outbox, Timer
from storage.writeback_table import ImportItem, SlotOffer, WritebackEvent
from tests.channels.helpers import make_service

GONE = {
    "id": "del-me-8q",
    "name": "Zora Quillfeather",
    "phone": "+15557394821",
    "telegram": "7391846205",
}
KEPT = {"id": "keep-me-3r", "name": "Kept Personwick", "phone": "+15557394822"}
SECRET_WORDS = "zebra-quartz"  # in everything the deleted client wrote
KEPT_WORDS = "otter-basalt"
T0 = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)  # a Monday, 10:00 in New York


@pytest.fixture
def svc(db_url: str, tmp_path: Path) -> Iterator[Service]:
    upgrade_url(db_url)
    s = make_service(tmp_path, url=db_url)
    yield s
    s.db.dispose()


def say(svc: Service, who: dict[str, str], text: str, at: datetime, sid: str) -> str:
    return svc.handle_inbound(Inbound("sms", text, address=who["phone"], provider_id=sid), at)


def seed(svc: Service) -> dict[str, int]:
    """The deleted client with a row in every table that can hold one, and a bystander beside them."""
    at = T0
    # Before they were a client: a message from their phone as an unknown sender.
    say(svc, GONE, f"hello? {SECRET_WORDS}", at, "SMunknown1")
    for who in (GONE, KEPT):
        svc.upsert_client({**who, "lang": "en", "tz": "America/New_York", "channel": "sms"}, at, "api")
    for n, (who, words) in enumerate(((GONE, SECRET_WORDS), (KEPT, KEPT_WORDS))):
        cid = who["id"]
        svc.upsert_appointment(
            {"id": f"{cid}-past", "client": cid, "clinician": "rivera", "start": (at + timedelta(hours=3)).isoformat()},
            at,
            "api",
        )
        svc.upsert_appointment(
            {"id": f"{cid}-next", "client": cid, "clinician": "rivera", "start": (at + timedelta(days=8)).isoformat()},
            at,
            "api",
        )
        svc.mark_attendance(f"{cid}-past", "attended", at + timedelta(hours=4), "api")
        say(svc, who, f"can we move it {words}", at + timedelta(hours=5), f"SMmove{n}")
        with Session(svc.db) as s:
            s.add(Feedback(client_id=cid, appointment_id=f"{cid}-past", rating=4, takeaway=words, created_at=at))
            s.add(Takeover(client_id=cid, by="dr_rivera", at=at))
            s.add(ImportItem(source="csv:x.csv", external_id=f"X-{cid}", appointment_id=f"{cid}-next", fingerprint="f"))
            s.add(
                WritebackEvent(
                    event_id=f"evt_{cid}",
                    event="confirmed",
                    appointment_id=f"{cid}-next",
                    client_id=cid,
                    payload={"appointment": {"client": cid}},
                    created_at=at,
                )
            )
            s.commit()
        waitlist.add(svc, cid, f"{cid}-next", at, "api")
    # A crisis, its alert sent to the on-call person, acknowledged and resolved.
    say(svc, GONE, f"I want to kill myself tonight {SECRET_WORDS}", at + timedelta(hours=6), "SMcrisis1")
    with Session(svc.db) as s:
        alert = s.exec(select(Alert).where(Alert.client_id == GONE["id"])).one()
        s.add(
            SlotOffer(
                freed_appointment_id=f"{GONE['id']}-past",
                clinician_id="rivera",
                start=at + timedelta(days=2),
                status="open",
                current_client_id=GONE["id"],
                taken_by=None,
            )
        )
        s.add(
            SlotOffer(
                freed_appointment_id=f"{KEPT['id']}-past",
                clinician_id="rivera",
                start=at + timedelta(days=3),
                status="taken",
                taken_by=GONE["id"],
            )
        )
        s.commit()
        assert alert.id is not None
        alert_id = alert.id
    svc.ack_alert(alert_id, "dr_rivera", at + timedelta(hours=6, minutes=2))
    svc.resolve_alert(alert_id, "dr_costa", at + timedelta(hours=7))
    issue_link(svc.db, b"k" * 32, GONE["id"], at, timedelta(hours=72))
    # Then they opt out and ask to be deleted.
    say(svc, GONE, "STOP", at + timedelta(days=1), "SMstop1")
    return {"alert": alert_id}


def dump(db: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, read through the column types (so encrypted text is decrypted)."""
    out: dict[str, list[dict[str, Any]]] = {}
    with db.connect() as c:
        for name, table in SQLModel.metadata.tables.items():
            out[name] = [dict(r._mapping) for r in c.execute(sa_select(table))]
    return out


def mentions(row: dict[str, Any], needles: list[str]) -> list[str]:
    text = repr(row)
    return [n for n in needles if n in text]


def test_every_table_has_a_policy() -> None:
    import storage.db  # noqa: F401  (registers every table)

    assert set(SQLModel.metadata.tables) == set(TABLE_POLICY), "decide in bot/erasure.py what deletion does"


def test_deleting_a_client_leaves_nothing_that_names_them(svc: Service) -> None:
    ids = seed(svc)
    before = dump(svc.db)
    needles = [*GONE.values(), SECRET_WORDS]
    # the seed really reached the tables that can hold the client
    touched = {t for t, rows in before.items() for r in rows if mentions(r, needles)}
    assert {
        "clients",
        "appointments",
        "conversations",
        "messages",
        "outbox",
        "timers",
        "feedback",
        "waitlist",
        "slot_offers",
        "writeback_events",
        "import_items",
        "takeovers",
        "alerts",
        "audit_log",
    } <= touched
    bystander = [KEPT["id"], KEPT["phone"], KEPT_WORDS]
    kept_rows = {t: [r for r in rows if mentions(r, bystander)] for t, rows in before.items()}

    done = erase_client(svc.db, GONE["id"], T0 + timedelta(days=2), "api")

    after = dump(svc.db)
    left = {t: [r for r in rows if mentions(r, needles)] for t, rows in after.items()}
    assert {t: rows for t, rows in left.items() if rows} == {}
    # the bystander is untouched
    for t, rows in kept_rows.items():
        still = [r for r in after[t] if mentions(r, bystander)]
        assert len(still) == len(rows), t
    # what is kept: the alert and who handled it, without the client
    with Session(svc.db) as s:
        a = s.get(Alert, ids["alert"])
        assert a is not None
        assert (a.client_id, a.address, a.matched, a.level) == (None, None, [], "high")
        assert (a.status, a.acked_by, a.resolved_by) == ("resolved", "dr_rivera", "dr_costa")
        kept_audit = {e.action for e in s.exec(select(AuditLog).where(AuditLog.entity == "alert"))}
        assert {"raised", "acknowledged", "resolved"} <= kept_audit
        staff = list(s.exec(select(Message).where(Message.client_id == None, Message.dialogue == "crisis")))  # noqa: E711
        assert staff and all(m.body == "[erased: client deleted]" for m in staff if m.address != GONE["phone"])
        # the deletion itself is recorded, with counts only
        rec = s.exec(select(AuditLog).where(AuditLog.entity == "records", AuditLog.action == "client_deleted")).one()
        assert rec.actor == "api" and rec.detail == done.as_dict()
        assert done.deleted["clients"] == 1 and done.deleted["messages"] >= 4
        assert s.exec(select(Timer).where(Timer.client_id == GONE["id"])).first() is None
        assert s.exec(select(Outbox).where(Outbox.to == GONE["phone"])).first() is None
        offers = {o.freed_appointment_id: o for o in s.exec(select(SlotOffer))}
        assert offers["erased"].status == "withdrawn" and offers["erased"].current_client_id is None
        assert offers[f"{KEPT['id']}-past"].taken_by is None
    with pytest.raises(RecordError):
        erase_client(svc.db, GONE["id"], T0 + timedelta(days=3), "api")


def test_an_open_crisis_alert_blocks_deletion(svc: Service) -> None:
    svc.upsert_client({**GONE, "lang": "en", "tz": "America/New_York", "channel": "sms"}, T0, "api")
    say(svc, GONE, "I want to kill myself", T0, "SMc1")
    with pytest.raises(ErasureRefused) as e:
        erase_client(svc.db, GONE["id"], T0, "api")
    assert e.value.field == "alerts"
    with Session(svc.db) as s:  # nothing was deleted
        assert s.exec(select(Message).where(Message.client_id == GONE["id"])).first() is not None


def test_the_api_and_the_cli_delete_a_client(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from bot.web.app import create_app
    from tests.security.conftest import API_TOKEN, settings

    url = f"sqlite:///{tmp_path / 'rapport.db'}"
    upgrade_url(url)
    svc = make_service(tmp_path, url=url)
    for who in (GONE, KEPT):
        svc.upsert_client({**who, "lang": "en", "tz": "America/New_York", "channel": "sms"}, T0, "api")
    say(svc, GONE, "I want to kill myself", T0, "SMc2")
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    with TestClient(create_app(svc, settings(None, None))) as c:
        assert c.delete(f"/api/clients/{GONE['id']}").status_code == 401
        r = c.delete("/api/clients/nobody", headers=auth)
        assert r.status_code == 404 and r.json()["error"]["field"] == "id"
        r = c.delete(f"/api/clients/{GONE['id']}", headers=auth)
        assert r.status_code == 409 and r.json()["error"]["field"] == "alerts"
        with Session(svc.db) as s:
            alert_id = s.exec(select(Alert.id).where(Alert.client_id == GONE["id"])).one()
        svc.resolve_alert(alert_id, "dr_rivera", T0 + timedelta(minutes=5))
        r = c.delete(f"/api/clients/{GONE['id']}", headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["erased"] is True and r.json()["anonymised"]["alerts"] == 1
        assert c.get(f"/api/clients/{GONE['id']}", headers=auth).status_code == 404
        assert c.delete(f"/api/clients/{GONE['id']}", headers=auth).status_code == 404

    from io import StringIO

    from bot.retention import RecordsConfig, run_records

    out, err = StringIO(), StringIO()
    assert run_records(url, RecordsConfig(), "delete", out, err, client=KEPT["id"]) == 1
    assert "--yes" in err.getvalue() and KEPT["phone"] not in err.getvalue()
    with Session(svc.db) as s:
        assert s.get(Client, KEPT["id"]) is not None  # without --yes nothing is deleted
    out, err = StringIO(), StringIO()
    assert run_records(url, RecordsConfig(), "delete", out, err, client=KEPT["id"], yes=True) == 0, err.getvalue()
    assert "1 clients" in out.getvalue()
    with Session(svc.db) as s:
        assert s.get(Client, KEPT["id"]) is None
    assert run_records(url, RecordsConfig(), "delete", StringIO(), err, client=KEPT["id"], yes=True) == 1


def test_what_erasure_keeps_is_purged_in_time_except_its_own_record(svc: Service) -> None:
    """The anonymised alert leaves with the records policy; the deletion's audit entry stays."""
    from bot.retention import RecordsConfig, purge

    ids = seed(svc)
    erase_client(svc.db, GONE["id"], T0 + timedelta(days=2), "api")
    counts = purge(svc.db, T0 + timedelta(days=8 * 366), RecordsConfig(keep_for="7y"))
    assert counts["alerts"] >= 1
    with Session(svc.db) as s:
        assert s.get(Alert, ids["alert"]) is None
        kept = s.exec(select(AuditLog).where(AuditLog.entity == "records", AuditLog.action == "client_deleted")).all()
        assert len(kept) == 1


def test_a_message_being_sent_blocks_deletion_for_the_moment(svc: Service) -> None:
    svc.upsert_client({**GONE, "lang": "en", "tz": "America/New_York", "channel": "sms"}, T0, "api")
    say(svc, GONE, "what time is my appointment?", T0, "SMq1")
    with Session(svc.db) as s:
        row = s.exec(select(Outbox).where(Outbox.to == GONE["phone"])).first()
        assert row is not None
        row.status = "sending"  # claimed by a worker, the provider call in flight
        s.add(row)
        s.commit()
        row_id = row.id
    with pytest.raises(ErasureRefused) as e:
        erase_client(svc.db, GONE["id"], T0, "api")
    assert e.value.field == "outbox"
    with Session(svc.db) as s:
        row = s.get(Outbox, row_id)
        assert row is not None
        row.status = "sent"
        s.add(row)
        s.commit()
    assert erase_client(svc.db, GONE["id"], T0, "api").deleted["outbox"] >= 1
