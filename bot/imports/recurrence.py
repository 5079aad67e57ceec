"""Recurring iCalendar events (RRULE, RDATE, EXDATE, RECURRENCE-ID) as one event per occurrence.

Practice software exports a weekly client as one VEVENT with an RRULE, plus one VEVENT per moved
or cancelled session (same UID, a RECURRENCE-ID naming the session it replaces). The expansion is
``recurring-ical-events`` (on top of ``icalendar``/``dateutil``): it applies EXDATE, RDATE and the
overrides and keeps wall-clock times in the event's TZID across DST changes, which a hand-written
expansion gets wrong in the corners (BYSETPOS, EXDATE in another zone, overrides of RDATEs).
What this module adds is the practice's view: a window around now, a stable external id per
occurrence, and refusing what the library would silently accept (COUNT=0, an override of a
session the rule never produces).

An occurrence's external id is ``<UID>/<original start>``: the start the rule gave it (its
RECURRENCE-ID), in UTC as ``YYYYMMDDTHHMMSSZ``, or as the wall-clock ``YYYYMMDDTHHMMSS`` for a
floating-time series. A moved session keeps its id, so a re-import moves the appointment instead
of cancelling one and booking another.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import icalendar
import recurring_ical_events

from bot.imports.rows import RowError

HORIZON = timedelta(weeks=26)  # how far ahead a series is expanded (``--horizon``)
LOOKBACK = timedelta(days=1)  # today's earlier sessions still appear on the appointments page
RECURRING = ("RRULE", "RDATE", "RECURRENCE-ID")
MAX_SESSIONS = 1000  # per series in one window: more is a broken export, not a client's sessions
_SUB_DAILY = {"SECONDLY", "MINUTELY", "HOURLY"}


@dataclass
class Series:
    uid: str
    master: Any | None = None  # the VEVENT with the rule
    master_line: int = 0
    overrides: list[tuple[int, Any]] = field(default_factory=list)  # (line, VEVENT with RECURRENCE-ID)


@dataclass(frozen=True)
class Occurrence:
    line: int  # the override's line when one describes it, else the series'
    external_id: str
    event: Any  # a VEVENT for this occurrence alone (no RRULE), as the single-event reader takes


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @classmethod
    def around(cls, now: datetime, horizon: timedelta = HORIZON) -> Window:
        return cls(now - LOOKBACK, now + horizon)


def all_day(series: Series) -> bool:
    """A recurring all-day event (a weekly team day, a holiday): not appointments."""
    m = series.master
    if m is None or m.get("DTSTART") is None:
        return False
    start = m.decoded("DTSTART")
    return isinstance(start, date) and not isinstance(start, datetime)


def is_recurring(ev: Any) -> bool:
    return any(ev.get(p) is not None for p in RECURRING)


def stamp(when: date | datetime) -> str:
    """The occurrence part of an external id (see the module docstring)."""
    if not isinstance(when, datetime):
        return when.strftime("%Y%m%d")
    if when.tzinfo is None:
        return when.strftime("%Y%m%dT%H%M%S")
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def series_uid(external_id: str) -> str:
    """The UID part of an occurrence's external id (UIDs may contain ``/`` themselves)."""
    return external_id.rsplit("/", 1)[0]


def _calendar(*events: Any) -> Any:
    cal = icalendar.Calendar()
    for ev in events:
        cal.add_component(ev)
    return cal


def _check_rule(master: Any) -> None:
    rules = master.get("RRULE")
    for rule in rules if isinstance(rules, list) else [rules] if rules is not None else []:
        count = rule.get("COUNT")
        if count is not None and any(int(c) <= 0 for c in count):
            raise RowError("rrule", "COUNT=0: the rule has no sessions")
        if rule.get("COUNT") and rule.get("UNTIL"):
            raise RowError("rrule", "both COUNT and UNTIL: RFC 5545 allows one or the other")
        freq = [str(f).upper() for f in rule.get("FREQ") or []]
        if not freq:
            raise RowError("rrule", "no FREQ")
        if _SUB_DAILY & set(freq):
            raise RowError("rrule", f"FREQ={freq[0]}: sessions more often than daily are not appointments")


def _produces(master: Any, when: date | datetime) -> bool:
    """Whether the series without its overrides has a session starting at ``when``."""
    try:
        q = recurring_ical_events.of(_calendar(master))
        found = q.between(when, when + timedelta(seconds=1)) if isinstance(when, datetime) else q.at(when)
        return any(o.decoded("DTSTART") == when for o in found)
    except TypeError:  # a floating RECURRENCE-ID on a zoned series, or the reverse
        return False


def _bounds(master: Any, window: Window) -> tuple[datetime, datetime]:
    start = master.decoded("DTSTART") if master.get("DTSTART") is not None else None
    if isinstance(start, datetime) and start.tzinfo is None:
        # A floating series: wall-clock bounds, widened by a day so no zone falls outside.
        return (window.start - timedelta(days=1)).replace(tzinfo=None), (window.end + timedelta(days=1)).replace(
            tzinfo=None
        )
    return window.start, window.end


def expand(series: Series, window: Window) -> Iterator[Occurrence]:
    """The series' occurrences that start inside the window, in time order.

    Raises RowError for the series as a whole (a broken rule) or for one override (its line).
    """
    if series.master is None:
        # Only overrides in this file (the rule lives in another feed): each is its own session.
        for line, ov in series.overrides:
            if ov.get("DTSTART") is None:
                raise OverrideError(line, RowError("dtstart", "missing on this override of a recurring event"))
            yield Occurrence(line, f"{series.uid}/{stamp(ov.decoded('RECURRENCE-ID'))}", ov)
        return
    master = series.master
    if master.get("DTSTART") is None:
        raise RowError("dtstart", "missing")
    _check_rule(master)
    by_recid: dict[str, tuple[int, Any]] = {}
    for line, ov in series.overrides:
        if ov.get("DTSTART") is None:
            raise OverrideError(line, RowError("dtstart", "missing on this override of a recurring event"))
        recid = ov.decoded("RECURRENCE-ID")
        if not _produces(master, recid):
            raise OverrideError(line, RowError("recurrence-id", f"{stamp(recid)} is not a session of this series"))
        by_recid[stamp(recid)] = (line, ov)
    lo, hi = _bounds(master, window)
    try:
        occurrences = recurring_ical_events.of(_calendar(master, *(ov for _l, ov in series.overrides))).between(lo, hi)
    except (ValueError, TypeError, OverflowError, KeyError) as e:
        raise RowError("rrule", f"cannot expand the rule ({e})") from None
    if len(occurrences) > MAX_SESSIONS:
        raise RowError("rrule", f"{len(occurrences)} sessions in the import window (at most {MAX_SESSIONS})")
    for occ in occurrences:
        recid = occ.decoded("RECURRENCE-ID") if occ.get("RECURRENCE-ID") is not None else occ.decoded("DTSTART")
        key = stamp(recid)
        line, source = by_recid.get(key, (series.master_line, master))
        if source.get("DTEND") is None and source.get("DURATION") is None:
            # The library gives every occurrence a DTEND; without one in the feed the session
            # length comes from the clinician, as for a single event.
            occ.pop("DTEND", None)
            occ.pop("DURATION", None)
        yield Occurrence(line, f"{series.uid}/{key}", occ)


class OverrideError(Exception):
    """A RowError that belongs to one override's line rather than the series'."""

    def __init__(self, line: int, error: RowError):
        super().__init__(error.message)
        self.line = line
        self.error = error
