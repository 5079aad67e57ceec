"""The waitlist: clients who would take an earlier slot; a freed slot is offered to them in turn.

A waitlist entry says "move my appointment X earlier if a slot opens with the same clinician".
When an appointment is cancelled (or moved away from its time), ``on_slot_freed`` opens a
``SlotOffer`` and a timer; each time the timer fires, the next eligible client on that clinician's
waitlist (first come, first served) is asked by text, through the ``waitlist_offer`` dialogue:

- the conversation carries the slot in its vars (``slots`` and ``picked``), so "yes" (or "1")
  runs the engine's ordinary ``move_appointment`` action: the client's appointment moves to the
  freed slot, exactly as a reschedule would, with its reminders moved and a write-back event;
- "no", silence for ``waitlist.offer_timeout``, or a client who cannot be asked now (opted out, no
  consent, an open crisis alert, in the middle of another conversation, capped) moves the offer on
  to the next client; quiet hours defer the question to their end;
- the first to accept gets the slot: only one client holds the offer at a time, and when the slot
  is booked any other way (the practice, another client's reschedule) the offer is withdrawn and
  the client holding it told so.

Moving a waitlisted client frees *their* old slot, which is offered in turn: the waitlist cascades.
The service calls ``on_status`` from ``Service._status`` and ``fire_timer`` for timers of kind
``TIMER_KIND``; see "Waitlist" in docs/records.md.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict
from sqlmodel import Session, col, select

from bot.durations import parse_duration
from bot.quiet import quiet_until
from bot.records import RecordError
from bot.unit import Unit
from storage import store
from storage.tables import Appointment, Client, Conversation, Timer
from storage.writeback_table import SlotOffer, WaitlistEntry

if TYPE_CHECKING:
    from bot.service import Service

log = logging.getLogger("rapport.waitlist")

TIMER_KIND = "waitlist_offer"
DIALOGUE = "waitlist_offer"
DURATION_KEY = "waitlist.offer_timeout"  # the dialogue's wait; Service.durations must carry it
GRACE = timedelta(seconds=1)  # the dialogue's own timeout ends the conversation first
BUSY_RETRY = timedelta(seconds=10)


def _duration(v: Any) -> timedelta:
    return v if isinstance(v, timedelta) else parse_duration(v)


class WaitlistConfig(BaseModel):
    """``waitlist:`` in config.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    offer_timeout: Annotated[timedelta, BeforeValidator(_duration)] = parse_duration("2h")
    min_notice: Annotated[timedelta, BeforeValidator(_duration)] = parse_duration("3h")


def config_of(svc: Service) -> WaitlistConfig:
    cfg = getattr(svc.cfg, "waitlist", None)
    return cfg if isinstance(cfg, WaitlistConfig) else WaitlistConfig()


# -- the list itself ---------------------------------------------------------------------------------


def add(svc: Service, client_id: str, appointment_id: str, now: datetime, actor: str = "api") -> WaitlistEntry:
    """Put a client on the waitlist for an earlier slot than ``appointment_id``. Idempotent."""
    with svc.unit(now) as u:
        store.lock_client(u.s, client_id)
        a = u.s.get(Appointment, appointment_id)
        if u.s.get(Client, client_id) is None:
            raise RecordError("client", f"unknown client {client_id!r}")
        if a is None or a.client_id != client_id:
            raise RecordError("appointment", f"client {client_id!r} has no appointment {appointment_id!r}")
        if a.status not in store.UPCOMING or a.start <= now:
            raise RecordError("appointment", "only an upcoming appointment can be moved earlier")
        found = u.s.exec(
            select(WaitlistEntry).where(
                WaitlistEntry.appointment_id == appointment_id, WaitlistEntry.status == "waiting"
            )
        ).first()
        if found is not None:
            return found
        e = WaitlistEntry(
            client_id=client_id,
            appointment_id=appointment_id,
            clinician_id=a.clinician_id,
            status="waiting",
            created_at=now,
            updated_at=now,
        )
        u.s.add(e)
        u.s.flush()
        store.audit(u.s, now, actor, "client", client_id, "waitlisted", appointment=appointment_id, entry=e.id)
        return e


def remove(svc: Service, entry_id: int, now: datetime, actor: str = "api") -> WaitlistEntry:
    with svc.unit(now) as u:
        e = u.s.get(WaitlistEntry, entry_id)
        if e is None:
            raise RecordError("id", f"unknown waitlist entry {entry_id!r}")
        if e.status == "waiting":
            _close_entry(u, e, "removed")
            store.audit(u.s, now, actor, "client", e.client_id, "unwaitlisted", entry=e.id)
        return e


def waiting(s: Session, clinician_id: str | None = None) -> list[WaitlistEntry]:
    q = select(WaitlistEntry).where(WaitlistEntry.status == "waiting")
    if clinician_id is not None:
        q = q.where(WaitlistEntry.clinician_id == clinician_id)
    return list(s.exec(q.order_by(col(WaitlistEntry.id))))


def _close_entry(u: Unit, e: WaitlistEntry, status: str) -> None:
    e.status = status
    e.updated_at = u.now
    u.s.add(e)


# -- hooks from the service ----------------------------------------------------------------------------


def on_status(svc: Service, u: Unit, a: Appointment, status: str, previous: dict[str, Any] | None) -> None:
    """Called at the end of ``Service._status`` (``previous``: the history entry before this one)."""
    prev_start = datetime.fromisoformat(previous["start"]) if previous and previous.get("start") else None
    prev_upcoming = previous is not None and previous.get("status") in store.UPCOMING
    if status == "cancelled":
        on_slot_freed(svc, u, a)
    elif status == "rescheduled" and prev_start is not None and prev_start != a.start:
        if prev_upcoming:
            on_slot_freed(svc, u, a, start=prev_start)
        _booked(svc, u, a)
    elif status == "scheduled":
        _booked(svc, u, a)
    if status in ("cancelled", "attended", "missed"):
        for e in u.s.exec(
            select(WaitlistEntry).where(WaitlistEntry.appointment_id == a.id, WaitlistEntry.status == "waiting")
        ):
            _close_entry(u, e, "removed")


def on_slot_freed(svc: Service, u: Unit, appointment: Appointment, start: datetime | None = None) -> SlotOffer | None:
    """Open an offer for the slot ``appointment`` held (at ``start`` when it moved away from there)."""
    cfg = config_of(svc)
    at = start or appointment.start
    if at - u.now < cfg.min_notice:
        return None
    if not _candidates(u.s, appointment.clinician_id, at, appointment.minutes, set()):
        return None
    same = u.s.exec(
        select(SlotOffer).where(
            SlotOffer.status == "open", SlotOffer.clinician_id == appointment.clinician_id, SlotOffer.start == at
        )
    ).first()
    if same is not None:
        return None
    offer = SlotOffer(
        freed_appointment_id=appointment.id,
        clinician_id=appointment.clinician_id,
        start=at,
        minutes=appointment.minutes,
        status="open",
        tried=[],
        created_at=u.now,
    )
    u.s.add(offer)
    u.s.flush()
    u.s.add(Timer(kind=TIMER_KIND, due_at=u.now, payload={"offer": offer.id}, created_at=u.now))
    store.audit(u.s, u.now, "system:waitlist", "slot_offer", str(offer.id), "opened", start=at.isoformat())
    return offer


def _overlaps(offer: SlotOffer, a: Appointment) -> bool:
    end = a.start + timedelta(minutes=a.minutes)
    return a.start < offer.start + timedelta(minutes=offer.minutes) and offer.start < end


def _booked(svc: Service, u: Unit, a: Appointment) -> None:
    """Someone now holds (part of) an offered slot: the offer is taken, or withdrawn."""
    offers = u.s.exec(
        select(SlotOffer).where(
            SlotOffer.status == "open",
            SlotOffer.clinician_id == a.clinician_id,
            col(SlotOffer.start) < a.start + timedelta(minutes=a.minutes),
            col(SlotOffer.start) > a.start - timedelta(hours=12),
        )
    )
    for offer in offers:
        if not _overlaps(offer, a):
            continue
        entry = u.s.get(WaitlistEntry, offer.current_entry_id) if offer.current_entry_id else None
        if entry is not None and entry.appointment_id == a.id:
            _close(u, offer, "taken", taken_by=a.client_id)
            _close_entry(u, entry, "booked")
            continue
        _close(u, offer, "withdrawn")
        if offer.current_client_id and offer.current_client_id != a.client_id:
            _tell_withdrawn(svc, u, offer)


def _close(u: Unit, offer: SlotOffer, status: str, taken_by: str | None = None) -> None:
    offer.status = status
    offer.outcome = status
    offer.taken_by = taken_by
    offer.closed_at = u.now
    u.s.add(offer)
    store.audit(u.s, u.now, "system:waitlist", "slot_offer", str(offer.id), status, client=taken_by)


def _offer_conversation(s: Session, offer: SlotOffer) -> Conversation | None:
    if offer.conversation_id is None:
        return None
    conv = s.get(Conversation, offer.conversation_id)
    if conv is None or not conv.active or conv.dialogue != DIALOGUE or conv.vars.get("offer") != offer.id:
        return None
    return conv


def _tell_withdrawn(svc: Service, u: Unit, offer: SlotOffer) -> None:
    client = u.s.get(Client, offer.current_client_id) if offer.current_client_id else None
    # Never wait for another client's lock here (we hold this one's): if it is busy, the offer is
    # closed anyway, and a late "yes" no longer lands in the offer dialogue.
    if client is None or not store.try_lock_client(u.s, client.id):
        return
    conv = _offer_conversation(u.s, offer)
    if conv is None:
        return
    svc._end(u, conv, "offer_withdrawn")
    entry = u.s.get(WaitlistEntry, offer.current_entry_id) if offer.current_entry_id else None
    appt = u.s.get(Appointment, entry.appointment_id) if entry else None
    params = {"when": appt.start} if appt else {}
    text_ = svc._render(client.lang, "waitlist.gone", params, client.tz, name=client.name)
    svc._send_client(u, client, text_, DIALOGUE, "gone", automated=False)


# -- the offer timer ---------------------------------------------------------------------------------


def _candidates(
    s: Session, clinician_id: str | None, start: datetime, minutes: int, tried: set[int]
) -> list[tuple[WaitlistEntry, Appointment]]:
    out = []
    for e in waiting(s, clinician_id):
        if e.id in tried or e.clinician_id != clinician_id:
            continue
        a = s.get(Appointment, e.appointment_id)
        if a is None or a.status not in store.UPCOMING or a.start <= start or a.minutes > minutes:
            continue
        out.append((e, a))
    return out


def fire_timer(svc: Service, u: Unit, t: Timer) -> str:
    """Move an offer along: the next client, a deferral, or the end. Returns the timer outcome."""
    cfg = config_of(svc)
    offer = u.s.get(SlotOffer, t.payload.get("offer"))
    if offer is None or offer.status != "open":
        return "stale"
    conv = _offer_conversation(u.s, offer)
    if conv is not None and conv.wait:
        # Still talking (a clarification restarted the wait): check again when that wait ends.
        t.due_at = max(u.now, datetime.fromisoformat(conv.wait["timeout_at"])) + GRACE
        return "rescheduled"
    if offer.start - u.now < cfg.min_notice:
        _close(u, offer, "expired")
        return "expired"
    tried = set(offer.tried)
    for entry, appt in _candidates(u.s, offer.clinician_id, offer.start, offer.minutes, tried):
        assert entry.id is not None
        if not store.try_lock_client(u.s, entry.client_id):
            # The client is mid-transaction (a message arriving): ask again in a moment rather than
            # wait for their lock while holding this timer (see Service.fire_one).
            t.due_at = u.now + BUSY_RETRY
            return "rescheduled"
        client = u.s.get(Client, entry.client_id)
        if client is None:
            continue
        u.s.refresh(client)
        reason = _cannot_ask(svc, u, client)
        if reason == "quiet_hours":
            until = quiet_until(u.now, client.tz, svc.cfg.quiet_hours.start, svc.cfg.quiet_hours.end)
            if until is not None and offer.start - until >= cfg.min_notice:
                t.due_at = until
                return "rescheduled"
        tried.add(entry.id)
        offer.tried = sorted(tried)
        if reason is not None:
            log.info("waitlist offer %s skips client %s: %s", offer.id, client.id, reason)
            continue
        iso = offer.start.isoformat()
        svc._start(
            u, client, DIALOGUE, appt=appt, automated=True, vars={"offer": offer.id, "slots": [iso], "picked": iso}
        )
        conv = store.active_conversation(u.s, client.id)
        offer.current_entry_id = entry.id
        offer.current_client_id = client.id
        offer.conversation_id = conv.id if conv is not None and conv.dialogue == DIALOGUE else None
        u.s.add(offer)
        t.due_at = u.now + cfg.offer_timeout + GRACE
        return "rescheduled"
    u.s.add(offer)
    _close(u, offer, "expired")
    return "no_takers"


def _cannot_ask(svc: Service, u: Unit, client: Client) -> str | None:
    if client.opted_out:
        return "opted_out"
    if not client.consent:
        return "no_consent"
    if store.open_alert(u.s, client.id) is not None:
        return "crisis_pause"
    conv = store.active_conversation(u.s, client.id)
    if conv is not None and conv.wait:
        return "busy"
    if svc._capped(u, client):
        return "cap"
    if quiet_until(u.now, client.tz, svc.cfg.quiet_hours.start, svc.cfg.quiet_hours.end) is not None:
        return "quiet_hours"
    return None
