"""Deleting one client on request, across every table (``rapport records delete``, ``DELETE /api/clients/{id}``).

One transaction under the client's lock: either everything about the client goes, or nothing
does. What is deleted, what is kept without the client's identity, and why, is in
docs/records.md ("Deleting a client") and SECURITY.md; ``TABLE_POLICY`` names every table so a
table added later cannot be forgotten (tests/security/test_erasure.py fails until it is listed).

Kept, with the client's identity removed:

- crisis alerts: that an alert happened, its level, when, how often it was sent, who acknowledged
  and resolved it. The practice's duty of care is documented by it; it names nobody afterwards.
- the staff messages that carried those alerts (their text, which names the client, is replaced).
- the audit entries about those alerts (the client reference is dropped from their detail).
- one audit entry recording the deletion itself: who asked, when, and row counts; no identifier.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, update
from sqlalchemy.engine import Engine as DbEngine
from sqlmodel import Session, col, select

from bot.records import RecordError
from storage import store
from storage.admin_tables import Takeover
from storage.tables import (
    Alert,
    Appointment,
    AuditLog,
    Client,
    Conversation,
    Feedback,
    Message,
    Outbox,
    Timer,
)
from storage.writeback_table import ImportItem, SlotOffer, WaitlistEntry, WritebackEvent

ERASED_TEXT = "[erased: client deleted]"
ERASED_REF = "erased"
ALERT_STATUSES_OPEN = ("open", "acked")

# Every table on SQLModel.metadata and what deleting a client does to it.
TABLE_POLICY: dict[str, str] = {
    "clients": "deleted",
    "appointments": "deleted (with their status history)",
    "conversations": "deleted",
    "messages": "deleted; staff copies of the client's crisis alerts kept with their text replaced",
    "outbox": "deleted; staff copies of the client's crisis alerts kept with their text replaced",
    "timers": "deleted",
    "feedback": "deleted",
    "waitlist": "deleted",
    "slot_offers": "kept (a free slot is the practice's): references to the client and their appointments removed",
    "writeback_events": "deleted, delivered or not",
    "import_items": "deleted (a re-import from the practice system would create the client again)",
    "takeovers": "deleted",
    "alerts": "kept without the client's identity (client, address and matched phrases cleared)",
    "audit_log": "deleted, except alert entries (kept without the client reference); the deletion is recorded",
    "inbound_seen": "kept: provider ids only, no personal data; keeps a replayed webhook harmless",
    "practices": "no client data",
    "clinicians": "no client data",
    "staff_users": "no client data",
    "staff_sessions": "no client data",
    "script_overrides": "no client data",
}


class ErasureRefused(RecordError):
    """A deletion that must not happen now (an open crisis alert); the message says why."""


@dataclass
class Erasure:
    """What one deletion did, row counts per table (deleted, or changed where ``anonymised``)."""

    deleted: dict[str, int] = field(default_factory=dict)
    anonymised: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"deleted": dict(self.deleted), "anonymised": dict(self.anonymised)}


def erase_client(db: DbEngine, client_id: str, now: datetime, actor: str) -> Erasure:
    """Delete the client and everything about them; see the module docstring for what stays.

    Raises RecordError (field ``id``) for an unknown client and ErasureRefused (field ``alerts``)
    while one of the client's crisis alerts is open or acknowledged: a person must resolve it
    first, so that deleting a record never silently ends a crisis follow-up. Also refused (field
    ``outbox``) for the moment a message to them is in a provider's hands: the worker records its
    outcome on that row.
    """
    with Session(db) as s:
        store.lock_client(s, client_id)
        client = s.get(Client, client_id)
        if client is None:
            raise RecordError("id", f"unknown client {client_id!r}")
        addresses = _addresses(client)
        alert_q = select(Alert).where(_alert_of(client_id, addresses))
        alerts = list(s.exec(alert_q))
        if any(a.status in ALERT_STATUSES_OPEN for a in alerts):
            raise ErasureRefused("alerts", "the client has an open crisis alert: resolve it before deleting the client")
        result = Erasure()
        appt_ids = list(s.exec(select(Appointment.id).where(Appointment.client_id == client_id)))
        conv_ids = [str(i) for i in s.exec(select(Conversation.id).where(Conversation.client_id == client_id))]
        msg_ids = list(
            s.exec(
                select(Message.id).where(or_(col(Message.client_id) == client_id, col(Message.address).in_(addresses)))
            )
        )
        alert_ids = [a.id for a in alerts if a.id is not None]
        # Locked so that no outbox worker claims one of these rows between this check and the
        # delete (claims skip locked rows); a row being sent right now is left to finish first.
        outgoing = select(Outbox).where(or_(col(Outbox.message_id).in_(msg_ids), col(Outbox.to).in_(addresses)))
        if store.is_postgres(s):
            outgoing = outgoing.with_for_update()
        if any(o.status == "sending" for o in s.exec(outgoing)):
            raise ErasureRefused("outbox", "a message to the client is being sent right now: try again in a minute")

        result.anonymised["messages"], result.anonymised["outbox"] = _redact_staff_copies(s, client, alert_ids, msg_ids)
        result.deleted["outbox"] = _count(
            s, delete(Outbox).where(or_(col(Outbox.message_id).in_(msg_ids), col(Outbox.to).in_(addresses)))
        )
        result.deleted["messages"] = _count(s, delete(Message).where(col(Message.id).in_(msg_ids)))
        result.deleted["timers"] = _count(
            s,
            delete(Timer).where(or_(col(Timer.client_id) == client_id, col(Timer.appointment_id).in_(appt_ids))),
        )
        result.deleted["conversations"] = _count(
            s, delete(Conversation).where(col(Conversation.client_id) == client_id)
        )
        result.deleted["feedback"] = _count(s, delete(Feedback).where(col(Feedback.client_id) == client_id))
        result.deleted["waitlist"] = _count(s, delete(WaitlistEntry).where(col(WaitlistEntry.client_id) == client_id))
        result.anonymised["slot_offers"] = _unlink_slot_offers(s, client_id, appt_ids, now)
        result.deleted["writeback_events"] = _count(
            s,
            delete(WritebackEvent).where(
                or_(col(WritebackEvent.client_id) == client_id, col(WritebackEvent.appointment_id).in_(appt_ids))
            ),
        )
        result.deleted["import_items"] = _count(
            s, delete(ImportItem).where(col(ImportItem.appointment_id).in_(appt_ids))
        )
        result.deleted["takeovers"] = _count(s, delete(Takeover).where(col(Takeover.client_id) == client_id))
        result.anonymised["alerts"] = _count(
            s,
            update(Alert).where(col(Alert.id).in_(alert_ids)).values(client_id=None, address=None, matched=[]),
        )
        result.deleted["audit_log"], result.anonymised["audit_log"] = _scrub_audit(
            s, client_id, appt_ids, conv_ids, [str(i) for i in msg_ids], [str(i) for i in alert_ids]
        )
        result.deleted["appointments"] = _count(s, delete(Appointment).where(col(Appointment.client_id) == client_id))
        result.deleted["clients"] = _count(s, delete(Client).where(col(Client.id) == client_id))
        # The record of the deletion carries counts only: the practice's own request record says who.
        store.audit(s, now, actor, "records", "erasure", "client_deleted", **result.as_dict())
        s.commit()
        return result


def _addresses(client: Client) -> list[str]:
    """How the client's phone or chat appears as a sender or recipient before they were known."""
    out: list[str] = []
    if client.phone:
        out.append(client.phone)
    if client.telegram:
        out += [client.telegram, f"telegram:{client.telegram}"]
    return out


def _alert_of(client_id: str, addresses: list[str]) -> Any:
    return or_(col(Alert.client_id) == client_id, col(Alert.address).in_(addresses))


def _count(s: Session, stmt: Any) -> int:
    return int(s.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]


def _redact_staff_copies(
    s: Session, client: Client, alert_ids: list[int], own: Iterable[int | None]
) -> tuple[int, int]:
    """Staff alert and forward messages name the client: keep that they were sent, not their text.

    Bodies may be encrypted (randomised), so they cannot be matched in SQL: the crisis messages
    not addressed to a client are read and checked here (there are few: one per alert send).
    """
    own_ids = set(own)
    needles = [f"/api/alerts/{i}" for i in alert_ids] + [client.id] + _addresses(client)
    if client.name and len(client.name) >= 3:
        needles.append(client.name)
    hits: list[int] = []
    staff = select(Message).where(col(Message.client_id).is_(None), col(Message.dialogue) == "crisis")
    for m in s.exec(staff):
        if m.id is not None and m.id not in own_ids and any(n in m.body for n in needles):
            hits.append(m.id)
    if not hits:
        return 0, 0
    n_msg = _count(s, update(Message).where(col(Message.id).in_(hits)).values(body=ERASED_TEXT))
    n_out = _count(s, update(Outbox).where(col(Outbox.message_id).in_(hits)).values(body=ERASED_TEXT))
    return n_msg, n_out


def _unlink_slot_offers(s: Session, client_id: str, appt_ids: list[str], now: datetime) -> int:
    changed: set[int] = set()
    for o in s.exec(
        select(SlotOffer).where(
            or_(
                col(SlotOffer.current_client_id) == client_id,
                col(SlotOffer.taken_by) == client_id,
                col(SlotOffer.freed_appointment_id).in_(appt_ids),
            )
        )
    ):
        if o.current_client_id == client_id:
            o.current_client_id = None
            o.conversation_id = None
            if o.status == "open":
                # The offer was waiting on this client's answer; it cannot be answered now.
                o.status, o.closed_at, o.outcome = "withdrawn", now, "client deleted"
        if o.taken_by == client_id:
            o.taken_by = None
        if o.freed_appointment_id in appt_ids:
            o.freed_appointment_id = ERASED_REF
        s.add(o)
        if o.id is not None:
            changed.add(o.id)
    s.flush()
    return len(changed)


def _scrub_audit(
    s: Session,
    client_id: str,
    appt_ids: list[str],
    conv_ids: list[str],
    msg_ids: list[str],
    alert_ids: list[str],
) -> tuple[int, int]:
    """Delete the audit entries about the client; keep their alerts' entries without the reference."""
    about_alerts = and_(col(AuditLog.entity) == "alert", col(AuditLog.entity_id).in_(alert_ids))
    mentions = or_(
        col(AuditLog.actor) == f"client:{client_id}",
        and_(col(AuditLog.entity) == "client", col(AuditLog.entity_id) == client_id),
        and_(col(AuditLog.entity) == "appointment", col(AuditLog.entity_id).in_(appt_ids)),
        and_(col(AuditLog.entity) == "conversation", col(AuditLog.entity_id).in_([*conv_ids, client_id])),
        and_(col(AuditLog.entity) == "message", col(AuditLog.entity_id).in_(msg_ids)),
        AuditLog.detail["client"].as_string() == client_id,
    )
    kept = 0
    for e in s.exec(select(AuditLog).where(about_alerts)):
        if "client" in e.detail:
            e.detail = {k: v for k, v in e.detail.items() if k != "client"}
            s.add(e)
            kept += 1
    s.flush()
    gone = _count(s, delete(AuditLog).where(and_(mentions, ~about_alerts)))
    return gone, kept
