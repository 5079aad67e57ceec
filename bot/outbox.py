"""The outbox worker: claims pending rows, sends through the channel adapter, records the outcome.

Rows are written in the same transaction as the state change that caused them (bot/service.py);
this module only moves them to the provider, and records why each one was or was not delivered.

- Claimed by one worker at a time: a claimed row is ``sending`` under a lease (``next_attempt_at``
  is the lease's end), taken with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL.
- Paced per sender: every adapter says which buckets a message draws on (Twilio: its number, by
  segment; Telegram: 30/s overall and 1/s per chat). Crisis and staff rows jump the queue and are
  never held back by pacing.
- Retried with backoff on 429, 5xx and network errors; failed after ``MAX_ATTEMPTS`` with the reason.
- A send whose outcome is unknown (a timeout, or a process that died with the row claimed) is
  reconciled with the provider before any resend, where the provider can tell (Twilio lists
  messages); the provider id is recorded in the same commit that acknowledges the row.
- A crisis message that fails on one channel goes out on the person's other channel, and the
  alert is raised to ``high``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import bindparam, case, or_, text, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine as DbEngine
from sqlmodel import Session, col, select

from bot.groupcommit import GroupCommit
from channels.base import Outbound, SendResult
from storage import store
from storage.tables import Alert, Client, Message, Outbox

log = logging.getLogger("rapport.outbox")

Sender = Callable[[Outbound], SendResult]
MAX_ATTEMPTS = 10  # with backoff 2, 4, 8 ... 300 s: about 13 minutes of outage survived
LEASE = timedelta(minutes=2)  # a claimed row not acknowledged by then is presumed lost mid-send
URGENT = 9  # priority at or above which a row is never held back by pacing (crisis replies, staff alerts)
FALLBACK_REASON = "fallback_from:"
_testing = False


def set_testing(on: bool) -> None:
    """No backoff waits in tests (like stamina.set_testing)."""
    global _testing
    _testing = on


def backoff(attempt: int) -> timedelta:
    if _testing:
        return timedelta(0)
    return timedelta(seconds=min(300, 2**attempt))


def log_failure(what: str, e: BaseException, logger: logging.Logger = log) -> None:
    """An error by its type at ERROR; the traceback (which can quote SQL parameters, and so message
    text and phone numbers) only at DEBUG."""
    logger.error("%s failed: %s", what, type(e).__name__)
    logger.debug("%s traceback", what, exc_info=e)


def utcnow() -> datetime:
    return datetime.now(UTC)


# -- what a channel adapter offers the worker ---------------------------------------------------------

Pacing = tuple[str, float, float, float]  # bucket key, rate per second, burst, cost of this message


@runtime_checkable
class ChannelSender(Protocol):
    def pacing(self, out: Outbound) -> Sequence[Pacing]:
        """The buckets this message draws on, the channel-wide one first."""
        ...

    async def send(self, out: Outbound) -> SendResult: ...


@runtime_checkable
class Reconciler(Protocol):
    async def reconcile(self, out: Outbound, since: datetime) -> SendResult | None:
        """Did the provider already take this message? A SendResult(ok=True) if so, None if not."""
        ...


class SyncSender:
    """A plain ``Outbound -> SendResult`` function (the simulator) as a worker sender, unpaced."""

    def __init__(self, fn: Sender, channel: str):
        self.fn = fn
        self.channel = channel

    def pacing(self, out: Outbound) -> Sequence[Pacing]:
        return ()

    async def send(self, out: Outbound) -> SendResult:
        return self.fn(out)


# -- pacing -------------------------------------------------------------------------------------------


class Pace:
    """A token bucket that can go into debt: ``reserve`` says how long to wait before sending."""

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.tokens = self.burst
        self.last = time.monotonic()
        self.paused_until = 0.0

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def reserve(self, cost: float, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._refill(now)
        self.tokens -= cost
        wait = 0.0 if self.tokens >= 0 else -self.tokens / self.rate
        return max(wait, self.paused_until - now)

    def debt(self, now: float | None = None) -> float:
        """Seconds until one more message could go."""
        now = time.monotonic() if now is None else now
        self._refill(now)
        wait = 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate
        return max(wait, self.paused_until - now)

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)


# -- database steps (each its own transaction; run in a thread from async code) ----------------------


@dataclass(frozen=True)
class Claimed:
    id: int
    message_id: int
    channel: str
    to: str
    body: str
    buttons: tuple[str, ...]
    priority: int
    attempts: int
    created_at: datetime | None

    def outbound(self) -> Outbound:
        return Outbound(self.channel, self.to, self.body, self.buttons, self.id)


_OUTBOX = store.table_of(Outbox)
_MESSAGES = store.table_of(Message)


def _claim_statement(saturated: bool) -> Any:
    t = _OUTBOX
    pick = sa_select(t.c.id).where(
        t.c.status == "pending", or_(t.c.next_attempt_at.is_(None), t.c.next_attempt_at <= bindparam("now"))
    )
    if saturated:
        pick = pick.where(
            or_(t.c.channel.not_in(bindparam("saturated", expanding=True)), t.c.priority >= bindparam("urgent"))
        )
    # SKIP LOCKED on PostgreSQL (two workers take different rows); SQLite renders no FOR UPDATE and
    # needs none: its writers take turns.
    pick = pick.order_by(t.c.priority.desc(), t.c.id).limit(bindparam("lim")).with_for_update(skip_locked=True)
    return (
        update(t)
        .where(t.c.id.in_(pick.scalar_subquery()))
        .values(status="sending", attempts=t.c.attempts + 1, next_attempt_at=bindparam("lease"))
        .returning(
            t.c.id, t.c.message_id, t.c.channel, t.c.to, t.c.body, t.c.buttons, t.c.priority, t.c.attempts,
            t.c.created_at,
        )
    )


# One statement takes the rows and marks them: a claim is one round trip and one commit.
_CLAIM = {False: _claim_statement(False), True: _claim_statement(True)}


def claim(
    db: DbEngine, now: datetime, limit: int, saturated: Sequence[str] = (), urgent: int = URGENT
) -> list[Claimed]:
    """Take up to ``limit`` due rows, highest priority first, and mark them ``sending`` under a lease.

    Rows of ``saturated`` channels (paced beyond what goes out soon) are taken only when urgent: a
    busy channel still lets a crisis reply through, and other channels are not held up behind it.
    """
    if limit <= 0:
        return []
    params: dict[str, Any] = {"now": now, "lim": limit, "lease": now + LEASE}
    if saturated:
        params |= {"saturated": list(saturated), "urgent": urgent}
    with db.begin() as c:
        rows = c.execute(_CLAIM[bool(saturated)], params).all()
    out = [Claimed(r[0], r[1], r[2], r[3], r[4], tuple(r[5] or ()), r[6], r[7], r[8]) for r in rows]
    # RETURNING gives no order: the caller sends in priority order
    out.sort(key=lambda r: (-r.priority, r.id))
    return out


def release(db: DbEngine, row_id: int, now: datetime) -> None:
    """Hand a claimed row back untouched (shutting down before its send started)."""
    with Session(db) as s:
        r = s.get(Outbox, row_id)
        if r is not None and r.status == "sending":
            r.status = "pending"
            r.attempts = max(0, r.attempts - 1)
            r.next_attempt_at = now
            s.add(r)
            s.commit()


def extend_lease(db: DbEngine, row_id: int, until: datetime) -> None:
    """Keep a claimed row ours while it waits its turn behind the pacing. A lease that ran out
    meanwhile would let ``recover_stale`` hand the row to another claim, and both would send it."""
    with Session(db) as s:
        r = s.get(Outbox, row_id)
        if r is not None and r.status == "sending" and (r.next_attempt_at is None or r.next_attempt_at < until):
            r.next_attempt_at = until
            s.add(r)
            s.commit()


def recover_stale(db: DbEngine, now: datetime) -> int:
    """Rows left ``sending`` past their lease (a process died mid-send) go back to pending.

    Their outcome is unknown: ``attempts`` already counts the lost try, so the next claim sees a
    retry and reconciles with the provider before sending again.
    """
    with Session(db) as s:
        q = select(Outbox).where(Outbox.status == "sending", col(Outbox.next_attempt_at) < now)
        if store.is_postgres(s):
            q = q.with_for_update(skip_locked=True)
        rows = list(s.exec(q))
        for r in rows:
            r.status = "pending"
            r.error = "outcome unknown: the sending process stopped before recording it"
            r.next_attempt_at = now
            s.add(r)
        s.commit()
    if rows:
        log.warning("recovered %d outbox rows whose send outcome was unknown", len(rows))
    return len(rows)


_SENT_OUTBOX = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row"))
    .values(status="sent", provider_id=bindparam("pid"), error=None)
)
_SENT_MESSAGE = (
    update(_MESSAGES)
    .where(_MESSAGES.c.id == bindparam("row"))
    .values(
        provider_id=bindparam("pid"),
        error=None,
        status=case((_MESSAGES.c.status == "queued", "sent"), else_=_MESSAGES.c.status),
    )
)


# PostgreSQL: both updates in one statement over arrays, one round trip for the whole batch (the
# driver runs an executemany as a statement a row: about 7 % of a PostgreSQL process's interpreter
# time under load, sampled).
_SENT_PG = text(
    """
    WITH v(row_id, message_id, pid) AS (
        SELECT * FROM unnest(CAST(:rows AS bigint[]), CAST(:mids AS bigint[]), CAST(:pids AS text[]))
    ), o AS (
        UPDATE outbox SET status = 'sent', provider_id = v.pid, error = NULL FROM v WHERE outbox.id = v.row_id
    )
    UPDATE messages SET provider_id = v.pid, error = NULL,
        status = CASE WHEN messages.status = 'queued' THEN 'sent' ELSE messages.status END
    FROM v WHERE messages.id = v.message_id
    """
)


def record_sent(db: DbEngine, sent: Sequence[tuple[int, int, str | None]]) -> None:
    """Successful sends, ``(outbox row, message id, provider id)``, stored in one commit with two
    updates and no reads. A delivery report that raced ahead of us (delivered before we wrote sent)
    is not moved back."""
    if not sent:
        return
    with db.begin() as c:
        if c.dialect.name == "postgresql":
            rows, mids, pids = (list(x) for x in zip(*sent, strict=True))
            c.execute(_SENT_PG, {"rows": rows, "mids": mids, "pids": pids})
            return
        c.execute(_SENT_OUTBOX, [{"row": row, "pid": pid} for row, _, pid in sent])
        c.execute(_SENT_MESSAGE, [{"row": mid, "pid": pid} for _, mid, pid in sent])


def record(
    db: DbEngine,
    row_id: int,
    result: SendResult,
    now: datetime,
    *,
    oncall: Sequence[Any] = (),
    retry_after: float | None = None,
) -> str:
    """Store a send's outcome in one commit. Returns ``sent``, ``retry``, ``failed`` or ``fallback``.
    (The worker stores its successful sends in batches with :func:`record_sent`.)"""
    with Session(db, expire_on_commit=False) as s:
        row = s.get(Outbox, row_id)
        assert row is not None
        msg = s.get(Message, row.message_id)
        if result.ok:
            row.status = "sent"
            row.provider_id = result.provider_id
            row.error = None
            if msg:
                msg.status = "sent"
                msg.provider_id = result.provider_id
                msg.error = None
            outcome = "sent"
        elif result.retry and row.attempts < MAX_ATTEMPTS and not result.opted_out:
            wait = backoff(row.attempts)
            if retry_after and not _testing:
                wait = max(wait, timedelta(seconds=retry_after))
            row.status = "pending"
            row.next_attempt_at = now + wait
            row.error = f"try {row.attempts}/{MAX_ATTEMPTS}: {result.error or 'transient failure'}"
            outcome = "retry"
            if msg is not None and msg.dialogue == "crisis" and _fallback(s, row, msg, now, oncall):
                # A crisis message is not left waiting for a backoff: it goes on the other channel now
                # and this row keeps retrying, because a doubled crisis reply is cheaper than none.
                outcome = "fallback"
        else:
            reason = result.error or "refused"
            if not result.ok and result.retry:
                reason = f"gave up after {row.attempts} tries: {reason}"
            if result.opted_out:
                reason = f"opted out: {reason}"
            row.status = "failed"
            row.error = reason
            if msg:
                msg.status = "failed"
                msg.error = reason
            outcome = "failed"
            if msg is not None and msg.dialogue == "crisis" and _fallback(s, row, msg, now, oncall):
                outcome = "fallback"
        s.add(row)
        if msg:
            s.add(msg)
        s.commit()
    return outcome


def _fallback(s: Session, row: Outbox, msg: Message, now: datetime, oncall: Sequence[Any]) -> bool:
    """Queue a failed crisis message on the recipient's other channel, once. True when queued."""
    if (msg.reason or "").startswith(FALLBACK_REASON):
        return False  # already the fallback: never bounce back and forth
    marker = f"{FALLBACK_REASON}{row.channel}#{row.id}"
    if s.exec(select(Message.id).where(Message.reason == marker)).first() is not None:
        return False
    other = "sms" if row.channel == "telegram" else "telegram"
    to: str | None = None
    client: Client | None = None
    if msg.client_id:
        client = s.get(Client, msg.client_id)
        if client is not None:
            to = client.telegram if other == "telegram" else client.phone
    elif msg.address and msg.address.startswith("staff:"):
        name = msg.address.split(":", 1)[1]
        person = next((p for p in oncall if getattr(p, "name", None) == name), None)
        if person is not None:
            to = getattr(person, "telegram", None) if other == "telegram" else getattr(person, "phone", None)
    if msg.client_id:
        _raise_alert(s, msg.client_id, now, row.channel, bool(to))
    if not to:
        store.audit(s, now, "system:outbox", "message", str(msg.id), "crisis_undeliverable", channel=row.channel)
        return False
    m = Message(
        client_id=msg.client_id,
        address=msg.address,
        direction="out",
        channel=other,
        body=row.body,
        dialogue=msg.dialogue,
        step=msg.step,
        automated=False,
        status="queued",
        reason=marker,
        created_at=now,
    )
    s.add(m)
    s.flush()
    assert m.id is not None
    s.add(
        Outbox(
            message_id=m.id,
            channel=other,
            to=to,
            body=row.body,
            priority=max(row.priority, URGENT + 1),
            next_attempt_at=now,
            buttons=None,
            created_at=now,
        )
    )
    store.audit(s, now, "system:outbox", "message", str(msg.id), "crisis_fallback", channel=other)
    return True


def _raise_alert(s: Session, client_id: str, now: datetime, channel: str, rerouted: bool) -> None:
    alert = store.open_alert(s, client_id)
    if alert is None:
        return
    if alert.level != "high":
        alert.level = "high"
        s.add(alert)
    store.audit(s, now, "system:outbox", "alert", str(alert.id), "delivery_failed", channel=channel, rerouted=rerouted)


# -- provider status callbacks ------------------------------------------------------------------------

STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}
FINAL_FAILURES = ("failed", "undelivered")


@dataclass(frozen=True)
class StatusChange:
    found: bool
    status: str | None = None
    to: str | None = None
    fallback: bool = False


def apply_status(
    db: DbEngine,
    channel: str,
    provider_id: str,
    status: str,
    error: str | None,
    now: datetime,
    *,
    oncall: Sequence[Any] = (),
) -> StatusChange:
    """A delivery report: move the message forward (never back), record failures and their codes."""
    with Session(db, expire_on_commit=False) as s:
        msg = s.exec(
            select(Message).where(
                Message.channel == channel, Message.provider_id == provider_id, Message.direction == "out"
            )
        ).first()
        if msg is None:
            return StatusChange(found=False)
        row = s.exec(select(Outbox).where(Outbox.message_id == msg.id)).first()
        fell_back = False
        if status in FINAL_FAILURES:
            if msg.status not in FINAL_FAILURES:
                msg.status = status
                msg.error = error or status
                if row is not None:
                    row.error = msg.error
                    s.add(row)
                    if msg.dialogue == "crisis":
                        fell_back = _fallback(s, row, msg, now, oncall)
        elif (
            status in STATUS_RANK
            and msg.status not in FINAL_FAILURES
            and STATUS_RANK[status] > STATUS_RANK.get(msg.status, -1)
        ):
            msg.status = status
        s.add(msg)
        to = row.to if row is not None else None
        final = msg.status
        s.commit()
    return StatusChange(found=True, status=final, to=to, fallback=fell_back)


# -- the synchronous drain (the simulator, tests) ------------------------------------------------------


def drain(
    db: DbEngine,
    senders: Mapping[str, Sender],
    now: datetime,
    limit: int = 100,
    on_opted_out: Callable[[str, str, str], None] | None = None,
    oncall: Sequence[Any] = (),
) -> int:
    """Send what is due, synchronously and unpaced. Returns how many rows were attempted."""
    rows = claim(db, now, limit)
    for r in rows:
        sender = senders.get(r.channel)
        if sender is None:
            result = SendResult(ok=False, error=f"no {r.channel} channel configured")
        else:
            try:
                result = sender(r.outbound())
            except Exception as e:  # an adapter bug must not lose the row: retry it like a network error
                log_failure("send on " + r.channel, e)
                result = SendResult(ok=False, error=type(e).__name__, retry=True)
        record(db, r.id, result, now, oncall=oncall)
        if result.opted_out and on_opted_out is not None:
            on_opted_out(r.channel, r.to, result.error or "provider refused")
    return len(rows)


# -- the asynchronous worker (rapport serve) -----------------------------------------------------------

ResultHook = Callable[["SendReport"], None]


@dataclass(frozen=True)
class SendReport:
    """One send, for metrics: never the text or the address."""

    channel: str
    outcome: str  # sent | retry | failed | fallback | reconciled
    seconds: float  # provider call
    queued_seconds: float  # from the row's creation to the provider's answer
    priority: int


class Worker:
    """Drains the outbox continuously: woken at once when a commit queues rows, else every ``poll``."""

    def __init__(
        self,
        db: DbEngine,
        senders: Mapping[str, ChannelSender],
        *,
        oncall: Sequence[Any] = (),
        on_opted_out: Callable[[str, str, str], None] | None = None,
        on_result: ResultHook | None = None,
        max_inflight: int = 64,
        lookahead: float = 2.0,
        poll: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
        run: Callable[..., Awaitable[Any]] | None = None,
    ):
        self.db = db
        # How blocking database work runs off the loop (the app's bounded runner on SQLite).
        self.run: Callable[..., Awaitable[Any]] = run or asyncio.to_thread
        self.senders = dict(senders)
        self.oncall = list(oncall)
        self.on_opted_out = on_opted_out
        self.on_result = on_result
        self.max_inflight = max_inflight
        self.lookahead = lookahead
        self.poll = poll
        self.clock = clock
        self.paces: dict[str, Pace] = {}
        self.channel_key: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._rows: dict[asyncio.Task[None], Claimed] = {}
        self._released: set[int] = set()
        self._in_call: set[asyncio.Task[None]] = set()
        self._stopping = False
        # successful sends stored together: a burst pays one commit and one thread hop. If the
        # write fails each send task sees it (logged there); the rows stay leased and are reconciled
        # with the provider before any new try, so nothing is sent twice.
        self._sent: GroupCommit[tuple[int, int, str | None], None] = GroupCommit(self._write_sent)
        self._runner: asyncio.Task[None] | None = None
        self._wake_pending = threading.Event()

    # waking: callable from any thread (Service.on_outbox runs in the committing thread)
    def wake(self) -> None:
        self._wake_pending.set()
        loop, ev = self._loop, self._event
        if loop is not None and ev is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(ev.set)

    def start(self) -> asyncio.Task[None]:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        if self._wake_pending.is_set():
            self._event.set()
        self._runner = asyncio.create_task(self._run(), name="outbox-worker")
        return self._runner

    @property
    def inflight(self) -> int:
        return len(self._tasks)

    async def _run(self) -> None:
        assert self._event is not None
        while not self._stopping:
            self._event.clear()
            self._wake_pending.clear()
            try:
                n = await self.fill()
            except Exception as e:
                log_failure("outbox claim", e)
                n = 0
            if n == 0 or len(self._tasks) >= self.max_inflight:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._event.wait(), timeout=self.poll)

    async def fill(self) -> int:
        """Claim what can go soon and start sending it. Returns how many rows were claimed."""
        room = self.max_inflight - len(self._tasks)
        if room <= 0 or self._stopping:
            return 0
        now_m = time.monotonic()
        saturated = [ch for ch, key in self.channel_key.items() if self.paces[key].debt(now_m) >= self.lookahead]
        rows = await self.run(claim, self.db, self.clock(), room, saturated)
        for r in rows:
            t = asyncio.create_task(self._send_one(r), name=f"outbox-{r.id}")
            self._tasks.add(t)
            self._rows[t] = r
            t.add_done_callback(self._done)
        return len(rows)

    def _done(self, t: asyncio.Task[None]) -> None:
        self._tasks.discard(t)
        self._rows.pop(t, None)
        self._in_call.discard(t)
        if self._event is not None:
            self._event.set()
        if not t.cancelled() and t.exception() is not None:
            log.error("outbox send task failed: %s", type(t.exception()).__name__)

    def _reserve(self, sender: ChannelSender, r: Claimed, out: Outbound) -> float:
        wait = 0.0
        for i, (key, rate, burst, cost) in enumerate(sender.pacing(out)):
            pace = self.paces.get(key)
            if pace is None:
                pace = self.paces[key] = Pace(rate, burst)
            if i == 0:
                self.channel_key[r.channel] = key
            wait = max(wait, pace.reserve(cost))
        return 0.0 if r.priority >= URGENT else wait

    async def _send_one(self, r: Claimed) -> None:
        out = r.outbound()
        sender = self.senders.get(r.channel)
        task = asyncio.current_task()
        assert task is not None
        if sender is None:
            result: SendResult = SendResult(ok=False, error=f"no {r.channel} channel configured")
            await self._finish(r, result, 0.0, "failed")
            return
        try:
            wait = self._reserve(sender, r, out)
            if wait > LEASE.total_seconds() / 2:
                # A long wait (a burst at a slow sender): the lease must outlast it and the send after it.
                await self.run(extend_lease, self.db, r.id, self.clock() + timedelta(seconds=wait) + LEASE)
            if wait > 0:
                await asyncio.sleep(wait)
        except asyncio.CancelledError:
            await self.run(release, self.db, r.id, self.clock())
            self._released.add(r.id)
            raise
        self._in_call.add(task)
        started = time.monotonic()
        outcome_hint = ""
        result = SendResult(ok=False, error="not sent", retry=True)
        try:
            found = None
            if r.attempts > 1 and isinstance(sender, Reconciler):
                # A retry: the earlier try may have reached the provider. Ask before sending again.
                found = await sender.reconcile(out, r.created_at or self.clock() - timedelta(days=1))
            if found is not None and found.ok:
                result, outcome_hint = found, "reconciled"
            else:
                result = await sender.send(out)
        except Exception as e:  # an adapter bug must not lose the row: retry it like a network error
            log_failure("send on " + r.channel, e)
            result = SendResult(ok=False, error=type(e).__name__, retry=True)
        await self._finish(r, result, time.monotonic() - started, outcome_hint)

    async def _finish(self, r: Claimed, result: SendResult, seconds: float, hint: str) -> None:
        retry_after = getattr(result, "retry_after", None)
        if retry_after:
            sender = self.senders.get(r.channel)
            if sender is not None:
                for key, *_ in sender.pacing(r.outbound()):
                    if key in self.paces:
                        self.paces[key].pause(float(retry_after))
        now = self.clock()
        if result.ok:
            await self._sent.submit((r.id, r.message_id, result.provider_id))
            outcome = "sent"
        else:
            outcome = await self.run(
                functools.partial(record, oncall=self.oncall, retry_after=retry_after),
                self.db,
                r.id,
                result,
                now,
            )
        if result.opted_out and self.on_opted_out is not None:
            try:
                await self.run(self.on_opted_out, r.channel, r.to, result.error or "provider refused")
            except Exception as e:
                log_failure("recording a provider opt-out", e)
        if outcome == "fallback" and self._event is not None:
            self._event.set()
        if self.on_result is not None:
            queued = (now - r.created_at).total_seconds() if r.created_at else 0.0
            self.on_result(SendReport(r.channel, hint or outcome, seconds, queued, r.priority))

    async def _write_sent(self, sent: list[tuple[int, int, str | None]]) -> list[None]:
        await self.run(record_sent, self.db, sent)
        return [None] * len(sent)

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming; hand back rows still waiting for their turn; let sends in flight finish."""
        self._stopping = True
        if self._event is not None:
            self._event.set()
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        waiting = {t: self._rows[t] for t in self._tasks if t not in self._in_call and t in self._rows}
        for t in waiting:
            t.cancel()
        pending = list(self._tasks)
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout)
            if still:
                log.warning("%d sends still in flight at shutdown; their rows will be reconciled", len(still))
                for t in still:
                    t.cancel()
        for t, r in waiting.items():
            if t.cancelled() and r.id not in self._released:  # never started: hand it back, not after the lease
                await self.run(release, self.db, r.id, self.clock())
        for sender in self.senders.values():
            close = getattr(sender, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    async def run_once(self) -> int:
        """Claim and send one batch and wait for it (tests, ``--role worker`` draining on exit)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._event = asyncio.Event()
        n = await self.fill()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        return n


def wrap_senders(senders: Mapping[str, ChannelSender | Sender]) -> dict[str, ChannelSender]:
    out: dict[str, ChannelSender] = {}
    for ch, s in senders.items():
        out[ch] = s if isinstance(s, ChannelSender) else SyncSender(s, ch)
    return out


def pending_counts(db: DbEngine) -> dict[tuple[str, str], int]:
    """Rows by (channel, status) that are not yet final: the queue depth."""
    from sqlalchemy import func

    with Session(db) as s:
        rows = s.exec(
            select(Outbox.channel, Outbox.status, func.count())
            .where(col(Outbox.status).in_(("pending", "sending")))
            .group_by(Outbox.channel, Outbox.status)
        ).all()
    return {(c, st): int(n) for c, st, n in rows}


def open_alert_counts(db: DbEngine) -> dict[str, int]:
    from sqlalchemy import func

    with Session(db) as s:
        rows = s.exec(
            select(Alert.status, func.count()).where(col(Alert.status).in_(("open", "acked"))).group_by(Alert.status)
        ).all()
        unanswered = s.exec(
            select(func.count()).select_from(Alert).where(col(Alert.status) == "open", col(Alert.unanswered).is_(True))
        ).one()
    out = {st: int(n) for st, n in rows}
    out["unanswered"] = int(unanswered)
    return out
