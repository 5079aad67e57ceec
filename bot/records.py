"""Validated input for clients and appointments, shared by the simulator, the API and imports."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.langs import normalize_lang

# Far enough from datetime's limits that any configured offset (bot.durations caps them) stays in range.
MIN_YEAR, MAX_YEAR = 1900, 2999


class RecordError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClientIn(_Strict):
    id: str = Field(min_length=1, max_length=128)
    name: str = Field(default="", max_length=200)
    phone: str | None = None
    telegram: str | None = None
    lang: str = "en"
    tz: str = "UTC"
    country: str | None = None
    channel: Literal["sms", "telegram"] = "sms"
    consent: bool = True

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        try:
            n = phonenumbers.parse(v, None)
        except phonenumbers.NumberParseException as e:
            raise ValueError("expected an E.164 phone number like +15551234567") from e
        if not phonenumbers.is_possible_number(n):
            raise ValueError("not a possible phone number")
        return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)

    @field_validator("telegram", mode="before")
    @classmethod
    def _tg(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        if isinstance(v, str) and v.startswith("telegram:"):
            return v.split(":", 1)[1]
        return v

    @field_validator("lang")
    @classmethod
    def _lang(cls, v: str) -> str:
        n = normalize_lang(v)
        if not n:
            raise ValueError("expected a language tag such as en, pt_BR or es")
        return n

    @field_validator("tz")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError, OSError) as e:  # OSError: a key too long for a file name
            raise ValueError(f"unknown time zone {v!r}") from e
        return v

    @field_validator("country")
    @classmethod
    def _country(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if len(v) != 2 or not v.isalpha():
            raise ValueError("expected an ISO 3166 two-letter country code")
        return v.upper()


class AppointmentIn(_Strict):
    id: str = Field(min_length=1, max_length=128)
    client: str = Field(min_length=1)
    clinician: str | None = None
    start: datetime
    minutes: int | None = Field(default=None, ge=5, le=600)

    @field_validator("start")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("needs an offset, e.g. 2026-12-03T15:00:00-03:00")
        # Reminders and feedback add and subtract durations: near year 1 or 9999 that overflows.
        if not MIN_YEAR <= v.year <= MAX_YEAR:
            raise ValueError(f"expected a year between {MIN_YEAR} and {MAX_YEAR}")
        return v


def validate(model: type[_Strict], data: Any) -> Any:
    """Validate or raise RecordError naming the first bad field."""
    if not isinstance(data, dict):
        raise RecordError("(body)", "expected a JSON object")
    for key, value in data.items():
        # PostgreSQL text cannot hold NUL: refuse it here rather than fail at the insert.
        if isinstance(value, str) and "\x00" in value:
            raise RecordError(str(key), "contains a NUL character")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "(body)"
        msg = "unknown field" if err["type"] == "extra_forbidden" else str(err["msg"]).removeprefix("Value error, ")
        raise RecordError(field, msg) from None
