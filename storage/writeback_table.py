"""Tables for the practice's side (issue 7): write-back events, import bookkeeping, the waitlist.

Kept apart from ``storage.tables`` so the core schema stays readable; registered on the same
``SQLModel.metadata`` (``storage.db`` imports this module) and created by migration 0002.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class WritebackEvent(SQLModel, table=True):
    """One change a client made that the practice's own system must hear about.

    Written in the same transaction as the change (``bot.writeback.record_writeback``), delivered
    by ``bot.writeback.deliver_pending``; never deleted by delivery, only by the records purge.
    """

    __tablename__ = "writeback_events"
    __table_args__ = (
        Index("ix_writeback_pending", "status", "next_attempt_at"),
        Index("ix_writeback_appointment", "appointment_id", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True)  # sent in the body: receivers dedupe on it
    event: str  # confirmed | cancelled | moved | booked | reschedule_requested
    appointment_id: str
    client_id: str
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = "pending"  # pending | sent | failed
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    last_status: int | None = None  # the HTTP status of the last attempt
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime | None = _ts()
    sent_at: datetime | None = _ts()


class ImportItem(SQLModel, table=True):
    """What an import source (a CSV or .ics feed) last said about one external appointment id.

    Makes a nightly re-import cheap (unchanged rows are skipped by fingerprint) and scopes
    ``--prune`` to the appointments that came from that source.
    """

    __tablename__ = "import_items"
    source: str = Field(primary_key=True)
    external_id: str = Field(primary_key=True)
    appointment_id: str = Field(index=True)
    fingerprint: str
    last_seen_at: datetime | None = _ts()


class WaitlistEntry(SQLModel, table=True):
    """A client who would take an earlier slot than the appointment they have."""

    __tablename__ = "waitlist"
    __table_args__ = (Index("ix_waitlist_clinician_status", "clinician_id", "status", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(index=True)
    appointment_id: str  # the appointment to move earlier
    clinician_id: str | None = None
    status: str = "waiting"  # waiting | booked | removed
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()
    note: str | None = None


class SlotOffer(SQLModel, table=True):
    """A freed slot being offered to waitlisted clients in turn; the first to accept gets it."""

    __tablename__ = "slot_offers"
    __table_args__ = (Index("ix_slot_offers_open", "status", "clinician_id", "start"),)
    id: int | None = Field(default=None, primary_key=True)
    freed_appointment_id: str
    clinician_id: str | None = None
    start: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    minutes: int = 50
    status: str = "open"  # open | taken | withdrawn | expired
    tried: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # entry ids offered
    current_entry_id: int | None = None
    current_client_id: str | None = None
    conversation_id: int | None = None
    taken_by: str | None = None  # client id
    created_at: datetime | None = _ts()
    closed_at: datetime | None = _ts()
    outcome: str | None = None
