"""The shape of an understood reply; shared by every backend and by the engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Intent = Literal["confirm", "cancel", "reschedule", "opt_out", "opt_in", "help", "human", "rating", "other"]
Context = Literal["reminder", "missed", "rating", "feedback_text", "reschedule_time", "none"]

INTENTS: tuple[str, ...] = ("confirm", "cancel", "reschedule", "opt_out", "opt_in", "help", "human", "rating", "other")
CONTEXTS: tuple[str, ...] = ("reminder", "missed", "rating", "feedback_text", "reschedule_time", "none")


@dataclass(frozen=True)
class Parse:
    """What a client's reply means in its context.

    ``when`` is local to the client's zone: ``"YYYY-MM-DDTHH:MM"`` when a day and a time were
    worked out, ``"YYYY-MM-DD"`` for a day alone, None otherwise. ``rating`` is 1-5 or None.
    """

    intent: str
    confidence: float
    when: str | None = None
    rating: int | None = None
