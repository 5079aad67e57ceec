"""Twilio SMS: verify and parse webhooks, send through the twilio library, reconcile unknown sends.

Every request from Twilio becomes one of: an inbound message, a delivery status update (with error
21610 as an opt-out), or a rejection. Signatures are checked with twilio's own ``RequestValidator``
against the public URL Twilio called (``RAPPORT_PUBLIC_URL`` + path): behind a proxy the app sees
another URL, but the public one is what Twilio signed.

The outbox worker sends through twilio's async interface on the event loop, over a small HTTP/1.1
client of our own (channels/http1.py: aiohttp's client cost five times the twilio library's CPU a
send); the simulator's synchronous drain uses the blocking client (requests).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import requests
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client as TwilioClient

from channels.base import Inbound, Outbound, SendResult
from channels.http1 import Http1Client

log = logging.getLogger("rapport.channels.sms")

# Twilio's MessageStatus values -> ours. Anything not listed is ignored (never moves a message back).
STATUS = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
OPTED_OUT = frozenset({21610})  # "Attempt to send to unsubscribed recipient"
# Errors that will not go away by retrying: a bad number, a landline, a blocked destination...
PERMANENT = frozenset({21211, 21214, 21217, 21219, 21408, 21606, 21612, 21614, 21617, 21635, 21660})
MAX_BODY = 64 * 1024


class WebhookError(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Params(dict[str, list[str]]):
    """A form as twilio's validator wants it: ``getall(name)`` gives every value."""

    def getall(self, name: str) -> list[str]:
        return self[name]

    def first(self, name: str) -> str:
        v = self.get(name)
        return v[0] if v else ""


def parse_form(body: bytes) -> _Params:
    """A strict application/x-www-form-urlencoded parse; anything else is a 400."""
    if len(body) > MAX_BODY:
        raise WebhookError(413, "body too large")
    try:
        text = body.decode("utf-8")
        parsed = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise WebhookError(400, "malformed form") from None
    return _Params(parsed)


@dataclass(frozen=True)
class StatusReport:
    provider_id: str
    status: str  # ours: queued | sent | delivered | undelivered | failed
    error: str | None
    error_code: int | None
    to: str | None

    @property
    def opted_out(self) -> bool:
        return self.error_code in OPTED_OUT


class TwilioWebhook:
    """The receiving half: signature check and parsing. Pure apart from the HMAC."""

    def __init__(self, auth_token: str, public_url: str | None):
        self.validator = RequestValidator(auth_token)
        self.public_url = public_url.rstrip("/") if public_url else None

    def url_for(self, path: str, query: str, seen_url: str) -> str:
        """The URL Twilio signed: the public base + path (+ query), else what this app saw."""
        if self.public_url is None:
            return seen_url
        return f"{self.public_url}{path}" + (f"?{query}" if query else "")

    def verify(self, url: str, body: bytes, signature: str | None) -> _Params:
        params = parse_form(body)
        if not signature:
            raise WebhookError(403, "missing signature")
        # The URL exactly as Twilio requested it is what it signs: checking that one first spares
        # the validator's URL re-parsing and second HMAC (with and without the port) on every
        # webhook, and anything else still gets the validator's full check.
        exact = self.validator.compute_signature(url, params)
        if not hmac.compare_digest(exact, signature) and not self.validator.validate(url, params, signature):
            raise WebhookError(403, "bad signature")
        return params

    @staticmethod
    def inbound(params: _Params) -> Inbound | None:
        sid = params.first("MessageSid") or params.first("SmsSid")
        sender = params.first("From")
        if not sid or not sender:
            raise WebhookError(400, "missing MessageSid or From")
        text = params.first("Body")
        if not text.strip():
            return None  # an MMS with no text: nothing to read
        return Inbound(channel="sms", text=text, address=sender, provider_id=sid)

    @staticmethod
    def status(params: _Params) -> StatusReport:
        sid = params.first("MessageSid") or params.first("SmsSid")
        raw = (params.first("MessageStatus") or params.first("SmsStatus")).lower()
        if not sid or not raw:
            raise WebhookError(400, "missing MessageSid or MessageStatus")
        code_s = params.first("ErrorCode")
        # isdigit() alone accepts '²' and other non-ASCII digits, which int() refuses.
        code = int(code_s) if code_s.isascii() and code_s.isdigit() and len(code_s) <= 9 else None
        status = STATUS.get(raw, "")
        error = f"twilio {code}" if code else (f"twilio {raw}" if status in ("failed", "undelivered") else None)
        return StatusReport(sid, status, error, code, params.first("To") or None)


_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXT = set("^{}\\[~]|€\f")


def segments(text: str) -> int:
    """SMS segments: GSM-7 160/153 characters, anything else UCS-2 70/67 (UTF-16 units)."""
    if all(c in _GSM7 or c in _GSM7_EXT for c in text):
        units = sum(2 if c in _GSM7_EXT else 1 for c in text)
        return 1 if units <= 160 else -(-units // 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


class TwilioSender:
    """The sending half, through the twilio library: async on the event loop (``send``), or
    blocking for the synchronous drain of the simulator and tests (``send_sync``)."""

    channel = "sms"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_: str | None = None,
        messaging_service_sid: str | None = None,
        api_base_url: str = "https://api.twilio.com",
        status_callback: str | None = None,
        mps: float = 1.0,
        timeout: float = 15.0,
    ):
        if not (from_ or messaging_service_sid):
            raise ValueError("TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID is required")
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.from_ = from_
        self.messaging_service_sid = messaging_service_sid
        self.api_base_url = api_base_url.rstrip("/")
        self.status_callback = status_callback
        self.mps = mps
        self.timeout = timeout
        self._local = threading.local()
        # one async client per event loop: pooled connections belong to the loop that opened them
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TwilioClient] = weakref.WeakKeyDictionary()
        # twilio's HTTP client logs query strings (recipient numbers) at INFO: keep it to warnings.
        logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

    def __repr__(self) -> str:
        return f"TwilioSender(account_sid={self.account_sid!r}, base={self.api_base_url!r})"

    def client(self) -> TwilioClient:
        """One client per thread (requests sessions are not shared across threads)."""
        c: TwilioClient | None = getattr(self._local, "client", None)
        if c is None:
            c = self._local.client = self._new_client(TwilioHttpClient(timeout=self.timeout))
        return c

    def async_client(self) -> TwilioClient:
        loop = asyncio.get_running_loop()
        c = self._async.get(loop)
        if c is None:
            c = self._async[loop] = self._new_client(Http1Client(self.timeout))
        return c

    def _new_client(self, http: TwilioHttpClient | Http1Client) -> TwilioClient:
        c = TwilioClient(self.account_sid, self._auth_token, http_client=http)
        c.api.base_url = self.api_base_url  # {base}/2010-04-01/Accounts/{sid}/Messages.json
        return c

    async def aclose(self) -> None:
        """Close this event loop's pooled connections (the worker's shutdown)."""
        c = self._async.pop(asyncio.get_running_loop(), None)
        if c is not None and isinstance(c.http_client, Http1Client):
            await c.http_client.close()

    def pacing(self, out: Outbound) -> Sequence[tuple[str, float, float, float]]:
        key = f"sms:{self.messaging_service_sid or self.from_}"
        return ((key, self.mps, 1.0, float(segments(out.text))),)

    def _create_args(self, out: Outbound) -> dict[str, Any]:
        kw: dict[str, Any] = {"to": out.to, "body": out.text}
        if self.messaging_service_sid:
            kw["messaging_service_sid"] = self.messaging_service_sid
        else:
            kw["from_"] = self.from_
        if self.status_callback:
            kw["status_callback"] = self.status_callback
        return kw

    async def send(self, out: Outbound) -> SendResult:
        try:
            m = await self.async_client().messages.create_async(**self._create_args(out))
        except TwilioException as e:
            return _error_result(e)
        except TimeoutError:
            # The request may have reached Twilio: the worker reconciles before trying again.
            return SendResult(ok=False, error="timeout (outcome unknown)", retry=True)
        except OSError as e:  # HttpError (refused, reset, no answer, malformed) and the like
            return SendResult(ok=False, error=f"network: {type(e).__name__}", retry=True)
        return SendResult(ok=True, provider_id=m.sid)

    def send_sync(self, out: Outbound) -> SendResult:
        try:
            m = self.client().messages.create(**self._create_args(out))
        except TwilioException as e:
            return _error_result(e)
        except requests.Timeout:
            # The request may have reached Twilio: the worker reconciles before trying again.
            return SendResult(ok=False, error="timeout (outcome unknown)", retry=True)
        except requests.RequestException as e:
            return SendResult(ok=False, error=f"network: {type(e).__name__}", retry=True)
        return SendResult(ok=True, provider_id=m.sid)

    def _list_args(self, out: Outbound, since: datetime) -> dict[str, Any]:
        kw: dict[str, Any] = {"to": out.to, "limit": 50, "date_sent_after": (since - timedelta(days=1)).astimezone(UTC)}
        if self.from_ and not self.messaging_service_sid:
            kw["from_"] = self.from_
        return kw

    async def reconcile(self, out: Outbound, since: datetime) -> SendResult | None:
        try:
            listed = await self.async_client().messages.list_async(**self._list_args(out, since))
        except (TwilioException, OSError) as e:  # OSError: HttpError and TimeoutError among them
            log.warning("reconcile: could not list messages (%s); sending again", type(e).__name__)
            return None
        return self._found(listed, out, since)

    def reconcile_sync(self, out: Outbound, since: datetime) -> SendResult | None:
        """Twilio lists messages by recipient: is this exact text already there since ``since``?"""
        try:
            listed = self.client().messages.list(**self._list_args(out, since))
        except (TwilioException, requests.RequestException) as e:
            log.warning("reconcile: could not list messages (%s); sending again", type(e).__name__)
            return None
        return self._found(listed, out, since)

    @staticmethod
    def _found(listed: Sequence[Any], out: Outbound, since: datetime) -> SendResult | None:
        floor = since - timedelta(minutes=1)
        for m in listed:
            created = m.date_created
            direction = (m.direction or "").lower()
            if m.body == out.text and direction.startswith("outbound") and (created is None or created >= floor):
                return SendResult(ok=True, provider_id=m.sid)
        return None


def _error_result(e: TwilioException) -> SendResult:
    status = getattr(e, "status", None)
    code = getattr(e, "code", None)
    label = f"twilio {code}" if code else f"twilio http {status}"
    if code in OPTED_OUT:
        return SendResult(ok=False, error=label, opted_out=True)
    if code in PERMANENT:
        return SendResult(ok=False, error=label)
    if status == 429 or (isinstance(status, int) and status >= 500) or status is None:
        return SendResult(ok=False, error=label, retry=True)
    return SendResult(ok=False, error=label)


def sender_from_settings(settings: Any) -> TwilioSender:
    public = settings.public_url
    return TwilioSender(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        from_=settings.twilio_from,
        messaging_service_sid=settings.twilio_messaging_service_sid,
        api_base_url=settings.twilio_api_base_url,
        status_callback=f"{public}/webhooks/twilio/status" if public else None,
        mps=settings.twilio_mps,
    )
