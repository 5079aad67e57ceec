"""The batch path of applying an import: WRITE_CHUNK rows per transaction instead of one.

The row-by-row path (``Service.upsert_client`` / ``upsert_appointment`` per row) pays a commit,
a lock and several lookups per row: about 320 rows/s on SQLite. Here each chunk is one
transaction: the chunk's clients and appointments are read with one ``IN`` query each, the
client locks are taken once per client in a stable order (no deadlock with a concurrent
webhook), new rows are flushed together (SQLAlchemy sends same-table INSERTs as one
multi-row statement), and the re-import bookkeeping commits with the rows it describes, so an
interrupted import resumes where it stopped.

What happens to each appointment is the Service's own code: ``Service._status`` (history,
audit, write-back, waitlist) and ``Service._schedule_reminders``; only the loading and the
transaction boundaries differ. Three pieces mirror the Service instead of calling it, to save a
query per row: the client fields and consent bookkeeping (``Service.upsert_client``), the
"scheduled" status of a new appointment while no freed slot is on offer (``Service._status``
minus the waitlist's lookup of offers), and the first reminders of a new appointment
(``Service._schedule_reminders`` minus its lookup of old timers); each falls back to the
Service's own call when the chunk-wide check says the lookup could find something.
tests/imports/test_batch.py keeps them in step: it compares everything both paths write.
Cancellations stay row by row through ``Service.cancel_appointment`` (they also end the
conversation about that appointment, and a feed cancels few sessions at a time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from bot import writeback
from bot.records import ClientIn, validate
from bot.service import Service
from bot.unit import Unit
from storage import store
from storage.tables import Appointment, Client, Timer
from storage.writeback_table import SlotOffer


def lock_clients(u: Unit, client_ids: set[str]) -> None:
    # one statement, in lock-key order like an inbound batch's: neither waits on the other in a cycle
    store.lock_clients(u.s, client_ids)


def upsert_clients(svc: Service, records: Sequence[dict[str, Any]], now: datetime, actor: str) -> list[bool]:
    """Create or update the clients in one transaction; returns, per record, whether it was new."""
    created: list[bool] = []
    with svc.unit(now) as u:
        lock_clients(u, {r["id"] for r in records})
        ids = [r["id"] for r in records]
        have = {c.id: c for c in u.s.exec(select(Client).where(col(Client.id).in_(ids)))}
        with u.s.no_autoflush:
            for data in records:
                rec: ClientIn = validate(ClientIn, data)
                c = have.get(rec.id)
                is_new = c is None
                if c is None:
                    c = Client(id=rec.id, created_at=now)
                before_consent = None if is_new else c.consent
                for k in ("name", "phone", "telegram", "lang", "tz", "country", "channel", "consent"):
                    setattr(c, k, getattr(rec, k))
                if is_new or before_consent != rec.consent:
                    c.consent_source = "practice" if rec.consent else "practice_withdrawn"
                    c.consent_at = now
                    store.audit(
                        u.s, now, actor, "client", c.id, "consent", consent=rec.consent, source=c.consent_source
                    )
                u.s.add(c)
                store.audit(u.s, now, actor, "client", c.id, "created" if is_new else "updated")
                created.append(is_new)
    return created


def upsert_appointments(
    svc: Service,
    rows: Sequence[Any],
    now: datetime,
    actor: str,
    remember: Callable[..., None],
) -> None:
    """Create, move or update the rows' appointments in one transaction (``rows``: ``Row``s)."""
    with svc.unit(now) as u:
        s = u.s
        client_ids = {r.client["id"] for r in rows}
        lock_clients(u, client_ids)
        clients = {c.id: c for c in s.exec(select(Client).where(col(Client.id).in_(client_ids)))}
        ids = [r.appointment_id for r in rows]
        appts = {a.id: a for a in s.exec(select(Appointment).where(col(Appointment.id).in_(ids)))}
        new: list[tuple[Appointment, Client]] = []
        offers_open = _slots_on_offer(s)
        with s.no_autoflush:
            for r in rows:
                client = clients[r.client["id"]]
                a = appts.get(r.appointment_id)
                clin = svc.cfg.clinician(r.clinician)
                if a is None:
                    a = Appointment(
                        id=r.appointment_id,
                        client_id=client.id,
                        clinician_id=r.clinician,
                        start=r.start,
                        minutes=r.minutes or (clin.session_minutes if clin else 50),
                        status="scheduled",
                        history=[],
                        external_id=r.external_id,
                    )
                    if offers_open:
                        svc._status(u, a, client, "scheduled", actor)
                    else:
                        booked(svc, u, a, client, actor)
                    s.add(a)
                    new.append((a, client))
                    continue
                a.clinician_id = r.clinician if r.clinician is not None else a.clinician_id
                a.minutes = r.minutes or a.minutes
                if a.start != r.start:
                    a.start = r.start
                    a.confirmed = False
                    svc._status(u, a, client, "rescheduled", actor)
                    svc._schedule_reminders(u, a, client)
                s.add(a)
        s.flush()
        with s.no_autoflush:
            stale = _with_pending_timers(s, [a.id for a, _c in new])
            for a, client in new:
                if a.id in stale:  # an id reused after a purge: drop what it left, as the service does
                    svc._schedule_reminders(u, a, client)
                else:
                    first_reminders(svc, u, a, client)
        remember(s, stamped={a.id for a, _c in new})  # created with their external id already set


def _slots_on_offer(s: Session) -> bool:
    return s.exec(select(SlotOffer.id).where(SlotOffer.status == "open").limit(1)).first() is not None


def booked(svc: Service, u: Unit, a: Appointment, client: Client, actor: str) -> None:
    """``Service._status(..., "scheduled")`` for a new appointment while no freed slot is on offer:
    the same history entry, audit entry, note and write-back hook, without the waitlist's
    per-appointment lookup of offers this booking would take (there are none)."""
    a.status = "scheduled"
    a.history = [{"at": u.now.isoformat(), "status": "scheduled", "start": a.start.isoformat(), "by": actor}]
    u.s.add(a)
    store.audit(
        u.s, u.now, actor, "appointment", a.id, "status", previous=None, status="scheduled", start=a.start.isoformat()
    )
    u.note("appointment", client.tz, id=a.id, status="scheduled", start=a.start)
    writeback.on_status(svc.cfg.writeback, u, a, "scheduled", actor, None)


def _with_pending_timers(s: Session, appointment_ids: list[str]) -> set[str]:
    if not appointment_ids:
        return set()
    q = select(Timer.appointment_id).where(Timer.done == False, col(Timer.appointment_id).in_(appointment_ids))  # noqa: E712
    return {str(x) for x in s.exec(q)}


def first_reminders(svc: Service, u: Unit, a: Appointment, client: Client) -> None:
    """``Service._schedule_reminders`` for an appointment with no timers yet: the same timers,
    without its per-appointment lookup of old ones to drop (one query per chunk instead)."""
    if a.start <= u.now:
        return
    dues = sorted(((a.start - off, off) for off in svc.cfg.reminders.offsets), key=lambda x: x[0])
    past = [d for d in dues if d[0] <= u.now]
    for due, off in dues:
        if due > u.now:
            svc._timer(u, "reminder", client.id, a.id, due, start=a.start.isoformat(), offset=str(off))
    if past:
        svc._timer(u, "reminder", client.id, a.id, u.now, start=a.start.isoformat(), offset=str(past[-1][1]))
