"""Planning and applying an import: validate every row first, then act through the Service.

All or nothing: every row is validated (fields, times, clients, clinicians, ids, conflicts with
what the database holds) before anything is written; one bad row stops the import unless
``skip_bad``. Applying goes through ``Service.upsert_client`` / ``upsert_appointment`` /
``cancel_appointment`` (actor ``import``), so reminders are scheduled and moved exactly as for the
API. Re-importing the same source is idempotent: rows whose fingerprint has not changed since the
last import are left alone, so a nightly feed only moves and cancels what changed there.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, update
from sqlmodel import Session, col, select

from bot.config import Config
from bot.imports import batch
from bot.imports.recurrence import Window, series_uid
from bot.imports.rows import CLIENT_FIELDS, Problem, RawRow, Row, RowError, build_row
from bot.records import ClientIn, RecordError, validate
from bot.service import Service
from storage import store
from storage.tables import Appointment, Client
from storage.writeback_table import ImportItem

ACTOR = "import"
SAME = "same as the database"  # an unchanged appointment whose row is new to this source, or whose client changed
CHUNK = 500
# Rows per write transaction. Small enough that a chunk holds SQLite's single write lock for a
# fraction of a second, so a crisis reply arriving mid-import still goes out within its 1 s budget.
WRITE_CHUNK = 200
BATCH = True  # WRITE_CHUNK rows per transaction; bench/import_bench.py --per-row turns it off to compare
Progress = Callable[[str, int, int], None]
T = TypeVar("T")


@dataclass
class Action:
    kind: str  # create | move | update | cancel | unchanged | skip
    row: Row
    note: str = ""


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)  # to upsert: id -> full record
    new_clients: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    prune: list[str] = field(default_factory=list)  # appointment ids to cancel
    vanished: list[str] = field(default_factory=list)  # sessions a recurring event no longer has
    prune_blocked: str | None = None


@dataclass
class ImportReport:
    source: str
    format: str
    total: int = 0
    created: int = 0
    moved: int = 0
    updated: int = 0
    cancelled: int = 0
    unchanged: int = 0
    skipped: int = 0
    pruned: int = 0
    clients_created: int = 0
    clients_updated: int = 0
    problems: list[Problem] = field(default_factory=list)
    ignored: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    applied: bool = False
    aborted: bool = False  # bad rows and no skip_bad: nothing was written
    dry_run: bool = False
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        keys = ("created", "moved", "updated", "cancelled", "unchanged", "skipped", "pruned")
        return {k: getattr(self, k) for k in keys}


def _chunks(items: Sequence[T], n: int = CHUNK) -> Iterable[Sequence[T]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _client_record(c: Client) -> dict[str, Any]:
    return {"id": c.id, **{k: getattr(c, k) for k in CLIENT_FIELDS}}


def _normalized(data: dict[str, Any]) -> dict[str, Any]:
    rec: ClientIn = validate(ClientIn, data)
    return rec.model_dump()


def plan(
    svc: Service,
    raws: list[RawRow],
    source: str,
    now: datetime,
    *,
    prune: bool,
    progress: Progress | None = None,
    problems: Iterable[Problem] = (),
    series: Collection[str] = (),
    window: Window | None = None,
) -> Plan:
    cfg: Config = svc.cfg
    p = Plan(problems=list(problems))
    rows: list[Row] = []
    seen_ext: dict[str, int] = {}
    unknown_ids = any(pr.external_id is None for pr in p.problems)
    for pr in p.problems:
        if pr.external_id:
            seen_ext.setdefault(pr.external_id, pr.line)
    for i, raw in enumerate(raws, start=1):
        try:
            row = build_row(raw, cfg)
        except RowError as e:
            ext = raw.values.get("appointment_id")
            ext_s = str(ext).strip() if ext is not None and str(ext).strip() else None
            p.problems.append(Problem(raw.line, e.field, e.message, ext_s))
            if ext_s:
                seen_ext.setdefault(ext_s, raw.line)
            else:
                unknown_ids = True
            continue
        if row.external_id in seen_ext:
            p.problems.append(
                Problem(row.line, "appointment_id", f"{row.external_id!r} is also on line {seen_ext[row.external_id]}")
            )
            continue
        seen_ext[row.external_id] = row.line
        rows.append(row)
        if progress and i % 1000 == 0:
            progress("checking", i, len(raws))

    with Session(svc.db) as s:
        client_ids = sorted({r.client["id"] for r in rows if r.client.get("id")})
        db_clients: dict[str, Client] = {}
        for part in _chunks(client_ids):
            for c in s.exec(select(Client).where(col(Client.id).in_(part))):
                db_clients[c.id] = c
        appt_ids = sorted({r.appointment_id for r in rows})
        db_appts: dict[str, Appointment] = {}
        for part in _chunks(appt_ids):
            for a in s.exec(select(Appointment).where(col(Appointment.id).in_(part))):
                db_appts[a.id] = a
        items: dict[str, ImportItem] = {
            it.external_id: it for it in s.exec(select(ImportItem).where(ImportItem.source == source))
        }

        given: dict[str, tuple[int, dict[str, Any]]] = {}
        for row in rows:
            problem = _check_row(cfg, row, given, db_clients, db_appts, items, p)
            if problem is not None:
                p.problems.append(problem)

        if series and window is not None:
            p.vanished = _vanished(s, items, seen_ext, set(series), now, window)
        if prune:
            if unknown_ids:
                p.prune_blocked = "a row without an appointment id: cannot tell what left the feed, nothing pruned"
            else:
                # A series with a bad rule is reported under its UID: its sessions are not "gone".
                gone = [
                    it
                    for ext, it in items.items()
                    if ext not in seen_ext and series_uid(ext) not in seen_ext and it.fingerprint != "pruned"
                ]
                vanished = set(p.vanished)
                for part in _chunks([it.appointment_id for it in gone]):
                    for a in s.exec(select(Appointment).where(col(Appointment.id).in_(part))):
                        if a.status in store.UPCOMING and a.start > now and a.id not in vanished:
                            p.prune.append(a.id)
    bad_lines = {pr.line for pr in p.problems}
    p.actions = [a for a in p.actions if a.row.line not in bad_lines]
    wanted = {a.row.client["id"] for a in p.actions if a.kind in ("create", "move", "update") or a.note == SAME}
    p.clients = {cid: rec for cid, rec in p.clients.items() if cid in wanted}
    p.new_clients &= set(p.clients)
    p.problems.sort(key=lambda pr: pr.line)
    return p


def _vanished(
    s: Session, items: dict[str, ImportItem], seen: dict[str, int], series: set[str], now: datetime, window: Window
) -> list[str]:
    """Sessions imported from a recurring event that is still in the feed but no longer has them
    (the rule ended earlier, an EXDATE was added): cancelled without ``--prune``, because the
    series being there says what it holds. Only upcoming sessions inside the window: one beyond
    it may simply not be expanded this time. An event that became recurring drops its old
    single appointment the same way."""
    gone = [
        it.appointment_id
        for ext, it in items.items()
        if ext not in seen and it.fingerprint != "pruned" and (ext in series or series_uid(ext) in series)
    ]
    out: list[str] = []
    for part in _chunks(gone):
        for a in s.exec(select(Appointment).where(col(Appointment.id).in_(part))):
            if a.status in store.UPCOMING and now < a.start < window.end:
                out.append(a.id)
    return out


def _check_row(
    cfg: Config,
    row: Row,
    given: dict[str, tuple[int, dict[str, Any]]],
    db_clients: dict[str, Client],
    db_appts: dict[str, Appointment],
    items: dict[str, ImportItem],
    p: Plan,
) -> Problem | None:
    cid = row.client.get("id")
    fields = {k: v for k, v in row.client.items() if k != "id"}
    if cid:
        first = given.get(cid)
        if first is not None:
            for k, v in fields.items():
                if k in first[1] and first[1][k] != v:
                    return Problem(row.line, k, f"client {cid!r} has {k} {first[1][k]!r} on line {first[0]}")
            first[1].update({k: v for k, v in fields.items() if k not in first[1]})
        else:
            given[cid] = (row.line, dict(fields))
    a = db_appts.get(row.appointment_id)
    item = items.get(row.external_id)
    if a is not None and cid and a.client_id != cid:
        return Problem(row.line, "client_id", f"appointment {row.appointment_id!r} belongs to client {a.client_id!r}")
    if item is not None and item.fingerprint == row.fingerprint and a is not None:
        p.actions.append(Action("unchanged", row))
        return None
    if row.cancelled:
        if a is None:
            p.actions.append(Action("skip", row, "cancelled, and never imported"))
        elif a.status == "cancelled":
            p.actions.append(Action("unchanged", row))
        else:
            p.actions.append(Action("cancel", row))
        return None
    assert cid and row.start is not None
    existing = db_clients.get(cid)
    merged = {**(_client_record(existing) if existing else {"id": cid}), **given[cid][1]}
    try:
        normalized = _normalized(merged)
    except RecordError as e:
        return Problem(row.line, e.field, e.message)
    if existing is None:
        p.new_clients.add(cid)
        p.clients[cid] = normalized
    elif normalized != _normalized(_client_record(existing)):
        p.clients[cid] = normalized
    if a is None:
        p.actions.append(Action("create", row))
    elif a.start != row.start:
        p.actions.append(Action("move", row))
    elif (row.minutes is not None and row.minutes != a.minutes) or (
        row.clinician is not None and row.clinician != a.clinician_id
    ):
        p.actions.append(Action("update", row))
    else:
        p.actions.append(Action("unchanged", row, SAME))
    return None


def apply(
    svc: Service, p: Plan, source: str, now: datetime, report: ImportReport, progress: Progress | None = None
) -> None:
    """Write the plan through the service, WRITE_CHUNK rows per transaction (``bot.imports.batch``), or
    one row per transaction when ``BATCH`` is off. Either way the bookkeeping that makes
    re-imports idempotent is written with the rows, so an interrupted import resumes."""
    started = time.monotonic()
    clients = list(p.clients.items())
    if BATCH:
        for part in _chunks(clients, WRITE_CHUNK):
            for _pair, new in zip(part, batch.upsert_clients(svc, [r for _c, r in part], now, ACTOR), strict=True):
                _count_client(report, new)
    else:
        for cid, rec in clients:
            svc.upsert_client(rec, now, ACTOR)
            _count_client(report, cid in p.new_clients)
    total = len(p.actions)
    done = 0
    for acts in _chunks(p.actions, WRITE_CHUNK):
        writes = [a.row for a in acts if a.kind in ("create", "move", "update")]
        same = [a.row for a in acts if a.kind == "unchanged" and a.note == SAME]
        cancels = [a.row for a in acts if a.kind == "cancel"]
        if BATCH:
            if writes or same:
                # The bookkeeping commits with the rows it describes.
                remember = functools.partial(_remember_in, source=source, rows=writes + same, now=now)
                batch.upsert_appointments(svc, writes, now, ACTOR, remember)
        else:
            for row in writes:
                _upsert_one(svc, row, now)
            _remember(svc, source, writes + same, now)
        for row in cancels:
            svc.cancel_appointment(row.appointment_id, now, ACTOR)
        _remember(svc, source, cancels, now)
        for act in acts:
            setattr(report, _COUNTER[act.kind], getattr(report, _COUNTER[act.kind]) + 1)
        done += len(acts)
        if progress:
            progress("importing", done, total)
    for appt_id in p.vanished:
        svc.cancel_appointment(appt_id, now, ACTOR)
        report.cancelled += 1
    for appt_id in p.prune:
        svc.cancel_appointment(appt_id, now, ACTOR)
        report.pruned += 1
    if p.prune or p.vanished:
        _mark_pruned(svc, source, p.prune + p.vanished)
    report.seconds = time.monotonic() - started


def _count_client(report: ImportReport, new: bool) -> None:
    if new:
        report.clients_created += 1
    else:
        report.clients_updated += 1


def _upsert_one(svc: Service, row: Row, now: datetime) -> None:
    data: dict[str, Any] = {"id": row.appointment_id, "client": row.client["id"], "start": row.start}
    if row.clinician is not None:
        data["clinician"] = row.clinician
    if row.minutes is not None:
        data["minutes"] = row.minutes
    svc.upsert_appointment(data, now, ACTOR)


_COUNTER = {
    "create": "created",
    "move": "moved",
    "update": "updated",
    "cancel": "cancelled",
    "unchanged": "unchanged",
    "skip": "skipped",
}


def count_plan(p: Plan, report: ImportReport) -> None:
    """A dry run's report: what applying would do."""
    for act in p.actions:
        setattr(report, _COUNTER[act.kind], getattr(report, _COUNTER[act.kind]) + 1)
    report.pruned = len(p.prune)
    report.cancelled += len(p.vanished)
    report.clients_created = len(p.new_clients)
    report.clients_updated = len(p.clients) - len(p.new_clients)


def _remember(svc: Service, source: str, rows: list[Row], now: datetime) -> None:
    if rows:
        with svc.unit(now) as u:
            _remember_in(u.s, source=source, rows=rows, now=now)


def _remember_in(s: Session, *, source: str, rows: list[Row], now: datetime, stamped: Collection[str] = ()) -> None:
    """What each row said, so the next import of this source skips what has not changed."""
    if rows:
        exts = [r.external_id for r in rows]
        have = {
            it.external_id: it
            for it in s.exec(
                select(ImportItem).where(ImportItem.source == source, col(ImportItem.external_id).in_(exts))
            )
        }
        for r in rows:
            it = have.get(r.external_id)
            if it is None:
                s.add(
                    ImportItem(
                        source=source,
                        external_id=r.external_id,
                        appointment_id=r.appointment_id,
                        fingerprint=r.fingerprint,
                        last_seen_at=now,
                    )
                )
            else:
                it.fingerprint = r.fingerprint
                it.appointment_id = r.appointment_id
                it.last_seen_at = now
                s.add(it)
        rows = [r for r in rows if r.appointment_id not in stamped]
        if not rows:
            return
        # One statement, many parameter sets: a single round trip however many rows.
        table: Any = Appointment.__table__  # type: ignore[attr-defined]
        stamp = (
            update(table)
            .where(table.c.id == bindparam("aid"), table.c.external_id.is_(None))
            .values(external_id=bindparam("ext"))
        )
        s.flush()
        s.connection().execute(stamp, [{"aid": r.appointment_id, "ext": r.external_id} for r in rows])


def _mark_pruned(svc: Service, source: str, appointment_ids: list[str]) -> None:
    with Session(svc.db) as s:
        for part in _chunks(appointment_ids):
            s.execute(
                update(ImportItem)
                .where(col(ImportItem.source) == source, col(ImportItem.appointment_id).in_(part))
                .values(fingerprint="pruned")
            )
        s.commit()
