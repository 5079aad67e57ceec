"""The engine is pure: given state, input and context it returns the same events every time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.engine import (
    AppointmentView,
    Availability,
    Ctx,
    Engine,
    Rejected,
    Reply,
    State,
    WaitTimeout,
    load_dialogues,
)
from bot.engine import events as ev
from bot.understanding.types import Parse

SP = "America/Sao_Paulo"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=ZoneInfo(SP))  # Tuesday
APPT = AppointmentView("a1", datetime(2026, 12, 2, 10, 0, tzinfo=ZoneInfo(SP)), 50, "scheduled", "lima")
AV = Availability(SP, 50, {"thu": ["14:00-18:00"]})
DUR = {
    "reminders.answer_timeout": timedelta(hours=12),
    "conversation.reschedule_timeout": timedelta(days=1),
    "feedback.answer_timeout": timedelta(days=1),
    "missed_session.answer_timeout": timedelta(days=1),
}
ENGINE = Engine(load_dialogues())


def ctx(now: datetime = NOW, appt: AppointmentView | None = APPT, av: Availability | None = AV) -> Ctx:
    return Ctx(now=now, tz=SP, appointment=appt, availability=av, durations=DUR)


def reply(text: str, intent: str = "other", when: str | None = None, rating: int | None = None) -> Reply:
    return Reply(text, Parse(intent, 0.9, when, rating))


def types(events: list[Any]) -> list[str]:
    return [e.msg_id if isinstance(e, ev.MessageOut) else e.type for e in events]


def test_reminder_waits_until_timeout_but_never_past_the_start() -> None:
    s = ENGINE.start("appointment_reminder", ctx())
    assert types(s.events) == ["reminder.ask", "wait_started"]
    assert s.state is not None and s.state.wait is not None
    assert s.state.wait.timeout_at == NOW + timedelta(hours=12)
    late = ENGINE.start("appointment_reminder", ctx(now=APPT.start - timedelta(hours=2)))
    assert late.state is not None and late.state.wait is not None
    assert late.state.wait.timeout_at == APPT.start


@pytest.mark.parametrize(
    ("reply_", "expected"),
    [
        (reply("sim", "confirm"), ["appointment_confirmed", "reminder.confirmed", "conversation_ended"]),
        (reply("não vou", "cancel"), ["appointment_cancelled", "reminder.cancelled", "wait_started"]),
        (reply("quinta 15h", "reschedule", "2026-12-03T15:00"), ["reschedule.offer", "wait_started"]),
        (reply("outro dia", "reschedule"), ["reschedule.ask_time", "wait_started"]),
        (reply("hmm", "other"), ["reminder.clarify", "wait_started"]),
        (reply("falar com alguém", "human"), ["handoff_requested", "human.ok", "conversation_ended"]),
    ],
)
def test_reminder_branches(reply_: Reply, expected: list[str]) -> None:
    s = ENGINE.start("appointment_reminder", ctx())
    assert s.state is not None
    r = ENGINE.resume(s.state, reply_, ctx())
    assert types(r.events) == expected


def test_two_unclear_replies_hand_off() -> None:
    s = ENGINE.start("appointment_reminder", ctx())
    assert s.state
    s = ENGINE.resume(s.state, reply("?"), ctx())
    assert s.state
    s = ENGINE.resume(s.state, reply("??"), ctx())
    assert types(s.events) == ["handoff_requested", "reminder.unclear", "conversation_ended"]


def test_reschedule_offers_nearest_and_moves_on_pick() -> None:
    s = ENGINE.start("reschedule", ctx(), vars={"when": "2026-12-03T15:00"})
    offer = s.events[0]
    assert isinstance(offer, ev.MessageOut)
    assert [d.strftime("%H:%M") for d in offer.params["slots"]] == ["14:50", "15:40", "14:00"]
    assert s.state is not None
    r = ENGINE.resume(s.state, reply("2"), ctx())
    moved = r.events[0]
    assert isinstance(moved, ev.AppointmentMoved)
    assert moved.start == datetime(2026, 12, 3, 15, 40, tzinfo=ZoneInfo(SP))
    assert types(r.events)[1:] == ["reschedule.done", "conversation_ended"]


@pytest.mark.parametrize(
    ("text", "when", "picked"),
    [
        ("1", None, "14:50"),
        ("a segunda opção", None, "15:40"),
        ("o primeiro", None, "14:50"),
        ("pode ser às 14h", "2026-12-03T14:00", "14:00"),
        ("the third one please", None, "14:00"),
    ],
)
def test_pick_by_number_ordinal_or_time(text: str, when: str | None, picked: str) -> None:
    s = ENGINE.start("reschedule", ctx(), vars={"when": "2026-12-03T15:00"})
    assert s.state
    r = ENGINE.resume(s.state, reply(text, "reschedule" if when else "other", when), ctx())
    moved = r.events[0]
    assert isinstance(moved, ev.AppointmentMoved), types(r.events)
    assert moved.start.astimezone(ZoneInfo(SP)).strftime("%H:%M") == picked


def test_a_new_day_re_offers() -> None:
    s = ENGINE.start("reschedule", ctx(), vars={"when": "2026-12-03T15:00"})
    assert s.state
    r = ENGINE.resume(s.state, reply("e quinta que vem?", "reschedule", "2026-12-10"), ctx())
    assert types(r.events) == ["reschedule.offer", "wait_started"]
    assert all(d.day == 10 for d in r.events[0].params["slots"])


def test_no_availability_records_a_request_honestly() -> None:
    s = ENGINE.start("reschedule", ctx(av=None), vars={"when": "2026-12-03T15:00"})
    assert types(s.events) == ["reschedule_requested", "reschedule.requested", "conversation_ended"]
    assert s.events[0].when == "2026-12-03T15:00"


def test_missed_appointment_rebooks_under_a_new_id() -> None:
    missed = AppointmentView("a1", APPT.start, 50, "missed", "lima")
    s = ENGINE.start("missed_session", ctx(appt=missed))
    assert s.state
    s = ENGINE.resume(
        s.state, reply("quero remarcar pra quinta 15h", "reschedule", "2026-12-03T15:00"), ctx(appt=missed)
    )
    assert s.state
    r = ENGINE.resume(s.state, reply("1"), ctx(appt=missed))
    assert isinstance(r.events[0], ev.AppointmentBooked)
    assert r.events[0].from_appointment_id == "a1"


def test_feedback_captures_rating_and_two_texts() -> None:
    s = ENGINE.start("feedback", ctx())
    assert s.state
    s = ENGINE.resume(s.state, reply("4", "rating", rating=4), ctx())
    assert s.state
    s = ENGINE.resume(s.state, reply("que posso pedir ajuda"), ctx())
    assert s.state
    r = ENGINE.resume(s.state, reply("a culpa"), ctx())
    fb = r.events[0]
    assert isinstance(fb, ev.FeedbackRecorded)
    assert (fb.rating, fb.takeaway, fb.leave_behind) == (4, "que posso pedir ajuda", "a culpa")


def test_feedback_timeout_saves_what_was_given() -> None:
    s = ENGINE.start("feedback", ctx())
    assert s.state
    s = ENGINE.resume(s.state, reply("5", "rating", rating=5), ctx())
    assert s.state and s.state.wait
    r = ENGINE.resume(s.state, WaitTimeout(s.state.wait.timeout_at), ctx())
    assert types(r.events) == ["feedback_recorded", "conversation_ended"]
    assert r.events[0].rating == 5 and r.events[0].takeaway is None


def test_a_stale_timeout_is_refused() -> None:
    s = ENGINE.start("appointment_reminder", ctx())
    assert s.state
    with pytest.raises(Rejected, match="wait_timeout not accepted"):
        ENGINE.resume(s.state, WaitTimeout(NOW), ctx())
    with pytest.raises(Rejected):
        ENGINE.resume(State("help", "help"), reply("x"), ctx())


def test_same_input_same_sprint() -> None:
    a = ENGINE.start("reschedule", ctx(), vars={"when": "2026-12-03"})
    b = ENGINE.start("reschedule", ctx(), vars={"when": "2026-12-03"})
    assert a.events == b.events and a.state == b.state
