"""The waitlist through the real service and engine: offers in turn, first to accept gets the slot.

The hooks are installed where bot/service.py is to call them (the end of ``_status``, and ``_fire``
for the waitlist timer kind), and the proposed ``waitlist_offer`` dialogue and catalog entries
(tests/stats/waitlist/) are loaded on top of the shipped ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from bot import waitlist
from bot.config import parse_config
from bot.records import RecordError
from bot.service import Service
from channels.base import Inbound
from storage.db import make_engine
from storage.migrate import upgrade_url
from storage.tables import Alert, Appointment, Client, Message
from storage.writeback_table import SlotOffer, WaitlistEntry

NOW = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)  # 11:00 in New York
SLOT = datetime(2026, 12, 3, 20, 0, tzinfo=UTC)  # the appointment that will be cancelled
LATER = {"w1": SLOT + timedelta(days=7), "w2": SLOT + timedelta(days=14), "w3": SLOT + timedelta(days=21)}
CFG = waitlist.WaitlistConfig()
@pytest.fixture
def svc(db_url: str) -> Iterator[Service]:
    upgrade_url(db_url)
    eng = make_engine(db_url)
    cfg = parse_config(
        {
            "default_tz": "America/New_York",
            "clinicians": [{"id": "rivera", "tz": "America/New_York", "session_minutes": 50}],
        }
    )
    s = Service(cfg, eng)
    s.durations[waitlist.DURATION_KEY] = CFG.offer_timeout
    for i, cid in enumerate(("c0", "w1", "w2", "w3")):
        s.upsert_client(
            {"id": cid, "name": cid.upper(), "phone": f"+1555123000{i}", "tz": "America/New_York"},
            NOW - timedelta(days=9),
        )
    s.upsert_appointment({"id": "A-c0", "client": "c0", "clinician": "rivera", "start": SLOT}, NOW - timedelta(days=9))
    for cid, start in LATER.items():
        s.upsert_appointment({"id": f"A-{cid}", "client": cid, "clinician": "rivera", "start": start}, NOW)
    yield s
    eng.dispose()


def texts(svc: Service, client: str) -> list[str]:
    with Session(svc.db) as s:
        q = select(Message).where(Message.client_id == client, Message.direction == "out", Message.status != "held")
        return [m.body for m in s.exec(q.order_by(col(Message.id)))]


def start_of(svc: Service, appt: str) -> datetime:
    with Session(svc.db) as s:
        a = s.get(Appointment, appt)
        assert a is not None
        return a.start


def offers(svc: Service) -> list[tuple[str, str | None]]:
    with Session(svc.db) as s:
        return [(o.status, o.taken_by) for o in s.exec(select(SlotOffer).order_by(col(SlotOffer.id)))]


def say(svc: Service, client: str, text: str, at: datetime) -> None:
    svc.handle_inbound(Inbound(channel="sms", text=text, client_id=client), at)


def free_the_slot(svc: Service, at: datetime = NOW) -> None:
    svc.cancel_appointment("A-c0", at, actor="api")
    svc.fire_due(at)


@pytest.fixture
def listed(svc: Service) -> Service:
    for cid in ("w1", "w2"):
        waitlist.add(svc, cid, f"A-{cid}", NOW)
    return svc


def test_the_first_on_the_list_is_asked_and_takes_the_slot(listed: Service) -> None:
    svc = listed
    free_the_slot(svc)
    (offer,) = texts(svc, "w1")
    assert "an earlier time opened up" in offer and "Thu, Dec 3, 3:00 PM" in offer
    assert texts(svc, "w2") == []
    say(svc, "w1", "yes please", NOW + timedelta(minutes=10))
    assert start_of(svc, "A-w1") == SLOT
    assert "Your session is now on Thursday, Dec 3 at 3:00 PM" in texts(svc, "w1")[-1]
    assert offers(svc)[0] == ("taken", "w1")
    with Session(svc.db) as s:
        assert [(e.client_id, e.status) for e in s.exec(select(WaitlistEntry).order_by(col(WaitlistEntry.id)))] == [
            ("w1", "booked"),
            ("w2", "waiting"),
        ]
    # w1's old slot is free now, and earlier than w2's appointment: the waitlist cascades
    svc.fire_due(NOW + timedelta(minutes=10))
    assert "Thu, Dec 10, 3:00 PM" in texts(svc, "w2")[0]
    say(svc, "w2", "1", NOW + timedelta(minutes=20))
    assert start_of(svc, "A-w2") == LATER["w1"]


ANSWERS = [
    # what w1 says (None: nothing), when w2 is asked (after the offer was made)
    ("declines", "no, thanks", CFG.offer_timeout),
    ("says nothing", None, CFG.offer_timeout),
    ("asks for another time", "can we do another day?", CFG.offer_timeout),
]


@pytest.mark.parametrize(("answer", "after"), [a[1:] for a in ANSWERS], ids=[a[0] for a in ANSWERS])
def test_when_the_first_does_not_take_it_the_next_is_asked(
    listed: Service, answer: str | None, after: timedelta
) -> None:
    svc = listed
    free_the_slot(svc)
    if answer:
        say(svc, "w1", answer, NOW + timedelta(minutes=5))
        assert "stays on" in texts(svc, "w1")[-1]
    svc.fire_due(NOW + after - timedelta(minutes=1))
    assert texts(svc, "w2") == []
    svc.fire_due(NOW + after + timedelta(seconds=1))
    assert len(texts(svc, "w2")) == 1
    if answer is None:
        assert "offered to someone else" in texts(svc, "w1")[-1]
    say(svc, "w2", "yes", NOW + after + timedelta(minutes=3))
    assert start_of(svc, "A-w2") == SLOT and start_of(svc, "A-w1") == LATER["w1"]
    assert offers(svc)[0] == ("taken", "w2")


def test_a_late_yes_after_the_slot_moved_on_does_not_double_book(listed: Service) -> None:
    svc = listed
    free_the_slot(svc)
    svc.fire_due(NOW + CFG.offer_timeout + timedelta(seconds=1))  # w1 timed out, w2 asked
    say(svc, "w2", "yes", NOW + CFG.offer_timeout + timedelta(minutes=1))
    say(svc, "w1", "yes", NOW + CFG.offer_timeout + timedelta(minutes=2))  # too late: no longer an offer
    assert start_of(svc, "A-w1") == LATER["w1"]
    with Session(svc.db) as s:
        at_slot = [
            a.id for a in s.exec(select(Appointment).where(Appointment.start == SLOT)) if a.status != "cancelled"
        ]
    assert at_slot == ["A-w2"]


def test_the_practice_booking_the_slot_withdraws_the_offer(listed: Service) -> None:
    svc = listed
    free_the_slot(svc)
    svc.upsert_client({"id": "new", "name": "New"}, NOW)
    svc.upsert_appointment(
        {"id": "A-new", "client": "new", "clinician": "rivera", "start": SLOT}, NOW + timedelta(minutes=5)
    )
    assert "has just been taken" in texts(svc, "w1")[-1]
    assert offers(svc) == [("withdrawn", None)]
    say(svc, "w1", "yes", NOW + timedelta(minutes=6))
    assert start_of(svc, "A-w1") == LATER["w1"]
    svc.fire_due(NOW + CFG.offer_timeout + timedelta(minutes=1))
    assert texts(svc, "w2") == []


SKIPS = [
    ("opted out", lambda svc: svc.upsert_client({"id": "w1", "name": "W1", "consent": False}, NOW)),
    ("crisis alert open", lambda svc: _alert(svc, "w1")),
    ("mid-conversation", lambda svc: _asked(svc, "w1")),
]


def _asked(svc: Service, client: str) -> None:
    """A reminder waiting for the client's answer."""
    with svc.unit(NOW) as u:
        c, a = u.s.get(Client, client), u.s.get(Appointment, f"A-{client}")
        assert c is not None and a is not None
        svc._start(u, c, "appointment_reminder", appt=a, automated=True)


def _alert(svc: Service, client: str) -> None:
    with Session(svc.db) as s:
        s.add(Alert(client_id=client, level="high", status="open", created_at=NOW))
        s.commit()


@pytest.mark.parametrize("prepare", [s[1] for s in SKIPS], ids=[s[0] for s in SKIPS])
def test_clients_who_cannot_be_asked_now_are_passed_over(listed: Service, prepare: Any) -> None:
    svc = listed
    prepare(svc)
    before = len(texts(svc, "w1"))
    free_the_slot(svc, NOW + timedelta(minutes=1))
    assert len(texts(svc, "w1")) == before
    assert "an earlier time opened up" in texts(svc, "w2")[0]


def test_quiet_hours_defer_the_question(listed: Service) -> None:
    svc = listed
    late = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)  # 22:00 in New York
    free_the_slot(svc, late)
    assert texts(svc, "w1") == []
    svc.fire_due(datetime(2026, 11, 27, 13, 0, tzinfo=UTC))  # 08:00 in New York
    assert len(texts(svc, "w1")) == 1


def test_too_little_notice_or_no_one_waiting_opens_no_offer(svc: Service) -> None:
    free_the_slot(svc)  # nobody on the list
    assert offers(svc) == []
    waitlist.add(svc, "w1", "A-w1", NOW)
    svc.upsert_client({"id": "soon", "name": "Soon"}, NOW)
    svc.upsert_appointment(
        {"id": "A-soon", "client": "soon", "clinician": "rivera", "start": NOW + timedelta(hours=2)}, NOW
    )
    svc.cancel_appointment("A-soon", NOW, actor="api")
    assert offers(svc) == []


def test_an_offer_nobody_takes_expires(listed: Service) -> None:
    svc = listed
    free_the_slot(svc)
    t = NOW
    for _ in range(4):
        t += CFG.offer_timeout + timedelta(seconds=1)
        svc.fire_due(t)
    assert offers(svc) == [("expired", None)]
    assert start_of(svc, "A-w1") == LATER["w1"] and start_of(svc, "A-w2") == LATER["w2"]


BAD_ADDS = [
    ("unknown client", "zz", "A-w1", "client"),
    ("someone else's appointment", "w1", "A-w2", "appointment"),
    ("unknown appointment", "w1", "nope", "appointment"),
]


@pytest.mark.parametrize(("client", "appt", "field"), [b[1:] for b in BAD_ADDS], ids=[b[0] for b in BAD_ADDS])
def test_bad_waitlist_entries_are_refused(svc: Service, client: str, appt: str, field: str) -> None:
    with pytest.raises(RecordError) as ei:
        waitlist.add(svc, client, appt, NOW)
    assert ei.value.field == field


def test_adding_twice_is_one_entry_and_a_cancelled_appointment_leaves_the_list(svc: Service) -> None:
    a = waitlist.add(svc, "w1", "A-w1", NOW)
    b = waitlist.add(svc, "w1", "A-w1", NOW)
    assert a.id == b.id
    svc.cancel_appointment("A-w1", NOW, actor="api")
    with Session(svc.db) as s:
        assert [e.status for e in s.exec(select(WaitlistEntry))] == ["removed"]
    with pytest.raises(RecordError, match="only an upcoming appointment"):
        waitlist.add(svc, "w1", "A-w1", NOW)
    assert waitlist.remove(svc, a.id or 0, NOW).status == "removed"
