"""Recurring iCalendar events: RRULE/RDATE/EXDATE/RECURRENCE-ID become one appointment per session.

``NOW`` is Thursday 2026-11-26 12:00 UTC; the default window runs from a day before it to 26
weeks after it. America/New_York leaves daylight saving time on 2026-11-01 and enters it on
2027-03-14, so a weekly 15:00 session there is 20:00 UTC in winter and 19:00 UTC after.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.imports import import_bytes
from bot.imports.recurrence import stamp
from bot.service import Service
from tests.imports.conftest import NOW
from tests.imports.test_ics import appts, cal

NY = "DTSTART;TZID=America/New_York:20261203T150000"
ANA = "ATTENDEE;CN=Ana Silva:tel:+15551230001"


def series(uid: str, *lines: str, start: str = NY) -> str:
    return "\r\n".join([f"UID:{uid}", start, "DURATION:PT50M", ANA, *lines])


def override(uid: str, recid: str, *lines: str) -> str:
    return "\r\n".join([f"UID:{uid}", f"RECURRENCE-ID;TZID=America/New_York:{recid}", ANA, *lines])


def imp(svc: Service, data: bytes, **kw: object) -> object:
    return import_bytes(svc, data, name="practice.ics", now=NOW, **kw)  # type: ignore[arg-type]


def utc(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def weekly_utc(first: datetime, n: int) -> list[datetime]:
    """``n`` weekly 15:00 New York sessions from ``first`` (a UTC time), following New York's DST."""
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    local = first.astimezone(ny).replace(tzinfo=None)
    return [(local + timedelta(weeks=i)).replace(tzinfo=ny).astimezone(UTC) for i in range(n)]


def starts(svc: Service, status: str | None = None) -> list[datetime]:
    return sorted(a.start for a in appts(svc).values() if status is None or a.status == status)


EXPANSIONS = [
    (
        "count across the DST change",
        [series("s", "RRULE:FREQ=WEEKLY;COUNT=20")],
        {},
        weekly_utc(utc(2026, 12, 3, 20), 20),
    ),
    # No end: the window bounds it. The 26th Thursday (2027-05-27 19:00 UTC) is after NOW + 26 weeks.
    ("no end: the horizon", [series("s", "RRULE:FREQ=WEEKLY")], {}, weekly_utc(utc(2026, 12, 3, 20), 25)),
    (
        "a shorter horizon",
        [series("s", "RRULE:FREQ=WEEKLY")],
        {"horizon": timedelta(weeks=4)},
        weekly_utc(utc(2026, 12, 3, 20), 3),
    ),
    (
        "until",
        [series("s", "RRULE:FREQ=WEEKLY;UNTIL=20261217T000000Z")],
        {},
        weekly_utc(utc(2026, 12, 3, 20), 3)[:2],
    ),
    (
        "exdate removes a session",
        [series("s", "RRULE:FREQ=WEEKLY;COUNT=3", "EXDATE;TZID=America/New_York:20261210T150000")],
        {},
        [utc(2026, 12, 3, 20), utc(2026, 12, 17, 20)],
    ),
    (
        "exdate for a non-session changes nothing",
        [series("s", "RRULE:FREQ=WEEKLY;COUNT=3", "EXDATE;TZID=America/New_York:20261211T150000")],
        {},
        weekly_utc(utc(2026, 12, 3, 20), 3),
    ),
    (
        "rdate adds a session",
        [series("s", "RRULE:FREQ=WEEKLY;COUNT=2", "RDATE;TZID=America/New_York:20261205T100000")],
        {},
        [utc(2026, 12, 3, 20), utc(2026, 12, 5, 15), utc(2026, 12, 10, 20)],
    ),
    (
        "an override moves one session",
        [
            series("s", "RRULE:FREQ=WEEKLY;COUNT=3"),
            override("s", "20261210T150000", "DTSTART;TZID=America/New_York:20261211T090000", "DURATION:PT50M"),
        ],
        {},
        [utc(2026, 12, 3, 20), utc(2026, 12, 11, 14), utc(2026, 12, 17, 20)],
    ),
    (
        "sessions before the window are left out",
        [series("s", "RRULE:FREQ=WEEKLY;COUNT=3", start="DTSTART;TZID=America/New_York:20261112T150000")],
        {},
        [utc(2026, 11, 26, 20)],
    ),
    (
        "an override alone (the rule in another feed) is one session",
        [override("s", "20261210T150000", "DTSTART;TZID=America/New_York:20261211T090000")],
        {},
        [utc(2026, 12, 11, 14)],
    ),
]


@pytest.mark.parametrize(("events", "kw", "want"), [e[1:] for e in EXPANSIONS], ids=[e[0] for e in EXPANSIONS])
def test_a_series_is_one_appointment_per_session(
    svc: Service, events: list[str], kw: dict[str, object], want: list[datetime]
) -> None:
    r = imp(svc, cal(*events), **kw)
    assert r.problems == []  # type: ignore[attr-defined]
    assert starts(svc) == want
    assert {a.client_id for a in appts(svc).values()} == {"+15551230001"}


def test_occurrence_ids_are_uid_and_original_start_in_utc(svc: Service) -> None:
    feed = cal(
        series("s@practice", "RRULE:FREQ=WEEKLY;COUNT=2"),
        override("s@practice", "20261210T150000", "DTSTART;TZID=America/New_York:20261211T090000"),
    )
    imp(svc, feed)
    got = {a.external_id: (a.id, a.start) for a in appts(svc).values()}
    # The moved session keeps the id of the session it replaces.
    assert got == {
        "s@practice/20261203T200000Z": ("s@practice/20261203T200000Z", utc(2026, 12, 3, 20)),
        "s@practice/20261210T200000Z": ("s@practice/20261210T200000Z", utc(2026, 12, 11, 14)),
    }
    assert stamp(datetime(2026, 12, 3, 15, 0)) == "20261203T150000"  # floating: wall clock, no Z


def test_session_length_from_dtend_or_the_clinician(svc: Service) -> None:
    with_end = "\r\n".join(
        ["UID:e", NY, "DTEND;TZID=America/New_York:20261203T154000", "RRULE:FREQ=WEEKLY;COUNT=2", ANA]
    )
    no_end = "\r\n".join(["UID:n", NY, "X-RAPPORT-CLINICIAN:costa", "RRULE:FREQ=WEEKLY;COUNT=2", ANA])
    imp(svc, cal(with_end, no_end))
    assert sorted((a.external_id, a.minutes) for a in appts(svc).values()) == [
        ("e/20261203T200000Z", 40),
        ("e/20261210T200000Z", 40),
        ("n/20261203T200000Z", 45),  # costa's session_minutes
        ("n/20261210T200000Z", 45),
    ]


def test_a_cancelled_override_cancels_one_session(svc: Service) -> None:
    weekly = series("s", "RRULE:FREQ=WEEKLY;COUNT=3")
    assert imp(svc, cal(weekly)).created == 3  # type: ignore[attr-defined]
    r = imp(svc, cal(weekly, override("s", "20261210T150000", NY.replace("1203", "1210"), "STATUS:CANCELLED")))
    assert (r.cancelled, r.unchanged) == (1, 2)  # type: ignore[attr-defined]
    assert starts(svc, "cancelled") == [utc(2026, 12, 10, 20)]


def test_floating_series_reads_in_x_wr_timezone(svc: Service) -> None:
    floating = "\r\n".join(["UID:f", "DTSTART:20261203T150000", "RRULE:FREQ=WEEKLY;COUNT=2", ANA])
    imp(svc, cal(floating, head="X-WR-TIMEZONE:America/Sao_Paulo\r\n"))
    assert starts(svc) == [utc(2026, 12, 3, 18), utc(2026, 12, 10, 18)]
    assert sorted(a.external_id or "" for a in appts(svc).values()) == ["f/20261203T150000", "f/20261210T150000"]


def test_reimport_is_idempotent_and_cancels_sessions_that_disappear(svc: Service) -> None:
    weekly = series("s", "RRULE:FREQ=WEEKLY;COUNT=4")
    assert imp(svc, cal(weekly)).created == 4  # type: ignore[attr-defined]
    assert imp(svc, cal(weekly)).unchanged == 4  # type: ignore[attr-defined]
    # An EXDATE added: that session is cancelled without --prune (the series says what it holds).
    exdate = series("s", "RRULE:FREQ=WEEKLY;COUNT=4", "EXDATE;TZID=America/New_York:20261210T150000")
    r = imp(svc, cal(exdate))
    assert (r.cancelled, r.unchanged, r.pruned) == (1, 3, 0)  # type: ignore[attr-defined]
    assert imp(svc, cal(exdate)).counts() == {**dict.fromkeys(r.counts(), 0), "unchanged": 3}  # type: ignore[attr-defined]
    # The rule ends earlier: the sessions after the new end are cancelled too.
    ended = series("s", "RRULE:FREQ=WEEKLY;UNTIL=20261204T000000Z")
    assert imp(svc, cal(ended)).cancelled == 2  # type: ignore[attr-defined]
    assert starts(svc, "scheduled") == [utc(2026, 12, 3, 20)]
    # The series gone from the feed: like any removed event, only --prune cancels it.
    other = series("t", "RRULE:FREQ=WEEKLY;COUNT=1", start="DTSTART;TZID=America/New_York:20261204T150000")
    assert imp(svc, cal(other)).cancelled == 0  # type: ignore[attr-defined]
    assert imp(svc, cal(other), prune=True).pruned == 1  # type: ignore[attr-defined]
    assert starts(svc, "scheduled") == [utc(2026, 12, 4, 20)]


def test_sessions_beyond_a_shorter_horizon_are_kept(svc: Service) -> None:
    weekly = series("s", "RRULE:FREQ=WEEKLY;COUNT=6")
    assert imp(svc, cal(weekly)).created == 6  # type: ignore[attr-defined]
    r = imp(svc, cal(weekly), horizon=timedelta(weeks=3))
    assert (r.unchanged, r.cancelled) == (2, 0)  # type: ignore[attr-defined]
    assert len(starts(svc, "scheduled")) == 6


def test_an_event_that_becomes_recurring_replaces_its_single_appointment(svc: Service) -> None:
    single = "\r\n".join(["UID:s", NY, ANA])
    imp(svc, cal(single))
    r = imp(svc, cal(series("s", "RRULE:FREQ=WEEKLY;COUNT=2")))
    assert (r.created, r.cancelled) == (2, 1)  # type: ignore[attr-defined]
    assert appts(svc)["s"].status == "cancelled"


BAD = [
    ("malformed rrule", [series("s", "RRULE:FREQ=WEEKLY;BYDAY=XX")], 4, "rrule", "unreadable"),
    ("count=0", [series("s", "RRULE:FREQ=WEEKLY;COUNT=0")], 4, "rrule", "COUNT=0"),
    (
        "count and until",
        [series("s", "RRULE:FREQ=WEEKLY;COUNT=2;UNTIL=20270101T000000Z")],
        4,
        "rrule",
        "COUNT and UNTIL",
    ),
    (
        "recurrence-id for an unknown session",
        [
            series("s", "RRULE:FREQ=WEEKLY;COUNT=3"),
            override("s", "20261211T150000", "DTSTART;TZID=America/New_York:20261211T160000"),
        ],
        11,
        "recurrence-id",
        "not a session of this series",
    ),
    ("more often than daily", [series("s", "RRULE:FREQ=MINUTELY")], 4, "rrule", "more often than daily"),
    ("too many sessions", [series("s", "RRULE:FREQ=DAILY;BYHOUR=9,10,11,12,13,14,15,16")], 4, "rrule", "at most 1000"),
    ("unreadable until", [series("s", "RRULE:FREQ=WEEKLY;UNTIL=2026")], 4, "rrule", "unreadable"),
    (
        "an override without dtstart",
        [series("s", "RRULE:FREQ=WEEKLY;COUNT=3"), override("s", "20261210T150000")],
        11,
        "dtstart",
        "missing",
    ),
    (
        "two rules with one uid",
        [series("s", "RRULE:FREQ=WEEKLY;COUNT=3"), series("s", "RRULE:FREQ=DAILY;COUNT=3")],
        11,
        "uid",
        "a second recurring event",
    ),
]


@pytest.mark.parametrize(("events", "line", "field", "reason"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_series_is_reported_with_its_line(
    svc: Service, events: list[str], line: int, field: str, reason: str
) -> None:
    other = "\r\n".join(["UID:ok", "DTSTART:20261204T150000Z", ANA])
    r = imp(svc, cal(*events, other))
    assert [(p.line, p.field) for p in r.problems] == [(line, field)]  # type: ignore[attr-defined]
    assert reason in r.problems[0].message  # type: ignore[attr-defined]
    assert appts(svc) == {}
    assert imp(svc, cal(*events, other), skip_bad=True).created >= 1  # type: ignore[attr-defined]


def test_a_series_that_turns_bad_is_not_pruned(svc: Service) -> None:
    imp(svc, cal(series("s", "RRULE:FREQ=WEEKLY;COUNT=3")))
    r = imp(svc, cal(series("s", "RRULE:FREQ=WEEKLY;COUNT=0")), skip_bad=True, prune=True)
    assert (r.pruned, r.cancelled, len(r.problems)) == (0, 0, 1)  # type: ignore[attr-defined]
    assert len(starts(svc, "scheduled")) == 3


def test_a_recurring_all_day_event_is_ignored_once(svc: Service) -> None:
    r = imp(svc, cal(series("s", "RRULE:FREQ=WEEKLY;COUNT=5", start="DTSTART;VALUE=DATE:20261203")))
    assert r.problems == [] and appts(svc) == {}  # type: ignore[attr-defined]
    assert [(i.line, i.external_id) for i in r.ignored] == [(4, "s")]  # type: ignore[attr-defined]


def test_a_rule_ended_before_it_starts_has_no_sessions(svc: Service) -> None:
    r = imp(svc, cal(series("s", "RRULE:FREQ=WEEKLY;UNTIL=20261101T000000Z")))
    assert r.problems == [] and appts(svc) == {}  # type: ignore[attr-defined]
