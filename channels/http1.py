"""A small asyncio HTTP/1.1 client for the twilio library's async interface (the outbox worker's sends).

It exists for CPU: at ~600 sends/s aiohttp's client machinery took ~15% of the server process's
interpreter time (py-spy), five times the twilio library's own share. This one writes a request in
one buffer and parses the answer with httptools (C), over pooled keep-alive connections.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import json
import logging
import socket
import ssl
from collections import deque
from typing import cast
from urllib.parse import quote, urlencode, urlsplit

import httptools
from twilio.http import AsyncHttpClient
from twilio.http.response import Response

MAX_BODY = 8 * 1024 * 1024
POOL_LIMIT = 64  # connections per (scheme, host, port), as aiohttp's TCPConnector(limit=64) had
# Idle connections older than this are not reused (aiohttp's default): a server drops idle
# keep-alives after a while, and writing into one it is closing right now loses the request.
KEEPALIVE_SECONDS = 15.0
USER_AGENT = "rapport-http1"

# Framing is ours: a caller's copy of these would contradict what is written.
_OURS = frozenset({"host", "content-length", "connection", "transfer-encoding"})
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"  # keep what is already escaped or legal; quote the rest


class HttpError(OSError):
    """Refused, reset, closed before the answer, or a malformed/oversized answer.

    The reason is short and fixed: never a URL, a query string or a phone number (it is logged).
    """


class _Conn(asyncio.Protocol):
    """One connection and its response parser, reused for every request it carries in turn."""

    __slots__ = (
        "body",
        "charset",
        "dead",
        "error",
        "framed",
        "head",
        "headers",
        "headers_done",
        "idle_since",
        "loop",
        "max_body",
        "parser",
        "size",
        "status",
        "transport",
        "waiter",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, max_body: int) -> None:
        self.loop = loop
        self.max_body = max_body
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.dead = False  # closed, closing, or in a state no later request may inherit
        self.waiter: asyncio.Future[Response] | None = None
        self.head = False
        self.idle_since = 0.0
        self.error: str | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.headers_done = False
        self.framed = False  # Content-Length or Transfer-Encoding: else the body runs to EOF
        self.charset = "utf-8"

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # a request leaves in one write, but never let Nagle hold a short one back
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:
            # Bytes nobody asked for (a 408 before an idle close, a stray answer): unusable.
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("unexpected protocol upgrade")
        except httptools.HttpParserError:
            self._fail(self.error or "malformed response")

    def eof_received(self) -> bool:
        self._ended(clean=True)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(clean=exc is None)

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self.waiter is None:
            self.dead = True  # a second answer behind the one we asked for
        self._reset()

    def on_header(self, name: bytes, value: bytes) -> None:
        k = name.decode("latin-1")
        v = value.decode("latin-1")
        lk = name.lower()
        if lk == b"content-length" or lk == b"transfer-encoding":
            self.framed = True
        elif lk == b"content-type" and "charset=" in v.lower():
            self.charset = _charset(v)
        # repeated fields are one comma-joined value (RFC 9110 5.3); a dict is what twilio keeps
        self.headers[k] = f"{self.headers[k]}, {v}" if k in self.headers else v

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True
        if self.head and self.status >= 200:
            # httptools cannot be told a HEAD answer has no body: answer now and retire the parser
            self.dead = True
            self._finish()

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.max_body:
            self.error = "response too large"
            raise ValueError(self.error)  # httptools stops and feed_data raises
        self.body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:
            return  # interim (100 Continue): the real answer follows on the same connection
        if not self.parser.should_keep_alive():
            self.dead = True
        self._finish()

    # ours

    def send(self, payload: bytes, head: bool) -> asyncio.Future[Response]:
        assert self.transport is not None
        self.waiter = fut = self.loop.create_future()
        self.head = head
        self.error = None
        self._reset()
        self.transport.write(payload)
        return fut

    def _finish(self) -> None:
        fut = self.waiter
        if fut is None:
            return
        self.waiter = None
        if not fut.done():
            body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
            fut.set_result(Response(self.status, body.decode(self.charset, "replace"), self.headers))

    def _fail(self, reason: str) -> None:
        fut = self.waiter
        self.waiter = None
        if fut is not None and not fut.done():
            fut.set_exception(HttpError(reason))
        self.close()

    def _ended(self, clean: bool) -> None:
        self.dead = True
        if self.waiter is None:
            return
        if clean and self.headers_done and not self.framed and self.status >= 200:
            self._finish()  # no length and not chunked: the body was everything up to the close
        else:
            self._fail("connection closed before the response")

    def close(self) -> None:
        self.dead = True
        if self.transport is not None:
            self.transport.abort()


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        k, _, v = part.partition("=")
        if k.strip().lower() == "charset":
            name = v.strip().strip('"')
            try:
                return codecs.lookup(name).name
            except LookupError:
                break
    return "utf-8"


class _Pool:
    """The connections to one (scheme, host, port): idle ones, a count, and who waits for one."""

    __slots__ = ("closed", "conns", "idle", "slots", "waiters")

    def __init__(self) -> None:
        self.closed = False  # by Http1Client.close(): what comes back from a request is closed too
        self.slots = 0  # connections open or being opened: at most the client's limit
        self.conns: set[_Conn] = set()  # for close(): in use ones too
        self.idle: list[_Conn] = []
        # a waiter gets a connection, or None: a free slot to open one in
        self.waiters: deque[asyncio.Future[_Conn | None]] = deque()


class Http1Client(AsyncHttpClient):
    """twilio's ``AsyncHttpClient`` over :class:`_Conn` pools, one client per event loop.

    A request is never sent twice: if a connection dies after the request was written, that is an
    :class:`HttpError` (the caller reconciles); only a connection found dead before writing is
    replaced. ``timeout`` bounds the whole request (waiting for a connection included).
    """

    def __init__(
        self,
        timeout: float | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limit: int = POOL_LIMIT,
        max_body: int = MAX_BODY,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        super().__init__(logger=logging.getLogger("twilio.http_client"), is_async=True, timeout=timeout)
        self.limit = limit
        self.max_body = max_body
        self.keepalive = keepalive
        self._ssl = ssl_context
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._targets: dict[str, tuple[tuple[str, str, int], str, str]] = {}
        self._auth: dict[tuple[str, str], str] = {}

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,  # redirects are answers like any other: never followed
    ) -> Response:
        if timeout is None:
            timeout = self.timeout
        elif timeout <= 0:
            raise ValueError(timeout)
        method = method.upper()
        key, payload = self._encode(method, uri, params, data, headers, auth)
        head = method == "HEAD"
        async with asyncio.timeout(timeout):
            loop = asyncio.get_running_loop()
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = _Pool()
            while True:
                conn = await self._acquire(pool, loop)
                fresh = conn is None
                if conn is None:
                    conn = await self._connect(pool, key, loop)
                if conn.dead:
                    self._release(pool, conn, False)
                    if fresh:
                        raise HttpError("connection closed before the request")
                    continue  # nothing was written: another connection may carry it
                ok = False
                try:
                    r = await conn.send(payload, head)
                    ok = True
                finally:
                    # not ok: cancelled (the timeout) or failed; closing it means a late answer
                    # can never be read as the next request's
                    self._release(pool, conn, ok)
                return r

    async def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.closed = True
            for c in list(pool.conns):
                c.close()
            while pool.waiters:
                w = pool.waiters.popleft()
                if not w.done():
                    w.set_exception(HttpError("client closed"))

    # connections

    async def _acquire(self, pool: _Pool, loop: asyncio.AbstractEventLoop) -> _Conn | None:
        """An idle live connection, or None: a slot reserved for the caller to open one in."""
        idle = pool.idle
        if idle:
            stale = loop.time() - self.keepalive
            while idle:
                c = idle.pop()  # the most recently used: the others age out
                if c.dead or c.idle_since < stale:
                    self._release(pool, c, False)
                    continue
                return c
        if pool.slots < self.limit:
            pool.slots += 1
            return None
        fut: asyncio.Future[_Conn | None] = loop.create_future()
        pool.waiters.append(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                # handed a connection or a slot as we were cancelled: pass it on
                got = fut.result()
                self._release(pool, got, got is not None)
            raise

    async def _connect(self, pool: _Pool, key: tuple[str, str, int], loop: asyncio.AbstractEventLoop) -> _Conn:
        scheme, host, port = key
        conn = _Conn(loop, self.max_body)
        pool.conns.add(conn)
        try:
            if scheme == "https":
                if self._ssl is None:
                    self._ssl = ssl.create_default_context()
                await loop.create_connection(lambda: conn, host, port, ssl=self._ssl, server_hostname=host)
            else:
                await loop.create_connection(lambda: conn, host, port)
        except OSError as e:
            self._release(pool, conn, False)
            raise HttpError(f"connect failed: {type(e).__name__}") from None
        except BaseException:
            self._release(pool, conn, False)
            raise
        return conn

    def _release(self, pool: _Pool, conn: _Conn | None, reuse: bool) -> None:
        """Back to the pool (or to a waiter) if reusable; else closed and its slot handed on."""
        if conn is not None and reuse and not conn.dead and conn.waiter is None and not pool.closed:
            conn.idle_since = conn.loop.time()
            while pool.waiters:
                w = pool.waiters.popleft()
                if not w.done():
                    w.set_result(conn)
                    return
            pool.idle.append(conn)
            return
        if conn is not None:
            conn.close()
            pool.conns.discard(conn)
        while pool.waiters:
            w = pool.waiters.popleft()
            if not w.done():
                w.set_result(None)  # the slot goes to the waiter as is: it opens a connection
                return
        pool.slots -= 1

    # encoding

    def _encode(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None,
        data: dict[str, object] | str | bytes | None,
        headers: dict[str, str] | None,
        auth: tuple[str, str] | None,
    ) -> tuple[tuple[str, str, int], bytes]:
        target = self._targets.get(uri)
        if target is None:
            target = self._target(uri)
        key, host, path = target
        if params:
            q = urlencode(params, doseq=True)
            path = f"{path}&{q}" if "?" in path else f"{path}?{q}"

        ctype = None
        agent = False
        lines = [f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"]
        for k, v in (headers or {}).items():
            v = str(v)
            if "\r" in k or "\n" in k or "\r" in v or "\n" in v:
                raise ValueError("line break in a header")
            lk = k.lower()
            if lk in _OURS or (auth is not None and lk == "authorization"):
                continue
            if lk == "content-type":
                ctype = v
            elif lk == "user-agent":
                agent = True
            lines.append(f"{k}: {v}\r\n")
        if not agent:
            lines.append(f"User-Agent: {USER_AGENT}\r\n")
        if auth is not None:
            lines.append(f"Authorization: {self._basic(auth)}\r\n")

        if data is None:
            body = b""
        elif isinstance(data, bytes):
            body = data
        elif isinstance(data, str):
            body = data.encode()
        elif ctype is not None and "json" in ctype.lower():
            body = json.dumps(data).encode()
        else:
            body = urlencode(data, doseq=True).encode("ascii")
            if body and ctype is None:
                lines.append("Content-Type: application/x-www-form-urlencoded\r\n")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("Connection: keep-alive\r\n\r\n")
        return key, "".join(lines).encode("latin-1") + body

    def _target(self, uri: str) -> tuple[tuple[str, str, int], str, str]:
        u = urlsplit(uri)
        scheme = u.scheme.lower()
        if scheme not in ("http", "https") or not u.hostname:
            raise ValueError("only http and https URLs with a host")
        default = 443 if scheme == "https" else 80
        port = u.port or default
        hostname = u.hostname
        name = f"[{hostname}]" if ":" in hostname else hostname
        host = name if port == default else f"{name}:{port}"
        path = quote(u.path or "/", safe=_PATH_SAFE)
        if u.query:
            path = f"{path}?{quote(u.query, safe=_PATH_SAFE + '?')}"
        target = ((scheme, hostname, port), host, path)
        if len(self._targets) < 256:  # twilio calls a handful of URLs; a query-laden stream must not grow it
            self._targets[uri] = target
        return target

    def _basic(self, auth: tuple[str, str]) -> str:
        v = self._auth.get(auth)
        if v is None:
            v = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            if len(self._auth) < 16:
                self._auth[auth] = v
        return v
