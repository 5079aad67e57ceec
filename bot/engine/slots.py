"""Open slots from a clinician's weekly availability, minus booked appointments. Pure."""

from __future__ import annotations

from bisect import bisect_left
from datetime import date, datetime, time, timedelta
from itertools import accumulate
from zoneinfo import ZoneInfo

from bot.engine.state import Availability

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _local(d: date, hhmm: str, tz: ZoneInfo) -> datetime:
    if hhmm == "24:00":
        return datetime.combine(d + timedelta(days=1), time(0, 0), tzinfo=tz)
    h, m = (int(x) for x in hhmm.split(":"))
    naive = datetime.combine(d, time(h, m))
    # A wall time inside a DST gap does not exist: fold it to the instant just after the gap.
    aware = naive.replace(tzinfo=tz)
    round_trip = aware.astimezone(ZoneInfo("UTC")).astimezone(tz).replace(tzinfo=None)
    if round_trip != naive:
        aware = (naive + timedelta(hours=1)).replace(tzinfo=tz)
    return aware


def open_slots(av: Availability, now: datetime, horizon: timedelta, lead: timedelta) -> list[datetime]:
    """Every slot start from ``now + lead`` to ``now + horizon``, on window boundaries stepped by session length."""
    booked = sorted(av.booked)
    starts = [b[0] for b in booked]
    # ends[i]: the latest end among the first i+1 bookings, so one bisect answers "does anything overlap".
    ends = list(accumulate((b[1] for b in booked), max))
    tz = ZoneInfo(av.tz)
    step = timedelta(minutes=av.session_minutes)
    earliest = now + lead
    latest = now + horizon
    out: list[datetime] = []
    day = now.astimezone(tz).date()
    last = latest.astimezone(tz).date()
    while day <= last:
        for window in av.windows.get(WEEKDAYS[day.weekday()], []):
            a, b = window.split("-")
            start, end = _local(day, a, tz), _local(day, b, tz)
            s = start
            while s + step <= end:
                if earliest <= s <= latest and not _overlaps(s, s + step, starts, ends):
                    out.append(s)
                s += step
        day += timedelta(days=1)
    return out


def _overlaps(a: datetime, b: datetime, starts: list[datetime], ends: list[datetime]) -> bool:
    """Whether [a, b) meets a booking. ``starts`` sorted; ``ends[i]`` the latest end among the first i+1."""
    i = bisect_left(starts, b)  # bookings at index < i start before b
    return i > 0 and ends[i - 1] > a


def nearest(slots: list[datetime], target: datetime | date | None, tz: str, k: int = 3) -> list[datetime]:
    """Up to ``k`` slots nearest the target (a time, a whole local day, or none = earliest); ties go earlier."""
    if target is None:
        return sorted(slots)[:k]
    zone = ZoneInfo(tz)

    def distance(s: datetime) -> float:
        if isinstance(target, datetime):
            return abs((s - target).total_seconds())
        day_start = datetime.combine(target, time(0), tzinfo=zone)
        day_end = day_start + timedelta(days=1)
        if day_start <= s < day_end:
            return 0.0
        return min(abs((s - day_start).total_seconds()), abs((s - day_end).total_seconds()))

    return sorted(slots, key=lambda s: (distance(s), s))[:k]
