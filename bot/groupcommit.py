"""Group commit: what arrives while one batch is being written goes together in the next one.

The webhooks' inbound messages (bot/web/batcher.py) and the outbox worker's successful sends
(bot/outbox.py) both pay one commit and one thread hop per batch instead of per item. One batch is
in flight at a time; with nothing else waiting a batch is a single item, so an idle system goes as
fast as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _same(e: BaseException) -> Exception:
    return e if isinstance(e, Exception) else RuntimeError("batch cancelled")


class GroupCommit(Generic[T, R]):
    """``submit(item)`` waits for ``write(batch)`` to have handled the batch its item joined.

    ``write`` gets up to ``max_batch`` items in arrival order and returns one result per item. If it
    raises, or is cancelled (shutdown), every item of the batch gets ``failure(error)``; the
    cancellation goes on.
    """

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = 64,
        failure: Callable[[BaseException], Exception] = _same,
    ):
        self.write = write
        self.max_batch = max_batch
        self.failure = failure
        self.queue: list[tuple[T, asyncio.Future[R]]] = []
        # Made on first use, per event loop: tests run one loop after another on the same object.
        self._turn: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._drains: set[asyncio.Task[None]] = set()  # held so the loop does not drop them

    def _start_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        task = loop.create_task(self._drain())
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self.queue.append((item, fut))
        if len(self.queue) == 1:
            self._start_drain(loop)
        return await fut

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        if self._turn is None or self._turn[0] is not loop:
            self._turn = (loop, asyncio.Lock())
        async with self._turn[1]:
            batch, self.queue = self.queue[: self.max_batch], self.queue[self.max_batch :]
            if self.queue:  # more than one batch's worth waiting: the next turn takes the rest
                self._start_drain(loop)
            if not batch:
                return
            try:
                results = await self.write([item for item, _ in batch])
            except BaseException as e:
                error = self.failure(e)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(error)
                if not isinstance(e, Exception):
                    raise
                return
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
