"""Dates and times in a reply, resolved relative to "now" in the client's zone.

A deterministic resolver handles the forms people text ("quinta às 15h", "tmrw 3pm", "el jueves a
las 3 de la tarde", "dia 5 às 14h", "friday morning", "next week"); dateparser (restricted to the
client's language) is the fallback for what the resolver does not know (written-out dates with a
year, say), and is only called when the text has a date-like token the resolver did not use.

Result: ``"YYYY-MM-DDTHH:MM"`` (a day and a time), ``"YYYY-MM-DD"`` (a day, or a day with a part of
day or a vague time), or None (a time alone, "next week", two candidate days, nothing).
"""

from __future__ import annotations

import calendar
import importlib
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.understanding.lexicon import Lexicon

_EXPLICIT_HHMM = re.compile(
    r"(?<![\d/:])(?P<h>[01]?\d|2[0-3]):(?P<mm>[0-5]\d)(?![\d/])(?: ?(?P<ap>am|pm|a|p|hs|h|hrs)(?![a-z0-9]))?"
)
_EXPLICIT_AMPM = re.compile(r"(?<![\d/:])(?P<h>1[0-2]|0?[1-9]) ?(?P<ap>am|pm|a m|p m|p)(?![a-z0-9])")
_EXPLICIT_H = re.compile(r"(?<![\d/:])(?P<h>[01]?\d|2[0-3]) ?(?:h|hs|hrs|hr)(?![a-z0-9])(?! ?\d)")
_NUMERIC_DATE = re.compile(r"(?<![\d:/])(?P<a>\d{1,2})/(?P<b>\d{1,2})(?:/(?P<y>\d{2}|\d{4}))?(?![\d:/])")
_DAY_NUMBER = re.compile(r"(?<!\d)(?:[1-9]|[12]\d|3[01])(?!\d)")
_CLOCK_MARK = re.compile(r":|\d ?(?:am|pm|h|hs)(?![a-z])")
_DAY_NUMBER_BEFORE = re.compile(r"(?:^|\s)(?:dia|el dia|the|on the|el)\s$")
_ISO_DATE = re.compile(r"(?<!\d)(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})(?!\d)")


@dataclass
class DayMention:
    start: int
    end: int
    day: date


@dataclass
class TimeMention:
    start: int
    end: int
    hour: int
    minute: int


@dataclass
class Found:
    """What the resolver saw, for the intent logic as well as for ``when``."""

    days: list[DayMention] = field(default_factory=list)
    times: list[TimeMention] = field(default_factory=list)
    vague_day: bool = False  # "next week", "another day"
    vague_at: list[int] = field(default_factory=list)  # where those were
    vague_time: bool = False  # "after 5", "between 2 and 4"
    part_of_day: bool = False  # "morning", "à tarde"
    today: date | None = None
    when: str | None = None

    @property
    def any(self) -> bool:
        return bool(self.days or self.times or self.vague_day or self.vague_time or self.part_of_day)


def _mask(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def _num(tok: str, lex: Lexicon) -> int | None:
    if tok.isdigit():
        return int(tok)
    return lex.numbers.get(tok)


def _next_dom(today: date, d: int) -> date | None:
    """The next day-of-month ``d`` on or after today."""
    y, m = today.year, today.month
    for _ in range(13):
        if d <= calendar.monthrange(y, m)[1]:
            cand = date(y, m, d)
            if cand >= today:
                return cand
        m += 1
        if m == 13:
            y, m = y + 1, 1
    return None


def _month_day(today: date, m: int, d: int, y: int | None = None) -> date | None:
    if not 1 <= m <= 12 or not 1 <= d <= 31:
        return None
    if y is not None:
        try:
            return date(y, m, d)
        except ValueError:
            return None
    for year in (today.year, today.year + 1):
        try:
            cand = date(year, m, d)
        except ValueError:
            continue
        if cand >= today:
            return cand
    return None


def _to_24h(h: int, after: str, text: str, lex: Lexicon, *, explicit_24h: bool) -> int | None:
    """Apply am/pm words right after the time, else the text's part of day, else a clinic-hours guess."""
    if h > 23:
        return None
    if lex.re_pm_after.match(after):
        return h + 12 if h < 12 else h
    if lex.re_am_after.match(after):
        return 0 if h == 12 else h
    if h >= 13 or (explicit_24h and h != 0):
        return h
    if lex.re_pm_any.search(text):
        return h + 12 if h < 12 else h
    if lex.re_am_any.search(text):
        return h
    # No marker at all: therapy sessions are daytime; "at 3" is 15:00, "at 9" is 09:00.
    return h + 12 if 1 <= h <= 7 else h


def _times(text: str, lex: Lexicon, found: Found) -> str:
    """Find clock times; returns the text with them masked out."""
    work = text

    def add(start: int, end: int, h: int | None, mm: int) -> None:
        nonlocal work
        if h is None or not 0 <= h <= 23 or not 0 <= mm <= 59:
            return
        if _DAY_NUMBER_BEFORE.search(text[:start]):
            return  # "dia 6 de manhã", "the 5th at": that number is a day of the month
        found.times.append(TimeMention(start, end, h, mm))
        work = _mask(work, start, end)

    for pats, minute, shift in ((lex.re_half, 30, 0), (lex.re_quarter_past, 15, 0), (lex.re_quarter_to, 45, -1)):
        for p in pats:
            for m in list(p.finditer(work)):
                h = _num(m["h"], lex)
                if h is None or not 1 <= h <= 12:
                    continue
                h = (h + shift - 1) % 12 + 1 if shift else h
                add(m.start(), m.end(), _to_24h(h, text[m.end():], text, lex, explicit_24h=False), minute)
    for m in list(lex.re_time_vague.finditer(work)):  # "after 5", "between 2 and 4"
        found.vague_time = True
        work = _mask(work, m.start(), m.end())
    for m in list(lex.re_time_range.finditer(work)):  # "3-4pm", "at 10 or 11" (not "4 or 5" alone)
        if _CLOCK_MARK.search(m.group(0)) or lex.re_time_prefix_end.search(text[: m.start()]):
            found.vague_time = True
            work = _mask(work, m.start(), m.end())

    for m in list(_EXPLICIT_HHMM.finditer(work)):
        h, mm, ap = int(m["h"]), int(m["mm"]), m["ap"] or ""
        after = " " + ap if ap in ("am", "pm", "a", "p") else text[m.end():]
        after = after.replace(" a", " am") if ap == "a" else after.replace(" p", " pm") if ap == "p" else after
        add(m.start(), m.end(), _to_24h(h, after, text, lex, explicit_24h=h >= 13 or h == 0), mm)
    for m in list(_EXPLICIT_AMPM.finditer(work)):
        h, ap = int(m["h"]), m["ap"].replace(" ", "")
        add(m.start(), m.end(), (0 if h == 12 else h) if ap.startswith("a") else (h if h == 12 else h + 12), 0)
    for m in list(_EXPLICIT_H.finditer(work)):
        h = int(m["h"])
        add(m.start(), m.end(), _to_24h(h, text[m.end():], text, lex, explicit_24h=h >= 13), 0)
    for m in list(lex.re_time_prefixed.finditer(work)):
        h = _num(m["h"], lex)
        if h is None:
            continue
        mm = int(m["mm"]) if m["mm"] else 0
        add(m.start(), m.end(), _to_24h(h, text[m.end():], text, lex, explicit_24h=h >= 13), mm)
    for m in list(lex.re_time_pod.finditer(work)):
        h = _num(m["h"], lex)
        if h is None or not 1 <= h <= 12:
            continue
        mm = int(m["mm"]) if m["mm"] else 0
        pod_start = m.start("pod")
        add(m.start(), m.end(), _to_24h(h, " " + text[pod_start:], text, lex, explicit_24h=False), mm)
    for m in list(lex.re_oclock.finditer(work)):
        h = int(m["h"])
        add(m.start(), m.end(), _to_24h(h, text[m.end():], text, lex, explicit_24h=h >= 13), 0)
    for m in list(lex.re_noon.finditer(work)):
        add(m.start(), m.end(), 12, 0)
    for m in list(lex.re_midnight.finditer(work)):
        add(m.start(), m.end(), 0, 0)
    return work


def _days(text: str, work: str, lex: Lexicon, today: date, found: Found, *, numeric_ok: bool) -> str:
    def add(start: int, end: int, day: date | None) -> None:
        nonlocal work
        if day is None:
            return
        found.days.append(DayMention(start, end, day))
        work = _mask(work, start, end)

    for m in list(_ISO_DATE.finditer(work)):
        add(m.start(), m.end(), _month_day(today, int(m["m"]), int(m["d"]), int(m["y"])))
    if numeric_ok:
        for m in list(_NUMERIC_DATE.finditer(work)):
            a, b = int(m["a"]), int(m["b"])
            d, mo = (b, a) if lex.numeric_date_order == "mdy" else (a, b)
            y = int(m["y"]) if m["y"] else None
            if y is not None and y < 100:
                y += 2000
            add(m.start(), m.end(), _month_day(today, mo, d, y))
    for pat in (lex.re_day_month, lex.re_month_day):
        for m in list(pat.finditer(work)):
            year = int(m["y"]) if m["y"] else None
            add(m.start(), m.end(), _month_day(today, lex.months[m["m"]], int(m["d"]), year))
    for m in list(lex.re_relative.finditer(work)):
        if m.group(0) == "manana" and re.search(r"(?:^|\s)(?:la|esta|por la|de la|en la)\s*$", text[: m.start()]):
            found.part_of_day = True
            continue
        add(m.start(), m.end(), today + timedelta(days=lex.relative_days[m.group(0)]))
    # "next week" before weekdays would swallow "segunda da semana que vem": weekdays go first.
    weekday_spans: list[tuple[int, int, int, bool]] = []
    for m in list(lex.re_weekday.finditer(work)):
        wd = lex.weekdays[m["wd"]]
        next_week = (m["suf"] or "") in lex.next_week_suffix or (m["pre"] or "") in lex.weekday_next
        weekday_spans.append((m.start(), m.end(), wd, next_week))
        work = _mask(work, m.start(), m.end())
    for m in list(lex.re_vague_days.finditer(work)):
        found.vague_day = True
        found.vague_at.append(m.start())
        work = _mask(work, m.start(), m.end())
    nw_vague = found.vague_day and bool(re.search(r"(?<![a-z])(next week|semana que vem|proxima semana|"
                                                  r"semana que viene)", text))
    for start, end, wd, next_week in weekday_spans:
        if next_week or nw_vague:
            monday_next = today + timedelta(days=7 - today.weekday())
            day = monday_next + timedelta(days=wd)
        else:
            delta = (wd - today.weekday()) % 7 or 7
            day = today + timedelta(days=delta)
        found.days.append(DayMention(start, end, day))
    if weekday_spans and nw_vague:
        found.vague_day = False
    for pats, unit in ((lex.re_in_days, 1), (lex.re_in_weeks, 7)):
        for p in pats:
            for m in list(p.finditer(work)):
                n = _num(m.groupdict().get("n") or "1", lex) if m.groupdict().get("n") else 1
                if n is None or not 0 < n < 60:
                    continue
                add(m.start(), m.end(), today + timedelta(days=n * unit))
    for p in lex.re_dom:
        for m in list(p.finditer(work)):
            d = int(m["d"])
            if 1 <= d <= 31:
                add(m.start(), m.end(), _next_dom(today, d))
    return work


class Clauses:
    """Clause number of any position: the text split on "," "?" and contrast words ("but", "mas")."""

    __slots__ = ("cuts",)

    def __init__(self, text: str, lex: Lexicon) -> None:
        self.cuts = sorted(
            {i for i, ch in enumerate(text) if ch in ",?"}
            | {m.start() for m in lex.re_clause_break.finditer(text)}
            | {m.start() for m in lex.re_instead_of.finditer(text)}
        )

    def __getitem__(self, pos: int) -> int:
        return bisect_right(self.cuts, pos)


def _choose(
    found: Found, text: str, lex: Lexicon, excluded_clauses: set[int] | frozenset[int], clause: Clauses | None
) -> str | None:
    if not found.days:
        return None
    clause = clause or Clauses(text, lex)
    days = sorted(found.days, key=lambda d: d.start)
    # "instead of thursday": thursday is the old day.
    old = {
        d.start for d in days
        for m in lex.re_instead_of.finditer(text)
        if 0 <= d.start - m.end() <= 4
    }
    keep = [d for d in days if d.start not in old] or days
    if len({d.day for d in keep}) > 1:
        fresh = [d for d in keep if clause[d.start] not in excluded_clauses]
        if fresh and len(fresh) < len(keep):
            keep = fresh
    distinct = {d.day for d in keep}
    if len(distinct) > 1:
        # Same clause or joined by "or": two candidates, no single day.
        ordered = sorted(keep, key=lambda d: d.start)
        between = text[ordered[0].end:ordered[-1].start]
        if lex.re_disjunction.search(between) or len({clause[d.start] for d in keep}) == 1:
            return None
        last_clause = max(clause[d.start] for d in keep)
        keep = [d for d in keep if clause[d.start] == last_clause]
        if len({d.day for d in keep}) > 1:
            return None
    chosen = keep[-1]
    times = sorted(found.times, key=lambda t: t.start)
    if found.vague_time and not times:
        return chosen.day.isoformat()
    distinct_t = {(t.hour, t.minute) for t in times}
    if len(distinct_t) > 1:
        near = [t for t in times if clause[t.start] == clause[chosen.start] and clause[t.start] not in excluded_clauses]
        if not near:
            near = [t for t in times if clause[t.start] not in excluded_clauses]
        if len({(t.hour, t.minute) for t in near}) == 1:
            times = near[:1]
        else:
            between = text[times[0].end:times[-1].start]
            return chosen.day.isoformat() if lex.re_disjunction.search(between) or not near else None
    if times:
        t = times[0]
        return f"{chosen.day.isoformat()}T{t.hour:02d}:{t.minute:02d}"
    return chosen.day.isoformat()


def resolve(
    text: str,
    lex: Lexicon,
    now_local: datetime,
    *,
    numeric_dates: bool = True,
    excluded_clauses: set[int] | frozenset[int] = frozenset(),
    clauses: Clauses | None = None,
) -> Found:
    """Find and resolve the date/time expressions in normalised ``text``."""
    today = now_local.date()
    found = Found(today=today)
    if not text or not lex.re_date_trigger.search(text):
        return found
    work = _times(text, lex, found)
    work = _days(text, work, lex, today, found, numeric_ok=numeric_dates)
    if lex.re_part_of_day.search(text):
        found.part_of_day = True
    if not found.days and lex.re_dateish.search(work):
        _dateparser_fallback(text, lex, now_local, found)
        if not found.days:
            found.vague_day = True  # "sometime in march": a month, no day
    found.when = _choose(found, text, lex, excluded_clauses, clauses)
    return found


_DP_LANG = {"en": "en", "pt_BR": "pt", "es": "es"}


def _dateparser_settings(now_local: datetime) -> dict[str, Any]:
    return {
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": now_local.replace(tzinfo=None),
        "RETURN_AS_TIMEZONE_AWARE": False,
        "PREFER_DAY_OF_MONTH": "first",
        "STRICT_PARSING": False,
    }


def _search_dates(text: str, lang: str, now_local: datetime) -> list[tuple[str, datetime]] | None:
    search_dates: Any = importlib.import_module("dateparser.search").search_dates  # lazy: slow import

    hits = search_dates(text, languages=[lang], settings=_dateparser_settings(now_local))
    return list(hits) if hits else None


def _dateparser_fallback(text: str, lex: Lexicon, now_local: datetime, found: Found) -> None:
    try:
        hits = _search_dates(
text.replace(" , ", ", ").replace(" ?", "?"), _DP_LANG[lex.lang], now_local)
    except Exception:  # dateparser raises assorted errors on odd input; the fallback is best effort
        return
    for fragment, dt in hits or []:
        frag = fragment.strip()
        if not lex.re_dateish.search(frag) or not _DAY_NUMBER.search(frag):  # "march 2027" names no day
            continue
        pos = text.find(frag)
        found.days.append(DayMention(max(pos, 0), max(pos, 0) + len(frag), dt.date()))
        if re.search(r"\d{1,2}:\d{2}|\d ?(am|pm|h)\b", frag):
            found.times.append(TimeMention(max(pos, 0), max(pos, 0) + len(frag), dt.hour, dt.minute))


def warm_dateparser() -> None:
    """Load dateparser's language data so the first fallback call is not slow."""
    base = datetime(2026, 1, 5, 12, 0)
    for lang, sample in (("en", "on 3 march 2026"), ("pt", "em 3 de marco de 2026"), ("es", "el 3 de marzo de 2026")):
        _search_dates(sample, lang, base)
