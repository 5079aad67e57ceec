"""A lean HTTP/1.1 load generator for the benches: keep-alive connections on asyncio streams.

The load generator shares the machine with the server it measures, so it must cost far less than
the server does per request. httpx does not, under open-loop load: with a few hundred requests
waiting for a connection, its pool spends O(waiting) on every hand-over, and at 200 requests a second
the generator took a whole core and starved itself while the servers idled. Here a request is
one ``write`` and a read of the status line, the headers and a ``Content-Length`` body: tens of
microseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

STALE = 3.0  # seconds idle after which a connection is not reused (uvicorn closes idle ones after 5)


class Pool:
    """Up to ``size`` keep-alive connections to one host; ``post`` waits for a free one."""

    def __init__(self, host: str, port: int, size: int = 256, timeout: float = 60.0):
        self.host = host
        self.port = port
        self.size = size
        self.timeout = timeout
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.open = 0
        self.freed = asyncio.Condition()

    async def _take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with self.freed:
            while not self.idle and self.open >= self.size:
                await self.freed.wait()
            while self.idle:
                reader, writer, since = self.idle.pop()
                if time.monotonic() - since < STALE:
                    return reader, writer
                writer.close()
                self.open -= 1
            self.open += 1
        try:
            return await asyncio.open_connection(self.host, self.port)
        except BaseException:
            async with self.freed:
                self.open -= 1
                self.freed.notify()
            raise

    async def _give(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        async with self.freed:
            if conn is None:
                self.open -= 1
            else:
                self.idle.append((*conn, time.monotonic()))
            self.freed.notify()

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> int:
        """The response's status code; -1 when the connection failed or timed out."""
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        conn = await self._take()
        reader, writer = conn
        try:
            writer.write(head.encode("latin-1") + b"\r\n" + body)
            status = await asyncio.wait_for(_read_response(reader), self.timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            writer.close()
            await self._give(None)
            return -1
        await self._give(conn)
        return status

    async def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status
