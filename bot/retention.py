"""The records policy: keep for ``records.keep_for`` (default 7 years), then purge; export one client.

What is purged, what is kept and why is in docs/records.md; in short:

- purged once older than ``keep_for``: messages and their outbox rows, ended conversations,
  feedback, done timers, processed-webhook ids, resolved crisis alerts, past appointments (with
  their import bookkeeping, waitlist entries and closed slot offers), delivered or failed
  write-back events;
- the audit log is purged only past ``max(keep_for, 6 years)`` (HIPAA keeps required documentation
  six years, 45 CFR 164.316(b)(2)), and never the latest consent / opt-out record of a client who
  still exists: it is what proves a message was allowed, and what keeps an opted-out person
  opted out;
- never purged automatically: clients (their consent and opt-out state must be honoured for as
  long as we hold their number), open alerts, pending or running work (upcoming appointments,
  pending timers, unsent outbox rows and write-back events), and the purge's own audit entries
  (counts only, no personal data).

Message bodies (and feedback free text) are encrypted at rest by ``storage.crypto``;
``rotate_key`` re-encrypts them with the newest key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel, ConfigDict, field_validator
from sqlalchemy import Table, and_, delete, func, or_, text
from sqlalchemy.engine import Engine as DbEngine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, SQLModel, col, select

from bot.durations import parse_duration
from bot.records import RecordError
from storage import crypto
from storage.tables import (
    Alert,
    Appointment,
    AuditLog,
    Client,
    Conversation,
    Feedback,
    InboundSeen,
    Message,
    Outbox,
    Timer,
)
from storage.writeback_table import ImportItem, SlotOffer, WaitlistEntry, WritebackEvent

AUDIT_MINIMUM_YEARS = 6
CONSENT_ACTIONS = ("consent", "opted_out", "opted_in")
BATCH = 2000
UPCOMING = ("scheduled", "confirmed", "reschedule_requested", "rescheduled")
# Columns that hold client-written or client-addressed text; encrypted when declared EncryptedText.
SENSITIVE_COLUMNS = (("messages", "body"), ("outbox", "body"), ("feedback", "takeaway"), ("feedback", "leave_behind"))
_YEARS = re.compile(r"^\s*(\d+)\s*y\s*$")


def parse_period(v: str) -> tuple[int, timedelta]:
    """``7y`` -> (7 years, 0); ``90d`` -> (0, 90 days). Years are calendar years, not 365 days."""
    m = _YEARS.match(v) if isinstance(v, str) else None
    if m:
        return int(m.group(1)), timedelta(0)
    return 0, parse_duration(v)


def before(now: datetime, period: str) -> datetime:
    """The instant ``period`` before ``now`` (29 February steps back to the 28th)."""
    years, span = parse_period(period)
    if years:
        try:
            return now.replace(year=now.year - years)
        except ValueError:
            return now.replace(year=now.year - years, day=28)
    return now - span


class RecordsConfig(BaseModel):
    """``records:`` in config.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    keep_for: str = "7y"  # <int>y (calendar years) or a duration (<int> s|m|h|d|w)

    @field_validator("keep_for")
    @classmethod
    def _keep_for(cls, v: str) -> str:
        years, span = parse_period(v)
        if not years and span < timedelta(days=30):
            raise ValueError("keep records at least 30 days (a client's history is how a clinician follows up)")
        return v

    def cutoff(self, now: datetime) -> datetime:
        return before(now, self.keep_for)

    def audit_cutoff(self, now: datetime) -> datetime:
        return min(self.cutoff(now), before(now, f"{AUDIT_MINIMUM_YEARS}y"))


# -- purge --------------------------------------------------------------------------------------------


def _delete_where(s: Session, table: Table, pk: Any, cond: ColumnElement[bool], dry_run: bool) -> int:
    """Delete matching rows in batches (bounded transactions on PostgreSQL). Returns how many."""
    if dry_run:
        return int(s.execute(select(func.count()).select_from(table).where(cond)).scalar_one())
    n = 0
    while True:
        ids = [r[0] for r in s.execute(select(pk).where(cond).limit(BATCH))]
        if not ids:
            return n
        s.execute(delete(table).where(pk.in_(ids)))
        s.commit()
        n += len(ids)


def _t(model: type[SQLModel]) -> Table:
    t = model.__table__  # type: ignore[attr-defined]
    assert isinstance(t, Table)
    return t


def purge(db: DbEngine, now: datetime, cfg: RecordsConfig, *, dry_run: bool = False) -> dict[str, int]:
    """Delete what the policy no longer keeps. Returns rows deleted (or that would be) per table."""
    cut = cfg.cutoff(now)
    audit_cut = cfg.audit_cutoff(now)
    counts: dict[str, int] = {}
    with Session(db) as s:
        m, o = _t(Message), _t(Outbox)
        old_messages = select(m.c.id).where(m.c.created_at < cut)
        in_flight = ("pending", "sending")  # not sent yet: the outbox worker still owns these rows
        counts["outbox"] = _delete_where(
            s,
            o,
            o.c.id,
            and_(~o.c.status.in_(in_flight), or_(o.c.message_id.in_(old_messages), o.c.created_at < cut)),
            dry_run,
        )
        unsent = select(o.c.message_id).where(o.c.status.in_(in_flight))
        counts["messages"] = _delete_where(s, m, m.c.id, and_(m.c.created_at < cut, ~m.c.id.in_(unsent)), dry_run)
        c = _t(Conversation)
        counts["conversations"] = _delete_where(
            s,
            c,
            c.c.id,
            and_(c.c.active == False, func.coalesce(c.c.ended_at, c.c.updated_at, c.c.started_at) < cut),  # noqa: E712
            dry_run,
        )
        f = _t(Feedback)
        counts["feedback"] = _delete_where(s, f, f.c.id, f.c.created_at < cut, dry_run)
        t = _t(Timer)
        counts["timers"] = _delete_where(s, t, t.c.id, and_(t.c.done == True, t.c.due_at < cut), dry_run)  # noqa: E712
        i = _t(InboundSeen)
        counts["inbound_seen"] = _delete_where(s, i, i.c.provider_id, i.c.at < cut, dry_run)
        al = _t(Alert)
        counts["alerts"] = _delete_where(
            s,
            al,
            al.c.id,
            and_(al.c.status == "resolved", func.coalesce(al.c.resolved_at, al.c.created_at) < cut),
            dry_run,
        )
        a = _t(Appointment)
        old_appts = and_(a.c.start < cut, ~a.c.status.in_(UPCOMING))
        gone = select(a.c.id).where(old_appts)
        ii = _t(ImportItem)
        counts["import_items"] = _delete_where(s, ii, ii.c.appointment_id, ii.c.appointment_id.in_(gone), dry_run)
        w = _t(WaitlistEntry)
        counts["waitlist"] = _delete_where(
            s, w, w.c.id, and_(w.c.status != "waiting", func.coalesce(w.c.updated_at, w.c.created_at) < cut), dry_run
        )
        so = _t(SlotOffer)
        counts["slot_offers"] = _delete_where(s, so, so.c.id, and_(so.c.status != "open", so.c.start < cut), dry_run)
        counts["appointments"] = _delete_where(
            s,
            a,
            a.c.id,
            and_(old_appts, ~a.c.id.in_(select(t.c.appointment_id).where(t.c.done.is_(False)))),
            dry_run,
        )
        wb = _t(WritebackEvent)
        counts["writeback_events"] = _delete_where(
            s, wb, wb.c.id, and_(wb.c.status != "pending", wb.c.created_at < cut), dry_run
        )
        au = _t(AuditLog)
        keep_consent = (
            select(func.max(au.c.id))
            .where(
                au.c.entity == "client", au.c.action.in_(CONSENT_ACTIONS), au.c.entity_id.in_(select(_t(Client).c.id))
            )
            .group_by(au.c.entity_id)
        )
        counts["audit_log"] = _delete_where(
            s,
            au,
            au.c.id,
            and_(au.c.at < audit_cut, au.c.entity != "records", ~au.c.id.in_(keep_consent)),
            dry_run,
        )
        if not dry_run:
            s.add(
                AuditLog(
                    at=now,
                    actor="system:retention",
                    entity="records",
                    entity_id="purge",
                    action="purged",
                    detail={"cutoff": cut.isoformat(), "audit_cutoff": audit_cut.isoformat(), **counts},
                )
            )
            s.commit()
    return counts


# -- export -------------------------------------------------------------------------------------------


def _json(obj: SQLModel, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in obj.model_dump().items():
        if k in drop:
            continue
        out[k] = v.isoformat() if isinstance(v, datetime) else v
    return out


def export_client(db: DbEngine, client_id: str) -> dict[str, Any]:
    """Everything Rapport holds about one client, as JSON-ready data (a subject-access export)."""
    with Session(db) as s:
        client = s.get(Client, client_id)
        if client is None:
            raise RecordError("id", f"unknown client {client_id!r}")
        appts = list(
            s.exec(select(Appointment).where(Appointment.client_id == client_id).order_by(col(Appointment.start)))
        )
        appt_ids = [a.id for a in appts]
        convs = list(
            s.exec(select(Conversation).where(Conversation.client_id == client_id).order_by(col(Conversation.id)))
        )
        msgs = list(s.exec(select(Message).where(Message.client_id == client_id).order_by(col(Message.id))))
        fb = list(s.exec(select(Feedback).where(Feedback.client_id == client_id).order_by(col(Feedback.id))))
        alerts = list(s.exec(select(Alert).where(Alert.client_id == client_id).order_by(col(Alert.id))))
        audit = list(
            s.exec(
                select(AuditLog)
                .where(
                    or_(
                        and_(col(AuditLog.entity) == "client", col(AuditLog.entity_id) == client_id),
                        and_(col(AuditLog.entity) == "appointment", col(AuditLog.entity_id).in_(appt_ids)),
                        col(AuditLog.actor) == f"client:{client_id}",
                    )
                )
                .order_by(col(AuditLog.id))
            )
        )
        waitlist = list(s.exec(select(WaitlistEntry).where(WaitlistEntry.client_id == client_id)))
        wb = list(
            s.exec(select(WritebackEvent).where(WritebackEvent.client_id == client_id).order_by(col(WritebackEvent.id)))
        )
        return {
            "format": "rapport.client-export/1",
            "client": _json(client),
            "appointments": [_json(a) for a in appts],
            "conversations": [_json(c) for c in convs],
            "messages": [_json(m_) for m_ in msgs],
            "feedback": [_json(f_) for f_ in fb],
            "alerts": [_json(a_) for a_ in alerts],
            "waitlist": [_json(w_) for w_ in waitlist],
            "writeback_events": [_json(w_, drop=("payload",)) for w_ in wb],
            "audit": [_json(e) for e in audit],
        }


# -- key rotation -------------------------------------------------------------------------------------


def encrypted_columns() -> list[tuple[str, str]]:
    """The sensitive columns whose mapped type is EncryptedText (only those may hold ciphertext)."""
    out = []
    for table, column in SENSITIVE_COLUMNS:
        t = SQLModel.metadata.tables.get(table)
        if t is not None and isinstance(t.c[column].type, crypto.EncryptedText):
            out.append((table, column))
    return out


def rotate_key(
    db: DbEngine,
    *,
    columns: list[tuple[str, str]] | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Re-encrypt every stored value with the newest key (and encrypt plaintext rows).

    Works on the stored text directly, so it is independent of the ORM and resumable: a value
    already under the newest key is left alone. Returns how many values changed per column.
    """
    if not crypto.enabled():
        raise crypto.DataKeyError(f"{crypto.ENV_VAR} is not set: there is no key to rotate to")
    columns = encrypted_columns() if columns is None else columns
    if not columns:
        raise crypto.DataKeyError("no column is declared EncryptedText: refusing to write ciphertext")
    done: dict[str, int] = {}
    with db.connect() as conn:
        for table, column in columns:
            n = 0
            last = 0
            while True:
                rows = conn.execute(
                    text(f"SELECT id, {column} FROM {table} WHERE id > :last ORDER BY id LIMIT :n"),
                    {"last": last, "n": BATCH},
                ).all()
                if not rows:
                    break
                last = rows[-1][0]
                updates = [
                    {"id": rid, "v": crypto.encrypt(crypto.decrypt(str(v)))}
                    for rid, v in rows
                    if v is not None and crypto.needs_rotation(str(v))
                ]
                if updates:
                    conn.execute(text(f"UPDATE {table} SET {column} = :v WHERE id = :id"), updates)
                    conn.commit()
                    n += len(updates)
                if progress:
                    progress(f"{table}.{column}", n)
            done[f"{table}.{column}"] = n
    return done


# -- command line ---------------------------------------------------------------------------------------


def run_records(
    db_url: str,
    records: RecordsConfig,
    command: str,
    out: TextIO,
    err: TextIO,
    *,
    client: str | None = None,
    output: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    yes: bool = False,
) -> int:
    """``rapport records purge [--dry-run] | export CLIENT [--output FILE] | rotate-key | delete CLIENT [--yes]``."""
    from storage.db import make_engine
    from storage.migrate import upgrade_url

    upgrade_url(db_url)
    db = make_engine(db_url)
    try:
        crypto.load_from_env()
        if command == "delete":
            return _delete_command(db, out, err, client, yes, now)
        return _records_command(db, records, command, out, err, client, output, dry_run, now)
    except crypto.DataKeyError as e:
        print(f"rapport records {command}: {e}", file=err)
        return 1
    finally:
        db.dispose()


def _delete_command(db: DbEngine, out: TextIO, err: TextIO, client: str | None, yes: bool, now: datetime | None) -> int:
    """Erase one client (bot.erasure). Without ``--yes`` it only says what would go: deletion is final."""
    from bot.erasure import erase_client

    if not client:
        print("rapport records delete: which client?", file=err)
        return 2
    if not yes:
        try:
            held = export_client(db, client)
        except RecordError as e:
            print(f"rapport records delete: {e.message}", file=err)
            return 1
        counts = ", ".join(f"{len(v)} {k}" for k, v in held.items() if isinstance(v, list) and v) or "no other rows"
        print(
            f"client {client!r}: {counts}. Deleting is final (export it first with `rapport records export`): "
            "run again with --yes to delete.",
            file=err,
        )
        return 1
    try:
        done = erase_client(db, client, now or datetime.now(UTC), "cli")
    except RecordError as e:  # unknown, or refused while a crisis alert is open
        print(f"rapport records delete: {e.message}", file=err)
        return 1
    gone = ", ".join(f"{v} {k}" for k, v in done.deleted.items() if v) or "nothing"
    kept = ", ".join(f"{v} {k}" for k, v in done.anonymised.items() if v)
    print(f"deleted client {client!r}: {gone}" + (f"; kept without their identity: {kept}" if kept else ""), file=out)
    return 0


def _records_command(
    db: DbEngine,
    records: RecordsConfig,
    command: str,
    out: TextIO,
    err: TextIO,
    client: str | None,
    output: str | None,
    dry_run: bool,
    now: datetime | None,
) -> int:
    if command == "purge":
        at = now or datetime.now(UTC)
        counts = purge(db, at, records, dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        total = sum(counts.values())
        detail = ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "nothing"
        print(
            f"records older than {records.cutoff(at):%Y-%m-%d} ({records.keep_for}): {verb} {total} rows: {detail}",
            file=out,
        )
        return 0
    if command == "export":
        if not client:
            print("rapport records export: which client?", file=err)
            return 2
        try:
            data = export_client(db, client)
        except RecordError as e:
            print(f"rapport records export: {e.message}", file=err)
            return 1
        doc = json.dumps(data, ensure_ascii=False, indent=2)
        if output:
            Path(output).write_text(doc + "\n", encoding="utf-8")
            print(f"wrote {output}", file=out)
        else:
            print(doc, file=out)
        return 0
    if command == "rotate-key":
        counts = rotate_key(db)
        detail = ", ".join(f"{v} in {k}" for k, v in counts.items())
        print(f"re-encrypted with the newest of {crypto.key_count()} key(s): {detail}", file=out)
        return 0
    print(f"rapport records: unknown command {command!r}", file=err)
    return 2
