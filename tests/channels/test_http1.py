"""channels/http1.py against scripted HTTP/1.1 servers on 127.0.0.1 (and FakeTwilio for the auth it checks).

The scripted server counts connections and requests server-side, so reuse, replacement and "sent
exactly once" are observed where they happen, not inferred from the client.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import httptools
import pytest

from channels.http1 import Http1Client, HttpError
from tests.channels.fakes import FakeTwilio, running

T = TypeVar("T")
PHONE = "+15551230001"


@dataclass
class Act:
    """What the server does with one request: answer (raw bytes), close, or stay silent."""

    raw: bytes | None = None
    close: bool = False
    delay: float = 0.0
    later: bytes | None = None  # sent 50 ms after the answer, unasked


@dataclass
class Req:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    conn: int  # which accepted connection carried it (1, 2, ...)

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def ok(text: str, *headers: str, status: str = "200 OK", version: str = "1.1") -> bytes:
    body = text.encode()
    head = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/{version} {status}\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body


def echo(req: Req) -> Act:
    return Act(ok(req.target))


@dataclass
class Server:
    answer: Callable[[Req], Act] = echo
    tls: ssl.SSLContext | None = None
    accepts: int = 0
    lost: int = 0
    requests: list[Req] = field(default_factory=list)
    peers: list[_Peer] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Server:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Peer(self), "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for p in self.peers:
            p.transport.abort()
        await self.server.wait_closed()


class _Peer(asyncio.Protocol):
    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.body = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.srv.accepts += 1
        self.n = self.srv.accepts
        self.srv.peers.append(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.srv.lost += 1

    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", [], b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        req = Req(self.parser.get_method().decode(), self.url.decode(), self.headers, self.body, self.n)
        self.srv.requests.append(req)
        act = self.srv.answer(req)
        if act.delay:
            asyncio.get_running_loop().call_later(act.delay, self._act, act)
        else:
            self._act(act)

    def _act(self, act: Act) -> None:
        if self.transport.is_closing():
            return
        if act.raw is not None:
            self.transport.write(act.raw)
        if act.later is not None:
            asyncio.get_running_loop().call_later(0.05, self.transport.write, act.later)
        if act.close:
            self.transport.close()


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def until(cond: Callable[[], bool], within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def idle_conns_dead(client: Http1Client) -> bool:
    idle = [c for p in client._pools.values() for c in p.idle]
    return bool(idle) and all(c.dead for c in idle)


def test_sequential_requests_share_one_pooled_connection() -> None:
    async def go() -> None:
        async with Server() as srv:
            client = Http1Client(5.0)
            texts = [(await client.request("GET", f"{srv.url}/n/{i}")).text for i in range(5)]
            await client.close()
        assert texts == [f"/n/{i}" for i in range(5)]
        assert srv.accepts == 1 and len(srv.requests) == 5

    run(go())


# (case, the answer's bytes, server closes after it, status, text, second request reuses the connection)
FRAMING = [
    ("content-length", ok("hello"), False, 200, "hello", True),
    (
        "chunked",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        False,
        200,
        "hello world",
        True,
    ),
    ("connection close, server keeps it open", ok("bye", "Connection: close"), False, 200, "bye", False),
    ("http/1.0", ok("old", version="1.0"), False, 200, "old", False),
    ("http/1.0 keep-alive", ok("old", "Connection: keep-alive", version="1.0"), False, 200, "old", True),
    ("204 without a body", b"HTTP/1.1 204 No Content\r\n\r\n", False, 204, "", True),
    ("304 without a body", b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n", False, 304, "", True),
    (
        "body up to the close",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end",
        True,
        200,
        "to the end",
        False,
    ),
    ("100 continue first", b"HTTP/1.1 100 Continue\r\n\r\n" + ok("after"), False, 200, "after", True),
    (
        "latin-1 charset",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=ISO-8859-1\r\nContent-Length: 3\r\n\r\nol\xe1",
        False,
        200,
        "olá",
        True,
    ),
    ("a 400 is an answer", ok('{"code": 21211}', status="400 Bad Request"), False, 400, '{"code": 21211}', True),
]


@pytest.mark.parametrize("case, raw, close, status, text, reused", FRAMING, ids=[f[0] for f in FRAMING])
def test_response_framing(case: str, raw: bytes, close: bool, status: int, text: str, reused: bool) -> None:
    async def go() -> None:
        async with Server(lambda r: Act(raw, close=close)) as srv:
            client = Http1Client(5.0)
            for _ in range(2):
                r = await client.request("GET", f"{srv.url}/x")
                assert (r.status_code, r.text) == (status, text)
            await client.close()
        assert len(srv.requests) == 2
        assert srv.accepts == (1 if reused else 2)

    run(go())


def test_head_answer_has_no_body_and_its_connection_is_not_reused() -> None:
    async def go() -> None:
        async with Server(lambda r: Act(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")) as srv:
            client = Http1Client(5.0)
            for _ in range(2):
                r = await client.request("HEAD", f"{srv.url}/x")
                assert (r.status_code, r.text) == (200, "")
            await client.close()
        assert srv.accepts == 2

    run(go())


def test_an_idle_connection_closed_by_the_server_is_replaced_and_the_request_sent_once() -> None:
    async def go() -> None:
        # answers and then closes: a keep-alive timeout on the server's side, no Connection: close
        async with Server(lambda r: Act(ok(r.target), close=r.conn == 1)) as srv:
            client = Http1Client(5.0)
            assert (await client.request("POST", f"{srv.url}/one", data={"Body": "a"})).text == "/one"
            await until(lambda: idle_conns_dead(client))
            assert (await client.request("POST", f"{srv.url}/two", data={"Body": "b"})).text == "/two"
            await client.close()
        assert srv.accepts == 2
        assert [(r.target, r.conn) for r in srv.requests] == [("/one", 1), ("/two", 2)]

    run(go())


R408 = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize("later", [False, True], ids=["behind the answer", "while idle"])
def test_unasked_for_bytes_retire_a_connection(later: bool) -> None:
    async def go() -> None:
        # an unasked-for 408 on the still-open connection (as servers send before an idle close):
        # the next request must not read it as its own answer
        def answer(r: Req) -> Act:
            if r.conn > 1:
                return Act(ok(r.target))
            return Act(ok(r.target), later=R408) if later else Act(ok(r.target) + R408)

        async with Server(answer) as srv:
            client = Http1Client(5.0)
            await client.request("GET", f"{srv.url}/one")
            if later:
                await until(lambda: idle_conns_dead(client))
            r = await client.request("GET", f"{srv.url}/two")
            await client.close()
        assert (r.status_code, r.text) == (200, "/two") and srv.accepts == 2

    run(go())


def test_an_idle_connection_past_keepalive_is_not_reused() -> None:
    async def go() -> None:
        async with Server() as srv:
            client = Http1Client(5.0, keepalive=0.05)
            await client.request("GET", f"{srv.url}/a")
            await asyncio.sleep(0.1)
            await client.request("GET", f"{srv.url}/b")
            await client.close()
        assert srv.accepts == 2 and len(srv.requests) == 2

    run(go())


@pytest.mark.parametrize("pooled", [False, True], ids=["fresh connection", "pooled connection"])
def test_closed_after_reading_the_request_is_an_error_never_a_resend(pooled: bool) -> None:
    async def go() -> None:
        first = [True]

        def answer(r: Req) -> Act:
            if pooled and first[0]:
                first[0] = False
                return Act(ok("warm"))
            return Act(None, close=True)

        async with Server(answer) as srv:
            client = Http1Client(5.0)
            if pooled:
                await client.request("POST", f"{srv.url}/warm", data={"To": PHONE})
            with pytest.raises(HttpError) as e:
                await client.request("POST", f"{srv.url}/send", params={"To": PHONE}, data={"To": PHONE})
            await asyncio.sleep(0.1)  # a resend would have arrived by now
            await client.close()
        assert [r.target.split("?")[0] for r in srv.requests] == (["/warm"] if pooled else []) + ["/send"]
        assert srv.accepts == 1
        assert PHONE not in str(e.value) and "1555" not in str(e.value) and "send" not in str(e.value)

    run(go())


def test_a_silent_server_is_a_timeout_and_its_connection_is_dropped() -> None:
    async def go() -> None:
        # the first answer comes late: it must never be read as the second request's
        async with Server(lambda r: Act(ok("late"), delay=0.6) if r.conn == 1 else Act(ok("fresh"))) as srv:
            client = Http1Client(5.0)
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                await client.request("POST", f"{srv.url}/x", data={"Body": "a"}, timeout=0.3)
            assert 0.25 < time.monotonic() - t0 < 1.0
            await asyncio.sleep(0.5)
            r = await client.request("POST", f"{srv.url}/x", data={"Body": "b"})
            await client.close()
        assert r.text == "fresh"
        assert srv.accepts == 2 and [q.conn for q in srv.requests] == [1, 2]

    run(go())


def test_the_client_timeout_applies_when_the_call_gives_none() -> None:
    async def go() -> None:
        async with Server(lambda r: Act(None)) as srv:
            client = Http1Client(0.2)
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                await client.request("GET", f"{srv.url}/x")
            assert time.monotonic() - t0 < 1.0
            await client.close()

    run(go())


def test_connection_refused_is_an_http_error_and_frees_its_slot() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed on leaving: nothing listens there

    async def go() -> None:
        client = Http1Client(2.0, limit=1)
        for _ in range(3):  # a leaked slot would make the second wait, then time out
            with pytest.raises(HttpError) as e:
                await client.request("GET", f"http://127.0.0.1:{port}/x", params={"To": PHONE})
            assert isinstance(e.value, OSError) and PHONE not in str(e.value)
        await client.close()

    run(go())


BIG = 64 * 1024
TOO_LARGE = [
    ("content-length", ok("x" * BIG)),
    ("chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1000\r\n" + b"x" * 0x1000 + b"\r\n"),
    ("up to the close", b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * BIG),
]


@pytest.mark.parametrize("case, raw", TOO_LARGE, ids=[c[0] for c in TOO_LARGE])
def test_an_answer_over_the_cap_is_an_error(case: str, raw: bytes) -> None:
    async def go() -> None:
        async with Server(lambda r: Act(raw, close=case == "up to the close")) as srv:
            client = Http1Client(5.0, max_body=1000)
            with pytest.raises(HttpError, match="too large"):
                await client.request("GET", f"{srv.url}/x")
            await client.close()

    run(go())


MALFORMED = [
    ("status not a number", b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n"),
    ("not http", b"SMTP 220 ready\r\n\r\n"),
    ("bad content-length", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
    ("bad chunk size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
    ("truncated body", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"),
]


@pytest.mark.parametrize("case, raw", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_a_malformed_answer_is_an_http_error(case: str, raw: bytes) -> None:
    async def go() -> None:
        async with Server(lambda r: Act(raw, close=True)) as srv:
            client = Http1Client(5.0)
            with pytest.raises(HttpError) as e:
                await client.request("GET", f"{srv.url}/x", params={"To": PHONE})
            assert PHONE not in str(e.value)
            await client.close()

    run(go())


FORM: dict[str, object] = {"To": PHONE, "MediaUrl": ["https://a.example/1 2", "ç"], "Body": "olá ✓ & = ? %", "N": 3}
ENCODING = [
    ("GET params", "GET", "/x", FORM, None, "/x?" + urlencode(FORM, doseq=True), b""),
    ("GET params after a query", "GET", "/x?a=1", {"b": "2"}, None, "/x?a=1&b=2", b""),
    ("POST data", "POST", "/x", None, FORM, "/x", urlencode(FORM, doseq=True).encode()),
    ("POST nothing", "POST", "/x", None, None, "/x", b""),
    ("path with a space", "GET", "/a b/ç", None, None, "/a%20b/%C3%A7", b""),
]


@pytest.mark.parametrize("case, method, path, params, data, target, body", ENCODING, ids=[c[0] for c in ENCODING])
def test_params_and_data_encode_like_urlencode_doseq(
    case: str, method: str, path: str, params: Any, data: Any, target: str, body: bytes
) -> None:
    async def go() -> None:
        async with Server() as srv:
            client = Http1Client(5.0)
            await client.request(method, f"{srv.url}{path}", params=params, data=data)
            await client.close()
        (req,) = srv.requests
        assert (req.method, req.target, req.body) == (method, target, body)
        if method == "POST":
            assert req.header("Content-Length") == [str(len(body))]
        if body:
            assert req.header("Content-Type") == ["application/x-www-form-urlencoded"]

    run(go())


def test_headers_are_twilios_plus_ours_never_twice() -> None:
    twilio_headers = {
        "User-Agent": "twilio-python/9 (Linux x86_64) Python/3.11",
        "X-Twilio-Client": "python-9",
        "Accept-Charset": "utf-8",
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
        "host": "spoofed.example",
        "Connection": "close",
    }

    async def go() -> None:
        async with Server() as srv:
            client = Http1Client(5.0)
            await client.request("POST", f"{srv.url}/x", data={"a": "1"}, headers=twilio_headers, auth=("AC1", "t"))
            await client.request("GET", f"{srv.url}/y")
            await client.close()
        with_twilio, bare = srv.requests
        names = [k.lower() for k, _ in with_twilio.headers]
        assert len(names) == len(set(names)), names
        assert with_twilio.header("User-Agent") == [twilio_headers["User-Agent"]]
        assert with_twilio.header("Host") == [f"127.0.0.1:{srv.port}"]
        assert with_twilio.header("Connection") == ["keep-alive"]
        assert with_twilio.header("Accept") == ["application/json"]
        assert with_twilio.header("Authorization") == ["Basic QUMxOnQ="]
        assert bare.header("User-Agent") == ["rapport-http1"] and not bare.header("Authorization")
        assert not bare.header("Content-Length") and not bare.header("Content-Type")

    run(go())


@pytest.mark.parametrize("token, status", [("secret-auth-token", 201), ("wrong", 401)])
def test_basic_auth_is_what_fake_twilio_checks(token: str, status: int) -> None:
    with running(FakeTwilio()) as fake:
        url = f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json"

        async def go() -> int:
            client = Http1Client(5.0)
            form = {"To": PHONE, "From": "+15550009999", "Body": "hi"}
            r = await client.request("POST", url, data=form, auth=(fake.account_sid, token))
            await client.close()
            return r.status_code

        assert run(go()) == status
        assert [m["body"] for m in fake.messages] == (["hi"] if status == 201 else [])


@pytest.mark.parametrize("limit", [64, 8, 1])
def test_concurrent_requests_each_get_their_own_answer(limit: int) -> None:
    rnd = random.Random(7)

    async def go() -> None:
        # answers come back in a shuffled order: a mixed-up pairing would show
        async with Server(lambda r: Act(ok(f"{r.target}|{r.body.decode()}"), delay=rnd.random() * 0.02)) as srv:
            client = Http1Client(10.0, limit=limit)

            async def one(i: int) -> None:
                r = await client.request("POST", f"{srv.url}/m/{i}", data={"i": str(i)})
                assert r.text == f"/m/{i}|i={i}"

            await asyncio.gather(*(one(i) for i in range(50)))
            accepted = srv.accepts
            await asyncio.gather(*(one(i) for i in range(50)))
            await client.close()
        assert len(srv.requests) == 100
        assert accepted <= min(limit, 50) and srv.accepts == accepted  # the second round reused them

    run(go())


def test_waiting_for_a_full_pool_counts_in_the_timeout_and_leaks_no_slot() -> None:
    async def go() -> None:
        async with Server(lambda r: Act(None) if r.target == "/hang" else Act(ok(r.target))) as srv:
            client = Http1Client(5.0, limit=1)
            hang = asyncio.create_task(client.request("GET", f"{srv.url}/hang", timeout=0.5))
            await until(lambda: len(srv.requests) == 1)
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):  # never got the one connection
                await client.request("GET", f"{srv.url}/queued", timeout=0.1)
            assert time.monotonic() - t0 < 0.4
            with pytest.raises(TimeoutError):
                await hang
            r = await client.request("GET", f"{srv.url}/after", timeout=1.0)
            await client.close()
        assert r.text == "/after" and [q.target for q in srv.requests] == ["/hang", "/after"]

    run(go())


def test_close_ends_requests_in_flight_and_waiting() -> None:
    async def go() -> None:
        async with Server(lambda r: Act(ok(r.target), delay=0.3)) as srv:
            client = Http1Client(5.0, limit=1)
            busy = asyncio.create_task(client.request("GET", f"{srv.url}/busy"))
            waiting = asyncio.create_task(client.request("GET", f"{srv.url}/waiting"))
            await until(lambda: len(srv.requests) == 1)
            await client.close()
            for task in (busy, waiting):
                with pytest.raises(HttpError):
                    await task
            await until(lambda: srv.lost == srv.accepts)
        assert [q.target for q in srv.requests] == ["/busy"]

    run(go())


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    x509 = pytest.importorskip("cryptography.x509", reason="cryptography is not installed: no test certificate")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rapport http1 test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_https_with_a_trusted_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)

    async def go() -> None:
        async with Server(tls=server_ctx) as srv:
            trusted = Http1Client(5.0, ssl_context=ssl.create_default_context(cafile=str(cert)))
            texts = [(await trusted.request("GET", f"{srv.url}/s/{i}")).text for i in range(3)]
            await trusted.close()
            assert texts == ["/s/0", "/s/1", "/s/2"] and srv.accepts == 1

            untrusted = Http1Client(5.0)  # the system's CAs: the self-signed certificate is refused
            with pytest.raises(HttpError, match="SSLCertVerificationError"):
                await untrusted.request("GET", f"{srv.url}/s/x")
            await untrusted.close()
        assert len(srv.requests) == 3

    run(go())
