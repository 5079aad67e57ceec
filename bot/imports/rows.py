"""One appointment row, whatever file it came from, validated into what the service takes.

CSV rows and iCalendar events both become a ``RawRow`` (field name -> value, with the line it
started on); ``build_row`` turns it into a ``Row`` or a ``Problem`` naming the line, the field and
the reason.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.config import Config
from bot.records import AppointmentIn, ClientIn, RecordError, validate

CLIENT_FIELDS = ("name", "phone", "telegram", "lang", "tz", "country", "channel", "consent")
MAX_ID = 128
_SAFE_ID = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces: usable in a URL path
_TRUE = {"1", "true", "yes", "y", "sim", "si", "sí", "t"}
_FALSE = {"0", "false", "no", "n", "não", "nao", "f"}


@dataclass(frozen=True)
class Problem:
    line: int
    field: str
    message: str
    external_id: str | None = None

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


@dataclass
class RawRow:
    line: int
    values: dict[str, Any]


@dataclass
class Row:
    line: int
    external_id: str
    appointment_id: str
    client: dict[str, Any]  # "id" plus only the client fields the row gave
    clinician: str | None
    start: datetime | None  # None only for a cancellation of an appointment we may not know
    minutes: int | None
    cancelled: bool
    fingerprint: str = field(default="")


class RowError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def appointment_id_for(external_id: str) -> str:
    """The Rapport appointment id for an external id: itself when short and URL-safe, else a digest.

    The practice API uses the same ids, so a CSV import and ``PUT /api/appointments/{id}`` name
    the same appointment. Long calendar UIDs (Outlook's are 100+ hex digits plus a domain) get a
    stable ``ext-`` digest.
    """
    if len(external_id) <= MAX_ID and _SAFE_ID.match(external_id):
        return external_id
    return "ext-" + hashlib.sha256(external_id.encode("utf-8")).hexdigest()[:32]


def e164(phone: str) -> str | None:
    """``+1 (555) 123-0001`` -> ``+15551230001``; None when it is not a possible number."""
    import phonenumbers

    try:
        n = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(n):
        return None
    return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)


def parse_bool(v: str) -> bool:
    low = v.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise RowError("consent", f"expected yes or no, got {v!r}")


def parse_minutes(v: Any) -> int:
    if isinstance(v, int):
        return v
    s = str(v).strip().lower().removesuffix("min").removesuffix("m").strip()
    if not s.isdigit():
        raise RowError("minutes", f"expected a whole number of minutes, got {v!r}")
    return int(s)


def local_to_aware(naive: datetime, tz: str, field_name: str = "start") -> datetime:
    """A wall-clock time in ``tz``; refuses times that do not exist or happen twice (DST)."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise RowError("tz", f"unknown time zone {tz!r}") from None
    early = naive.replace(tzinfo=zone, fold=0)
    late = naive.replace(tzinfo=zone, fold=1)
    round_trip = early.astimezone(ZoneInfo("UTC")).astimezone(zone).replace(tzinfo=None)
    if round_trip != naive:
        raise RowError(field_name, f"{naive:%Y-%m-%d %H:%M} does not exist in {tz} (the clocks go forward then)")
    if early.utcoffset() != late.utcoffset():
        raise RowError(
            field_name, f"{naive:%Y-%m-%d %H:%M} happens twice in {tz} (the clocks go back): give it an offset"
        )
    return early


def parse_start(v: Any, tz: str) -> datetime:
    """ISO 8601 with an offset, or a local date and time read in ``tz``."""
    if isinstance(v, datetime):
        return v if v.tzinfo is not None else local_to_aware(v, tz)
    s = str(v).strip()
    if len(s) <= 10 or not re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}", s):
        raise RowError("start", f"expected a date and time like 2026-12-03 15:00 or 2026-12-03T15:00-03:00, got {s!r}")
    try:
        dt = datetime.fromisoformat(s.replace("z", "Z"))
    except ValueError:
        raise RowError("start", f"not a valid date and time: {s!r}") from None
    if dt.tzinfo is None:
        return local_to_aware(dt, tz)
    return dt


def _text(v: Any) -> str:
    return v.strip() if isinstance(v, str) else str(v)


def build_row(raw: RawRow, cfg: Config) -> Row:
    """Validate one row. Raises RowError naming the field."""
    vals = {k: v for k, v in raw.values.items() if v is not None and not (isinstance(v, str) and not v.strip())}
    ext = _text(vals.get("appointment_id", ""))
    if not ext:
        raise RowError("appointment_id", "missing")
    if len(ext) > 1024:
        raise RowError("appointment_id", "longer than 1024 characters")
    cid = _text(vals.get("client_id", ""))
    status = _text(vals.get("status", "")).lower()
    if status in ("", "scheduled", "booked", "confirmed", "tentative"):
        cancelled = False
    elif status in ("cancelled", "canceled"):
        cancelled = True
    else:
        raise RowError("status", f"expected scheduled or cancelled, got {status!r}")

    client: dict[str, Any] = {"id": cid}
    for k in CLIENT_FIELDS:
        if k in vals:
            client[k] = parse_bool(_text(vals[k])) if k == "consent" else _text(vals[k])
    if not cid and not cancelled:
        raise RowError("client_id", "missing")
    if cid:
        try:
            # Validate the fields the row gave now, so the error names this row; merged later.
            validate(ClientIn, client)
        except RecordError as e:
            raise RowError(e.field, e.message) from None

    clinician = _text(vals["clinician"]) if "clinician" in vals else None
    clin = cfg.clinician(clinician)
    if clinician is not None and cfg.clinicians and clin is None:
        raise RowError("clinician", f"unknown clinician {clinician!r} (not in config.yaml)")
    minutes = parse_minutes(vals["minutes"]) if "minutes" in vals else None
    start = None
    if "start" in vals:
        tz = client.get("tz") or (clin.tz if clin else None) or cfg.default_tz
        start = parse_start(vals["start"], tz)
    elif not cancelled:
        raise RowError("start", "missing")
    if not cancelled:
        data: dict[str, Any] = {"id": appointment_id_for(ext), "client": cid, "start": start}
        if clinician is not None:
            data["clinician"] = clinician
        if minutes is not None:
            data["minutes"] = minutes
        try:
            validate(AppointmentIn, data)
        except RecordError as e:
            raise RowError(e.field, e.message) from None
    row = Row(
        line=raw.line,
        external_id=ext,
        appointment_id=appointment_id_for(ext),
        client=client,
        clinician=clinician,
        start=start,
        minutes=minutes,
        cancelled=cancelled,
    )
    row.fingerprint = fingerprint(row)
    return row


def fingerprint(row: Row) -> str:
    """What the source said about this appointment; an unchanged fingerprint means nothing to do."""
    data = {
        "client": row.client,
        "clinician": row.clinician,
        "start": row.start.astimezone(ZoneInfo("UTC")).isoformat() if row.start else None,
        "minutes": row.minutes,
        "cancelled": row.cancelled,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:32]


def end_minutes(start: datetime, end: datetime) -> int:
    span = end - start
    if span <= timedelta(0):
        raise RowError("end", "ends before it starts")
    if span % timedelta(minutes=1):
        raise RowError("end", "duration is not a whole number of minutes")
    return int(span.total_seconds() // 60)
