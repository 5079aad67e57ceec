"""What the engine says happened. The host (bot/service.py) acts on these; the engine never does.

Each event is a frozen dataclass with a ``type`` constant, so a sprint serialises to readable JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class MessageOut:
    """Send ``msg_id`` rendered with ``params`` in the client's language."""

    msg_id: str
    dialogue: str
    step: str
    params: dict[str, Any] = field(default_factory=dict)
    buttons: tuple[str, ...] = ()
    type: str = "msg_created"


@dataclass(frozen=True)
class WaitStarted:
    """The conversation now waits for a reply of kind ``expects`` until ``timeout_at``."""

    expects: str
    timeout_at: datetime
    type: str = "wait_started"


@dataclass(frozen=True)
class AppointmentConfirmed:
    appointment_id: str
    type: str = "appointment_confirmed"


@dataclass(frozen=True)
class AppointmentCancelled:
    appointment_id: str
    type: str = "appointment_cancelled"


@dataclass(frozen=True)
class RescheduleRequested:
    """The client wants another time and the bot could not book one: the practice follows up."""

    appointment_id: str
    when: str | None
    type: str = "reschedule_requested"


@dataclass(frozen=True)
class AppointmentMoved:
    appointment_id: str
    start: datetime
    type: str = "appointment_moved"


@dataclass(frozen=True)
class AppointmentBooked:
    """A new appointment (after a missed or cancelled one); the host gives it its own id."""

    from_appointment_id: str
    start: datetime
    minutes: int
    clinician_id: str | None
    type: str = "appointment_booked"


@dataclass(frozen=True)
class FeedbackRecorded:
    appointment_id: str | None
    rating: int | None
    takeaway: str | None
    leave_behind: str | None
    type: str = "feedback_recorded"


@dataclass(frozen=True)
class HandoffRequested:
    reason: str
    type: str = "handoff_requested"


@dataclass(frozen=True)
class ConversationEnded:
    reason: str  # done | timeout | replaced
    type: str = "conversation_ended"


Event = (
    MessageOut
    | WaitStarted
    | AppointmentConfirmed
    | AppointmentCancelled
    | RescheduleRequested
    | AppointmentMoved
    | AppointmentBooked
    | FeedbackRecorded
    | HandoffRequested
    | ConversationEnded
)
