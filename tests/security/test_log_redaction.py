"""The log-record factory installed by bot.web.security.protect_logs, record by record.

Whatever logger a record comes from and whatever handler prints it, a secret is replaced at any
level and a phone number at INFO and above; records keep their shape (uvicorn's access-log
formatter unpacks the arguments).
"""

from __future__ import annotations

import logging
import sys

import pytest
from uvicorn.logging import AccessFormatter

from bot.web.security import PHONE_MASK, REDACTED, mask_phones, protect_logs

SECRET = "bot-TOKEN-redaction-test-1q2w3e"
PHONE = "+15551234567"


@pytest.fixture(autouse=True)
def _installed() -> None:
    protect_logs({SECRET})


def make(level: int, msg: str, args: tuple[object, ...] | None = None, name: str = "x") -> logging.LogRecord:
    return logging.getLogger(name).makeRecord(name, level, __file__, 1, msg, args or (), None)


@pytest.mark.parametrize(
    ("level", "msg", "args", "gone", "kept"),
    [
        (
            logging.INFO,
            "HTTP Request: POST %s",
            (f"http://127.0.0.1/bot{SECRET}/sendMessage",),
            [SECRET],
            ["sendMessage"],
        ),
        (logging.DEBUG, "Set Bot API URL: %s", (f"http://127.0.0.1/bot{SECRET}",), [SECRET], ["Set Bot API URL"]),
        (logging.INFO, "sent to %s", (PHONE,), [PHONE], [PHONE_MASK]),
        (logging.WARNING, f"from {PHONE} via %s", ("sms",), [PHONE], ["via sms"]),
        (logging.DEBUG, "sent to %s", (PHONE,), [], [PHONE]),
        (logging.INFO, "alert %d escalated after %.1f s", (42, 3.5), [], ["alert 42 escalated after 3.5 s"]),
        (logging.INFO, "outbox %s", ({"to": PHONE},), [PHONE], ["outbox"]),
    ],
)
def test_records_are_cleaned(level: int, msg: str, args: tuple[object, ...], gone: list[str], kept: list[str]) -> None:
    text = make(level, msg, args).getMessage()
    for g in gone:
        assert g not in text
    for k in kept:
        assert k in text
    if gone == [SECRET]:
        assert REDACTED in text


def test_the_access_log_keeps_its_shape() -> None:
    """uvicorn's access formatter unpacks five arguments: they must stay five."""
    path = "/admin/inbox/%2B15551234567?token=" + SECRET
    r = make(logging.INFO, '%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5000", "GET", path, "1.1", 200), "uvicorn.access")
    assert isinstance(r.args, tuple) and len(r.args) == 5
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False).format(r)
    assert "15551234567" not in line and SECRET not in line and "/admin/inbox/" in line and "200" in line


def test_tracebacks_are_cleaned() -> None:
    try:
        raise ConnectionError(f"could not reach https://api.telegram.org/bot{SECRET}/getMe for {PHONE}")
    except ConnectionError:
        r = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = logging.Formatter().format(r)
    assert "ConnectionError" in text and SECRET not in text and PHONE not in text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("to +15551234567.", "to [phone]."),
        ("/api/clients/%2B5511987654321", "/api/clients/[phone]"),
        ("order 1234567 at 12:00", "order 1234567 at 12:00"),
        ("id=+123", "id=+123"),
    ],
)
def test_phone_masking(text: str, masked: str) -> None:
    assert mask_phones(text) == masked


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("duplicate", "duplicate"),
        ("bad signature", "bad signature"),
        ("missing MessageSid or From", "missing MessageSid or From"),
        ("twilio http 503", "twilio http 503"),
        (PHONE, "other"),
        ("15551234567", "other"),
        ("chat 700001234", "other"),
        ("ana@example.org", "other"),
        ("123456:TEST-token", "other"),
        ("I want to talk to someone about how I feel " * 2, "other"),
    ],
)
def test_metric_labels_are_closed(value: str, shown: str) -> None:
    """/metrics cannot carry a phone number, a message or a token, whatever a caller passes as a label."""
    from sqlalchemy import create_engine

    from bot.web.metrics import Metrics

    m = Metrics(create_engine("sqlite://"))
    m.rejected.labels("sms", value).inc()
    text = m.render().decode()
    assert f'reason="{shown}"' in text
    if shown == "other":
        assert value not in text
