"""At the default log level no message text, phone number or secret reaches the logs."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.server import Runtime, configure_logging
from tests.channels.fakes import FakeTelegram, FakeTwilio
from tests.channels.helpers import CLIENT_PHONE, CLIENT_TG, STAFF_PHONE, add_client, make_service
from tests.web.conftest import API_TOKEN, TG_SECRET, settings_for
from tests.web.test_webhooks import sms, tg_post, tg_update, twilio_post, wait_for

SECRET_TEXT = "my private words zebra-quartz"
CRISIS_TEXT = "I want to kill myself tonight zebra-quartz"
STRANGER = "+15557770123"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        self.lines.append(text)


@pytest.fixture
def default_logging() -> Iterator[Capture]:
    """The levels `rapport serve` runs with: root at WARNING (the CLI), ours at INFO."""
    root = logging.getLogger()
    saved = {
        name: logging.getLogger(name).level
        for name in ("", "rapport", "httpx", "httpcore", "twilio", "telegram", "apscheduler", "twilio.http_client")
    }
    cap = Capture()
    cap.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root.addHandler(cap)
    root.setLevel(logging.WARNING)
    configure_logging()
    try:
        yield cap
    finally:
        root.removeHandler(cap)
        for name, level in saved.items():
            logging.getLogger(name or None).setLevel(level)


def test_no_text_phone_or_secret_in_logs(
    tmp_path: Path, fake_twilio: FakeTwilio, fake_telegram: FakeTelegram, default_logging: Capture
) -> None:
    svc = make_service(tmp_path)
    add_client(svc, telegram=CLIENT_TG)
    settings = settings_for(fake_twilio, fake_telegram)
    rt = Runtime(svc, settings, timer_interval=0.2)
    token = fake_twilio.auth_token
    with TestClient(rt.app()) as client:
        fake_twilio.plan = [429, 500, "lost"]
        fake_twilio.lost_answer_seconds = 0.1
        twilio_post(client, token, sms("SM1", SECRET_TEXT))
        twilio_post(client, token, sms("SM2", SECRET_TEXT, sender=STRANGER))
        twilio_post(client, token, sms("SM3", SECRET_TEXT), signature="forged")
        twilio_post(client, token, {}, body=b"Body=" + SECRET_TEXT.encode() + b"&&", signature="x")
        twilio_post(client, token, sms("SM4", CRISIS_TEXT))
        fake_telegram.plan = [403, 429, 502]
        tg_post(client, tg_update(5, SECRET_TEXT, chat="123456"))
        tg_post(client, tg_update(6, SECRET_TEXT), secret="wrong")
        tg_post(client, None, raw=b'{"update_id": 7, "message": ' + SECRET_TEXT.encode() + b"}")
        wait_for(lambda: any(m["to"] == STAFF_PHONE for m in fake_twilio.messages), timeout=10)
        time.sleep(1.5)
        client.get("/metrics")
    logs = "\n".join(default_logging.lines)
    assert logs, "expected some log lines (refused webhooks are logged)"
    forbidden = [
        SECRET_TEXT,
        "zebra-quartz",
        CLIENT_PHONE,
        CLIENT_PHONE[1:],
        STAFF_PHONE,
        STAFF_PHONE[1:],
        STRANGER,
        STRANGER[1:],
        token,
        fake_telegram.token,
        TG_SECRET,
        API_TOKEN,
    ]
    leaked = [f for f in forbidden if f in logs]
    assert leaked == [], f"leaked into logs: {leaked}"


def test_settings_repr_masks_secrets(fake_twilio: FakeTwilio, fake_telegram: FakeTelegram) -> None:
    s: Any = settings_for(fake_twilio, fake_telegram)
    text = repr(s)
    for secret in (fake_twilio.auth_token, fake_telegram.token, TG_SECRET, API_TOKEN):
        assert secret not in text
    assert "***" in text
