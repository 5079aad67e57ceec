"""Regression tests for what the fuzzing found (tests/fuzz/known.py has each check and its story).

Each names the fix that closed it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import Session, select

from storage.tables import Message
from tests.fuzz import known


@pytest.mark.parametrize(
    ("check", "fix"),
    [
        (known.twilio_status_superscript_error_code, "channels/sms.py ASCII-only ErrorCode"),
        (known.api_superscript_alert_id, "bot/web/api.py ASCII-only, bounded alert ids"),
        (known.api_path_with_slash_and_newline, "bot/web/api.py catch-all that matches newlines"),
        (known.appointment_start_at_the_calendar_edge, "bot/records.py start year 1900-2999"),
        (known.time_zone_name_too_long, "records/config catch OSError from ZoneInfo"),
        (known.jsonl_lone_surrogate, "bot/jsonl.py dumps_line"),
        (known.duration_too_long, "bot/durations.py cap at 36500d"),
        (known.telegram_message_without_chat, "channels/telegram.py _check_readable"),
        (known.ics_error_quotes_the_file, "bot/imports/icsfile.py first line of the reason"),
        (known.ics_calendar_time_zone_too_long, "bot/imports/icsfile.py catch OSError"),
        (known.ics_event_time_zone_too_long, "bot/imports/icsfile.py catch OSError from icalendar"),
        (known.simulate_at_the_calendar_edge, "bot/simulate.py bounded at, RecursionError"),
    ],
    ids=lambda v: getattr(v, "__name__", "")[:50] if callable(v) else "",
)
def test_found(check: Callable[[], None], fix: str) -> None:
    check()


# fixed in bot/config.py: UTF-8 check, first line of YAML errors, RecursionError, alias cycles
@pytest.mark.parametrize("raw", known.CONFIG_CASES, ids=["not-utf8", "deep", "reader-error", "alias-cycle"])
def test_config_error_is_one_line(raw: bytes) -> None:
    known.config_one_line(raw)


# fixed in storage/db.py (NUL becomes U+FFFD on PostgreSQL) and bot/records.py (NUL refused in fields)
@pytest.mark.parametrize("where", ["sms_body", "sms_sid", "telegram_text", "api_client_name"])
def test_nul_characters_on_postgresql(pg_url: str, where: str) -> None:
    """PostgreSQL text cannot hold NUL: each of these was a 500 (and an SMS never answered)."""
    from tests.conftest import fresh_pg_database
    from tests.fuzz.harness import AUTH, live_app
    from tests.fuzz.test_twilio import post_twilio
    from tests.web.conftest import TG_SECRET

    with tempfile.TemporaryDirectory() as d, live_app(Path(d), fresh_pg_database(pg_url)) as app:
        if where == "api_client_name":
            r = app.client.put("/api/clients/c2", json={"name": "a\x00b"}, headers=AUTH)
            assert r.status_code == 422 and r.json()["error"]["field"] == "name"
            return
        if where == "telegram_text":
            upd = {
                "update_id": 5,
                "message": {"message_id": 1, "date": 0, "chat": {"id": 700001, "type": "private"}, "text": "oi\x00"},
            }
            r = app.client.post("/webhooks/telegram", json=upd, headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET})
        else:
            form = {"MessageSid": "SM1", "From": "+15551230001", "Body": "I want to die\x00"}
            if where == "sms_sid":
                form = {**form, "MessageSid": "SM\x00", "Body": "oi"}
            r = post_twilio(app, "/webhooks/twilio", form, "valid")
        assert r.status_code == 200, r.status_code
        with Session(app.svc.db) as s:
            assert list(s.exec(select(Message).where(Message.direction == "in")))


def test_api_body_too_large_has_the_error_shape() -> None:
    known.api_body_too_large_shape()
