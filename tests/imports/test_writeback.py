"""Write-back to the practice's system: recorded with the change, signed, retried, never lost."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
from sqlmodel import Session, select

from bot import writeback
from bot.config import parse_config
from bot.service import Service
from bot.writeback import WritebackConfig, deliver_pending, httpx_post, sign, verify
from channels.base import Inbound
from storage.tables import Appointment
from storage.writeback_table import WritebackEvent
from tests.imports.conftest import CONFIG, NOW

SECRET = "whsec_test_0123456789"
CFG = WritebackConfig(url="https://practice.example/rapport-hook")


@pytest.fixture
def svc(svc_both: Service) -> Service:
    """Write-back runs on both engines (the claim uses FOR UPDATE SKIP LOCKED on PostgreSQL)."""
    return svc_both


@pytest.fixture
def hooked(svc: Service) -> Service:
    """The service configured to write back (Service._status calls writeback.on_status)."""
    svc = Service(parse_config({**CONFIG, "writeback": {"url": CFG.url}}), svc.db)
    svc.upsert_client({"id": "c1", "name": "Ana", "phone": "+15551230001", "tz": "America/New_York"}, NOW)
    svc.upsert_appointment({"id": "A1", "client": "c1", "start": NOW + timedelta(days=3)}, NOW)
    return svc


def events(svc: Service) -> list[WritebackEvent]:
    with Session(svc.db) as s:
        return list(s.exec(select(WritebackEvent).order_by(WritebackEvent.id)))  # type: ignore[arg-type]


def say(svc: Service, text: str, at: datetime) -> None:
    svc.handle_inbound(Inbound(channel="sms", text=text, address="+15551230001"), at)


def test_a_client_confirming_is_recorded_practice_changes_are_not(hooked: Service) -> None:
    svc = hooked
    assert events(svc) == []  # created by the practice: nothing to write back
    at = NOW + timedelta(days=2, hours=1)
    svc.fire_due(at)
    say(svc, "yes, I'll be there", at + timedelta(minutes=5))
    (ev,) = events(svc)
    assert ev.event == "confirmed" and ev.status == "pending"
    assert ev.payload["type"] == "appointment.confirmed"
    assert ev.payload["appointment"]["id"] == "A1" and ev.payload["appointment"]["status"] == "confirmed"
    svc.cancel_appointment("A1", at + timedelta(minutes=10), actor="api")
    assert len(events(svc)) == 1


def test_a_client_cancelling_is_recorded(hooked: Service) -> None:
    svc = hooked
    at = NOW + timedelta(days=2, hours=1)
    svc.fire_due(at)
    say(svc, "I can't make it, sorry", at + timedelta(minutes=5))
    assert [e.event for e in events(svc)] == ["cancelled"]


def test_events_not_configured_are_not_recorded(svc: Service) -> None:
    cfg = WritebackConfig(url="https://x.example/h", events=["cancelled"])
    svc.upsert_client({"id": "c1", "name": "Ana"}, NOW)
    a = svc.upsert_appointment({"id": "A1", "client": "c1", "start": NOW + timedelta(days=3)}, NOW)
    with svc.unit(NOW) as u:
        assert writeback.on_status(cfg, u, a, "confirmed", "client:c1", None) is None
        assert writeback.on_status(WritebackConfig(), u, a, "cancelled", "client:c1", None) is None
        assert writeback.on_status(cfg, u, a, "cancelled", "client:c1", None) is not None
    assert [e.event for e in events(svc)] == ["cancelled"]


def _queue(svc: Service, *kinds: str, appointment: str = "A1") -> None:
    svc.upsert_client({"id": "c1", "name": "Ana"}, NOW)
    a = svc.upsert_appointment({"id": appointment, "client": "c1", "start": NOW + timedelta(days=3)}, NOW)
    with svc.unit(NOW) as u:
        for k in kinds:
            writeback.record_writeback(u, a, k, by="client")


class Receiver:
    """A stand-in for the practice's endpoint: answers from a script of statuses (or raises)."""

    def __init__(self, *answers: int | Exception):
        self.answers = list(answers)
        self.calls: list[tuple[str, bytes, dict[str, str]]] = []

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        self.calls.append((url, body, dict(headers)))
        a = self.answers.pop(0) if self.answers else 200
        if isinstance(a, Exception):
            raise a
        return a


RETRIES = [
    ("ok", [200], "sent", 1),
    ("accepted", [202], "sent", 1),
    ("server error then ok", [500, 200], "sent", 2),
    ("timeout then ok", [TimeoutError("read timed out"), 200], "sent", 2),
    ("rate limited then ok", [429, 503, 200], "sent", 3),
    ("rejected", [400], "failed", 1),
    ("gone", [410], "failed", 1),
]


@pytest.mark.parametrize(("answers", "final", "calls"), [r[1:] for r in RETRIES], ids=[r[0] for r in RETRIES])
def test_delivery_retries_with_backoff(svc: Service, answers: list[Any], final: str, calls: int) -> None:
    _queue(svc, "confirmed")
    rx = Receiver(*answers)
    t = NOW
    for _ in range(10):
        deliver_pending(svc.db, t, rx, CFG, SECRET)
        (ev,) = events(svc)
        if ev.status != "pending":
            break
        assert ev.next_attempt_at is not None and ev.next_attempt_at > t
        assert deliver_pending(svc.db, t, rx, CFG, SECRET).sent == 0  # not before its backoff
        t = ev.next_attempt_at
    assert (ev.status, len(rx.calls), ev.attempts) == (final, calls, calls)


def test_gives_up_after_the_configured_time_and_can_be_requeued(svc: Service) -> None:
    _queue(svc, "cancelled")
    cfg = WritebackConfig(url=CFG.url, give_up_after=timedelta(hours=1), max_backoff=timedelta(minutes=10))
    t = NOW
    while events(svc)[0].status == "pending":
        deliver_pending(svc.db, t, Receiver(503), cfg, SECRET)
        t = events(svc)[0].next_attempt_at or t
    ev = events(svc)[0]
    assert ev.status == "failed" and ev.last_status == 503 and t - NOW >= timedelta(hours=1)
    assert writeback.retry_failed(svc.db, t) == 1
    assert deliver_pending(svc.db, t, Receiver(200), cfg, SECRET).sent == 1


def test_events_for_one_appointment_go_in_order(svc: Service) -> None:
    _queue(svc, "confirmed", "moved", "cancelled")
    _queue(svc, "confirmed", appointment="A2")
    rx = Receiver(500, 200, 200, 200, 200)
    r = deliver_pending(svc.db, NOW, rx, CFG, SECRET)
    assert (r.retrying, r.sent, r.waiting) == (1, 1, 2)  # A1's first failed: its later events wait
    t = events(svc)[0].next_attempt_at
    assert t is not None
    for _ in range(3):
        deliver_pending(svc.db, t, rx, CFG, SECRET)
    sent = [json.loads(body)["type"] for _, body, _ in rx.calls]
    assert sent == [
        "appointment.confirmed",  # A1, failed
        "appointment.confirmed",  # A2
        "appointment.confirmed",  # A1 again
        "appointment.moved",
        "appointment.cancelled",
    ]


def test_a_worker_that_dies_mid_send_leaves_the_event_to_be_retried(svc: Service) -> None:
    _queue(svc, "confirmed")

    def crash(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        raise SystemExit("killed")

    with pytest.raises(SystemExit):
        deliver_pending(svc.db, NOW, crash, CFG, SECRET)
    assert deliver_pending(svc.db, NOW + timedelta(seconds=30), Receiver(200), CFG, SECRET).sent == 0  # leased
    assert deliver_pending(svc.db, NOW + writeback.LEASE, Receiver(200), CFG, SECRET).sent == 1


def test_two_workers_deliver_each_event_once(svc: Service) -> None:
    svc.upsert_client({"id": "c1", "name": "Ana"}, NOW)
    with svc.unit(NOW) as u:
        for i in range(40):
            a = Appointment(id=f"A{i}", client_id="c1", start=NOW + timedelta(days=3), history=[])
            u.s.add(a)
            writeback.record_writeback(u, a, "confirmed")
    seen: list[str] = []
    lock = threading.Lock()

    def rx(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        with lock:
            seen.append(headers["X-Rapport-Delivery"])
        return 200

    def work() -> None:
        for _ in range(10):
            deliver_pending(svc.db, NOW, rx, CFG, SECRET, limit=5)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(seen) == 40 and len(set(seen)) == 40
    assert {e.status for e in events(svc)} == {"sent"}


def test_nothing_is_sent_without_a_secret(svc: Service) -> None:
    _queue(svc, "confirmed")
    rx = Receiver()
    assert deliver_pending(svc.db, NOW, rx, CFG, None).sent == 0 and rx.calls == []
    assert events(svc)[0].status == "pending"


SIGNATURES = [
    ("valid", lambda h, b: (h, b), 0, True),
    ("tampered body", lambda h, b: (h, b.replace(b"A1", b"A2")), 0, False),
    ("other secret", lambda h, b: (sign("other", b, 1_780_000_000), b), 0, False),
    ("too old", lambda h, b: (h, b), 301, False),
    ("garbage header", lambda h, b: ("nonsense", b), 0, False),
    ("missing v1", lambda h, b: ("t=1780000000", b), 0, False),
]


@pytest.mark.parametrize(("mutate", "skew", "ok"), [s[1:] for s in SIGNATURES], ids=[s[0] for s in SIGNATURES])
def test_signature_verification(mutate: Any, skew: int, ok: bool) -> None:
    body = b'{"appointment":{"id":"A1"}}'
    header = sign(SECRET, body, 1_780_000_000)
    h, b = mutate(header, body)
    assert verify(SECRET, h, b, 1_780_000_000 + skew) is ok


class _Handler(BaseHTTPRequestHandler):
    got: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length", "0"))
        _Handler.got.append((dict(self.headers.items()), self.rfile.read(n)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    srv = HTTPServer(("127.0.0.1", 0), _Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hook"
    srv.shutdown()
    srv.server_close()


def test_a_real_http_delivery_verifies_at_the_receiver(svc: Service, server: str) -> None:
    _Handler.got.clear()
    _queue(svc, "moved")
    now = datetime.now(UTC)
    r = deliver_pending(svc.db, now, httpx_post, WritebackConfig(url=server), SECRET)
    assert r.sent == 1
    ((headers, body),) = _Handler.got
    assert verify(SECRET, headers["X-Rapport-Signature"], body, int(now.timestamp()))
    assert json.loads(body)["id"] == headers["X-Rapport-Delivery"] == events(svc)[0].event_id


CONFIGS = [
    ({"url": "ftp://x"}, "http(s) URL"),
    ({"url": "https://user:pw@x.example/h"}, "no credentials"),
    ({"events": ["confirmed", "deleted"]}, "unknown event 'deleted'"),
    ({"timeout": "10 seconds"}, "not a duration"),
    ({"retries": 3}, "Extra inputs"),
]


@pytest.mark.parametrize(("data", "message"), CONFIGS)
def test_bad_config_is_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        WritebackConfig.model_validate(data)
