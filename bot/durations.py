"""Durations as config writes them: ``<int>`` plus s, m, h, d or w (``1d`` is 24 h, absolute)."""

from __future__ import annotations

import re
from datetime import timedelta

_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_SECONDS = 36500 * 86400  # a hundred years


def parse_duration(text: str) -> timedelta:
    m = _RE.match(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"not a duration (use e.g. 30m, 2h, 1d, 1w): {text!r}")
    seconds = int(m.group(1)) * _UNIT[m.group(2)]
    # timedelta overflows near 2.7 million years, and times near the calendar's ends overflow sooner.
    if seconds > MAX_SECONDS:
        raise ValueError(f"too long (at most {MAX_SECONDS // 86400}d): {text!r}")
    return timedelta(seconds=seconds)


def format_duration(td: timedelta) -> str:
    secs = int(td.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if secs and secs % _UNIT[unit] == 0:
            return f"{secs // _UNIT[unit]}{unit}"
    return f"{secs}s"
