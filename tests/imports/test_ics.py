"""iCalendar imports: the mapping from VEVENTs to appointments and clients, and broken feeds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from bot.imports import FileError, import_bytes
from bot.service import Service
from storage.tables import Appointment, Client
from tests.imports.conftest import NOW


def cal(*events: str, head: str = "") -> bytes:
    body = "".join(f"BEGIN:VEVENT\r\n{e.strip()}\r\nEND:VEVENT\r\n" for e in events)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Practice//EN\r\n{head}{body}END:VCALENDAR\r\n".encode()


def ev(uid: str, start: str = "DTSTART;TZID=America/New_York:20261203T150000", *extra: str) -> str:
    lines = [f"UID:{uid}", start, "ATTENDEE;CN=Ana Silva:tel:+15551230001", *extra]
    return "\r\n".join(lines)


def imp(svc: Service, data: bytes, **kw: object) -> object:
    return import_bytes(svc, data, name="practice.ics", now=NOW, **kw)  # type: ignore[arg-type]


def appts(svc: Service) -> dict[str, Appointment]:
    with Session(svc.db) as s:
        return {a.id: a for a in s.exec(select(Appointment))}


def clients(svc: Service) -> dict[str, Client]:
    with Session(svc.db) as s:
        return {c.id: c for c in s.exec(select(Client))}


TIMES = [
    ("tzid", "DTSTART;TZID=America/New_York:20261203T150000", "", datetime(2026, 12, 3, 20, 0)),
    ("utc", "DTSTART:20261203T150000Z", "", datetime(2026, 12, 3, 15, 0)),
    (
        "floating in X-WR-TIMEZONE",
        "DTSTART:20261203T150000",
        "X-WR-TIMEZONE:America/Sao_Paulo\r\n",
        datetime(2026, 12, 3, 18, 0),
    ),
    ("floating in the default tz", "DTSTART:20261203T150000", "", datetime(2026, 12, 3, 20, 0)),
]


@pytest.mark.parametrize(("start", "head", "utc"), [t[1:] for t in TIMES], ids=[t[0] for t in TIMES])
def test_start_times(svc: Service, start: str, head: str, utc: datetime) -> None:
    r = imp(svc, cal(ev("u1", start), head=head))
    assert r.problems == [] and r.created == 1  # type: ignore[attr-defined]
    assert appts(svc)["u1"].start == utc.replace(tzinfo=UTC)


LENGTHS = [
    ("dtend", "DTEND;TZID=America/New_York:20261203T154500", 45),
    ("duration", "DURATION:PT1H", 60),
    ("neither: the clinician's session", "X-RAPPORT-CLINICIAN:costa", 45),
]


@pytest.mark.parametrize(("extra", "minutes"), [x[1:] for x in LENGTHS], ids=[x[0] for x in LENGTHS])
def test_length(svc: Service, extra: str, minutes: int) -> None:
    imp(svc, cal(ev("u1", "DTSTART;TZID=America/New_York:20261203T150000", extra)))
    assert appts(svc)["u1"].minutes == minutes


def test_client_from_attendee_phone_then_matched_by_phone(svc: Service) -> None:
    imp(svc, cal(ev("u1")))
    c = clients(svc)["+15551230001"]
    assert (c.name, c.phone) == ("Ana Silva", "+15551230001")
    svc.upsert_client({"id": "c-ana", "name": "Ana", "phone": "+15551239999"}, NOW)
    imp(svc, cal(ev("u2").replace("+15551230001", "+1 (555) 123-9999")))
    assert appts(svc)["u2"].client_id == "c-ana"


def test_description_and_x_properties_map_to_client_fields(svc: Service) -> None:
    desc = "DESCRIPTION:Client ID: c7\\nLanguage: pt-BR\\nTime zone: America/Sao_Paulo\\nCountry: br\\nConsent: no"
    imp(svc, cal(ev("u1", "DTSTART:20261203T150000Z", desc, "X-RAPPORT-CLINICIAN:costa")))
    c = clients(svc)["c7"]
    assert (c.lang, c.tz, c.country, c.consent, c.name) == ("pt_BR", "America/Sao_Paulo", "BR", False, "Ana Silva")
    assert appts(svc)["u1"].clinician_id == "costa"
    imp(svc, cal(ev("u2", "DTSTART:20261210T150000Z", "X-RAPPORT-CLIENT:c7")))
    assert appts(svc)["u2"].client_id == "c7"


def test_reimport_moves_cancels_and_prunes(svc: Service) -> None:
    feed = cal(ev("u1"), ev("u2", "DTSTART:20261210T150000Z"), ev("u3", "DTSTART:20261217T150000Z"))
    assert imp(svc, feed).created == 3  # type: ignore[attr-defined]
    assert imp(svc, feed).unchanged == 3  # type: ignore[attr-defined]
    moved = cal(
        ev("u1", "DTSTART;TZID=America/New_York:20261203T160000"),
        ev("u2", "DTSTART:20261210T150000Z", "STATUS:CANCELLED"),
    )
    r = imp(svc, moved)
    assert (r.moved, r.cancelled, r.pruned) == (1, 1, 0)  # type: ignore[attr-defined]
    assert appts(svc)["u3"].status == "scheduled"
    r = imp(svc, moved, prune=True)
    assert (r.unchanged, r.pruned) == (2, 1)  # type: ignore[attr-defined]
    a = appts(svc)
    assert (a["u1"].status, a["u2"].status, a["u3"].status) == ("rescheduled", "cancelled", "cancelled")


def test_method_cancel_cancels_every_event(svc: Service) -> None:
    imp(svc, cal(ev("u1")))
    r = imp(svc, cal("UID:u1\r\nDTSTART:20261203T200000Z", head="METHOD:CANCEL\r\n"))
    assert r.cancelled == 1 and appts(svc)["u1"].status == "cancelled"  # type: ignore[attr-defined]


def test_events_that_are_not_appointments_are_ignored_not_errors(svc: Service) -> None:
    lunch = "UID:lunch\r\nDTSTART:20261203T170000Z\r\nSUMMARY:Lunch"
    holiday = ev("xmas", "DTSTART;VALUE=DATE:20261225")
    r = imp(svc, cal(ev("u1"), lunch, holiday))
    assert r.problems == [] and r.created == 1  # type: ignore[attr-defined]
    assert [(i.line, i.external_id) for i in r.ignored] == [(9, "lunch"), (14, "xmas")]  # type: ignore[attr-defined]


BAD_EVENTS = [
    ("no uid", "DTSTART:20261203T150000Z\r\nATTENDEE:tel:+15551230001", "uid", "missing"),
    ("no dtstart", "UID:u9\r\nATTENDEE:tel:+15551230001", "dtstart", "missing"),
    ("bad dtstart", ev("u9", "DTSTART:2026XX03"), "dtstart", "unreadable"),
    ("unreadable rrule", ev("u9", "DTSTART:20261203T150000Z", "RRULE:FREQ=SOMETIMES"), "rrule", "unreadable"),
    ("ends first", ev("u9", "DTSTART:20261203T150000Z", "DTEND:20261203T140000Z"), "end", "ends before"),
    ("bad phone", ev("u9").replace("+15551230001", "+1555"), "phone", "possible phone"),
    ("unknown clinician", ev("u9", "DTSTART:20261203T150000Z", "X-RAPPORT-CLINICIAN:house"), "clinician", "unknown"),
    ("dst gap", ev("u9", "DTSTART:20270314T023000"), "start", "does not exist"),
]


@pytest.mark.parametrize(("event", "field", "reason"), [b[1:] for b in BAD_EVENTS], ids=[b[0] for b in BAD_EVENTS])
def test_a_bad_event_is_reported_with_its_line(svc: Service, event: str, field: str, reason: str) -> None:
    r = imp(svc, cal(ev("u1"), event))
    assert [(p.line, p.field) for p in r.problems] == [(9, field)]  # type: ignore[attr-defined]
    assert reason in r.problems[0].message  # type: ignore[attr-defined]
    assert appts(svc) == {}
    assert imp(svc, cal(ev("u1"), event), skip_bad=True).created == 1  # type: ignore[attr-defined]


BROKEN = [
    ("garbage", b"this is not a calendar\r\n", "not a valid iCalendar"),
    ("truncated", cal(ev("u1"))[:120], "not a valid iCalendar"),
    ("empty", b"", "empty"),
    ("vcard", b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ana\r\nEND:VCARD\r\n", "expected a VCALENDAR"),
    (
        "latin-1",
        cal(ev("u1", "DTSTART:20261203T150000Z", "DESCRIPTION:Jos\xe9")).replace(b"\xc3\xa9", b"\xe9"),
        "not UTF-8",
    ),
    ("bad X-WR-TIMEZONE", cal(ev("u1"), head="X-WR-TIMEZONE:Mars/Olympus\r\n"), "unknown time zone"),
]


@pytest.mark.parametrize(("data", "reason"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_a_broken_feed_is_refused_whole(svc: Service, data: bytes, reason: str) -> None:
    with pytest.raises(FileError, match=reason):
        imp(svc, data, skip_bad=True)
    assert appts(svc) == {}
