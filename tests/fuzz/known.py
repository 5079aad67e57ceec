"""The bugs the fuzzing found, each as a minimal check that passes once it is fixed.

tests/fuzz/test_found.py runs each one as a regular regression test; the property tests would trip
over the same bugs, more slowly and less legibly.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def twilio_status_superscript_error_code() -> None:
    """'²'.isdigit() is true but int('²') raises: a 500 to Twilio for a status callback."""
    from channels.sms import TwilioWebhook, _Params

    rep = TwilioWebhook.status(_Params({"MessageSid": ["SM1"], "MessageStatus": ["failed"], "ErrorCode": ["²"]}))
    assert rep.error_code is None and rep.status == "failed"


def api_superscript_alert_id() -> None:
    """POST /api/alerts/²/ack: a 500, where an unknown id is a 404."""
    from fastapi.testclient import TestClient

    from bot.web.app import create_app
    from tests.fuzz.harness import AUTH
    from tests.web.conftest import settings_for

    with TestClient(create_app(_service(), settings_for()), raise_server_exceptions=False) as c:
        for aid in ("²", "9" * 40):
            r = c.post(f"/api/alerts/{aid}/ack", json={"by": "dr"}, headers=AUTH)
            assert r.status_code == 404, (aid, r.status_code)


def api_path_with_slash_and_newline() -> None:
    """/api/appointments/a%2Fb%0Ac: FastAPI's own 404 ({"detail"}), no token check, no error shape."""
    from fastapi.testclient import TestClient

    from bot.web.app import create_app
    from tests.fuzz.harness import assert_error_shape
    from tests.web.conftest import settings_for

    with TestClient(create_app(_service(), settings_for()), raise_server_exceptions=False) as c:
        r = c.put("/api/appointments/a%2Fb%0Ac", json={})
        assert r.status_code == 401, r.status_code
        assert_error_shape(r)


def api_body_too_large_shape() -> None:
    """A body over the size limit: 413 as text/plain, not the API's error shape (DESIGN §5)."""
    from fastapi.testclient import TestClient

    from bot.web.app import create_app
    from tests.fuzz.harness import AUTH, assert_error_shape
    from tests.web.conftest import settings_for

    with TestClient(create_app(_service(), settings_for()), raise_server_exceptions=False) as c:
        body = b'{"name": "' + b"x" * 300_000 + b'"}'
        r = c.put("/api/clients/c5", content=body, headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == 413, r.status_code
        assert_error_shape(r)


def appointment_start_at_the_calendar_edge() -> None:
    """A start in year 1 (or 9999) overflows when reminders subtract offsets: a 500, not a 422."""
    from bot.records import RecordError

    svc = _service()
    svc.upsert_client({"id": "c1"}, NOW)
    for start in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00+00:00"):
        with pytest.raises(RecordError) as e:
            svc.upsert_appointment({"id": "a1", "client": "c1", "start": start}, NOW)
        assert e.value.field == "start"


def time_zone_name_too_long() -> None:
    """ZoneInfo('x' * 300) raises OSError (file name too long), which no validator caught."""
    from bot.config import ConfigError, parse_config
    from bot.records import ClientIn, RecordError, validate

    with pytest.raises(RecordError):
        validate(ClientIn, {"id": "c1", "tz": "x" * 300})
    with pytest.raises(ConfigError, match="default_tz"):
        parse_config({"default_tz": "x" * 300})


def jsonl_lone_surrogate() -> None:
    """JSON may spell a lone surrogate (\\ud800); writing it to a UTF-8 stdout killed the run."""
    from bot.safety.cli import run_scan_cli
    from bot.understanding import make_parser
    from bot.understanding.cli import run as run_nlu

    for run in (lambda i, o: run_scan_cli(i, o), lambda i, o: run_nlu(i, o, make_parser("builtin"))):
        out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
        run(io.StringIO('{"id": "\\ud800", "text": "oi", "now": "2026-11-26T10:00"}\n{"id": 2, "text": "x"}\n'), out)
        out.flush()
        lines = out.buffer.getvalue().decode().splitlines()
        assert len(lines) == 2 and json.loads(lines[0])["id"] == "\ud800"


def duration_too_long() -> None:
    """reminders.offsets: ["99999999999w"] raised OverflowError, not the one-line ConfigError."""
    from bot.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=r"reminders\.offsets"):
        parse_config({"reminders": {"offsets": ["99999999999w"]}})


def telegram_message_without_chat() -> None:
    """{"message": {..., "chat": null}} passed de_json and then failed in handle (m.chat.id): a 500."""
    from channels.telegram import TelegramAdapter, make_bot

    adapter = TelegramAdapter(make_bot("123456:TEST-token"), _service(), None)
    for body in (
        {"message_id": 1, "date": 0, "chat": None, "text": "oi"},
        {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}, "text": 5},
    ):
        u = adapter.parse({"update_id": 7, "message": body})
        assert u.message is None, u  # unreadable: acknowledged and ignored


def ics_error_quotes_the_file() -> None:
    """A calendar without END:VCALENDAR: icalendar's message quotes the file, on many lines."""
    from bot.imports import FileError, import_bytes

    data = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nX-CLIENT:Ana +15551230001\r\nMETHOD:CANCEL"
    with pytest.raises(FileError) as e:
        import_bytes(_service(), data, name="feed.ics", now=NOW)
    assert "\n" not in str(e.value) and "+15551230001" not in str(e.value)


def ics_calendar_time_zone_too_long() -> None:
    from bot.imports import FileError, import_bytes

    data = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nX-WR-TIMEZONE:" + b"x" * 300 + b"\r\nEND:VCALENDAR\r\n"
    with pytest.raises(FileError, match="X-WR-TIMEZONE"):
        import_bytes(_service(), data, name="feed.ics", now=NOW)


def ics_event_time_zone_too_long() -> None:
    """DTSTART;TZID=<300 characters>: icalendar looks the zone up as a file and raised OSError."""
    from bot.imports import FileError, import_bytes

    tzid = b"x" * 300
    data = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:u1\r\nDTSTART;TZID=" + tzid + b":20261203T150000\r\n"
    try:
        report = import_bytes(_service(), data + b"END:VEVENT\r\nEND:VCALENDAR\r\n", name="feed.ics", now=NOW)
    except FileError:
        return
    assert report.aborted or report.problems or report.ignored


# Not UTF-8; nested too deeply (RecursionError); a reader error whose message spans two lines; an
# alias that contains itself (the line index walked it forever).
CONFIG_CASES = [b"practice_name: \xff\n", b"a: " + b"[" * 2000 + b"]" * 2000, b"a: \x1b\n", b"x: &a [*a]\n"]


def config_one_line(raw: bytes) -> None:
    from bot.config import ConfigError, load_config

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "config.yaml"
        p.write_bytes(raw)
        with pytest.raises(ConfigError) as e:
            load_config(p)
        assert "\n" not in str(e.value), str(e.value)


def config_file_edge_cases() -> None:
    for raw in CONFIG_CASES:
        config_one_line(raw)


def simulate_at_the_calendar_edge() -> None:
    """ "at": "9999-12-31..." overflowed as the clock looked ten years ahead; deep JSON recursed."""
    from bot.simulate import Simulator

    out = io.StringIO()
    Simulator(out).run(
        [
            '{"at": "9999-12-31T23:59:59+00:00"}\n',
            '{"at": "0001-01-01T00:00:00+05:00"}\n',
            "[" * 100_000 + "\n",
            '{"at": "2026-12-01T09:00:00+00:00"}\n',
        ]
    )
    errors = [json.loads(ln) for ln in out.getvalue().splitlines() if '"error"' in ln]
    assert [e["line"] for e in errors] == [1, 2, 3], errors


def _service():  # type: ignore[no-untyped-def]
    from bot.config import parse_config
    from bot.service import Service
    from storage import writeback_table  # noqa: F401
    from storage.db import create_all, make_engine

    eng = make_engine("sqlite://")
    create_all(eng)
    return Service(parse_config({"clinicians": [{"id": "rivera", "tz": "UTC"}]}), eng)


CHECKS: list[Callable[[], None]] = [
    twilio_status_superscript_error_code,
    api_superscript_alert_id,
    api_path_with_slash_and_newline,
    appointment_start_at_the_calendar_edge,
    time_zone_name_too_long,
    jsonl_lone_surrogate,
    duration_too_long,
    telegram_message_without_chat,
    ics_error_quotes_the_file,
    ics_calendar_time_zone_too_long,
    ics_event_time_zone_too_long,
    config_file_edge_cases,
    simulate_at_the_calendar_edge,
]

