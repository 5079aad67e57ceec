"""Quiet hours in the client's local time, wrapping midnight and surviving DST changes."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


def _hm(s: str) -> time:
    h, m = s.split(":")
    return time(int(h), int(m))


def _first_valid(day: datetime, at: time, tz: ZoneInfo) -> datetime:
    """The instant the wall clock reads ``at`` on ``day``, or the first instant after a DST gap."""
    naive = datetime.combine(day.date(), at)
    aware = naive.replace(tzinfo=tz)
    back = aware.astimezone(ZoneInfo("UTC")).astimezone(tz).replace(tzinfo=None)
    if back != naive:  # inside a spring-forward gap: the wall clock jumps past this time
        for minutes in range(1, 181):
            cand = (naive + timedelta(minutes=minutes)).replace(tzinfo=tz)
            if cand.astimezone(ZoneInfo("UTC")).astimezone(tz).replace(tzinfo=None) == naive + timedelta(
                minutes=minutes
            ):
                return cand.astimezone(ZoneInfo("UTC"))
    return aware.astimezone(ZoneInfo("UTC"))


def quiet_until(now: datetime, tz: str, start: str, end: str) -> datetime | None:
    """When quiet hours ``[start, end)`` hold at ``now`` in ``tz``, the instant they end; else None."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    s, e = _hm(start), _hm(end)
    if s == e:
        return None
    t = local.time().replace(tzinfo=None)
    wraps = s > e
    inside = (t >= s or t < e) if wraps else (s <= t < e)
    if not inside:
        return None
    end_day = local + timedelta(days=1) if (wraps and t >= s) else local
    return _first_valid(end_day, e, zone)
