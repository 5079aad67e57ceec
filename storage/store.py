"""The store: the small set of queries the service needs, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    String,
    Table,
    any_,
    bindparam,
    event,
    exists,
    func,
    insert,
    literal_column,
    or_,
    text,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import aliased, class_mapper, make_transient_to_detached
from sqlmodel import Session, col, select

from storage.admin_tables import Takeover
from storage.db import without_nul
from storage.hot import Hot
from storage.tables import Alert, Appointment, AuditLog, Client, Conversation, InboundSeen, Message, Outbox, Timer

UPCOMING = ("scheduled", "confirmed", "reschedule_requested", "rescheduled")


def _one_of(column: Any, values: Sequence[str]) -> Any:
    """``column IN ('a', 'b')`` with the constants in the SQL text: an IN over bound values is
    re-rendered at every execution (SQLAlchemy's "expanding" parameters), which cost the inbound
    path's reads a tenth of their time. Only for the fixed status names below."""
    assert all(v.replace("_", "").isalpha() for v in values)
    return column.in_([literal_column(f"'{v}'") for v in values])


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
_INSERT_CONVERSATION = insert(table_of(Conversation))
_CONVERSATION_COLUMNS = tuple(c.name for c in table_of(Conversation).c if c.name != "id")
# RETURNING, not rowcount: psycopg reports -1 for an INSERT that did nothing.
_SEEN_TABLE = table_of(InboundSeen)
_SEEN = {
    name: ins(_SEEN_TABLE).on_conflict_do_nothing().returning(_SEEN_TABLE.c.channel, _SEEN_TABLE.c.provider_id)
    for name, ins in (("sqlite", sqlite.insert), ("postgresql", postgresql.insert))
}
_CLIENT_BY_PHONE = select(Client).where(Client.phone == bindparam("a"))
_CLIENT_BY_TELEGRAM = select(Client).where(Client.telegram == bindparam("a"))
# The per-client lookups, each built once for a client id: a bound parameter for the lookup on its
# own, the client row's id inside the one-statement context below. ``c`` is a model, an alias of
# one, or a table's columns (``table.c``); ``what`` is what to select (default: the row itself).
def _active_conversation_of(c: Any, client_id: Any, *what: Any) -> Any:
    q = sa_select(*(what or (c,)))
    return q.where(c.client_id == client_id, c.active == True).order_by(c.id.desc()).limit(1)  # noqa: E712


def _open_alert_of(a: Any, client_id: Any, *what: Any) -> Any:
    open_ = _one_of(a.status, ("open", "acked"))
    return sa_select(*(what or (a,))).where(open_, a.client_id == client_id).order_by(a.id.desc()).limit(1)


def _next_appointment_of(a: Any, client_id: Any, *what: Any) -> Any:
    return (
        sa_select(*(what or (a,)))
        .where(a.client_id == client_id, _one_of(a.status, UPCOMING), a.start > bindparam("now"))
        .order_by(a.start)
        .limit(1)
    )


_ACTIVE_CONVERSATION = _active_conversation_of(Conversation, bindparam("c"))
_OPEN_ALERT_BY_CLIENT = _open_alert_of(Alert, bindparam("c"))
_NEXT_APPOINTMENT = _next_appointment_of(Appointment, bindparam("c"))
# An inbound message's context in one round trip: the client, their active conversation, their
# next upcoming appointment, their open alert's id and whether a person has taken over — the
# lookups above, correlated to the client row (aliases, so the subqueries do not meet the joins).
_C2, _A2, _AL2 = aliased(Conversation), aliased(Appointment), aliased(Alert)
_CONTEXT = (
    sa_select(
        Client,
        Conversation,
        Appointment,
        _open_alert_of(_AL2, Client.id, _AL2.id).scalar_subquery(),
        exists().where(col(Takeover.client_id) == Client.id),
    )
    .select_from(Client)
    .outerjoin(
        Conversation,
        col(Conversation.id)
        == _active_conversation_of(_C2, Client.id, _C2.id).scalar_subquery(),
    )
    .outerjoin(
        Appointment,
        col(Appointment.id) == _next_appointment_of(_A2, Client.id, _A2.id).scalar_subquery(),
    )
)
_CONTEXT_BY = {
    "phone": _CONTEXT.where(col(Client.phone) == bindparam("a")),
    "telegram": _CONTEXT.where(col(Client.telegram) == bindparam("a")),
    # after the client's lock on PostgreSQL: what another process committed meanwhile wins
    "id": _CONTEXT.where(col(Client.id) == bindparam("a")).execution_options(populate_existing=True),
}
_CT, _VT, _AT = table_of(Client), table_of(Conversation), table_of(Appointment)


def _address_column(channel: str) -> str:
    """The client column an address of ``channel`` is matched against."""
    return "telegram" if channel == "telegram" else "phone"


# The smallest id when two clients share an address, so the single and the batched lookups agree.
_CLIENT_ID_BY = {
    ch: Hot(sa_select(_CT.c.id).where(_CT.c[ch] == bindparam("a")).order_by(_CT.c.id).limit(1), ("a",))
    for ch in ("phone", "telegram")
}
# PostgreSQL only (an inbound batch, Service._prepare_batch): the ids of many addresses at once.
_CLIENT_IDS_BY = {
    ch: Hot(
        sa_select(_CT.c[ch], _CT.c.id)
        .where(_CT.c[ch] == any_(bindparam("as", type_=ARRAY(String))))
        .order_by(_CT.c.id.desc()),
        ("as",),
    )
    for ch in ("phone", "telegram")
}


@dataclass
class InboundContext:
    client: Client
    conversation: Conversation | None  # the active one
    appointment: Appointment | None  # the next upcoming one
    alert_id: int | None  # the newest open or acknowledged alert
    taken_over: bool


_PENDING_TIMERS_OF_CLIENT = select(Timer).where(
    Timer.done == False,  # noqa: E712
    Timer.client_id == bindparam("c"),
    col(Timer.kind).in_(bindparam("kinds", expanding=True)),
)


_LOCK = Hot(sa_select(func.pg_advisory_xact_lock(bindparam("k", type_=BigInteger))), ("k",))
# Many locks in one round trip, taken in the array's order: an ordered function scan, and since
# PostgreSQL 9.6 a volatile function in the select list runs after the ORDER BY, in its order.
_LOCK_MANY = Hot(
    text("SELECT pg_advisory_xact_lock(t.k) FROM unnest(:ks) WITH ORDINALITY AS t(k, n) ORDER BY t.n")
    .bindparams(bindparam("ks", type_=ARRAY(BigInteger)))
    .columns(literal_column("pg_advisory_xact_lock")),
    ("ks",),
)


def is_postgres(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


def lock_key(client_key: str) -> int:
    """The advisory lock that stands for a client (or an address with no client yet)."""
    return zlib.crc32(client_key.encode()) - 2**31


def lock_client(s: Session, client_key: str) -> None:
    """Serialise everything that touches one client (messages, timers) for this transaction.

    PostgreSQL: a transaction-scoped advisory lock, which holds across processes. SQLite: every
    write transaction starts with BEGIN IMMEDIATE (storage.db), so writers are already serialised.
    """
    if is_postgres(s):
        # on the cursor (storage.hot): for every inbound message not in a batch
        _LOCK.rows(s.connection(), {"k": lock_key(client_key)})


def lock_clients(s: Session, client_keys: Iterable[str]) -> set[int]:
    """:func:`lock_client` for several clients in one statement, in the order of their lock keys:
    two transactions that lock this way never wait on each other in a cycle, whatever order their
    callers listed the clients in. Returns the keys now held (taking one again is harmless)."""
    keys = sorted({lock_key(k) for k in client_keys})
    if keys and is_postgres(s):
        _LOCK_MANY.rows(s.connection(), {"ks": keys})
    return set(keys)


def try_lock_client(s: Session, client_key: str) -> bool:
    """Like lock_client, but gives up at once when another transaction holds the lock."""
    if is_postgres(s):
        key = lock_key(client_key)
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
    return s.scalars(_ACTIVE_CONVERSATION, {"c": client_id}).first()


# The same statement over plain columns, run on the cursor (storage.hot): the client's, the
# conversation's and the appointment's columns in table order, then the alert id and the takeover.
_C3, _A3, _AL3 = _VT.alias(), _AT.alias(), table_of(Alert).alias()
_CONTEXT_COLUMNS = (
    sa_select(
        *_CT.c,
        *_VT.c,
        *_AT.c,
        _open_alert_of(_AL3.c, _CT.c.id, _AL3.c.id).scalar_subquery(),
        exists().where(table_of(Takeover).c.client_id == _CT.c.id),
    )
    .select_from(_CT)
    .outerjoin(_VT, _VT.c.id == _active_conversation_of(_C3.c, _CT.c.id, _C3.c.id).scalar_subquery())
    .outerjoin(_AT, _AT.c.id == _next_appointment_of(_A3.c, _CT.c.id, _A3.c.id).scalar_subquery())
)
_CONTEXT_HOT = {
    by: Hot(_CONTEXT_COLUMNS.where(_CT.c[by] == bindparam("a")), ("a", "now")) for by in ("phone", "telegram", "id")
}
_ENTITIES = tuple(
    (class_mapper(cls), tuple(c.key for c in table_of(cls).c)) for cls in (Client, Conversation, Appointment)
)
_ENTITY_COLUMNS = sum(len(names) for _, names in _ENTITIES)  # then the alert id and the takeover
_APPOINTMENT_START = len(_CT.c) + len(_VT.c) + list(_AT.c.keys()).index("start")
# PostgreSQL, an inbound batch: every sender's row of the statement at once (after their locks).
_CONTEXTS_HOT = Hot(
    _CONTEXT_COLUMNS.where(_CT.c.id == any_(bindparam("ids", type_=ARRAY(String)))), ("ids", "now")
)


def _attached(s: Session, row: tuple[Any, ...]) -> list[Any] | None:
    """The row's client, conversation and appointment as the session's persistent objects, as if
    the ORM had loaded them; None when one of them is in the session already (the ORM then decides
    whose values win, as it does for any query)."""
    out: list[Any] = []
    i = 0
    made = []
    for mapper, names in _ENTITIES:
        values = row[i : i + len(names)]
        i += len(names)
        if values[0] is None:  # no conversation / no appointment (an outer join's empty side)
            out.append(None)
            continue
        if mapper.identity_key_from_primary_key((values[0],)) in s.identity_map:
            return None
        obj = mapper.class_manager.new_instance()
        obj.__dict__.update(zip(names, values, strict=True))
        made.append(obj)
        out.append(obj)
    for obj in made:
        make_transient_to_detached(obj)  # committed state = these values: later changes are tracked
        s.add(obj)
    return out


def _context_of(s: Session, row: tuple[Any, ...]) -> InboundContext | None:
    """A context row (_CONTEXT_COLUMNS) as an InboundContext of the session's objects (_attached)."""
    objs = _attached(s, row)
    if objs is None:
        return None
    return InboundContext(objs[0], objs[1], objs[2], row[_ENTITY_COLUMNS], bool(row[_ENTITY_COLUMNS + 1]))


def inbound_context(s: Session, now: datetime, *, client_id: str | None = None,
                    channel: str = "", address: str = "") -> InboundContext | None:
    """What handling an inbound message reads, in one statement (see _CONTEXT); by the client's id
    (re-read: use it after taking the client's lock) or by channel and address.

    The statement runs on the cursor (storage.hot) and its rows become the session's objects
    directly, unless one of them is in the session already: then the ORM reads it, so an object
    the unit holds is never silently replaced."""
    kind = "id" if client_id is not None else _address_column(channel)
    key = client_id if client_id is not None else address
    if s.autoflush:  # what the ORM's query would have done first
        s.flush()
    rows = _CONTEXT_HOT[kind].rows(s.connection(), {"a": key, "now": now})
    if not rows:
        return None
    ctx = _context_of(s, rows[0])
    if ctx is not None:
        return ctx
    row = s.execute(_CONTEXT_BY[kind], {"a": key, "now": now}).first()
    if row is None:
        return None
    client, conv, appt, alert_id, taken = cast(
        tuple[Client, Conversation | None, Appointment | None, int | None, bool], tuple(row)
    )
    return InboundContext(client, conv, appt, alert_id, bool(taken))


def inbound_context_rows(s: Session, now: datetime, client_ids: Iterable[str]) -> dict[str, tuple[Any, ...]]:
    """The rows :func:`inbound_context` would read for these clients at ``now``, in one statement
    (PostgreSQL), by client id; not yet the session's objects (:func:`context_of_row`)."""
    ids = sorted(set(client_ids))
    if not ids:
        return {}
    return {row[0]: row for row in _CONTEXTS_HOT.rows(s.connection(), {"ids": ids, "now": now})}


def context_of_row(s: Session, row: tuple[Any, ...], now: datetime) -> InboundContext | None:
    """A row of :func:`inbound_context_rows`, read at an earlier ``now``, as the context a read at
    this ``now`` would give, provided nothing wrote to the client's rows since (the caller knows:
    :func:`touched`, :func:`has_pending`). None when it cannot stand for that read: its next
    appointment has started since, or one of its objects is in the session already."""
    start = row[_APPOINTMENT_START]
    if start is not None and start <= now:
        return None
    return _context_of(s, row)


# Clients whose rows a flush of this session wrote (track_touched): with has_pending, whether a
# context read earlier in the transaction may still stand.
_TOUCHED = "rapport.touched"


def track_touched(s: Session) -> None:
    s.info[_TOUCHED] = set()


def touched(s: Session) -> set[str]:
    got: set[str] = s.info.get(_TOUCHED, set())
    return got


@event.listens_for(OrmSession, "after_flush")
def _note_touched(s: OrmSession, _flush: Any) -> None:
    seen: set[str] | None = s.info.get(_TOUCHED)
    if seen is None:
        return
    # after_flush still shows what the flush wrote as new, dirty and deleted
    for obj in (*s.new, *s.dirty, *s.deleted):
        if isinstance(obj, Client):
            seen.add(obj.id)
            continue
        state = sa_inspect(obj)
        if "client_id" in state.attrs:
            hist = state.attrs["client_id"].history  # a row moved between clients touches both
            seen.update(v for v in (*hist.added, *hist.unchanged, *hist.deleted) if isinstance(v, str))


def has_pending(s: Session, client_id: str | None) -> bool:
    """Does the session hold unflushed changes to a row of ``client_id`` (its client row, or one
    that names it: conversations, appointments, timers, alerts, takeovers)? ``client_id`` None: to
    any client row."""
    for obj in (*s.new, *s.dirty, *s.deleted):
        if isinstance(obj, Client):
            if client_id is None or obj.id == client_id:
                return True
        elif client_id is not None and getattr(obj, "client_id", None) == client_id:
            return True
    return False


def client_id_by_address(s: Session, channel: str, address: str) -> str | None:
    """Only the id: what PostgreSQL needs before the client's lock (everything is read after it)."""
    rows = _CLIENT_ID_BY[_address_column(channel)].rows(s.connection(), {"a": address})
    return cast(str, rows[0][0]) if rows else None


def client_ids_by_address(s: Session, channel: str, addresses: Iterable[str]) -> dict[str, str | None]:
    """:func:`client_id_by_address` for many addresses of one channel, in one statement on
    PostgreSQL; every address is a key, None for one no client has."""
    if not is_postgres(s):
        return {a: client_id_by_address(s, channel, a) for a in addresses}
    # as stored: PostgreSQL text holds no NUL (storage.db), so the lookup is by the stored form
    stored = {a: without_nul(a) for a in addresses}
    found: dict[str, str] = {}
    if stored:
        q = _CLIENT_IDS_BY[_address_column(channel)]
        for address, cid in q.rows(s.connection(), {"as": sorted(set(stored.values()))}):
            found[address] = cid  # largest id first: the smallest, written last, wins
    return {a: found.get(k) for a, k in stored.items()}


def mark_seen(s: Session, channel: str, provider_id: str, at: datetime) -> bool:
    """Record a provider id; False when it was already there (the webhook came twice)."""
    stmt = _SEEN[s.get_bind().dialect.name]  # storage.db opens SQLite or PostgreSQL only
    res = s.connection().execute(stmt, {"channel": channel, "provider_id": provider_id, "at": at})
    return res.first() is not None


def mark_seen_many(s: Session, items: Sequence[tuple[str, str]], at: datetime) -> set[tuple[str, str]]:
    """:func:`mark_seen` for a batch in one statement: the (channel, provider id) pairs that were
    new (a pair twice in ``items`` is new once, for its first use)."""
    if not items:
        return set()
    rows = [{"channel": ch, "provider_id": pid, "at": at} for ch, pid in items]
    # executemany with RETURNING: SQLAlchemy sends it as one multi-row INSERT ("insertmanyvalues")
    stmt = _SEEN[s.get_bind().dialect.name]
    return {(str(ch), str(pid)) for ch, pid in s.connection().execute(stmt, rows)}


# Deferred writes. An inbound batch (Service.handle_inbound_batch) writes what nothing reads back in
# the same transaction (its messages, outbox rows and audit entries) together just before it
# commits: one multi-row statement a table instead of one statement a row.
_DEFERRED = "rapport.deferred"
_INSERT_MESSAGE_IDS = _INSERT_MESSAGE.returning(table_of(Message).c.id, sort_by_parameter_order=True)


@dataclass
class _Deferred:
    messages: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    outbound: list[tuple[dict[str, Any], dict[str, Any]]]  # (message, its outbox row)
    conversations: list[dict[str, Any]]  # finished in the unit that started them


def defer_writes(s: Session) -> None:
    """From now on this session's messages, outbox rows and audit entries are written at
    :func:`flush_deferred` (Service.unit calls it before committing)."""
    s.info[_DEFERRED] = _Deferred([], [], [], [])


def flush_deferred(s: Session) -> None:
    d: _Deferred | None = s.info.get(_DEFERRED)
    if d is None or not (d.messages or d.audit or d.outbound or d.conversations):
        return
    c = s.connection()
    for rows in _by_shape(d.conversations):
        c.execute(_INSERT_CONVERSATION, rows)
    # executemany compiles one statement from the first row's keys: rows go in groups of one shape
    for rows in _by_shape(d.messages):
        c.execute(_INSERT_MESSAGE, rows)
    if d.audit:
        c.execute(_INSERT_AUDIT, d.audit)
    if d.outbound:
        for pairs in _by_shape(d.outbound, key=lambda p: p[0]):
            ids = _insert_messages_with_ids(c, [m for m, _ in pairs])
            c.execute(_INSERT_OUTBOX, [{**o, "message_id": i} for (_, o), i in zip(pairs, ids, strict=True)])
    d.messages.clear()
    d.audit.clear()
    d.outbound.clear()
    d.conversations.clear()


_MAX_MESSAGE_ID = sa_select(func.max(table_of(Message).c.id))


def _insert_messages_with_ids(c: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert messages and give their ids, in order.

    PostgreSQL: one multi-row ``INSERT … RETURNING``. SQLite cannot promise RETURNING's order, so
    SQLAlchemy would send one statement a row; but a SQLite write transaction holds the database's
    only write lock from its BEGIN IMMEDIATE (storage.db), so the ids SQLite itself would pick next
    (one past the largest) are ours to give, in one statement."""
    if c.dialect.name != "sqlite":
        return list(c.execute(_INSERT_MESSAGE_IDS, rows).scalars())
    first = (c.execute(_MAX_MESSAGE_ID).scalar() or 0) + 1
    ids = list(range(first, first + len(rows)))
    c.execute(_INSERT_MESSAGE, [{**r, "id": i} for r, i in zip(rows, ids, strict=True)])
    return ids


def _by_shape(rows: list[Any], key: Any = lambda r: r) -> list[list[Any]]:
    groups: dict[tuple[str, ...], list[Any]] = {}
    for r in rows:
        groups.setdefault(tuple(sorted(key(r))), []).append(r)
    return list(groups.values())


def add_message(s: Session, **values: Any) -> None:
    """Insert a messages row (deferred in an inbound batch)."""
    d: _Deferred | None = s.info.get(_DEFERRED)
    if d is not None:
        d.messages.append(values)
    else:
        s.connection().execute(_INSERT_MESSAGE, values)


def add_finished_conversation(s: Session, conv: Conversation) -> None:
    """A conversation that started and ended in one unit without waiting (a confirmation, a help
    answer): one row in its final state, written like a message (deferred in an inbound batch), so
    the ORM never tracks it. Nothing reads it back in the unit: it is not active."""
    values = {k: getattr(conv, k) for k in _CONVERSATION_COLUMNS}
    d: _Deferred | None = s.info.get(_DEFERRED)
    if d is not None:
        d.conversations.append(values)
    else:
        s.connection().execute(_INSERT_CONVERSATION, values)


def add_outbound(s: Session, message: dict[str, Any], outbox: dict[str, Any]) -> int | None:
    """A message to send and its outbox row; the message's id, or None when deferred."""
    d: _Deferred | None = s.info.get(_DEFERRED)
    if d is not None:
        d.outbound.append((message, outbox))
        return None
    c = s.connection()
    res: Any = c.execute(_INSERT_MESSAGE, message)
    mid = int(res.inserted_primary_key[0])
    c.execute(_INSERT_OUTBOX, {**outbox, "message_id": mid})
    return mid


def open_alert(s: Session, client_id: str | None, address: str | None = None) -> Alert | None:
    if client_id:
        return s.scalars(_OPEN_ALERT_BY_CLIENT, {"c": client_id}).first()
    q = select(Alert).where(_one_of(col(Alert.status), ("open", "acked")))
    q = q.where(Alert.client_id == client_id) if client_id else q.where(Alert.address == address)
    return s.exec(q.order_by(col(Alert.id).desc())).first()


def next_appointment(s: Session, client_id: str, now: datetime) -> Appointment | None:
    return s.scalars(_NEXT_APPOINTMENT, {"c": client_id, "now": now}).first()


def last_lapsed_appointment(s: Session, client_id: str, since: datetime) -> Appointment | None:
    """The client's most recent missed or cancelled appointment starting after ``since``."""
    return s.exec(
        select(Appointment)
        .where(
            Appointment.client_id == client_id,
            _one_of(col(Appointment.status), ("missed", "cancelled")),
            Appointment.start > since,
        )
        .order_by(col(Appointment.start).desc())
    ).first()


_BOOKINGS = select(Appointment.start, Appointment.minutes).where(
    _one_of(col(Appointment.status), UPCOMING),
    Appointment.start < bindparam("end"),
    Appointment.start > bindparam("after"),
)
_BOOKINGS_OF = _BOOKINGS.where(
    or_(col(Appointment.clinician_id) == bindparam("clin"), col(Appointment.clinician_id).is_(None))
)

_BOOKINGS_HOT = {"clin": Hot(_BOOKINGS_OF, ("end", "after", "clin")), "any": Hot(_BOOKINGS, ("end", "after"))}


def clinician_bookings(
    s: Session, clinician_id: str | None, start: datetime, end: datetime
) -> list[tuple[datetime, int]]:
    """(start, minutes) of the clinician's upcoming appointments in [start - 1 day, end).

    Unflushed changes that can alter the bookings (earlier messages of the same transaction: a
    slot another client just took) are flushed first, so they are not offered; others wait."""
    params: dict[str, Any] = {"end": end, "after": start - timedelta(days=1)}
    if clinician_id is not None:
        params["clin"] = clinician_id
    q = _BOOKINGS_HOT["clin" if clinician_id is not None else "any"]
    # Other unflushed changes (in an inbound batch, the earlier messages' confirmations) cannot
    # change what this reads: their flush waits for the commit. On the cursor (storage.hot): a
    # reschedule request reads a clinician's whole month, and the ORM's result machinery cost more.
    if _bookings_pending(s):
        s.flush()
    return [(cast(datetime, st), cast(int, m)) for st, m in q.rows(s.connection(), params)]


_BOOKING_FIELDS = ("start", "minutes", "clinician_id")


def _bookings_pending(s: Session) -> bool:
    """Does the session hold an unflushed change to which appointments are booked when: a new or
    deleted appointment, a moved one, or one whose status went in or out of UPCOMING?"""
    if any(isinstance(o, Appointment) for o in (*s.new, *s.deleted)):
        return True
    for o in s.dirty:
        if not isinstance(o, Appointment):
            continue
        attrs = sa_inspect(o).attrs
        if any(attrs[k].history.has_changes() for k in _BOOKING_FIELDS):
            return True
        h = attrs.status.history
        if h.has_changes():
            before = h.deleted[0] if h.deleted else None
            after = h.added[0] if h.added else None
            if before is None or after is None or (before in UPCOMING) != (after in UPCOMING):
                return True
    return False


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
    flush_deferred(s)  # it reads the messages table
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


def audit(s: Session, at: datetime, actor: str, entity: str, entity_id: str, action: str, **detail: object) -> None:
    row = {"at": at, "actor": actor, "entity": entity, "entity_id": str(entity_id), "action": action, "detail": detail}
    d: _Deferred | None = s.info.get(_DEFERRED)
    if d is not None:
        d.audit.append(row)
    else:
        s.connection().execute(_INSERT_AUDIT, row)
