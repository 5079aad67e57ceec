"""What every channel adapter turns provider traffic into, and what it sends."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Inbound:
    channel: str  # sms | telegram | sim
    text: str
    address: str | None = None  # E.164 phone or Telegram chat id
    client_id: str | None = None  # when the adapter already knows the client (simulator, deep link)
    provider_id: str | None = None


@dataclass(frozen=True)
class Outbound:
    channel: str
    to: str
    text: str
    buttons: tuple[str, ...] = ()
    outbox_id: int | None = None


@dataclass(frozen=True)
class SendResult:
    ok: bool
    provider_id: str | None = None
    error: str | None = None
    retry: bool = False  # a transient failure (429, 5xx, network): try again later
    opted_out: bool = False  # the provider says this recipient refuses us (Twilio 21610, Telegram 403)
    retry_after: float | None = None  # seconds the provider asked us to wait (429 Retry-After)
