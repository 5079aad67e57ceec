"""Statements on the hot path, run on the DBAPI cursor.

Every inbound message reads its context with one statement. Through the ORM that read cost 110
microseconds, through SQLAlchemy Core 47, and SQLite itself took 14 of them (bench notes in
docs/deploy.md §7): the execution machinery around a statement (cache key, execution context,
result object) costs more than running it. A :class:`Hot` statement is compiled once per dialect by
SQLAlchemy and run on the session's own DBAPI connection, inside the session's transaction, with the
columns' own bind and result conversions (UTC datetimes, JSON, encrypted text read exactly as
through the ORM) and PostgreSQL's NUL rule from storage.db. Only for statements built once at import
time whose binds are all named; everything else goes through SQLAlchemy as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql.selectable import SelectBase

from storage.db import has_nul, without_nul

Processor = Callable[[Any], Any] | None  # None: the value goes as it is


@dataclass(frozen=True)
class _Prepared:
    sql: str
    positional: tuple[str, ...] | None  # bind names in placeholder order (qmark), or None (named)
    fixed: Mapping[str, Any]  # values the statement carries itself (LIMIT 1, literals)
    binds: Mapping[str, Processor]
    results: tuple[Processor, ...]
    nul_rule: bool


class Hot:
    """A select built once, run on the cursor; :meth:`rows` gives converted tuples in column order."""

    def __init__(self, stmt: SelectBase, required: tuple[str, ...]):
        self.stmt = stmt
        self.required = required  # the bind names every call gives
        self._prepared: dict[str, _Prepared] = {}

    def _prepare(self, dialect: Dialect) -> _Prepared:
        got = self._prepared.get(dialect.name)
        if got is not None:
            return got
        c = self.stmt.compile(dialect=dialect)
        # construct_params fills in the values the statement holds and checks nothing else is missing
        fixed = c.construct_params(dict.fromkeys(self.required))
        binds = {name: c.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in fixed}
        columns = self.stmt.selected_columns
        results = tuple(col.type.dialect_impl(dialect).result_processor(dialect, None) for col in columns)
        positional = tuple(c.positiontup) if c.positional and c.positiontup is not None else None
        got = _Prepared(c.string, positional, fixed, binds, results, dialect.name == "postgresql")
        self._prepared[dialect.name] = got
        return got

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        p = self._prepare(conn.dialect)
        values = {**p.fixed, **params}
        for name, proc in p.binds.items():
            if proc is not None:
                values[name] = proc(values[name])
        args: Any = tuple(values[n] for n in p.positional) if p.positional is not None else values
        if p.nul_rule and has_nul(args):
            args = without_nul(args)
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        cur = dbapi.cursor()
        try:
            cur.execute(p.sql, args)
            fetched = cur.fetchall()
        except conn.dialect.loaded_dbapi.Error as e:
            raise _wrapped(conn, e, cur, p.sql) from e
        finally:
            cur.close()
        procs = p.results
        return [tuple(v if f is None or v is None else f(v) for f, v in zip(procs, r, strict=True)) for r in fetched]


def _wrapped(conn: Connection, e: Any, cursor: Any, sql: str) -> StatementError:
    """The error SQLAlchemy would raise for it (OperationalError, IntegrityError…, parameters
    hidden as storage.db asks), the connection invalidated if it is gone: callers catch and
    recover the same way whichever path ran the statement."""
    disconnect = conn.dialect.is_disconnect(e, conn.connection.dbapi_connection, cursor)
    if disconnect:
        conn.invalidate(e)
    return DBAPIError.instance(
        sql, None, e, conn.dialect.loaded_dbapi.Error, hide_parameters=True, connection_invalidated=disconnect,
        dialect=conn.dialect,
    )
