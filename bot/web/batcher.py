"""Group commit for inbound messages: webhooks that arrive together share one transaction.

Each webhook still answers only after its message, the reply and the outbox row are committed; what
changes under load is that the messages which queued up while one transaction ran are processed
together in the next one, so a burst pays for one commit, one thread hop and one BEGIN per batch
instead of per message. With nothing else waiting a batch is a single message, so an idle system
answers as fast as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from bot.service import Service
from channels.base import Inbound

Run = Callable[..., Awaitable[Any]]


class InboundBatcher:
    def __init__(self, svc: Service, run: Run, *, max_batch: int = 64):
        self.svc = svc
        self.run = run
        self.max_batch = max_batch
        # One batch in flight at a time, on both databases: SQLite serialises writers anyway, and on
        # PostgreSQL concurrent batches only add threads that wait for the GIL between round trips
        # (measured: 79 msg/s with four at once, 87 with one, p99 halved).
        self.turn = asyncio.Lock()
        self.queue: list[tuple[Inbound, datetime, asyncio.Future[str]]] = []
        self.batches = 0
        self.messages = 0

    async def submit(self, inb: Inbound, now: datetime) -> str:
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.queue.append((inb, now, fut))
        if len(self.queue) == 1:
            asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        async with self.turn:
            batch, self.queue = self.queue[: self.max_batch], self.queue[self.max_batch :]
            if self.queue:  # more than one batch's worth waiting: the next turn takes the rest
                asyncio.get_running_loop().create_task(self._drain())
            if not batch:
                return
            try:
                outcomes = await self.run(self.svc.handle_inbound_batch, [(inb, now) for inb, now, _ in batch])
                self.batches += 1
                self.messages += len(batch)
                for (_, _, fut), outcome in zip(batch, outcomes, strict=True):
                    if not fut.done():
                        fut.set_result(outcome)
            finally:
                # An error, or shutdown cancelling us mid-batch: its webhooks fail (the provider retries).
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(RuntimeError("inbound batch not processed"))
