"""Reading an iCalendar (.ics) feed exported by practice software (mapping in docs/records.md).

Each VEVENT is one appointment: UID is its external id; DTSTART (with TZID, UTC ``Z``, or floating
time read in the calendar's X-WR-TIMEZONE) its start; DTEND or DURATION its length; STATUS:CANCELLED
(or a METHOD:CANCEL calendar) cancels it. The client comes from, in order: an ``X-RAPPORT-CLIENT``
property, a ``Client:`` line in DESCRIPTION, else an existing client with the attendee's phone
(``ATTENDEE;CN=Ana Silva:tel:+15551234567``) or Telegram chat, else a new client whose id is that
phone. DESCRIPTION lines ``Key: value`` give the other client fields (the CSV column names).
Events with no client at all (a lunch break, an all-day block) are not appointments: they are
listed as ignored, not as errors. A recurring event (RRULE/RDATE, with EXDATE and RECURRENCE-ID
overrides) is one appointment per session inside the import window: ``bot.imports.recurrence``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar

from bot.imports.csvfile import _ALIAS, FileError, decode
from bot.imports.recurrence import OverrideError, Series, Window, all_day, expand, is_recurring
from bot.imports.rows import Problem, RawRow, RowError, e164, end_minutes, local_to_aware

_KEY_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z _-]{0,30}?)\s*:\s*(.*?)\s*$")
Lookup = Callable[[str | None, str | None], str | None]  # (phone, telegram) -> existing client id


@dataclass
class IcsFile:
    rows: list[RawRow]
    problems: list[Problem]
    ignored: list[Problem]  # events that are not appointments, with why
    total: int
    window: Window
    series: set[str] = field(default_factory=set)  # UIDs of the recurring events expanded whole


def _event_lines(text: str) -> list[int]:
    return [i for i, ln in enumerate(text.splitlines(), start=1) if ln.strip().upper() == "BEGIN:VEVENT"]


def _description_fields(desc: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for ln in desc.splitlines():
        m = _KEY_LINE.match(ln)
        if not m:
            continue
        key = m.group(1).strip().lower().replace(" ", "_").replace("-", "_")
        canon = _ALIAS.get(key) or {"client_id": "client_id", "timezone": "tz"}.get(key)
        if canon and canon not in ("appointment_id", "start", "status") and m.group(2):
            out.setdefault(canon, m.group(2))
    return out


def _attendee(ev: Any) -> tuple[str | None, str | None]:
    """The first attendee with a phone (``tel:``): their phone and CN."""
    raw = ev.get("ATTENDEE")
    if raw is None:
        return None, None
    for a in raw if isinstance(raw, list) else [raw]:
        value = str(a).strip()
        if value.lower().startswith("tel:"):
            cn = a.params.get("CN") if hasattr(a, "params") else None
            return value[4:].strip(), str(cn) if cn else None
    return None, None


def read_ics(data: bytes, lookup: Lookup, window: Window) -> IcsFile:
    """Every event as a row; a recurring event as one row per session inside ``window``."""
    text = decode(data)
    if not text.strip():
        raise FileError(1, "the file is empty")
    try:
        cal = icalendar.Calendar.from_ical(text)
    except (ValueError, OSError) as e:  # OSError: a TZID too long for a file name, looked up as one
        # icalendar's message can quote the whole file (client names, phones) on many lines.
        reason = (str(e).splitlines() or ["unreadable"])[0][:200]
        raise FileError(1, f"not a valid iCalendar file: {reason}") from None
    if cal.name != "VCALENDAR":
        raise FileError(1, f"expected a VCALENDAR, found {cal.name}")
    feed_tz = str(cal.get("X-WR-TIMEZONE")) if cal.get("X-WR-TIMEZONE") else None
    if feed_tz:
        try:
            ZoneInfo(feed_tz)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise FileError(1, f"X-WR-TIMEZONE: unknown time zone {feed_tz!r}") from None
    method_cancel = str(cal.get("METHOD", "")).upper() == "CANCEL"
    lines = _event_lines(text)
    events = cal.walk("VEVENT")
    out = IcsFile([], [], [], len(events), window=window)
    series: dict[str, Series] = {}
    for i, ev in enumerate(events):
        line = lines[i] if i < len(lines) else 0
        uid = str(ev.get("UID", "")).strip() or None
        if uid is not None and is_recurring(ev) and not getattr(ev, "errors", None):
            s = series.setdefault(uid, Series(uid))
            if ev.get("RECURRENCE-ID") is not None:
                s.overrides.append((line, ev))
            elif s.master is not None:
                out.problems.append(Problem(line, "uid", f"a second recurring event with UID {uid!r}", uid))
            else:
                s.master, s.master_line = ev, line
            continue
        _one(out, ev, line, uid, feed_tz, method_cancel, lookup)
    for s in series.values():
        if all_day(s):
            out.ignored.append(Problem(s.master_line, "(event)", "an all-day event is not an appointment", s.uid))
            continue
        try:
            occurrences = list(expand(s, window))
        except OverrideError as e:
            out.problems.append(Problem(e.line, e.error.field, e.error.message, s.uid))
            continue
        except RowError as e:
            out.problems.append(Problem(s.master_line, e.field, e.message, s.uid))
            continue
        if s.master is not None:
            out.series.add(s.uid)
        for occ in occurrences:
            _one(out, occ.event, occ.line, occ.external_id, feed_tz, method_cancel, lookup, occurrence=True)
    out.rows.sort(key=lambda r: r.line)
    out.total = len(out.rows) + len(out.problems) + len(out.ignored)  # sessions, not VEVENTs
    return out


def _one(
    out: IcsFile,
    ev: Any,
    line: int,
    uid: str | None,
    feed_tz: str | None,
    method_cancel: bool,
    lookup: Lookup,
    occurrence: bool = False,
) -> None:
    try:
        out.rows.append(_event(ev, line, uid, feed_tz, method_cancel, lookup, occurrence))
    except RowError as e:
        out.problems.append(Problem(line, e.field, e.message, uid))
    except _Ignored as e:
        out.ignored.append(Problem(line, "(event)", str(e), uid))


class _Ignored(Exception):
    pass


def _event(
    ev: Any, line: int, uid: str | None, feed_tz: str | None, method_cancel: bool, lookup: Lookup, occurrence: bool
) -> RawRow:
    for prop, err in getattr(ev, "errors", []) or []:
        raise RowError(str(prop).lower(), f"unreadable value ({err})")
    if uid is None:
        raise RowError("uid", "missing: every event needs a UID to be imported again safely")
    if not occurrence and is_recurring(ev):  # only reached when the UID is missing or unreadable
        raise RowError("rrule", "a recurring event needs a UID")
    desc = _description_fields(str(ev.get("DESCRIPTION", "")))
    phone, cn = _attendee(ev)
    values: dict[str, Any] = dict(desc)
    if ev.get("X-RAPPORT-CLIENT") is not None:
        values["client_id"] = str(ev.get("X-RAPPORT-CLIENT")).strip()
    if ev.get("X-RAPPORT-CLINICIAN") is not None:
        values["clinician"] = str(ev.get("X-RAPPORT-CLINICIAN")).strip()
    if phone and "phone" not in values:
        values["phone"] = phone
    if cn and "name" not in values:
        values["name"] = cn
    status = str(ev.get("STATUS", "")).upper()
    cancelled = status == "CANCELLED" or method_cancel
    values["appointment_id"] = uid
    values["status"] = "cancelled" if cancelled else ""
    if "client_id" not in values:
        found = lookup(values.get("phone"), values.get("telegram"))
        if found:
            values["client_id"] = found
        elif values.get("phone"):
            values["client_id"] = e164(str(values["phone"])) or str(values["phone"]).replace(" ", "")
        elif not cancelled:
            raise _Ignored("no client on this event (no X-RAPPORT-CLIENT, Client: line or attendee phone)")
    if ev.get("DTSTART") is None:
        if cancelled:
            return RawRow(line, values)
        raise RowError("dtstart", "missing")
    start = ev.decoded("DTSTART")
    if not isinstance(start, datetime) and isinstance(start, date):
        raise _Ignored("an all-day event is not an appointment")
    if start.tzinfo is None and feed_tz:
        start = local_to_aware(start, feed_tz, "dtstart")
    values["start"] = start
    if ev.get("DTEND") is not None:
        end = ev.decoded("DTEND")
        if not isinstance(end, datetime):
            raise RowError("dtend", "an end date without a time")
        if end.tzinfo is None:
            if start.tzinfo is not None and not feed_tz:
                raise RowError("dtend", "a floating end time on an event with a zoned start")
            end = local_to_aware(end, feed_tz, "dtend") if feed_tz else end
        if start.tzinfo is None:
            if end.tzinfo is not None:
                raise RowError("dtend", "a zoned end time on an event with a floating start")
            values["minutes"] = end_minutes(start, end)
        else:
            values["minutes"] = end_minutes(start, end)
    elif ev.get("DURATION") is not None:
        dur = ev.decoded("DURATION")
        values["minutes"] = int(dur.total_seconds() // 60)
    return RawRow(line, values)
