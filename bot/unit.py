"""A unit of work: one transaction, one clock reading, and what it did (for the simulator and metrics)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session


@dataclass
class Note:
    """One observable thing that happened: a transcript line in `rapport simulate`."""

    type: str  # message | appointment | held | alert | alert_acked | alert_resolved
    at: datetime
    tz: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Unit:
    s: Session
    now: datetime
    notes: list[Note] = field(default_factory=list)
    wake_outbox: bool = False
    # Several inbound messages share this transaction (Service.handle_inbound_batch): reading one
    # message's context does not flush what the earlier ones changed unless it concerns the same
    # client (Service._context).
    batched: bool = False
    # PostgreSQL, an inbound batch (Service._prepare_batch): the client locks taken for the whole batch
    # at its start, and the client ids its addresses had then.
    locked: set[int] = field(default_factory=set)
    client_ids: dict[tuple[str, str], str | None] = field(default_factory=dict)
    # ... and their contexts' rows, read then (Service._prefetched uses each at most once)
    prefetched: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def note(self, type: str, tz: str | None = None, **data: Any) -> None:
        self.notes.append(Note(type, self.now, tz, data))
