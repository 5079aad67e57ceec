"""The store: the small set of queries the service needs, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, exists, func, insert, or_, text
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from storage.admin_tables import Takeover
from storage.tables import Alert, Appointment, AuditLog, Client, Conversation, InboundSeen, Message, Outbox, Timer

UPCOMING = ("scheduled", "confirmed", "reschedule_requested", "rescheduled")


# The hot path's statements are built once: building a select and its cache key costs more than
# running it on SQLite. Rows nobody reads back in the same unit (messages, outbox, audit) are written
# with Core inserts on the session's connection, which skip the ORM's per-object bookkeeping, need no
# flush to get their ids and do not autoflush what the unit has pending (so a conversation that starts
# and ends in one message is written once, in its final state).
def table_of(model: Any) -> Table:
    """A SQLModel class's Core table (for statements built once)."""
    return cast(Table, model.__table__)


_INSERT_MESSAGE = insert(table_of(Message))
_INSERT_OUTBOX = insert(table_of(Outbox))
_INSERT_AUDIT = insert(table_of(AuditLog))
# RETURNING, not rowcount: psycopg reports -1 for an INSERT that did nothing.
_SEEN_TABLE = table_of(InboundSeen)
_SEEN = {
    "sqlite": sqlite.insert(_SEEN_TABLE).on_conflict_do_nothing().returning(_SEEN_TABLE.c.at),
    "postgresql": postgresql.insert(_SEEN_TABLE).on_conflict_do_nothing().returning(_SEEN_TABLE.c.at),
}
_CLIENT_BY_PHONE = select(Client).where(Client.phone == bindparam("a"))
_CLIENT_BY_TELEGRAM = select(Client).where(Client.telegram == bindparam("a"))
_ACTIVE_CONVERSATION = (
    select(Conversation)
    .where(Conversation.client_id == bindparam("c"), Conversation.active == True)  # noqa: E712
    .order_by(col(Conversation.id).desc())
    .limit(1)
)
_OPEN_ALERT_BY_CLIENT = (
    select(Alert)
    .where(col(Alert.status).in_(("open", "acked")), Alert.client_id == bindparam("c"))
    .order_by(col(Alert.id).desc())
    .limit(1)
)
# What keeps the scripts quiet for a client, in one round trip: the newest open or acknowledged
# alert's id, and whether a person has taken the conversation over.
_HOLDS = sa_select(
    _OPEN_ALERT_BY_CLIENT.with_only_columns(col(Alert.id)).scalar_subquery(),
    exists().where(col(Takeover.client_id) == bindparam("c")),
)
_NEXT_APPOINTMENT = (
    select(Appointment)
    .where(
        Appointment.client_id == bindparam("c"),
        col(Appointment.status).in_(UPCOMING),
        Appointment.start > bindparam("now"),
    )
    .order_by(col(Appointment.start))
    .limit(1)
)
_PENDING_TIMERS_OF_CLIENT = select(Timer).where(
    Timer.done == False,  # noqa: E712
    Timer.client_id == bindparam("c"),
    col(Timer.kind).in_(bindparam("kinds", expanding=True)),
)


def is_postgres(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


def lock_client(s: Session, client_key: str) -> None:
    """Serialise everything that touches one client (messages, timers) for this transaction.

    PostgreSQL: a transaction-scoped advisory lock, which holds across processes. SQLite: every
    write transaction starts with BEGIN IMMEDIATE (storage.db), so writers are already serialised.
    """
    if is_postgres(s):
        key = zlib.crc32(client_key.encode()) - 2**31
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def try_lock_client(s: Session, client_key: str) -> bool:
    """Like lock_client, but gives up at once when another transaction holds the lock."""
    if is_postgres(s):
        key = zlib.crc32(client_key.encode()) - 2**31
        return bool(s.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar())
    return True


@contextmanager
def job_lock(eng: Engine, name: str) -> Iterator[bool]:
    """Whether this process may run the periodic job ``name`` now: at most one process at a time.

    PostgreSQL: a session advisory lock held for the job's duration (released if the process dies).
    SQLite is one machine's database, served by one process: always yes.
    """
    if eng.dialect.name != "postgresql":
        yield True
        return
    key = zlib.crc32(f"job:{name}".encode()) - 2**31
    with eng.connect() as c:
        got = bool(c.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        c.commit()
        try:
            yield got
        finally:
            if got:
                c.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                c.commit()


def client_by_address(s: Session, channel: str, address: str) -> Client | None:
    q = _CLIENT_BY_TELEGRAM if channel == "telegram" else _CLIENT_BY_PHONE
    return s.exec(q, params={"a": address}).first()


def active_conversation(s: Session, client_id: str) -> Conversation | None:
    return s.exec(_ACTIVE_CONVERSATION, params={"c": client_id}).first()


def mark_seen(s: Session, channel: str, provider_id: str, at: datetime) -> bool:
    """Record a provider id; False when it was already there (the webhook came twice)."""
    stmt = _SEEN[s.get_bind().dialect.name]  # storage.db opens SQLite or PostgreSQL only
    res = s.connection().execute(stmt, {"channel": channel, "provider_id": provider_id, "at": at})
    return res.first() is not None


def add_message(s: Session, **values: Any) -> int:
    """Insert a messages row; its id."""
    res: Any = s.connection().execute(_INSERT_MESSAGE, values)
    return int(res.inserted_primary_key[0])


def add_outbox(s: Session, **values: Any) -> None:
    s.connection().execute(_INSERT_OUTBOX, values)


def open_alert(s: Session, client_id: str | None, address: str | None = None) -> Alert | None:
    if client_id:
        return s.exec(_OPEN_ALERT_BY_CLIENT, params={"c": client_id}).first()
    q = select(Alert).where(col(Alert.status).in_(("open", "acked")))
    q = q.where(Alert.client_id == client_id) if client_id else q.where(Alert.address == address)
    return s.exec(q.order_by(col(Alert.id).desc())).first()


def holds(s: Session, client_id: str) -> tuple[Alert | None, bool]:
    """The client's open (or acknowledged) crisis alert, and whether a person has taken their
    conversation over: the two things that keep the scripts quiet, asked in one statement."""
    alert_id, taken = s.execute(_HOLDS, {"c": client_id}).one()
    return (s.get(Alert, alert_id) if alert_id is not None else None), bool(taken)


def next_appointment(s: Session, client_id: str, now: datetime) -> Appointment | None:
    return s.exec(_NEXT_APPOINTMENT, params={"c": client_id, "now": now}).first()


def last_lapsed_appointment(s: Session, client_id: str, since: datetime) -> Appointment | None:
    """The client's most recent missed or cancelled appointment starting after ``since``."""
    return s.exec(
        select(Appointment)
        .where(
            Appointment.client_id == client_id,
            col(Appointment.status).in_(("missed", "cancelled")),
            Appointment.start > since,
        )
        .order_by(col(Appointment.start).desc())
    ).first()


def clinician_bookings(
    s: Session, clinician_id: str | None, start: datetime, end: datetime
) -> list[tuple[datetime, int]]:
    """(start, minutes) of the clinician's upcoming appointments in [start - 1 day, end)."""
    q = select(Appointment.start, Appointment.minutes).where(
        col(Appointment.status).in_(UPCOMING), Appointment.start < end, Appointment.start > start - timedelta(days=1)
    )
    if clinician_id is not None:
        q = q.where(or_(col(Appointment.clinician_id) == clinician_id, col(Appointment.clinician_id).is_(None)))
    return [(st, m) for st, m in s.exec(q)]


def pending_timers(
    s: Session, *, client_id: str | None = None, appointment_id: str | None = None, kinds: Sequence[str] = ()
) -> list[Timer]:
    if client_id is not None and appointment_id is None and kinds:
        return list(s.exec(_PENDING_TIMERS_OF_CLIENT, params={"c": client_id, "kinds": list(kinds)}))
    q = select(Timer).where(Timer.done == False)  # noqa: E712
    if client_id is not None:
        q = q.where(Timer.client_id == client_id)
    if appointment_id is not None:
        q = q.where(Timer.appointment_id == appointment_id)
    if kinds:
        q = q.where(col(Timer.kind).in_(kinds))
    return list(s.exec(q))


def next_due_timer(s: Session, now: datetime, exclude: set[int] | None = None) -> Timer | None:
    """The earliest pending timer due at or before ``now``, claimed for this transaction.

    Cost is proportional to what is due (an index on (done, due_at)); on PostgreSQL the row is
    locked with SKIP LOCKED so several processes each take different timers.
    """
    q = (
        select(Timer)
        .where(Timer.done == False, Timer.due_at <= now)  # noqa: E712
        .order_by(col(Timer.due_at), col(Timer.id))
        .limit(1)
    )
    if exclude:
        q = q.where(col(Timer.id).not_in(exclude))
    if is_postgres(s):
        q = q.with_for_update(skip_locked=True)
    return s.exec(q).first()


def earliest_pending_due(s: Session) -> datetime | None:
    return s.exec(select(func.min(Timer.due_at)).where(Timer.done == False)).first()  # noqa: E712


def count_automated(s: Session, client_id: str, since: datetime) -> int:
    return s.exec(
        select(func.count())
        .select_from(Message)
        .where(
            Message.client_id == client_id,
            Message.automated == True,  # noqa: E712
            Message.direction == "out",
            Message.status != "held",
            Message.created_at >= since,  # type: ignore[operator]
        )
    ).one()


def claim_outbox(s: Session, now: datetime, limit: int = 50) -> list[Outbox]:
    q = (
        select(Outbox)
        .where(
            Outbox.status == "pending", or_(col(Outbox.next_attempt_at).is_(None), col(Outbox.next_attempt_at) <= now)
        )
        .order_by(col(Outbox.priority).desc(), col(Outbox.id))
        .limit(limit)
    )
    if is_postgres(s):
        q = q.with_for_update(skip_locked=True)
    return list(s.exec(q))


def audit(s: Session, at: datetime, actor: str, entity: str, entity_id: str, action: str, **detail: object) -> None:
    s.connection().execute(
        _INSERT_AUDIT,
        {"at": at, "actor": actor, "entity": entity, "entity_id": str(entity_id), "action": action, "detail": detail},
    )
