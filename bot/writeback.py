"""Write-back: tell the practice's own system when a client confirms, cancels or moves an appointment.

Nothing is lost: ``record_writeback`` adds a row to ``writeback_events`` in the same transaction as
the change (so the event exists exactly when the change does), and ``deliver_pending`` POSTs rows
to ``writeback.url`` later, retrying with backoff until the receiver answers 2xx or
``writeback.give_up_after`` has passed (the row is then ``failed``, visible and re-queueable with
``retry_failed``; never deleted by delivery). Delivery is at least once: a receiver dedupes on the
body's ``id``. Events for one appointment are delivered in the order they happened.

Each request is signed like this (docs/records.md has a receiver's check)::

    X-Rapport-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

with the secret from ``RAPPORT_WRITEBACK_SECRET``. Only changes made by clients are written back:
changes that came from the practice (API, imports) are already in its system.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, field_validator
from sqlalchemy.engine import Engine as DbEngine
from sqlmodel import Session, col, select

from bot.durations import parse_duration
from bot.unit import Unit
from storage.tables import Appointment
from storage.writeback_table import WritebackEvent

log = logging.getLogger("rapport.writeback")

EVENTS = ("confirmed", "cancelled", "moved", "booked", "reschedule_requested")
SECRET_ENV = "RAPPORT_WRITEBACK_SECRET"
SIGNATURE_HEADER = "X-Rapport-Signature"
LEASE = timedelta(minutes=2)
TOLERANCE = 300  # seconds a receiver should accept between t= and its own clock

HttpPost = Callable[[str, bytes, Mapping[str, str], float], int]  # url, body, headers, timeout -> status


def _duration(v: Any) -> timedelta:
    return v if isinstance(v, timedelta) else parse_duration(v)


_Duration = Annotated[timedelta, BeforeValidator(_duration)]


class WritebackConfig(BaseModel):
    """``writeback:`` in config.yaml. The signing secret is ``RAPPORT_WRITEBACK_SECRET``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str | None = None  # the practice system's endpoint; unset: nothing is recorded or sent
    events: list[str] = list(EVENTS)
    timeout: _Duration = parse_duration("10s")
    give_up_after: _Duration = parse_duration("3d")
    max_backoff: _Duration = parse_duration("1h")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not v.startswith(("https://", "http://")):
            raise ValueError("expected an http(s) URL")
        if "@" in v.split("/", 3)[2]:
            raise ValueError("no credentials in the URL: requests are signed with RAPPORT_WRITEBACK_SECRET")
        return v

    @field_validator("events")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        bad = [e for e in v if e not in EVENTS]
        if bad:
            raise ValueError(f"unknown event {bad[0]!r} (expected some of {', '.join(EVENTS)})")
        return v


def secret_from_env(env: Mapping[str, str] | None = None) -> str | None:
    v = (os.environ if env is None else env).get(SECRET_ENV, "").strip()
    return v or None


# -- recording (inside the service's transaction) -------------------------------------------------


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def record_writeback(u: Unit, appointment: Appointment, event: str, **detail: Any) -> WritebackEvent:
    """Queue one event for the practice's system, in the caller's transaction."""
    if event not in EVENTS:
        raise ValueError(f"unknown write-back event {event!r}")
    a = appointment
    event_id = "evt_" + uuid.uuid4().hex
    payload = {
        "id": event_id,
        "type": f"appointment.{event}",
        "occurred_at": _iso(u.now),
        "appointment": {
            "id": a.id,
            "external_id": a.external_id,
            "client": a.client_id,
            "clinician": a.clinician_id,
            "start": _iso(a.start),
            "minutes": a.minutes,
            "status": a.status,
            "confirmed": a.confirmed,
        },
        **{k: v for k, v in detail.items() if v is not None},
    }
    row = WritebackEvent(
        event_id=event_id,
        event=event,
        appointment_id=a.id,
        client_id=a.client_id,
        payload=payload,
        status="pending",
        next_attempt_at=u.now,
        created_at=u.now,
    )
    u.s.add(row)
    return row


def on_status(
    cfg: WritebackConfig, u: Unit, a: Appointment, status: str, actor: str, previous: dict[str, Any] | None
) -> WritebackEvent | None:
    """The hook for ``Service._status``: record the events a client caused, as configured.

    ``previous`` is the appointment's history entry before this change (None for a new one).
    """
    if not cfg.url or not actor.startswith("client:"):
        return None
    last = a.history[-1] if a.history else {}
    detail: dict[str, Any] = {"by": "client"}
    if status == "confirmed":
        event = "confirmed"
    elif status == "cancelled":
        event = "cancelled"
    elif status == "rescheduled":
        event = "moved"
        detail["previous_start"] = previous.get("start") if previous else None
    elif status == "reschedule_requested":
        event = "reschedule_requested"
        detail["requested_when"] = last.get("when")
    elif status == "scheduled" and last.get("rebooked_from"):
        event = "booked"
        detail["rebooked_from"] = last.get("rebooked_from")
    else:
        return None
    if event not in cfg.events:
        return None
    return record_writeback(u, a, event, **detail)


# -- signing -----------------------------------------------------------------------------------------


def sign(secret: str, body: bytes, t: int) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance: int = TOLERANCE) -> bool:
    """A receiver's check: a v1 signature matches and ``t`` is within ``tolerance`` seconds of now."""
    try:
        parts = dict(p.strip().split("=", 1) for p in header.split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(now - t) > tolerance:
        return False
    want = sign(secret, body, t).split("v1=", 1)[1]
    given = [v for k, v in (p.strip().split("=", 1) for p in header.split(",")) if k == "v1"]
    return any(hmac.compare_digest(want, g) for g in given)


def body_of(ev: WritebackEvent) -> bytes:
    return json.dumps(ev.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def httpx_post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
    import httpx

    with httpx.Client(timeout=timeout, follow_redirects=False) as c:
        return c.post(url, content=body, headers=dict(headers)).status_code


# -- delivery ---------------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    waiting: int = 0  # held back behind an earlier event for the same appointment


def backoff(attempts: int, cap: timedelta) -> timedelta:
    """30 s, 1 min, 2 min, 4 min ... up to ``cap``."""
    return min(cap, timedelta(seconds=30 * 2 ** max(0, attempts - 1)))


def _claim(db: DbEngine, now: datetime, limit: int, report: DeliveryReport) -> list[WritebackEvent]:
    with Session(db, expire_on_commit=False) as s:
        q = (
            select(WritebackEvent)
            .where(WritebackEvent.status == "pending", col(WritebackEvent.next_attempt_at) <= now)
            .order_by(col(WritebackEvent.id))
            .limit(limit)
        )
        if s.get_bind().dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        rows = list(s.exec(q))
        claimed: list[WritebackEvent] = []
        taken: set[str] = set()
        for r in rows:
            earlier = s.exec(
                select(WritebackEvent.id).where(
                    WritebackEvent.appointment_id == r.appointment_id,
                    WritebackEvent.status == "pending",
                    col(WritebackEvent.id) < r.id,
                )
            ).first()
            if earlier is not None or r.appointment_id in taken:
                report.waiting += 1
                continue
            taken.add(r.appointment_id)
            r.attempts += 1
            r.next_attempt_at = now + LEASE  # a worker that dies mid-send leaves the row to be retried
            s.add(r)
            claimed.append(r)
        s.commit()
        return claimed


def deliver_pending(
    db: DbEngine,
    now: datetime,
    http_post: HttpPost,
    cfg: WritebackConfig,
    secret: str | None,
    *,
    limit: int = 100,
) -> DeliveryReport:
    """Send what is due. Call it from an interval job; safe to run in several processes at once."""
    report = DeliveryReport()
    if not cfg.url:
        return report
    if not secret:
        log.error("writeback.url is set but %s is not: write-back events wait unsent", SECRET_ENV)
        return report
    for ev in _claim(db, now, limit, report):
        body = body_of(ev)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body, int(now.timestamp())),
            "X-Rapport-Event": ev.event,
            "X-Rapport-Delivery": ev.event_id,
            "User-Agent": "Rapport-Writeback/1",
        }
        status: int | None = None
        error: str | None = None
        try:
            status = http_post(cfg.url, body, headers, cfg.timeout.total_seconds())
        except Exception as e:  # network errors, timeouts: all retried
            error = f"{type(e).__name__}: {e}"[:500]
        _settle(db, ev.id, now, status, error, cfg, report)
    return report


def _settle(
    db: DbEngine,
    row_id: int | None,
    now: datetime,
    status: int | None,
    error: str | None,
    cfg: WritebackConfig,
    report: DeliveryReport,
) -> None:
    with Session(db) as s:
        ev = s.get(WritebackEvent, row_id)
        if ev is None:
            return
        ev.last_status = status
        if status is not None and 200 <= status < 300:
            ev.status = "sent"
            ev.sent_at = now
            ev.last_error = None
            report.sent += 1
        else:
            ev.last_error = error or f"HTTP {status}"
            permanent = status is not None and 400 <= status < 500 and status not in (408, 409, 425, 429)
            created = ev.created_at or now
            if permanent or now - created >= cfg.give_up_after:
                ev.status = "failed"
                report.failed += 1
                log.error("write-back %s for appointment %s failed: %s", ev.event_id, ev.appointment_id, ev.last_error)
            else:
                ev.next_attempt_at = now + backoff(ev.attempts, cfg.max_backoff)
                report.retrying += 1
        s.add(ev)
        s.commit()


def retry_failed(db: DbEngine, now: datetime, event_ids: list[str] | None = None) -> int:
    """Put failed events back in the queue (after the receiver is fixed). Returns how many."""
    with Session(db) as s:
        q = select(WritebackEvent).where(WritebackEvent.status == "failed")
        if event_ids is not None:
            q = q.where(col(WritebackEvent.event_id).in_(event_ids))
        rows = list(s.exec(q))
        for r in rows:
            r.status = "pending"
            r.next_attempt_at = now
            r.created_at = now  # give_up_after counts again from now
            s.add(r)
        s.commit()
        return len(rows)


def pending_counts(db: DbEngine) -> dict[str, int]:
    """For /metrics and the admin: how many events are pending, sent and failed."""
    from sqlalchemy import func

    with Session(db) as s:
        rows = s.exec(select(WritebackEvent.status, func.count()).group_by(WritebackEvent.status)).all()
    return {str(k): int(v) for k, v in rows}
