"""The real app (Runtime + create_app, both fake providers) and a row count of every table.

Shared by the fuzz tests (one app per module) and bench/fuzz_bench.py (one app per family).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlmodel import SQLModel

from bot.server import Runtime
from bot.service import Service
from tests.channels.fakes import FakeTelegram, FakeTwilio, running
from tests.channels.helpers import add_client, make_service
from tests.web.conftest import API_TOKEN, settings_for

PUBLIC = "https://rapport.example.org"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@dataclass
class App:
    svc: Service
    client: TestClient
    twilio: FakeTwilio
    telegram: FakeTelegram

    def rows(self) -> dict[str, int]:
        return row_counts(self.svc)


def row_counts(svc: Service) -> dict[str, int]:
    """Rows per table: a refused input must leave every count as it was."""
    with svc.db.connect() as c:
        return {
            t.name: c.execute(select(func.count()).select_from(t)).scalar_one() for t in SQLModel.metadata.sorted_tables
        }


@contextmanager
def live_app(tmp: Path, db_url: str | None = None) -> Iterator[App]:
    """The whole of `rapport serve` in-process, with a client and an appointment to act on."""
    with ExitStack() as stack:
        tw = stack.enter_context(running(FakeTwilio()))
        tg = stack.enter_context(running(FakeTelegram()))
        svc = make_service(tmp, db_url)
        add_client(svc, "c1", telegram="700001")
        rt = Runtime(svc, settings_for(tw, tg), timer_interval=0.5)
        client = stack.enter_context(TestClient(rt.app(), raise_server_exceptions=False))
        yield App(svc, client, tw, tg)


def assert_error_shape(resp: Any) -> None:
    """DESIGN §5: 4xx with {"error": {"field", "message"}}."""
    body = resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"field", "message"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
