"""CPU per SMS send on the sending side: the twilio library over aiohttp (the old transport) vs channels/http1.py.

    .venv/bin/python bench/send_bench.py [--sends 3000] [--concurrency 32] [--rounds 3] [--loop uvloop|asyncio]

``TwilioSender.send`` (twilio's ``messages.create_async``) runs N times, C at a time, on one event
loop, against ``FakeTwilio`` (tests/channels/fakes.py) on 127.0.0.1. The fake runs in a child
process (``--serve-fake``), so this process's CPU time (``resource.getrusage(RUSAGE_SELF)``, what
``time.process_time()`` sums: every thread of it, no child) is the client's alone: the twilio
library, the transport and the event loop. ``user`` is time in the process's own code (Python,
uvloop, httptools); ``cpu`` adds the kernel's, which on loopback includes delivering the bytes to
the fake. A warm-up of 200 sends opens the pooled connections before the clock starts. The
transports alternate, round after round, each on a fresh loop and sender. ``none`` is a floor: a
transport that answers a canned 201 without any I/O, i.e. the twilio library's own cost; a
transport's cost a send is roughly its figure minus that one.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from twilio.http import AsyncHttpClient
from twilio.http.response import Response as TwilioResponse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from channels.base import Outbound  # noqa: E402
from channels.http1 import Http1Client  # noqa: E402
from channels.sms import TwilioSender  # noqa: E402

WARMUP = 200


class AiohttpTwilioHttpClient(AsyncHttpClient):
    """The transport channels/sms.py used before channels/http1.py, kept here for the comparison."""

    def __init__(self, timeout: float):
        super().__init__(logger=logging.getLogger("twilio.http_client"), is_async=True, timeout=timeout)
        self.session: aiohttp.ClientSession | None = None

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        async with self.session.request(
            method.upper(),
            uri,
            params=params,  # type: ignore[arg-type]
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout if timeout is not None else self.timeout),
            allow_redirects=allow_redirects,
        ) as r:
            return TwilioResponse(r.status, await r.text(), r.headers)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


class NoIoClient(AsyncHttpClient):
    """Answers every create with the same 201, no I/O: what the twilio library costs by itself."""

    def __init__(self, timeout: float):
        super().__init__(logger=logging.getLogger("twilio.http_client"), is_async=True, timeout=timeout)
        self.body = json.dumps(
            {"sid": "SM" + "f" * 32, "status": "queued", "direction": "outbound-api", "body": "x", "to": "+1"}
        )

    async def request(self, method: str, uri: str, *args: Any, **kw: Any) -> TwilioResponse:
        await asyncio.sleep(0)  # a send yields to the loop at least once, as a real one does
        return TwilioResponse(201, self.body, {"Content-Type": "application/json"})

    async def close(self) -> None:
        pass


TRANSPORTS: dict[str, Callable[[float], Any]] = {
    "aiohttp": AiohttpTwilioHttpClient,
    "http1": Http1Client,
    "none": NoIoClient,
}


def serve_fake() -> int:
    """Child mode: FakeTwilio until stdin closes."""
    from tests.channels.fakes import FakeTwilio

    fake = FakeTwilio()
    fake.record = False  # counts only: a long run must not grow the fake
    fake.start()
    print(json.dumps([fake.base_url, fake.account_sid, fake.auth_token]), flush=True)
    sys.stdin.read()
    fake.stop()
    return 0


async def one_run(transport: str, fake: list[str], sends: int, concurrency: int) -> tuple[float, float, float]:
    base_url, sid, token = fake
    sender = TwilioSender(sid, token, from_="+15550009999", api_base_url=base_url, timeout=15.0)
    loop = asyncio.get_running_loop()
    sender._async[loop] = sender._new_client(TRANSPORTS[transport](15.0))
    texts = [
        Outbound("sms", f"+1555{2000000 + i % 500:07d}", f"Reminder {i}: see you Thursday at 3pm") for i in range(sends)
    ]
    failed = 0

    async def drive(n: int) -> None:
        nonlocal failed
        it = iter(range(n))

        async def worker() -> None:
            nonlocal failed
            for i in it:
                r = await sender.send(texts[i % len(texts)])
                failed += not r.ok

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    await drive(WARMUP)
    r0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    await drive(sends)
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - wall0
    user = r1.ru_utime - r0.ru_utime
    cpu = user + r1.ru_stime - r0.ru_stime
    await sender._async.pop(loop).http_client.close()
    if failed:
        raise SystemExit(f"{transport}: {failed} sends failed")
    return cpu * 1000 / sends, user * 1000 / sends, sends / wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sends", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--transports", default="aiohttp,http1,none")
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    ap.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_fake:
        return serve_fake()

    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    if args.loop == "uvloop":
        import uvloop

        new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        new_loop = asyncio.new_event_loop

    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-fake"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        fake = json.loads(child.stdout.readline())
        names = args.transports.split(",")
        results: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
        print(f"{args.sends} sends, concurrency {args.concurrency}, {args.loop}, fake Twilio in pid {child.pid}")
        print(f"{'round':>5} {'transport':>9} {'cpu ms/send':>12} {'user ms/send':>13} {'sends/s':>9}")
        for rnd in range(1, args.rounds + 1):
            for name in names:
                with asyncio.Runner(loop_factory=new_loop) as runner:
                    ms, user, rate = runner.run(one_run(name, fake, args.sends, args.concurrency))
                results[name].append((ms, user, rate))
                print(f"{rnd:>5} {name:>9} {ms:>12.3f} {user:>13.3f} {rate:>9.0f}", flush=True)
        print("median:")
        for name, rs in results.items():
            ms, user, rate = (statistics.median(r[k] for r in rs) for k in range(3))
            print(f"{'':>5} {name:>9} {ms:>12.3f} {user:>13.3f} {rate:>9.0f}")
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
