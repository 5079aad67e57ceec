"""The environment variables of DESIGN §5, read once at start-up.

Secrets (tokens, auth tokens, database passwords) only ever come from here, never from config.yaml,
and never reach a log line: ``repr(settings)`` masks them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

TWILIO_DEFAULT_BASE = "https://api.twilio.com"
TELEGRAM_DEFAULT_BASE = "https://api.telegram.org"
SECRET_FIELDS = frozenset(
    {
        "api_token",
        "metrics_token",
        "twilio_auth_token",
        "telegram_bot_token",
        "telegram_webhook_secret",
        "link_secret",
        "database_url",
    }
)


class SettingsError(ValueError):
    """A bad environment variable: the message names it (never its value when it is a secret)."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    public_url: str | None = None
    api_token: str | None = None
    metrics_token: str | None = None  # bearer for /metrics; without it /metrics answers loopback only
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base_url: str = TWILIO_DEFAULT_BASE
    twilio_mps: float = 1.0  # segments per second per sender (a US long code: about 1)
    telegram_bot_token: str | None = None
    telegram_webhook_secret: str | None = None
    telegram_api_base_url: str = TELEGRAM_DEFAULT_BASE
    link_secret: str | None = None  # signs Telegram deep links; derived from the bot token when unset
    link_ttl_hours: float = 72.0
    web_simulator: bool | None = None  # None: on exactly when no provider is configured
    db_threads: int | None = None  # database work at once (default: 1 on SQLite, 8 on PostgreSQL)
    outbox_poll: float = 1.0  # seconds between outbox polls when nothing wakes the worker
    access_log: bool = True  # uvicorn's per-request lines (paths and status codes only)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env

        def get(name: str) -> str | None:
            v = e.get(name)
            return v.strip() if v and v.strip() else None

        def number(name: str, default: float) -> float:
            v = get(name)
            if v is None:
                return default
            try:
                n = float(v)
            except ValueError:
                raise SettingsError(f"{name}: expected a number, got {v!r}") from None
            if n <= 0:
                raise SettingsError(f"{name}: expected a positive number, got {v!r}")
            return n

        sim = get("RAPPORT_WEB_SIMULATOR")
        s = cls(
            database_url=get("RAPPORT_DATABASE_URL"),
            public_url=_base(get("RAPPORT_PUBLIC_URL")),
            api_token=get("RAPPORT_API_TOKEN"),
            metrics_token=get("RAPPORT_METRICS_TOKEN"),
            twilio_account_sid=get("TWILIO_ACCOUNT_SID"),
            twilio_auth_token=get("TWILIO_AUTH_TOKEN"),
            twilio_from=get("TWILIO_FROM"),
            twilio_messaging_service_sid=get("TWILIO_MESSAGING_SERVICE_SID"),
            twilio_api_base_url=_base(get("TWILIO_API_BASE_URL")) or TWILIO_DEFAULT_BASE,
            twilio_mps=number("RAPPORT_TWILIO_MPS", 1.0),
            telegram_bot_token=get("TELEGRAM_BOT_TOKEN"),
            telegram_webhook_secret=get("TELEGRAM_WEBHOOK_SECRET"),
            telegram_api_base_url=_base(get("TELEGRAM_API_BASE_URL")) or TELEGRAM_DEFAULT_BASE,
            link_secret=get("RAPPORT_LINK_SECRET"),
            link_ttl_hours=number("RAPPORT_LINK_TTL_HOURS", 72.0),
            web_simulator=None if sim is None else _flag(sim),
            db_threads=int(number("RAPPORT_DB_THREADS", 0)) or None,
            outbox_poll=number("RAPPORT_OUTBOX_POLL", 1.0),
            access_log=_flag(get("RAPPORT_ACCESS_LOG") or "1"),
        )
        s.check()
        return s

    def check(self) -> None:
        if self.twilio_account_sid or self.twilio_auth_token:
            if not (self.twilio_account_sid and self.twilio_auth_token):
                raise SettingsError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN go together")
            if not (self.twilio_from or self.twilio_messaging_service_sid):
                raise SettingsError("set TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID to send SMS")
        if self.telegram_webhook_secret is not None:
            ok = 1 <= len(self.telegram_webhook_secret) <= 256 and all(
                c.isascii() and (c.isalnum() or c in "_-") for c in self.telegram_webhook_secret
            )
            if not ok:
                raise SettingsError("TELEGRAM_WEBHOOK_SECRET: 1-256 characters of A-Z, a-z, 0-9, _ and -")

    @property
    def twilio_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_bot_token)

    @property
    def simulator_enabled(self) -> bool:
        if self.web_simulator is not None:
            return self.web_simulator
        return not (self.twilio_enabled or self.telegram_enabled)

    @property
    def telegram_secret(self) -> str | None:
        """The webhook secret: the configured one, else one derived from the bot token."""
        if self.telegram_webhook_secret:
            return self.telegram_webhook_secret
        if self.telegram_bot_token:
            return _derive(self.telegram_bot_token, "telegram-webhook")[:64]
        return None

    @property
    def deep_link_key(self) -> bytes | None:
        secret = self.link_secret or self.telegram_bot_token
        return _derive(secret, "telegram-link").encode() if secret else None

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in SECRET_FIELDS and v is not None:
                v = "***"
            parts.append(f"{f.name}={v!r}")
        return f"Settings({', '.join(parts)})"

    __str__ = __repr__


def _flag(v: str) -> bool:
    return v.lower() in ("1", "true", "yes", "on")


def _base(url: str | None) -> str | None:
    return url.rstrip("/") if url else None


def _derive(secret: str, purpose: str) -> str:
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).hexdigest()
