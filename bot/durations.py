"""Durations as config writes them: ``<int>`` plus s, m, h, d or w (``1d`` is 24 h, absolute)."""

from __future__ import annotations

import re
from datetime import timedelta

_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    m = _RE.match(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"not a duration (use e.g. 30m, 2h, 1d, 1w): {text!r}")
    return timedelta(seconds=int(m.group(1)) * _UNIT[m.group(2)])


def format_duration(td: timedelta) -> str:
    secs = int(td.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if secs and secs % _UNIT[unit] == 0:
            return f"{secs // _UNIT[unit]}{unit}"
    return f"{secs}s"
