"""What resumes a waiting conversation: a client's reply or the wait's own timeout."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.understanding.types import Parse


@dataclass(frozen=True)
class Reply:
    text: str
    parse: Parse
    type: str = "msg"


@dataclass(frozen=True)
class WaitTimeout:
    """Accepted only by a conversation whose wait times out at ``timeout_at`` (stale timers are refused)."""

    timeout_at: datetime
    type: str = "wait_timeout"


Input = Reply | WaitTimeout
