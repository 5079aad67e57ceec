"""CSV imports: bad rows named by line and reason, all or nothing, idempotent re-imports."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.config import parse_config
from bot.imports import FileError, import_bytes, run_import
from bot.imports.csvfile import read_csv
from bot.service import Service
from storage.db import make_engine
from storage.migrate import upgrade_url
from storage.tables import Appointment, AuditLog, Client, Timer
from storage.writeback_table import ImportItem
from tests.imports.conftest import CONFIG, NOW
from tests.imports.gen import csv_rows

HEAD = "appointment_id,client_id,client_name,phone,lang,tz,clinician,start,minutes,status\n"
GOOD = [
    "A1,c1,Ana,+15551230001,en,America/New_York,rivera,2026-12-03 15:00,50,\n",
    "A2,c1,Ana,+15551230001,en,America/New_York,rivera,2026-12-10T15:00:00-05:00,,\n",
    "A3,c2,Bia,+5511987654321,pt-BR,America/Sao_Paulo,costa,2026-12-04 10:00,,\n",
]


def doc(*rows: str, head: str = HEAD) -> bytes:
    return (head + "".join(rows)).encode("utf-8")


def imp(svc: Service, data: bytes, **kw: object) -> object:
    return import_bytes(svc, data, name="schedule.csv", now=NOW, **kw)  # type: ignore[arg-type]


def appts(svc: Service) -> dict[str, Appointment]:
    with Session(svc.db) as s:
        return {a.id: a for a in s.exec(select(Appointment))}


def clients(svc: Service) -> dict[str, Client]:
    with Session(svc.db) as s:
        return {c.id: c for c in s.exec(select(Client))}


# -- bad rows: each is reported with its line and reason, and nothing is imported -----------------

BAD_ROWS = [
    ("phone", "A9,c9,Cy,+1555,en,UTC,,2026-12-03 15:00,,\n", "phone", "not a possible phone number"),
    ("start words", "A9,c9,Cy,,en,UTC,,next tuesday,,\n", "start", "expected a date and time"),
    ("start date only", "A9,c9,Cy,,en,UTC,,2026-12-03,,\n", "start", "expected a date and time"),
    ("start impossible", "A9,c9,Cy,,en,UTC,,2026-02-30 10:00,,\n", "start", "not a valid date and time"),
    (
        "dst gap",
        "A9,c9,Cy,,en,America/New_York,,2027-03-14 02:30,,\n",
        "start",
        "does not exist in America/New_York",
    ),
    ("dst overlap", "A9,c9,Cy,,en,America/New_York,,2026-11-01 01:30,,\n", "start", "happens twice"),
    ("bad tz", "A9,c9,Cy,,en,Mars/Olympus,,2026-12-03 15:00,,\n", "tz", "unknown time zone"),
    ("bad lang", "A9,c9,Cy,,-,UTC,,2026-12-03 15:00,,\n", "lang", "language tag"),
    ("unknown clinician", "A9,c9,Cy,,en,UTC,house,2026-12-03 15:00,,\n", "clinician", "unknown clinician"),
    ("minutes words", "A9,c9,Cy,,en,UTC,,2026-12-03 15:00,an hour,\n", "minutes", "whole number"),
    ("minutes too long", "A9,c9,Cy,,en,UTC,,2026-12-03 15:00,900,\n", "minutes", "less than or equal"),
    ("status", "A9,c9,Cy,,en,UTC,,2026-12-03 15:00,,maybe\n", "status", "expected scheduled or cancelled"),
    ("no client", "A9,,Cy,,en,UTC,,2026-12-03 15:00,,\n", "client_id", "missing"),
    ("no start", "A9,c9,Cy,,en,UTC,,,,\n", "start", "missing"),
    ("no id", ",c9,Cy,,en,UTC,,2026-12-03 15:00,,\n", "appointment_id", "missing"),
    ("too many fields", "A9,c9,Cy,,en,UTC,,2026-12-03 15:00,,,extra\n", "(row)", "11 fields but the header has 10"),
    (
        "duplicate id",
        "A1,c1,Ana,+15551230001,en,America/New_York,rivera,2026-12-03 16:00,,\n",
        "appointment_id",
        "also on line 2",
    ),
    ("client conflict", "A9,c1,Ana,+15559999999,en,America/New_York,rivera,2026-12-05 15:00,,\n", "phone", "on line 2"),
]


@pytest.mark.parametrize(("bad", "field", "reason"), [b[1:] for b in BAD_ROWS], ids=[b[0] for b in BAD_ROWS])
def test_a_bad_row_is_named_and_nothing_is_imported(svc: Service, bad: str, field: str, reason: str) -> None:
    r = imp(svc, doc(GOOD[0], bad, GOOD[2]))
    assert [(p.line, p.field) for p in r.problems] == [(3, field)]  # type: ignore[attr-defined]
    assert reason in r.problems[0].message  # type: ignore[attr-defined]
    assert r.aborted and not r.applied  # type: ignore[attr-defined]
    assert appts(svc) == {} and clients(svc) == {}


@pytest.mark.parametrize(("bad", "field", "reason"), [b[1:] for b in BAD_ROWS], ids=[b[0] for b in BAD_ROWS])
def test_skip_bad_imports_the_good_rows(svc: Service, bad: str, field: str, reason: str) -> None:
    r = imp(svc, doc(GOOD[0], bad, GOOD[2]), skip_bad=True)
    assert [p.line for p in r.problems] == [3]  # type: ignore[attr-defined]
    assert sorted(appts(svc)) == ["A1", "A3"]
    assert r.created == 2  # type: ignore[attr-defined]


def test_every_bad_row_is_reported_not_only_the_first(svc: Service) -> None:
    rows = [GOOD[0], *(b[1].replace("A9", f"B{i}") for i, b in enumerate(BAD_ROWS[:6]))]
    r = imp(svc, doc(*rows))
    assert [p.line for p in r.problems] == [3, 4, 5, 6, 7, 8]  # type: ignore[attr-defined]


def test_an_appointment_cannot_move_to_another_client(svc: Service) -> None:
    imp(svc, doc(GOOD[0]))
    r = imp(svc, doc("A1,c7,Gil,+15551230007,en,UTC,rivera,2026-12-03 15:00,,\n"))
    assert [(p.line, p.field) for p in r.problems] == [(2, "client_id")]  # type: ignore[attr-defined]
    assert "belongs to client 'c1'" in r.problems[0].message  # type: ignore[attr-defined]


# -- the file as a whole ------------------------------------------------------------------------

FILE_ERRORS = [
    ("latin-1", (HEAD + GOOD[0] + "A4,c4,Jos\xe9,,en,UTC,,2026-12-03 15:00,,\n").encode("latin-1"), 3, "not UTF-8"),
    ("nul bytes", doc(GOOD[0]) + b"\x00\x01\x02", 3, "NUL"),
    ("missing column", doc(GOOD[0], head="appointment_id,client_id,when\n"), 1, "missing column(s): start"),
    ("two columns for one field", doc(head="id,appointment_id,client_id,start\n"), 1, "both give appointment_id"),
    ("empty", b"", 1, "empty"),
    ("unclosed quote", doc(GOOD[0], 'A4,c4,"Jo,,en,UTC,,2026-12-03 15:00,,\n', GOOD[2]), 3, "quote"),
]


@pytest.mark.parametrize(("data", "line", "reason"), [f[1:] for f in FILE_ERRORS], ids=[f[0] for f in FILE_ERRORS])
def test_an_unusable_file_is_refused_whole(svc: Service, data: bytes, line: int, reason: str) -> None:
    with pytest.raises(FileError) as ei:
        imp(svc, data, skip_bad=True)
    assert ei.value.line == line
    assert reason in ei.value.message
    assert appts(svc) == {}


ENCODINGS = [
    ("utf-8", doc(*GOOD)),
    ("utf-8 with BOM", b"\xef\xbb\xbf" + doc(*GOOD)),
    ("utf-16 with BOM", (HEAD + "".join(GOOD)).encode("utf-16")),
    ("crlf", doc(*GOOD).replace(b"\n", b"\r\n")),
    ("semicolons", doc(*GOOD).replace(b",", b";")),
    ("tabs", doc(*GOOD).replace(b",", b"\t")),
]


@pytest.mark.parametrize("data", [e[1] for e in ENCODINGS], ids=[e[0] for e in ENCODINGS])
def test_accepted_encodings_and_separators(svc: Service, data: bytes) -> None:
    r = imp(svc, data)
    assert r.problems == [] and r.created == 3  # type: ignore[attr-defined]
    assert clients(svc)["c2"].lang == "pt_BR"


def test_header_aliases_and_ignored_columns() -> None:
    f = read_csv(b"ID,Client,Name,Start Time,Duration,Notes\nx,c,Ana,2026-12-03T15:00:00Z,50,hello\n")
    assert f.rows[0].values == {
        "appointment_id": "x",
        "client_id": "c",
        "name": "Ana",
        "start": "2026-12-03T15:00:00Z",
        "minutes": "50",
    }
    assert f.ignored_columns == ["Notes"]


def test_multi_line_quoted_fields_keep_line_numbers(svc: Service) -> None:
    data = doc('A1,c1,"Ana\nMaria",,en,UTC,,2026-12-03 15:00,,\n', "A2,c2,Bo,,en,UTC,,soon,,\n")
    r = imp(svc, data)
    assert [(p.line, p.field) for p in r.problems] == [(4, "start")]  # type: ignore[attr-defined]


# -- times ----------------------------------------------------------------------------------------

TIMES = [
    ("offset wins", "2026-12-03T15:00:00-03:00", "America/New_York", "rivera", datetime(2026, 12, 3, 18, 0)),
    ("Z", "2026-12-03T15:00:00Z", "America/New_York", "rivera", datetime(2026, 12, 3, 15, 0)),
    ("local in client tz", "2026-12-03 15:00", "America/Sao_Paulo", "rivera", datetime(2026, 12, 3, 18, 0)),
    ("local in clinician tz", "2026-12-03 15:00", "", "costa", datetime(2026, 12, 3, 18, 0)),
    ("local in default tz", "2026-12-03 15:00", "", "", datetime(2026, 12, 3, 20, 0)),
    ("summer time", "2026-07-03 15:00", "America/New_York", "", datetime(2026, 7, 3, 19, 0)),
]


@pytest.mark.parametrize(("start", "tz", "clin", "utc"), [t[1:] for t in TIMES], ids=[t[0] for t in TIMES])
def test_start_times(svc: Service, start: str, tz: str, clin: str, utc: datetime) -> None:
    r = imp(svc, doc(f"A1,c1,Ana,,en,{tz},{clin},{start},,\n"))
    assert r.problems == []  # type: ignore[attr-defined]
    assert appts(svc)["A1"].start == utc.replace(tzinfo=UTC)


# -- idempotence: a nightly re-import moves and cancels what changed ----------------------------


def test_reimport_moves_and_cancels_what_changed(svc: Service) -> None:
    first = imp(svc, doc(*GOOD))
    assert (first.created, first.clients_created) == (3, 2)  # type: ignore[attr-defined]
    again = imp(svc, doc(*GOOD))
    assert again.counts() == {  # type: ignore[attr-defined]
        "created": 0,
        "moved": 0,
        "updated": 0,
        "cancelled": 0,
        "unchanged": 3,
        "skipped": 0,
        "pruned": 0,
    }
    changed = [
        GOOD[0].replace("2026-12-03 15:00", "2026-12-03 17:00"),
        GOOD[1].replace(",,\n", ",,cancelled\n"),
        GOOD[2].replace(",,\n", ",60,\n"),
    ]
    r = imp(svc, doc(*changed))
    assert (r.moved, r.cancelled, r.updated, r.unchanged) == (1, 1, 1, 0)  # type: ignore[attr-defined]
    a = appts(svc)
    assert a["A1"].start == datetime(2026, 12, 3, 22, 0, tzinfo=UTC) and a["A1"].status == "rescheduled"
    assert a["A2"].status == "cancelled"
    assert a["A3"].minutes == 60
    assert {x.external_id for x in a.values()} == {"A1", "A2", "A3"}
    with Session(svc.db) as s:
        due = sorted(t.due_at for t in s.exec(select(Timer).where(Timer.appointment_id == "A1", Timer.done == False)))  # noqa: E712
        actors = {e.actor for e in s.exec(select(AuditLog).where(AuditLog.entity == "appointment"))}
    assert due == [a["A1"].start - timedelta(hours=24), a["A1"].start - timedelta(hours=2)]
    assert actors == {"import"}


def test_prune_cancels_only_future_appointments_that_left_the_feed(svc: Service) -> None:
    past = "A0,c1,Ana,,en,America/New_York,rivera,2026-11-20 15:00,,\n"
    imp(svc, doc(past, *GOOD))
    without = doc(GOOD[0], GOOD[2])
    r = imp(svc, without)
    assert r.cancelled == 0 and appts(svc)["A2"].status == "scheduled"  # type: ignore[attr-defined]
    dry = imp(svc, without, prune=True, dry_run=True)
    assert dry.pruned == 1 and appts(svc)["A2"].status == "scheduled"  # type: ignore[attr-defined]
    r = imp(svc, without, prune=True)
    assert r.pruned == 1  # type: ignore[attr-defined]
    a = appts(svc)
    assert a["A2"].status == "cancelled"
    assert a["A0"].status == "scheduled"  # in the past: the feed's window moved on, nothing to cancel
    assert imp(svc, without, prune=True).pruned == 0  # type: ignore[attr-defined]


def test_prune_is_scoped_to_the_source(svc: Service) -> None:
    import_bytes(svc, doc(GOOD[0]), name="rivera.csv", now=NOW)
    import_bytes(svc, doc(GOOD[2]), name="costa.csv", now=NOW)
    r = import_bytes(svc, doc(GOOD[0]), name="rivera.csv", now=NOW, prune=True)
    assert r.pruned == 0 and appts(svc)["A3"].status == "scheduled"


def test_prune_refuses_when_a_bad_row_has_no_id(svc: Service) -> None:
    imp(svc, doc(*GOOD))
    r = imp(svc, doc(GOOD[0], ",c1,Ana,,en,UTC,,2026-12-03 15:00,,\n"), prune=True, skip_bad=True)
    assert r.pruned == 0 and any("nothing pruned" in n for n in r.notes)  # type: ignore[attr-defined]
    assert appts(svc)["A3"].status == "scheduled"


def test_a_skipped_bad_row_is_not_pruned(svc: Service) -> None:
    imp(svc, doc(*GOOD))
    r = imp(svc, doc(GOOD[0], GOOD[1], "A3,c2,Bia,,en,UTC,costa,garbage,,\n"), prune=True, skip_bad=True)
    assert r.pruned == 0 and appts(svc)["A3"].status == "scheduled"  # type: ignore[attr-defined]


def test_dry_run_writes_nothing(svc: Service) -> None:
    r = imp(svc, doc(*GOOD), dry_run=True)
    assert (r.created, r.clients_created, r.applied) == (3, 2, False)  # type: ignore[attr-defined]
    assert appts(svc) == {} and clients(svc) == {}


def test_rows_naming_only_the_client_keep_what_we_know(svc: Service) -> None:
    svc.upsert_client({"id": "c1", "name": "Ana", "phone": "+15551230001", "lang": "es", "tz": "UTC"}, NOW)
    r = imp(svc, doc("A1,c1,2026-12-03T15:00:00Z\n", head="appointment_id,client_id,start\n"))
    assert r.clients_updated == 0 and r.created == 1  # type: ignore[attr-defined]
    c = clients(svc)["c1"]
    assert (c.name, c.phone, c.lang) == ("Ana", "+15551230001", "es")


def test_a_changed_client_is_updated_when_the_appointment_is_not(svc: Service) -> None:
    imp(svc, doc(*GOOD))
    r = imp(svc, doc(*(g.replace("+15551230001", "+15551230009") for g in GOOD)))
    assert (r.clients_updated, r.unchanged, r.moved) == (1, 3, 0)  # type: ignore[attr-defined]
    assert clients(svc)["c1"].phone == "+15551230009"
    assert imp(svc, doc(*(g.replace("+15551230001", "+15551230009") for g in GOOD))).clients_updated == 0  # type: ignore[attr-defined]


def test_a_cancelled_row_for_an_unknown_appointment_is_skipped(svc: Service) -> None:
    r = imp(svc, doc("Z1,c1,Ana,,en,UTC,,2026-12-03 15:00,,cancelled\n"))
    assert r.skipped == 1 and appts(svc) == {}  # type: ignore[attr-defined]


def test_long_external_ids_get_a_stable_digest_id(svc: Service) -> None:
    ext = "040000008200E00074C5B7101A82E008" * 5 + "@practice.example"
    imp(svc, doc(f"{ext},c1,Ana,,en,UTC,,2026-12-03 15:00,,\n"))
    (a,) = appts(svc).values()
    assert a.id.startswith("ext-") and a.external_id == ext
    assert imp(svc, doc(f"{ext},c1,Ana,,en,UTC,,2026-12-03 15:00,,\n")).unchanged == 1  # type: ignore[attr-defined]


# -- scale ---------------------------------------------------------------------------------------


def test_50k_rows_checked_with_every_bad_row_reported(svc: Service) -> None:
    lines = csv_rows(50_000).splitlines(keepends=True)
    for i in (10, 25_000, 49_999):
        lines[i] = lines[i].replace("2027-", "2O27-")
    r = import_bytes(svc, "".join(lines).encode(), name="big.csv", now=NOW, dry_run=True)
    assert r.total == 50_000
    assert [(p.line, p.field) for p in r.problems] == [(11, "start"), (25_001, "start"), (50_000, "start")]
    r = import_bytes(svc, "".join(lines).encode(), name="big.csv", now=NOW, dry_run=True, skip_bad=True)
    assert (r.created, r.clients_created) == (49_997, 5_000)


@pytest.mark.slow
def test_50k_rows_imported_then_reimported_unchanged(tmp_path: Path) -> None:
    """On a SQLite file (WAL), as `rapport import` runs: about 3 minutes for the first import."""
    url = f"sqlite:///{tmp_path / 'big.db'}"
    upgrade_url(url)
    svc = Service(parse_config(CONFIG), make_engine(url))
    data = csv_rows(50_000).encode()
    r = import_bytes(svc, data, name="big.csv", now=NOW)
    assert (r.created, r.clients_created, r.problems) == (50_000, 5_000, [])
    assert len(appts(svc)) == 50_000
    again = import_bytes(svc, data, name="big.csv", now=NOW)
    assert again.unchanged == 50_000
    with Session(svc.db) as s:
        assert len(list(s.exec(select(ImportItem)))) == 50_000
    svc.db.dispose()


# -- the command line ------------------------------------------------------------------------------


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _cfg(tmp_path: Path) -> tuple[object, Path]:
    import yaml

    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump({**CONFIG, "database_url": f"sqlite:///{tmp_path / 'r.db'}"}))
    return parse_config(yaml.safe_load(p.read_text())), p


def test_cli_reports_bad_rows_on_stderr_and_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAPPORT_DATABASE_URL", raising=False)
    cfg, path = _cfg(tmp_path)
    f = tmp_path / "s.csv"
    f.write_bytes(doc(GOOD[0], "A9,c9,Cy,+1555,en,UTC,,2026-12-03 15:00,,\n"))
    out, err = io.StringIO(), io.StringIO()
    assert run_import(cfg, path, str(f), False, False, False, out, err) == 1  # type: ignore[arg-type]
    assert "s.csv: line 3: phone: not a possible phone number" in err.getvalue()
    assert "nothing imported" in out.getvalue()
    assert "\r" not in err.getvalue()  # no progress bar when stderr is not a terminal
    out, err = io.StringIO(), Tty()
    assert run_import(cfg, path, str(f), True, False, False, out, err) == 0  # type: ignore[arg-type]
    assert "imported 2 rows: 1 created" in out.getvalue() and "1 bad row skipped" in out.getvalue()
    assert "\rimporting" in err.getvalue()


def test_cli_file_errors_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAPPORT_DATABASE_URL", raising=False)
    cfg, path = _cfg(tmp_path)
    err = io.StringIO()
    assert run_import(cfg, path, str(tmp_path / "nope.csv"), False, False, False, io.StringIO(), err) == 2  # type: ignore[arg-type]
    assert "no such file" in err.getvalue()
    f = tmp_path / "s.csv"
    f.write_bytes(b"\xff\xfeA\x00")
    f.write_bytes("appointment_id,client_id,start\nA1,c1,2026-12-03 15:00\n".encode("cp1252") + b"\x81\n")
    err = io.StringIO()
    assert run_import(cfg, path, str(f), True, False, False, io.StringIO(), err) == 2  # type: ignore[arg-type]
    assert "line 3: not UTF-8" in err.getvalue() and "nothing imported" in err.getvalue()
