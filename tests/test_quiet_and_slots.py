from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.engine.slots import nearest, open_slots
from bot.engine.state import Availability
from bot.quiet import quiet_until

NY = "America/New_York"
MAD = "Europe/Madrid"
SP = "America/Sao_Paulo"


def local(tz: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz))  # type: ignore[misc]


@pytest.mark.parametrize(
    ("now", "tz", "start", "end", "expected"),
    [
        # outside the window
        (local(NY, 2026, 12, 1, 12, 0), NY, "21:00", "08:00", None),
        # before midnight: ends tomorrow morning
        (local(NY, 2026, 12, 1, 23, 40), NY, "21:00", "08:00", local(NY, 2026, 12, 2, 8, 0)),
        # after midnight: ends this morning
        (local(NY, 2026, 12, 2, 3, 0), NY, "21:00", "08:00", local(NY, 2026, 12, 2, 8, 0)),
        # the end itself is not quiet ([start, end))
        (local(NY, 2026, 12, 2, 8, 0), NY, "21:00", "08:00", None),
        # the start is quiet
        (local(NY, 2026, 12, 1, 21, 0), NY, "21:00", "08:00", local(NY, 2026, 12, 2, 8, 0)),
        # a window that does not wrap
        (local(SP, 2026, 12, 1, 13, 0), SP, "12:00", "14:00", local(SP, 2026, 12, 1, 14, 0)),
        # DST spring forward in New York (2026-03-08 02:00 -> 03:00): 08:00 still exists, 5 h of wall clock later
        (local(NY, 2026, 3, 7, 22, 0), NY, "21:00", "08:00", local(NY, 2026, 3, 8, 8, 0)),
        # DST fall back in Madrid (2026-10-25 03:00 -> 02:00)
        (local(MAD, 2026, 10, 24, 23, 30), MAD, "22:00", "09:00", local(MAD, 2026, 10, 25, 9, 0)),
        # quiet hours ending inside the spring-forward gap: the first instant after it
        (local(NY, 2026, 3, 8, 1, 0), NY, "23:00", "02:30", local(NY, 2026, 3, 8, 3, 0)),
        # the client's zone decides, not the server's: 01:00 UTC is 22:00 in Sao Paulo
        (datetime(2026, 12, 2, 1, 0, tzinfo=ZoneInfo("UTC")), SP, "21:00", "08:00", local(SP, 2026, 12, 2, 8, 0)),
        # equal start and end means no quiet hours
        (local(NY, 2026, 12, 1, 23, 0), NY, "08:00", "08:00", None),
    ],
)
def test_quiet_until(now: datetime, tz: str, start: str, end: str, expected: datetime | None) -> None:
    got = quiet_until(now, tz, start, end)
    assert got == expected


AV = Availability(
    tz=SP,
    session_minutes=50,
    windows={"mon": ["09:00-12:00"], "thu": ["14:00-18:00"]},
)
NOW = local(SP, 2026, 12, 1, 9, 0)  # a Tuesday


def test_slots_start_on_window_boundaries_stepped_by_session() -> None:
    slots = open_slots(AV, NOW, timedelta(days=7), timedelta(hours=2))
    thu = [s.astimezone(ZoneInfo(SP)).strftime("%a %H:%M") for s in slots if s.weekday() == 3]
    assert thu == ["Thu 14:00", "Thu 14:50", "Thu 15:40", "Thu 16:30"]  # 17:20 would end past 18:00
    mon = [s.astimezone(ZoneInfo(SP)).strftime("%H:%M") for s in slots if s.weekday() == 0]
    assert mon == ["09:00", "09:50", "10:40"]  # 11:30 + 50 min would end past 12:00


def test_booked_appointments_and_lead_time_are_excluded() -> None:
    booked = ((local(SP, 2026, 12, 3, 14, 50), local(SP, 2026, 12, 3, 15, 40)),)
    av = Availability(SP, 50, AV.windows, booked)
    slots = open_slots(av, local(SP, 2026, 12, 3, 13, 0), timedelta(days=1), timedelta(hours=2))
    assert [s.strftime("%H:%M") for s in slots] == ["15:40", "16:30"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (local(SP, 2026, 12, 3, 15, 0), ["14:50", "15:40", "14:00"]),
        (local(SP, 2026, 12, 3, 15, 15), ["14:50", "15:40", "14:00"]),  # 25 min each side: tie goes earlier
        (date(2026, 12, 3), ["14:00", "14:50", "15:40"]),  # a whole day: that day's slots, earliest first
        (None, ["14:00", "14:50", "15:40"]),  # no wish: the earliest open
        (date(2026, 12, 5), ["16:30", "15:40", "14:50"]),  # a Saturday: no slots, the nearest in time
    ],
)
def test_nearest(target: datetime | date | None, expected: list[str]) -> None:
    slots = open_slots(AV, NOW, timedelta(days=4), timedelta(hours=2))
    got = nearest(slots, target, SP)
    assert [s.astimezone(ZoneInfo(SP)).strftime("%H:%M") for s in got] == expected


def _slots_by_wall_clock(av: Availability, now: datetime, horizon: timedelta, lead: timedelta) -> list[datetime]:
    """The definition open_slots implements, one wall-clock step at a time (aware datetimes only)."""
    from bot.engine.slots import WEEKDAYS, _local

    tz = ZoneInfo(av.tz)
    step = timedelta(minutes=av.session_minutes)
    out = []
    day, last = now.astimezone(tz).date(), (now + horizon).astimezone(tz).date()
    while day <= last:
        for window in av.windows.get(WEEKDAYS[day.weekday()], []):
            a, b = window.split("-")
            s, end = _local(day, a, tz), _local(day, b, tz)
            while s + step <= end:
                free = all(not (s < bb and s + step > ba) for ba, bb in av.booked)
                if now + lead <= s <= now + horizon and free:
                    out.append(s)
                s = s + step
        day += timedelta(days=1)
    return out


@pytest.mark.parametrize(
    ("tz", "now"),
    [
        ("America/New_York", local("America/New_York", 2026, 3, 1, 9, 0)),  # spring forward on Mar 8
        ("America/New_York", local("America/New_York", 2026, 10, 25, 9, 0)),  # fall back on Nov 1
        ("Europe/Madrid", local("Europe/Madrid", 2026, 3, 22, 9, 0)),
        ("Australia/Lord_Howe", local("Australia/Lord_Howe", 2026, 3, 29, 9, 0)),  # a 30-minute change
        ("America/Sao_Paulo", NOW),  # no DST since 2019
    ],
)
def test_slots_match_the_wall_clock_definition_across_clock_changes(tz: str, now: datetime) -> None:
    """open_slots steps in seconds when a window holds no clock change; around every kind of change
    (windows over the night, over the change itself) it gives exactly the wall-clock slots."""
    windows = {
        "mon": ["09:00-17:00"],
        "tue": ["00:00-24:00"],
        "wed": ["01:00-04:00", "22:00-24:00"],
        "thu": ["02:30-03:30"],
        "fri": ["08:15-12:45", "13:00-19:00"],
        "sat": ["00:00-06:00"],
        "sun": ["00:00-05:00", "20:00-24:00"],
    }
    for minutes in (50, 45, 30):
        booked = tuple(
            (now + timedelta(hours=h), now + timedelta(hours=h, minutes=minutes)) for h in (3, 27, 50, 99, 170)
        )
        av = Availability(tz, minutes, windows, booked)
        want = _slots_by_wall_clock(av, now, timedelta(weeks=2), timedelta(hours=2))
        got = open_slots(av, now, timedelta(weeks=2), timedelta(hours=2))
        assert [s.isoformat() for s in got] == [s.isoformat() for s in want]
        assert got


@pytest.mark.parametrize(
    "target",
    [None, local(SP, 2026, 12, 3, 15, 0), date(2026, 12, 7), date(2026, 12, 5), local(NY, 2026, 12, 10, 23, 30)],
)
@pytest.mark.parametrize("tz", [SP, "Asia/Tokyo"])
def test_nearest_open_is_nearest_of_open_slots(target: datetime | date | None, tz: str) -> None:
    booked = ((local(SP, 2026, 12, 3, 14, 50), local(SP, 2026, 12, 3, 15, 40)),)
    av = Availability(SP, 50, AV.windows, booked)
    from bot.engine.slots import nearest_open

    args = (av, NOW, timedelta(weeks=3), timedelta(hours=2))
    assert nearest_open(*args, target, tz) == nearest(open_slots(*args), target, tz)
    assert nearest_open(*args, target, tz, k=5) == nearest(open_slots(*args), target, tz, k=5)
