"""``rapport safety scan``: JSON lines in, one verdict per line out (DESIGN.md §5).

Input lines ``{"id", "text", "lang"?}``; output lines ``{"id", "crisis", "level", "about",
"matched"}`` with ``crisis`` true exactly when ``level`` is not null. A line that is not a JSON
object with a string ``text`` gives ``{"id", "error"}`` (``id`` null when it cannot be read) and
the run goes on. Blank lines are skipped. Output is flushed after every line so a caller can
stream.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

from .detector import scan


def _verdict(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        return {"id": None, "error": "expected a JSON object"}
    ident = obj.get("id")
    if isinstance(ident, (dict, list)):
        return {"id": None, "error": "id must be a string or a number"}
    text = obj.get("text")
    if not isinstance(text, str):
        return {"id": ident, "error": "text must be a string"}
    lang = obj.get("lang")
    if lang is not None and not isinstance(lang, str):
        return {"id": ident, "error": "lang must be a string or absent"}
    res = scan(text, lang)
    return {"id": ident, "crisis": res.crisis, "level": res.level, "about": res.about, "matched": list(res.matched)}


def run_scan_cli(stdin: TextIO, stdout: TextIO) -> int:
    """Scan every input line; returns 0 (bad lines are reported inline, not as a failure)."""
    for raw in stdin:
        line = raw.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            out: dict[str, Any] = {"id": None, "error": f"invalid JSON: {exc.msg}"}
        except (ValueError, RecursionError):
            out = {"id": None, "error": "invalid JSON"}
        else:
            try:
                out = _verdict(obj)
            except Exception as exc:  # never let one message stop the stream
                ident = obj.get("id") if isinstance(obj, dict) else None
                out = {"id": ident if isinstance(ident, (str, int, float)) else None, "error": f"scan failed: {exc}"}
        stdout.write(_line(out))
        stdout.flush()
    return 0


def _line(out: dict[str, Any]) -> str:
    """One output line: UTF-8 text as is, unless an id holds a lone surrogate (valid in a JSON
    escape, not encodable as UTF-8): then that line is escaped to ASCII, still the same JSON."""
    line = json.dumps(out, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(out, ensure_ascii=True)
    return line + "\n"
