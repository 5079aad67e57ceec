"""Secrets never reach the logs (even at DEBUG), an error body or /metrics; at the default level
no message text or phone number reaches the logs either.

The run goes through what goes wrong in production: forged and malformed webhooks, provider
errors on send (429, 5xx, 403), a crisis alert, API calls with a wrong token, bad JSON, an unknown
id and an oversized body, all on PostgreSQL with a password in the database URL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.fernet import Fernet
from sqlmodel import Session, select

from bot.server import configure_logging
from storage import crypto
from storage.tables import Message
from tests.channels.fakes import FakeTelegram, FakeTwilio
from tests.channels.helpers import CLIENT_PHONE, CLIENT_TG, STAFF_PHONE, add_client
from tests.conftest import fresh_pg_database
from tests.security.conftest import (
    API_TOKEN,
    METRICS_TOKEN,
    TG_SECRET,
    TWILIO_TOKEN,
    serve,
    settings,
)
from tests.security.test_routes import tg_body, twilio_form, twilio_headers

DB_PASSWORD = "DBpass-7t6y5u4r"
WRITEBACK_SECRET = "writeback-SECRET-3e4r5t"
DATA_KEY = Fernet.generate_key().decode()
WORDS = "my private words zebra-quartz"
CRISIS = "I want to kill myself tonight zebra-quartz"
STRANGER = "+15557770123"
LOGGERS = ("", "rapport", "httpx", "httpcore", "twilio", "twilio.http_client", "telegram", "apscheduler", "uvicorn")


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def capture(request: pytest.FixtureRequest) -> Iterator[Capture]:
    saved = {n: logging.getLogger(n or None).level for n in LOGGERS}
    cap = Capture()
    root = logging.getLogger()
    root.addHandler(cap)
    if request.param == "debug":
        for n in LOGGERS:
            logging.getLogger(n or None).setLevel(logging.DEBUG)
    else:
        root.setLevel(logging.INFO)
        configure_logging()
    try:
        yield cap
    finally:
        root.removeHandler(cap)
        for n, level in saved.items():
            logging.getLogger(n or None).setLevel(level)


@pytest.fixture
def data_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv(crypto.ENV_VAR, DATA_KEY)
    monkeypatch.setenv("RAPPORT_WRITEBACK_SECRET", WRITEBACK_SECRET)
    crypto.configure(DATA_KEY)
    yield DATA_KEY
    crypto.configure(None)


def exercise(c: Any, tw: FakeTwilio, tg: FakeTelegram, svc: Any) -> list[str]:
    """Everything that tends to log or echo what it should not; returns every response body."""
    bodies: list[str] = []

    def keep(r: Any) -> None:
        bodies.append(r.text + " " + " ".join(f"{k}: {v}" for k, v in r.headers.items()))

    tw.plan = [429, 500]
    tg.plan = [429, 502]
    sms = twilio_form("SM" + "1" * 32, WORDS)
    keep(
        c.post(
            "/webhooks/twilio",
            content=urlencode(sms).encode(),
            headers=twilio_headers("/webhooks/twilio", sms, TWILIO_TOKEN),
        )
    )
    forged = twilio_headers("/webhooks/twilio", sms, "wrong") | {"X-Twilio-Signature": "forged"}
    keep(c.post("/webhooks/twilio", content=urlencode(sms).encode(), headers=forged))
    keep(c.post("/webhooks/twilio", content=b"Body=" + WORDS.encode() + b"&&%%", headers=forged))
    crisis = twilio_form("SM" + "2" * 32, CRISIS)
    keep(
        c.post(
            "/webhooks/twilio",
            content=urlencode(crisis).encode(),
            headers=twilio_headers("/webhooks/twilio", crisis, TWILIO_TOKEN),
        )
    )
    stranger = twilio_form("SM" + "3" * 32, WORDS, sender=STRANGER)
    keep(
        c.post(
            "/webhooks/twilio",
            content=urlencode(stranger).encode(),
            headers=twilio_headers("/webhooks/twilio", stranger, TWILIO_TOKEN),
        )
    )
    status = {"MessageSid": "SM" + "9" * 32, "MessageStatus": "undelivered", "ErrorCode": "21610", "To": CLIENT_PHONE}
    path = "/webhooks/twilio/status"
    keep(c.post(path, content=urlencode(status).encode(), headers=twilio_headers(path, status, TWILIO_TOKEN)))
    tg_ok = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Content-Type": "application/json"}
    keep(c.post("/webhooks/telegram", content=tg_body(501, WORDS), headers=tg_ok))
    keep(
        c.post(
            "/webhooks/telegram", content=tg_body(502, WORDS), headers=tg_ok | {"X-Telegram-Bot-Api-Secret-Token": "no"}
        )
    )
    keep(c.post("/webhooks/telegram", content=b'{"update_id": 7, "message": ' + WORDS.encode(), headers=tg_ok))
    keep(c.post("/webhooks/telegram", content=b"x" * 70_000, headers=tg_ok))
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    keep(c.get("/api/alerts", headers={"Authorization": "Bearer " + API_TOKEN[:-1]}))
    keep(c.put("/api/clients/c9", content=b"{not json " + WORDS.encode(), headers=auth))
    keep(c.put("/api/clients/c9", json={"id": "c9", "phone": "not a phone " + WORDS}, headers=auth))
    keep(c.get("/api/appointments/nope", headers=auth))
    keep(c.put("/api/clients/c9", content=b"{" + b" " * 100_000 + b"}", headers=auth))
    keep(c.delete("/api/clients/nobody", headers=auth))
    keep(c.get("/admin/inbox/c1"))
    keep(c.get("/metrics"))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # the sends, the retries and the staff alert go out
        if any(m["to"] == STAFF_PHONE for m in tw.messages) and len(tg.requests) >= 3:
            break
        time.sleep(0.1)
    assert any(m["to"] == STAFF_PHONE for m in tw.messages), "the crisis alert never went out"
    time.sleep(1.0)
    keep(c.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}))
    with Session(svc.db) as s:  # the run really stored encrypted text
        assert s.exec(select(Message).where(Message.direction == "in")).first() is not None
    return bodies


@pytest.mark.parametrize("capture", ["debug", "default"], indirect=True)
def test_no_secret_in_logs_error_bodies_or_metrics(
    tmp_path: Path,
    pg_url: str,
    fakes: tuple[FakeTwilio, FakeTelegram],
    capture: Capture,
    data_key: str,
    request: pytest.FixtureRequest,
) -> None:
    tw, tg = fakes
    url = fresh_pg_database(pg_url).replace("://postgres@", f"://postgres:{DB_PASSWORD}@", 1)
    st = settings(tw, tg, RAPPORT_METRICS_TOKEN=METRICS_TOKEN, RAPPORT_DATABASE_URL=url)
    with serve(tmp_path, st, url=url) as (rt, c):
        add_client(rt.svc, phone=CLIENT_PHONE, telegram=CLIENT_TG, channel="sms")
        add_client(rt.svc, "c2", phone="+15551230002", telegram="700002", channel="telegram")
        bodies = exercise(c, tw, tg, rt.svc)
        metrics = c.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    logs = "\n".join(capture.lines)
    assert "refused" in logs, "expected the refused webhooks to be logged"
    secrets = {
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TELEGRAM_BOT_TOKEN": tg.token,
        "TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
        "RAPPORT_API_TOKEN": API_TOKEN,
        "RAPPORT_METRICS_TOKEN": METRICS_TOKEN,
        "RAPPORT_DATA_KEY": DATA_KEY,
        "RAPPORT_WRITEBACK_SECRET": WRITEBACK_SECRET,
        "database password": DB_PASSWORD,
    }
    for name, value in secrets.items():
        assert value not in logs, f"{name} in the logs"
        assert not [b for b in bodies if value in b], f"{name} in a response"
        assert value not in metrics, f"{name} in /metrics"
    if request.node.callspec.params["capture"] == "debug":
        assert "[redacted]" in logs, "python-telegram-bot logs its URL at DEBUG: expected it redacted"
    for private in ("zebra-quartz", CLIENT_PHONE, "+15551230002", STRANGER, CLIENT_TG, "700002"):
        assert private not in metrics, f"{private!r} in /metrics"
        if request.node.callspec.params["capture"] == "default":
            assert private not in logs, f"{private!r} in the logs at the default level"
