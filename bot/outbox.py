"""The outbox worker: claims pending rows, sends through the channel adapter, records the outcome.

Rows are written in the same transaction as the state change that caused them (bot/service.py);
this module only moves them to the provider. Transient failures back off; permanent ones are
recorded as failed with their reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine as DbEngine
from sqlmodel import Session

from channels.base import Outbound, SendResult
from storage import store
from storage.tables import Message, Outbox

log = logging.getLogger("rapport.outbox")

Sender = Callable[[Outbound], SendResult]
MAX_ATTEMPTS = 6
_testing = False


def set_testing(on: bool) -> None:
    """No backoff waits in tests (like stamina.set_testing)."""
    global _testing
    _testing = on


def backoff(attempt: int) -> timedelta:
    if _testing:
        return timedelta(0)
    return timedelta(seconds=min(300, 2**attempt))


def drain(
    db: DbEngine,
    senders: Mapping[str, Sender],
    now: datetime,
    limit: int = 100,
    on_opted_out: Callable[[str, str, str], None] | None = None,
) -> int:
    """Send what is due. Returns how many rows were attempted."""
    with Session(db, expire_on_commit=False) as s:
        rows = store.claim_outbox(s, now, limit)
        for r in rows:
            r.status = "sending"
            r.attempts += 1
            s.add(r)
        s.commit()
    for r in rows:
        sender = senders.get(r.channel)
        if sender is None:
            result = SendResult(ok=False, error=f"no {r.channel} channel configured")
        else:
            try:
                result = sender(Outbound(r.channel, r.to, r.body, tuple(r.buttons or ()), r.id))
            except Exception as e:  # an adapter bug must not lose the row: retry it like a network error
                log.exception("send failed on %s", r.channel)
                result = SendResult(ok=False, error=type(e).__name__, retry=True)
        _record(db, r, result, now)
        if result.opted_out and on_opted_out is not None:
            on_opted_out(r.channel, r.to, result.error or "provider refused")
    return len(rows)


def _record(db: DbEngine, r: Outbox, result: SendResult, now: datetime) -> None:
    with Session(db, expire_on_commit=False) as s:
        row = s.get(Outbox, r.id)
        msg = s.get(Message, r.message_id)
        assert row is not None
        if result.ok:
            row.status = "sent"
            row.provider_id = result.provider_id
            if msg:
                msg.status = "sent"
                msg.provider_id = result.provider_id
        elif result.retry and row.attempts < MAX_ATTEMPTS:
            row.status = "pending"
            row.next_attempt_at = now + backoff(row.attempts)
            row.error = result.error
        else:
            row.status = "failed"
            row.error = result.error
            if msg:
                msg.status = "failed"
                msg.error = result.error
        s.add(row)
        if msg:
            s.add(msg)
        s.commit()
