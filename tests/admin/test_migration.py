"""Migration 0003 creates exactly what storage/admin_tables.py declares, on SQLite and PostgreSQL,
and downgrades cleanly."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from bot.web.admin import auth
from storage.db import make_engine
from storage.migrate import alembic_config, upgrade_url

MINE = {"staff_users", "staff_sessions", "script_overrides", "takeovers"}


def test_0003_matches_the_models_and_downgrades(db_url: str) -> None:
    upgrade_url(db_url)
    eng = make_engine(db_url)
    try:
        with eng.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
        assert [d for d in diffs if any(name in repr(d) for name in MINE)] == []
        assert set(inspect(eng).get_table_names()) >= MINE
        auth.create_user(eng, "admin", "a long password", "admin", datetime.now(UTC))
        try:
            auth.create_user(eng, "ADMIN", "a long password", "admin", datetime.now(UTC))
        except auth.UserError:
            pass
        else:
            raise AssertionError("usernames are unique, case-insensitively")
        command.downgrade(alembic_config(db_url), "0002")
        assert not MINE & set(inspect(eng).get_table_names())
        upgrade_url(db_url)
        assert set(inspect(eng).get_table_names()) >= MINE
    finally:
        eng.dispose()
