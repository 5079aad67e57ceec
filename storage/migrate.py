"""`rapport db upgrade`: Alembic migrations, from the first table on, for SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import text

from bot.config import Config
from storage.db import make_engine, normalize_url, resolve_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK = 0x52617070  # the PostgreSQL advisory lock key every migrating process takes ("Rapp")


def alembic_config(url: str) -> AlembicConfig:
    ac = AlembicConfig()
    ac.set_main_option("script_location", str(MIGRATIONS))
    ac.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return ac


def upgrade_url(url: str, revision: str = "head") -> None:
    """Apply the migrations up to ``revision``.

    On PostgreSQL several processes may start at once (``rapport serve`` on three machines, a
    rolling deploy) and each migrates first: they take an advisory lock, so one migrates and the
    others then find nothing left to do, instead of racing to create the same tables and crashing.
    The lock is held on its own autocommit connection and waited for with ``pg_try_advisory_lock``
    between sleeps, never inside a statement: ``CREATE INDEX CONCURRENTLY`` in a migration waits
    for every transaction older than itself, so an open transaction, or a session blocked in
    ``pg_advisory_lock``, would deadlock with the process migrating.
    """
    if not normalize_url(url).startswith("postgresql"):
        command.upgrade(alembic_config(url), revision)
        return
    eng = make_engine(url)
    try:
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as lock:
            while not lock.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": MIGRATION_LOCK}).scalar():
                time.sleep(0.5)
            try:
                command.upgrade(alembic_config(url), revision)
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
    finally:
        eng.dispose()


def upgrade(cfg: Config, config_path: Path | None, revision: str = "head") -> int:
    url = resolve_url(cfg.database_url, config_path)
    upgrade_url(url, revision)
    print(f"database is at {revision}")
    return 0
