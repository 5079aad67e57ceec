"""Open slots from a clinician's weekly availability, minus booked appointments. Pure."""

from __future__ import annotations

import heapq
from bisect import bisect_left
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import accumulate
from zoneinfo import ZoneInfo

from bot.engine.state import Availability

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@lru_cache(maxsize=8192)
def _local(d: date, hhmm: str, tz: ZoneInfo) -> datetime:
    # Cached: every slot search walks the same few weeks of window edges (immutable results).
    if hhmm == "24:00":
        return datetime.combine(d + timedelta(days=1), time(0, 0), tzinfo=tz)
    h, m = (int(x) for x in hhmm.split(":"))
    naive = datetime.combine(d, time(h, m))
    # A wall time inside a DST gap does not exist: fold it to the instant just after the gap.
    aware = naive.replace(tzinfo=tz)
    round_trip = aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    if round_trip != naive:
        aware = (naive + timedelta(hours=1)).replace(tzinfo=tz)
    return aware


def open_slots(av: Availability, now: datetime, horizon: timedelta, lead: timedelta) -> list[datetime]:
    """Every slot start from ``now + lead`` to ``now + horizon``, on window boundaries stepped by session length."""
    return [_made(slot) for slot in _open(av, now, horizon, lead)]


def nearest_open(
    av: Availability,
    now: datetime,
    horizon: timedelta,
    lead: timedelta,
    target: datetime | date | None,
    tz: str,
    k: int = 3,
) -> list[datetime]:
    """``nearest(open_slots(av, now, horizon, lead), target, tz, k)``, making only the ``k`` slots it
    returns into datetimes: a reschedule request weighs a few hundred candidates and offers three."""
    return [_made(slot) for slot in _nearest(_open(av, now, horizon, lead), target, tz, k)]


# A slot as POSIX seconds, its window's start and its step count: ``start + k * step`` when needed.
_Slot = tuple[float, datetime, int, timedelta]


def _made(slot: _Slot) -> datetime:
    _t, start, k, step = slot
    return start + k * step if k else start


def _open(av: Availability, now: datetime, horizon: timedelta, lead: timedelta) -> list[_Slot]:
    # Instants as POSIX seconds: a reschedule request walks a few hundred candidate slots against the
    # clinician's bookings, and float comparisons cost far less than aware datetimes in two zones.
    booked = sorted((a.timestamp(), b.timestamp()) for a, b in av.booked)
    starts = [b[0] for b in booked]
    # ends[i]: the latest end among the first i+1 bookings, so one bisect answers "does anything overlap".
    ends = list(accumulate((b[1] for b in booked), max))
    tz = ZoneInfo(av.tz)
    step = timedelta(minutes=av.session_minutes)
    seconds = step.total_seconds()
    until = now + horizon
    earliest = (now + lead).timestamp()
    latest = until.timestamp()
    out: list[_Slot] = []
    day = now.astimezone(tz).date()
    last = until.astimezone(tz).date()
    while day <= last:
        for window in av.windows.get(WEEKDAYS[day.weekday()], []):
            a, b = window.split("-")
            start, end = _local(day, a, tz), _local(day, b, tz)
            if start.utcoffset() == end.utcoffset():
                # No clock change inside the window: wall-clock steps are fixed steps of seconds.
                t0, stop, k = start.timestamp(), end.timestamp(), 0
                while (t := t0 + k * seconds) + seconds <= stop:
                    if earliest <= t <= latest and not _overlaps(t, t + seconds, starts, ends):
                        out.append((t, start, k, step))
                    k += 1
                continue
            s = start
            while (nxt := s + step) <= end:  # wall-clock steps, as the practice's calendar reads them
                t = s.timestamp()
                if earliest <= t <= latest and not _overlaps(t, nxt.timestamp(), starts, ends):
                    out.append((t, s, 0, step))
                s = nxt
        day += timedelta(days=1)
    return out


def _overlaps(a: float, b: float, starts: list[float], ends: list[float]) -> bool:
    """Whether [a, b) meets a booking. ``starts`` sorted; ``ends[i]`` the latest end among the first i+1."""
    i = bisect_left(starts, b)  # bookings at index < i start before b
    return i > 0 and ends[i - 1] > a


def nearest(slots: list[datetime], target: datetime | date | None, tz: str, k: int = 3) -> list[datetime]:
    """Up to ``k`` slots nearest the target (a time, a whole local day, or none = earliest); ties go earlier."""
    zero = timedelta(0)
    return [_made(slot) for slot in _nearest([(s.timestamp(), s, 0, zero) for s in slots], target, tz, k)]


def _nearest(slots: list[_Slot], target: datetime | date | None, tz: str, k: int) -> list[_Slot]:
    if target is None:
        return heapq.nsmallest(k, slots, key=lambda slot: slot[0])
    if isinstance(target, datetime):
        lo = hi = target.timestamp()
    else:
        day_start = datetime.combine(target, time(0), tzinfo=ZoneInfo(tz))
        lo, hi = day_start.timestamp(), (day_start + timedelta(days=1)).timestamp()

    def distance(t: float) -> float:
        # 0 inside [lo, hi) (the whole day asked for), else the gap to its nearer edge
        return lo - t if t < lo else (0.0 if t < hi else t - hi)

    keyed = [(distance(slot[0]), slot[0], i) for i, slot in enumerate(slots)]
    return [slots[i] for _, _, i in heapq.nsmallest(k, keyed)]
