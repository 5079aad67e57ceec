"""The simulator channel: delivers to an in-process list instead of a provider.

Behind `rapport simulate`, `rapport chat` and the web simulator. Every outbound row still goes
through the real outbox, so what the simulator shows is what a provider would have been given.
"""

from __future__ import annotations

from itertools import count

from channels.base import Outbound, SendResult


class SimChannel:
    def __init__(self) -> None:
        self.sent: list[Outbound] = []
        self._ids = count(1)

    def send(self, out: Outbound) -> SendResult:
        self.sent.append(out)
        return SendResult(ok=True, provider_id=f"SIM{next(self._ids):06d}")
