"""The app as `rapport serve` builds it, with every secret set to a value that is easy to search for."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from bot.server import Runtime
from bot.service import Service
from bot.settings import Settings
from bot.web.admin.auth import UserError
from tests.admin.conftest import PASSWORD, make_user, sign_in
from tests.channels.fakes import FakeTelegram, FakeTwilio, running
from tests.channels.helpers import make_service

API_TOKEN = "api-TOKEN-4b7c9d1e2f"
METRICS_TOKEN = "metrics-TOKEN-8a6s5d4f"
TG_SECRET = "tg-WEBHOOK-secret-5h6j7k"
TWILIO_TOKEN = "twilio-AUTH-token-9f3k2m"
TG_BOT_TOKEN = "987654:TG-bot-token-q8w7e6"
PUBLIC = "https://rapport.example.org"
__all__ = ["PASSWORD"]


def settings(twilio: FakeTwilio | None = None, telegram: FakeTelegram | None = None, **extra: str) -> Settings:
    env = {"RAPPORT_PUBLIC_URL": PUBLIC, "RAPPORT_API_TOKEN": API_TOKEN, **extra}
    if twilio is not None:
        env |= {
            "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_AUTH_TOKEN": twilio.auth_token,
            "TWILIO_FROM": "+15550009999",
            "TWILIO_API_BASE_URL": twilio.base_url,
            "RAPPORT_TWILIO_MPS": "50",
        }
    if telegram is not None:
        env |= {
            "TELEGRAM_BOT_TOKEN": telegram.token,
            "TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
            "TELEGRAM_API_BASE_URL": telegram.base_url,
        }
    return Settings.from_env(env)


@pytest.fixture
def fakes() -> Iterator[tuple[FakeTwilio, FakeTelegram]]:
    with running(FakeTwilio(auth_token=TWILIO_TOKEN)) as tw, running(FakeTelegram(token=TG_BOT_TOKEN)) as tg:
        yield tw, tg


@contextmanager
def serve(
    tmp_path: Path, st: Settings, host: str = "203.0.113.9", url: str | None = None
) -> Iterator[tuple[Runtime, TestClient]]:
    """`rapport serve` in-process; requests come from ``host`` (a documentation address: not local)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    svc = make_service(tmp_path, url=url)
    rt = Runtime(svc, st, timer_interval=0.2)
    with TestClient(rt.app(), base_url="https://testserver", client=(host, 50000)) as c:
        yield rt, c


def signed_in(svc: Service, c: TestClient, role: str = "admin") -> str:
    """A staff session in ``c``'s cookie jar; returns its CSRF token."""
    with suppress(UserError):  # made by an earlier sign-in of this test
        make_user(svc, username=f"sec-{role}", role=role)
    return sign_in(c, username=f"sec-{role}", password=PASSWORD)


def routes(app: Any) -> Iterator[tuple[str, str]]:
    """(method, path) of every registered route, descending into included routers."""
    for r in app.routes:
        inner = getattr(r, "original_router", None)
        if inner is not None:
            yield from routes(inner)
        elif isinstance(r, Mount):
            yield "MOUNT", r.path
        elif isinstance(r, APIRoute | Route):
            for m in sorted(r.methods or ()):
                if m != "HEAD":
                    yield m, r.path


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)
