"""Per-request cost of SecurityMiddleware and per-record cost of protect_logs (prints numbers).

    .venv/bin/python bench/security_overhead.py

The ASGI app is called directly (no sockets), so the numbers are the middleware's own cost.
"""

import asyncio
import logging
import time
from typing import Any

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from bot.web.security import SecurityMiddleware, protect_logs


async def hook(request: Any) -> Response:
    await request.body()
    return Response("<Response></Response>", media_type="text/xml")


app = Starlette(routes=[Route("/webhooks/twilio", hook, methods=["POST"])])
wrapped = SecurityMiddleware(app, https=True)
BODY = b"MessageSid=SM123&From=%2B15551234567&Body=" + b"hello+there+" * 20


async def one(target: Any) -> None:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(m: Any) -> None:
        pass

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/webhooks/twilio",
        "raw_path": b"/webhooks/twilio",
        "headers": [
            (b"content-length", str(len(BODY)).encode()),
            (b"content-type", b"application/x-www-form-urlencoded"),
        ],
        "query_string": b"",
        "client": ("203.0.113.9", 1),
        "server": ("t", 80),
        "scheme": "https",
        "root_path": "",
        "http_version": "1.1",
    }
    await target(scope, receive, send)


async def bench(target: Any, n: int = 20000) -> float:
    for _ in range(500):
        await one(target)
    t = time.perf_counter()
    for _ in range(n):
        await one(target)
    return (time.perf_counter() - t) / n * 1e6


def logn(log: logging.Logger, n: int = 50000) -> float:
    t = time.perf_counter()
    for i in range(n):
        log.info("alert %s escalated to %s after %d s", i, "dr_rivera", 600)
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    plain = asyncio.run(bench(app))
    guarded = asyncio.run(bench(wrapped))
    print(f"request: {plain:.1f} us without the middleware, {guarded:.1f} us with (+{guarded - plain:.1f} us)")
    log = logging.getLogger("bench")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    log.setLevel(logging.INFO)
    before = logn(log)
    protect_logs({"x" * 40, "y" * 44, "z" * 64})
    after = logn(log)
    print(f"log record: {before:.2f} us before protect_logs, {after:.2f} us after (+{after - before:.2f} us)")


if __name__ == "__main__":
    main()
