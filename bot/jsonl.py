"""One JSON output line for the JSONL commands (nlu parse, safety scan, simulate)."""

from __future__ import annotations

import json
from typing import Any


def dumps_line(obj: Any) -> str:
    """UTF-8 text as is; but a lone surrogate (JSON may spell one as ``\\ud800``, and stdin's
    surrogateescape makes one of a bad byte) cannot be written to a UTF-8 stdout, so then the whole
    line is ASCII-escaped, which reads back as the same JSON value."""
    line = json.dumps(obj, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj)
    return line
