"""The batch path writes exactly what the row-by-row path writes (appointments and their
history, reminders, clients, consent and audit entries, the re-import bookkeeping), on SQLite
and PostgreSQL, for a first import and for a re-import that moves, updates and cancels."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.config import parse_config
from bot.imports import import_bytes
from bot.service import Service
from storage.db import make_engine
from storage.migrate import upgrade_url
from storage.tables import Appointment, AuditLog, Client, Timer
from storage.writeback_table import ImportItem
from tests.imports.conftest import CONFIG, NOW
from tests.imports.gen import HEADER, csv_rows

apply_module: Any = importlib.import_module("bot.imports.apply")  # the package exports a function "apply"

FIRST = csv_rows(1_200, clients=130)  # more than two chunks of rows, clients spread across them
LINES = FIRST.splitlines(keepends=True)[1:]


def edited() -> str:
    """Every 7th row moved an hour, every 11th row cancelled, every 13th with another length."""
    out = [HEADER]
    for i, line in enumerate(LINES):
        f = line.rstrip("\n").split(",")
        if i % 7 == 0:
            f[6] = f[6].replace("T09:", "T10:").replace("T10:00", "T11:00") if "T09:" in f[6] else f[6]
        if i % 11 == 0:
            f[8] = "cancelled"
        if i % 13 == 0:
            f[7] = "45"
        out.append(",".join(f) + "\n")
    return "".join(out)


def snapshot(svc: Service) -> dict[str, Any]:
    with Session(svc.db) as s:
        appts = {
            a.id: (
                a.client_id,
                a.start,
                a.minutes,
                a.status,
                a.external_id,
                [(h["status"], h["start"], h["by"]) for h in a.history],
            )
            for a in s.exec(select(Appointment))
        }
        timers = sorted(
            (t.kind, t.appointment_id or "", t.due_at.isoformat(), t.done, t.outcome or "")
            for t in s.exec(select(Timer))
        )
        clients = {c.id: (c.name, c.phone, c.tz, c.consent, c.consent_source) for c in s.exec(select(Client))}
        audit = sorted((a.actor, a.entity, a.entity_id, a.action) for a in s.exec(select(AuditLog)))
        items = {(i.source, i.external_id): (i.appointment_id, i.fingerprint) for i in s.exec(select(ImportItem))}
    return {"appointments": appts, "timers": timers, "clients": clients, "audit": audit, "items": items}


@pytest.fixture
def fresh(db_url: str) -> Iterator[Any]:
    engines = []

    def make() -> Service:
        eng = make_engine(db_url)
        engines.append(eng)
        return Service(parse_config(CONFIG), eng)

    upgrade_url(db_url)
    yield make, db_url
    for e in engines:
        e.dispose()


def run(svc: Service, batch: bool, files: list[str], monkeypatch: pytest.MonkeyPatch) -> list[dict[str, int]]:
    monkeypatch.setattr(apply_module, "BATCH", batch)
    counts = []
    for data in files:
        r = import_bytes(svc, data.encode(), name="feed.csv", now=NOW)
        assert not r.problems
        counts.append(r.counts())
    return counts


SCENARIOS = [
    ("first import", [FIRST]),
    ("re-import that moves, updates and cancels", [FIRST, edited()]),
]


@pytest.mark.parametrize("files", [s[1] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS])
def test_batch_and_row_by_row_write_the_same(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, files: list[str]) -> None:
    results = []
    for batch in (False, True):
        url = f"sqlite:///{tmp_path / f'{batch}.db'}"
        upgrade_url(url)
        eng = make_engine(url)
        svc = Service(parse_config(CONFIG), eng)
        counts = run(svc, batch, files, monkeypatch)
        results.append((counts, snapshot(svc)))
        eng.dispose()
    (row_counts, row_state), (batch_counts, batch_state) = results
    assert batch_counts == row_counts
    for key in row_state:
        assert batch_state[key] == row_state[key], key
    if len(files) == 2:
        assert row_counts[1]["moved"] and row_counts[1]["cancelled"] and row_counts[1]["updated"]


def test_batch_on_both_databases(svc_both: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    counts = run(svc_both, True, [FIRST, edited(), edited()], monkeypatch)
    assert counts[0]["created"] == 1_200
    assert counts[2] == {**dict.fromkeys(counts[2], 0), "unchanged": 1_200}
    state = snapshot(svc_both)
    assert len(state["appointments"]) == 1_200 and len(state["clients"]) == 130
    assert all(ext for _c, _s, _m, _st, ext, _h in state["appointments"].values())


def test_progress_reaches_the_total(svc: Service) -> None:
    seen: list[tuple[str, int, int]] = []
    import_bytes(svc, FIRST.encode(), name="feed.csv", now=NOW, progress=lambda *a: seen.append(a))
    importing = [s for s in seen if s[0] == "importing"]
    assert importing[-1] == ("importing", 1_200, 1_200)
    assert [d for _p, d, _t in importing] == sorted(d for _p, d, _t in importing)
