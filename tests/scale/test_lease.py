"""A claimed outbox row keeps its lease while it waits its turn behind the pacing.

The worker claims up to ``max_inflight`` rows at once and then paces them: at Twilio's default of
one segment a second, 64 two-segment reminders wait up to 128 s, longer than the two-minute lease.
A row whose lease runs out while it waits is handed back by ``recover_stale`` (any process's
housekeeping, this one's included), claimed again and sent, and then the first claim, done
waiting, sends it too. Here the lease is 2 s and the pacing 10 messages a second, so the tail of a
batch of 50 waits 5 s: the same race in seconds instead of minutes.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from bot import outbox
from channels.base import Outbound, SendResult
from storage.db import create_all, make_engine
from storage.tables import Message, Outbox

ROWS = 50
RATE = 10.0  # messages a second: the last of ROWS waits ROWS / RATE = 5 s
LEASE = timedelta(seconds=2)


class PacedSender:
    """Counts every send of every row; paced like a Twilio number."""

    def __init__(self) -> None:
        self.sent: Counter[int] = Counter()

    def pacing(self, out: Outbound) -> Sequence[outbox.Pacing]:
        return (("sms:+15550009999", RATE, 1.0, 1.0),)

    async def send(self, out: Outbound) -> SendResult:
        assert out.outbox_id is not None
        self.sent[out.outbox_id] += 1
        return SendResult(ok=True, provider_id=f"SM{out.outbox_id}-{self.sent[out.outbox_id]}")


def test_rows_waiting_for_their_turn_are_not_recovered_and_sent_twice(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "LEASE", LEASE)
    db = make_engine(db_url)
    create_all(db)
    now = datetime.now(UTC)
    with Session(db) as s:
        for i in range(ROWS):
            m = Message(direction="out", channel="sms", body=f"reminder {i}", status="queued", created_at=now)
            s.add(m)
            s.flush()
            assert m.id is not None
            s.add(Outbox(message_id=m.id, channel="sms", to=f"+1555200{i:04d}", body=f"reminder {i}", created_at=now))
        s.commit()
    sender = PacedSender()

    async def go() -> None:
        w = outbox.Worker(db, {"sms": sender}, max_inflight=64, poll=0.2)
        w.start()
        # The whole batch is claimed at once; past the first lease, the tail is still waiting its turn.
        await asyncio.sleep(LEASE.total_seconds() * 1.5)
        await asyncio.to_thread(outbox.recover_stale, db, datetime.now(UTC))
        w.wake()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with Session(db) as s:
                left = s.exec(select(Outbox.id).where(col(Outbox.status) != "sent")).all()
            if not left and w.inflight == 0:
                break
            await asyncio.sleep(0.2)
        await w.stop()

    asyncio.run(go())
    with Session(db) as s:
        rows = list(s.exec(select(Outbox)))
    db.dispose()
    assert all(r.status == "sent" for r in rows)
    assert len(sender.sent) == ROWS
    doubled = {k: n for k, n in sender.sent.items() if n > 1}
    assert not doubled, f"{len(doubled)} rows sent twice: their lease ran out while they waited for the pacing"
