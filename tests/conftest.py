"""Shared fixtures: a real PostgreSQL (started once per session) and databases on both engines."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from bot import outbox
from tests.pgserver import PgServer, available

outbox.set_testing(True)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL server URL: $RAPPORT_TEST_PG_URL (CI starts one), else one started here."""
    given = os.environ.get("RAPPORT_TEST_PG_URL")
    if given:
        yield given
        return
    with throwaway_pg() as srv:
        yield srv.url


@contextmanager
def throwaway_pg() -> Iterator[PgServer]:
    """A PostgreSQL server of our own; skipped where none can start, a failure in CI."""
    reason = available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {reason}")
        pytest.skip(f"no PostgreSQL here: {reason}")
    srv = PgServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.cleanup()


def fresh_pg_database(server_url: str) -> str:
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_url, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A fresh, empty database URL on each engine: the same test runs on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'rapport.db'}"
    return fresh_pg_database(request.getfixturevalue("pg_url"))
