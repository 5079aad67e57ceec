"""``rapport nlu parse``: JSON lines in, JSON lines out (DESIGN §5)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.jsonl import dumps_line
from bot.understanding.types import CONTEXTS, Parse

Parser = Callable[[str, str, str, datetime, str], Parse]


class LineError(ValueError):
    pass


def _field(obj: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    val = obj.get(key)
    if val is None:
        if required:
            raise LineError(f"missing field {key!r}")
        return None
    if not isinstance(val, str):
        raise LineError(f"field {key!r} must be a string")
    return val


def _now(raw: str, tz: str) -> datetime:
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise LineError(f"unknown time zone {tz!r}") from exc
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise LineError(f"bad 'now' {raw!r}: expected local ISO 8601 like 2026-03-02T14:30") from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=zone)
    return parsed.astimezone(zone)


def parse_line(line: str, parser: Parser) -> dict[str, Any]:
    """One output object for one input line (an ``error`` object for a bad line)."""
    ident: Any = None
    try:
        obj = json.loads(line)
        if not isinstance(obj, dict):
            raise LineError("expected a JSON object")
        ident = obj.get("id")
        text = _field(obj, "text")
        context = _field(obj, "context", required=False) or "none"
        if context not in CONTEXTS:
            raise LineError(f"unknown context {context!r}")
        lang = _field(obj, "lang", required=False) or ""
        tz = _field(obj, "tz", required=False) or "UTC"
        now_raw = _field(obj, "now")
        assert text is not None and now_raw is not None
        now = _now(now_raw, tz)
        result = parser(text, lang, context, now, tz)
    except json.JSONDecodeError as exc:
        return {"id": ident, "error": f"malformed JSON: {exc.msg}"}
    except LineError as exc:
        return {"id": ident, "error": str(exc)}
    except Exception as exc:  # one bad line never stops the run
        return {"id": ident, "error": f"{type(exc).__name__}: {exc}"}
    return {
        "id": ident,
        "intent": result.intent,
        "confidence": round(float(result.confidence), 3),
        "when": result.when,
        "rating": result.rating,
    }


def run(stdin: TextIO, stdout: TextIO, parser: Parser) -> int:
    for line in stdin:
        if not line.strip():
            continue
        out = parse_line(line, parser)
        stdout.write(dumps_line(out) + "\n")
        stdout.flush()
    return 0
