"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class _SQLiteText(sqlite.DATETIME):
    """SQLite's DATETIME column (same DDL) whose values UTCDateTime has already turned into text."""

    def bind_processor(self, dialect: Dialect) -> None:
        return None

    def result_processor(self, dialect: Dialect, coltype: object) -> None:
        return None


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware in and out. Stored as UTC; SQLite would otherwise hand back naive values.

    On SQLite the value is written and read as SQLAlchemy's own DATETIME text
    (``YYYY-MM-DD HH:MM:SS.ffffff``) by ``isoformat``/``fromisoformat`` directly: SQLAlchemy's
    DATETIME conversion (a %-format of a dict, a regex to read back) took about a twentieth of an
    inbound message's time, for the dozen timestamps each one writes and reads."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return _SQLiteText() if dialect.name == "sqlite" else super().load_dialect_impl(dialect)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: every time Rapport stores carries its zone")
        v = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return v.replace(tzinfo=None).isoformat(" ", "microseconds")
        return v

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
