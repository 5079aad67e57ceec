"""Conversation state as plain data, and the snapshot of the world the engine may look at."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Wait:
    expects: str  # an understanding context
    timeout_at: datetime
    on_timeout: str  # step name or "end"

    def to_json(self) -> dict[str, Any]:
        return {"expects": self.expects, "timeout_at": self.timeout_at.isoformat(), "on_timeout": self.on_timeout}

    @staticmethod
    def from_json(d: dict[str, Any]) -> Wait:
        return Wait(d["expects"], datetime.fromisoformat(d["timeout_at"]), d["on_timeout"])


@dataclass(frozen=True)
class State:
    dialogue: str
    step: str
    vars: dict[str, Any] = field(default_factory=dict)
    wait: Wait | None = None


@dataclass(frozen=True)
class AppointmentView:
    id: str
    start: datetime
    minutes: int
    status: str
    clinician_id: str | None
    confirmed: bool = False


@dataclass(frozen=True)
class Availability:
    tz: str
    session_minutes: int
    windows: dict[str, list[str]]  # weekday -> ["HH:MM-HH:MM", ...]
    booked: tuple[tuple[datetime, datetime], ...] = ()  # the clinician's other appointments


@dataclass(frozen=True)
class Ctx:
    """Everything the engine may read. Built by the host for each call; the engine never fetches."""

    now: datetime
    tz: str
    appointment: AppointmentView | None = None
    availability: Availability | None = None
    # False: the host has not looked availability up (it is costly and most replies never need it).
    # An action that needs it raises NeedsAvailability and the host calls again with it loaded.
    availability_loaded: bool = True
    durations: dict[str, timedelta] = field(default_factory=dict)
