"""Opening the database: SQLite (WAL) beside config.yaml by default, PostgreSQL by URL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel, create_engine

from storage import admin_tables, tables, writeback_table  # noqa: F401  (registers the tables on SQLModel.metadata)


def resolve_url(config_url: str | None, config_path: Path | None) -> str:
    """``RAPPORT_DATABASE_URL`` wins, then config.yaml's ``database_url``, then a file beside it."""
    url = os.environ.get("RAPPORT_DATABASE_URL") or config_url
    if not url:
        base = config_path.parent if config_path else Path.cwd()
        url = f"sqlite:///{base / 'rapport.db'}"
    return normalize_url(url)


def normalize_url(url: str) -> str:
    # psycopg 3 is the driver we ship; plain postgresql:// would ask SQLAlchemy for psycopg2.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, **kw: Any) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        args: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if memory:
            args["poolclass"] = StaticPool
        # hide_parameters: error text would otherwise quote message bodies and phone numbers.
        eng = create_engine(url, hide_parameters=True, **args, **kw)

        @event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            # Let SQLAlchemy own transactions: BEGIN IMMEDIATE below takes the write lock up front,
            # which is what keeps one client's messages and timers from interleaving.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(eng, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return eng
    eng = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10, hide_parameters=True, **kw)

    @event.listens_for(eng, "before_cursor_execute", retval=True)
    def _no_nul(_conn: Any, _cur: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> tuple[str, Any]:
        # PostgreSQL text cannot hold NUL (SQLite can): a NUL in an SMS or a Telegram message would
        # fail the whole transaction, crisis scan included. It carries no meaning: store U+FFFD.
        # Every statement passes here, so the common case (no NUL anywhere) is one cheap scan.
        if has_nul(parameters):
            parameters = without_nul(parameters)
        return statement, parameters

    return eng


def has_nul(value: Any) -> bool:
    if isinstance(value, dict):
        return any(has_nul(v) for v in value.values() if not isinstance(v, (int, float, bool, type(None))))
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, (list, tuple)):
        return any(has_nul(v) for v in value)
    return False


def without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {k: without_nul(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(without_nul(v) for v in value)
    return value


def create_all(eng: Engine) -> None:
    """For throwaway databases (the simulator's in-memory one, tests); real ones use Alembic."""
    SQLModel.metadata.create_all(eng)


@contextmanager
def transaction(eng: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with Session(eng, expire_on_commit=False) as s:
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
