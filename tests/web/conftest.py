"""Web fixtures: the real app (Runtime + create_app) over a throwaway SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.server import Runtime
from bot.settings import Settings
from tests.channels.fakes import FakeTelegram, FakeTwilio, running
from tests.channels.helpers import make_service

API_TOKEN = "test-api-token-0123456789"
TG_SECRET = "tg-secret_123"


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with running(FakeTwilio()) as f:
        yield f


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    with running(FakeTelegram()) as f:
        yield f


def settings_for(twilio: FakeTwilio | None = None, telegram: FakeTelegram | None = None, **kw: Any) -> Settings:
    env = {"RAPPORT_PUBLIC_URL": "https://rapport.example.org", "RAPPORT_API_TOKEN": API_TOKEN}
    if twilio is not None:
        env.update(
            {
                "TWILIO_ACCOUNT_SID": twilio.account_sid,
                "TWILIO_AUTH_TOKEN": twilio.auth_token,
                "TWILIO_FROM": "+15550009999",
                "TWILIO_API_BASE_URL": twilio.base_url,
                "RAPPORT_TWILIO_MPS": "50",
            }
        )
    if telegram is not None:
        env.update(
            {
                "TELEGRAM_BOT_TOKEN": telegram.token,
                "TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
                "TELEGRAM_API_BASE_URL": telegram.base_url,
            }
        )
    env.update({k: str(v) for k, v in kw.items()})
    return Settings.from_env(env)


@pytest.fixture
def live(tmp_path: Path, fake_twilio: FakeTwilio, fake_telegram: FakeTelegram) -> Iterator[tuple[Any, TestClient]]:
    """The whole of `rapport serve` in-process: app, worker and scheduler, with both fakes."""
    svc = make_service(tmp_path)
    rt = Runtime(svc, settings_for(fake_twilio, fake_telegram), timer_interval=0.2)
    # /metrics answers loopback clients when RAPPORT_METRICS_TOKEN is unset: be one
    with TestClient(rt.app(), client=("127.0.0.1", 50000)) as client:
        yield rt, client
