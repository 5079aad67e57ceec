"""CSV and iCalendar imports: any file is imported, refused whole (FileError), or aborted with
named problems; a refused or aborted import writes nothing; an applied one re-imports unchanged.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import parse_config
from bot.imports import FileError, import_bytes
from bot.imports.csvfile import COLUMNS
from bot.service import Service
from storage import writeback_table  # noqa: F401  (registers the import tables before create_all)
from storage.db import create_all, make_engine
from tests.fuzz import strategies as S
from tests.fuzz.harness import row_counts

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CONFIG = {"default_tz": "America/New_York", "clinicians": [{"id": "rivera", "tz": "America/New_York"}]}
ALIASES = sorted({a for names in COLUMNS.values() for a in names})


def new_service() -> Service:
    eng = make_engine("sqlite://")
    create_all(eng)
    return Service(parse_config(CONFIG), eng)


@pytest.fixture(scope="module")
def svc() -> Iterator[Service]:
    s = new_service()
    yield s
    s.db.dispose()


def cell(draw: Any, column: str) -> str:
    plausible: dict[str, st.SearchStrategy[str]] = {
        "start": S.iso_like.map(lambda v: v.replace("T", " ") if v[:1].isdigit() else v),
        "starts_at": S.iso_like,
        "phone": S.phone_like,
        "tz": S.tz_like,
        "lang": S.lang_like,
        "minutes": st.one_of(st.integers(-5, 700).map(str), S.small_text),
        "clinician": st.sampled_from(["rivera", "nobody", ""]),
        "appointment_id": st.one_of(st.sampled_from(["A1", "A2", "A1 "]), S.small_text),
        "client_id": st.one_of(st.sampled_from(["c1", "c2"]), S.small_text),
        "status": st.sampled_from(["", "cancelled", "scheduled", "??"]),
        "consent": st.sampled_from(["", "yes", "no", "true", "0", "maybe"]),
    }
    return draw(st.one_of(plausible.get(column, S.small_text), S.small_text))


@st.composite
def csv_file(draw: Any) -> bytes:
    cols = draw(st.lists(st.one_of(st.sampled_from(ALIASES), S.small_text), min_size=1, max_size=10))
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=draw(st.sampled_from([",", ";", "\t"])))
    w.writerow(cols)
    for _ in range(draw(st.integers(0, 6))):
        row = [cell(draw, c) for c in cols]
        if draw(st.integers(0, 5)) == 0:
            row = row[: draw(st.integers(0, len(row)))] + [draw(S.small_text)] * draw(st.integers(0, 2))
        w.writerow(row)
    data = buf.getvalue().encode("utf-8")
    mode = draw(st.sampled_from(["clean"] * 4 + ["bom", "utf16", "hostile"]))
    if mode == "bom":
        return b"\xef\xbb\xbf" + data
    if mode == "utf16":
        return buf.getvalue().encode("utf-16")
    if mode == "hostile":
        return draw(S.hostile_bytes(st.just(data)))
    return data


@st.composite
def ics_file(draw: Any) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//fuzz//EN"]
    if draw(st.booleans()):
        lines.append("X-WR-TIMEZONE:" + draw(S.tz_like).replace("\n", " "))
    if draw(st.integers(0, 4)) == 0:
        lines.append("METHOD:CANCEL")
    for _ in range(draw(st.integers(0, 4))):
        ev = ["BEGIN:VEVENT", "UID:" + draw(st.one_of(st.sampled_from(["u1", "u2"]), S.small_text))]
        start = draw(
            st.one_of(
                st.sampled_from(
                    ["20261203T150000Z", "20261203T150000", "20261203", "99991231T235959Z", "00010101T000000Z"]
                ),
                S.small_text,
            )
        )
        if draw(st.booleans()):
            ev.append(f"DTSTART;TZID={draw(S.tz_like)}:{start}")
        else:
            ev.append(f"DTSTART:{start}")
        if draw(st.booleans()):
            ev.append("DTEND:" + draw(st.one_of(st.just("20261203T155000Z"), S.small_text)))
        if draw(st.booleans()):
            ev.append(
                "DURATION:"
                + draw(st.one_of(st.sampled_from(["PT50M", "P1D", "-PT5M", "PT0S", "P9999W"]), S.small_text))
            )
        if draw(st.booleans()):
            ev.append("ATTENDEE;CN=" + draw(S.small_text) + ":tel:" + draw(S.phone_like))
        if draw(st.booleans()):
            ev.append("X-RAPPORT-CLIENT:" + draw(st.one_of(st.just("c1"), S.small_text)))
        if draw(st.booleans()):
            desc = "\\n".join(
                f"{k}: {draw(S.small_text)}" for k in draw(st.lists(st.sampled_from(ALIASES), max_size=4))
            )
            ev.append("DESCRIPTION:" + desc)
        if draw(st.integers(0, 3)) == 0:
            ev.append("STATUS:" + draw(st.sampled_from(["CANCELLED", "CONFIRMED", "TENTATIVE", "??"])))
        for _ in range(draw(st.integers(0, 2))):
            ev.append(draw(S.small_text))
        ev.append("END:VEVENT")
        lines += ev
    if draw(st.integers(0, 5)):
        lines.append("END:VCALENDAR")
    data = "\r\n".join(ln.replace("\r", " ").replace("\n", " ") for ln in lines).encode("utf-8")
    return draw(S.hostile_bytes(st.just(data))) if draw(st.integers(0, 4)) == 0 else data


def check_import(svc: Service, data: bytes, name: str, skip_bad: bool) -> None:
    before = row_counts(svc)
    try:
        report = import_bytes(svc, data, name=name, now=NOW, skip_bad=skip_bad)
    except FileError as e:
        assert e.line >= 1 and "\n" not in str(e), str(e)
        assert row_counts(svc) == before, "a refused file wrote to the database"
        return
    for p in report.problems:
        assert "\n" not in str(p), str(p)
    if report.aborted:
        assert report.problems
        assert row_counts(svc) == before, "an aborted import wrote to the database"
        return
    # Imports are idempotent on the external id: the same file again changes nothing.
    again = import_bytes(svc, data, name=name, now=NOW, skip_bad=skip_bad)
    assert (again.created, again.moved, again.updated, again.clients_created) == (0, 0, 0, 0), again


@settings(S.FUZZ, max_examples=25)
@given(data=csv_file(), skip_bad=st.booleans())
def test_csv_import_any_file(svc: Service, data: bytes, skip_bad: bool) -> None:
    check_import(svc, data, "schedule.csv", skip_bad)


@settings(S.FUZZ, max_examples=25)
@given(data=st.one_of(ics_file(), ics_file(), S.hostile_bytes()), skip_bad=st.booleans())
def test_ics_import_any_file(svc: Service, data: bytes, skip_bad: bool) -> None:
    check_import(svc, data, "feed.ics", skip_bad)
