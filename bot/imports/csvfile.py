"""Reading an appointments CSV (the columns are documented in docs/records.md).

The file is UTF-8 (with or without the byte-order mark Excel writes) or UTF-16 with its BOM;
anything else is refused with the line of the first bad byte rather than guessed, because a
mis-decoded name or phone number is worse than an error. Comma, semicolon or tab separated (taken
from the header line). Header names are case-insensitive; spaces and hyphens count as ``_``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from bot.imports.rows import Problem, RawRow

REQUIRED = ("appointment_id", "client_id", "start")
COLUMNS = {
    "appointment_id": ("appointment_id", "appointment", "external_id", "appointment_external_id", "id"),
    "client_id": ("client_id", "client"),
    "name": ("client_name", "name"),
    "phone": ("phone", "client_phone", "mobile"),
    "telegram": ("telegram", "telegram_chat", "telegram_chat_id"),
    "lang": ("lang", "language"),
    "tz": ("tz", "timezone", "time_zone"),
    "country": ("country",),
    "channel": ("channel",),
    "consent": ("consent",),
    "clinician": ("clinician", "clinician_id", "therapist"),
    "start": ("start", "start_time", "starts_at"),
    "minutes": ("minutes", "duration", "duration_minutes"),
    "status": ("status",),
}
_ALIAS = {alias: canon for canon, aliases in COLUMNS.items() for alias in aliases}


class FileError(ValueError):
    """The whole file is unusable (encoding, header, quoting): nothing is imported."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass
class CsvFile:
    rows: list[RawRow]
    problems: list[Problem]
    ignored_columns: list[str]
    total: int


def decode(data: bytes) -> str:
    if data.startswith(b"\xff\xfe") or data.startswith(b"\xfe\xff"):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as e:
            raise FileError(1, f"not valid UTF-16 ({e.reason})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise FileError(
            line,
            f"not UTF-8 (byte 0x{data[e.start]:02x}); save the file as 'CSV UTF-8' and import it again",
        ) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise FileError(line, "contains a NUL character: this does not look like a CSV file")
    return text


def _dialect(header: str) -> str:
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _canonical(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def read_csv(data: bytes) -> CsvFile:
    text = decode(data)
    if not text.strip():
        raise FileError(1, "the file is empty")
    first = text.splitlines()[0] if text else ""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_dialect(first), strict=True)
    try:
        header = next(reader)
    except csv.Error as e:
        raise FileError(1, f"unreadable header: {e}") from None
    names: list[str | None] = []
    seen: dict[str, str] = {}
    ignored = []
    for raw in header:
        canon = _ALIAS.get(_canonical(raw))
        if canon is None:
            if raw.strip():
                ignored.append(raw.strip())
            names.append(None)
            continue
        if canon in seen:
            raise FileError(1, f"columns {seen[canon]!r} and {raw.strip()!r} both give {canon}")
        seen[canon] = raw.strip()
        names.append(canon)
    missing = [c for c in REQUIRED if c not in seen]
    if missing:
        raise FileError(1, f"missing column(s): {', '.join(missing)} (see docs/records.md for the columns)")

    rows: list[RawRow] = []
    problems: list[Problem] = []
    total = 0
    it: Iterator[list[str]] = iter(reader)
    start_line = reader.line_num + 1
    while True:
        try:
            rec = next(it)
        except StopIteration:
            break
        except csv.Error as e:
            raise FileError(start_line, f"malformed CSV ({e}); a quote is probably not closed") from None
        line = start_line
        start_line = reader.line_num + 1
        if not rec or all(not v.strip() for v in rec):
            continue
        total += 1
        if len(rec) > len(names) and any(v.strip() for v in rec[len(names) :]):
            problems.append(
                Problem(line, "(row)", f"{len(rec)} fields but the header has {len(names)}", _ext(names, rec))
            )
            continue
        values = {n: v for n, v in zip(names, rec, strict=False) if n is not None}
        rows.append(RawRow(line, values))
    return CsvFile(rows, problems, ignored, total)


def _ext(names: list[str | None], rec: list[str]) -> str | None:
    for n, v in zip(names, rec, strict=False):
        if n == "appointment_id" and v.strip():
            return v.strip()
    return None
