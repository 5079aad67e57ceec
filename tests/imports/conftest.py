"""A Service on a fresh in-memory database, with two clinicians, for the import tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bot.config import parse_config
from bot.service import Service
from storage import writeback_table  # noqa: F401  (registers the import tables before create_all)
from storage.db import create_all, make_engine
from storage.migrate import upgrade_url

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

CONFIG = {
    "default_tz": "America/New_York",
    "clinicians": [
        {"id": "rivera", "name": "Dr. Rivera", "tz": "America/New_York", "session_minutes": 50},
        {"id": "costa", "name": "Dra. Costa", "tz": "America/Sao_Paulo", "session_minutes": 45},
    ],
}


@pytest.fixture
def svc() -> Iterator[Service]:
    eng = make_engine("sqlite://")
    create_all(eng)
    yield Service(parse_config(CONFIG), eng)
    eng.dispose()


@pytest.fixture
def svc_both(db_url: str) -> Iterator[Service]:
    """The same on a migrated SQLite file and on a real PostgreSQL (``db_url`` runs both)."""
    upgrade_url(db_url)
    eng = make_engine(db_url)
    yield Service(parse_config(CONFIG), eng)
    eng.dispose()
