"""Migration 0002 creates exactly the tables storage/writeback_table.py declares, on both engines."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from storage import writeback_table
from storage.db import make_engine
from storage.migrate import alembic_config, upgrade_url

MINE = {
    t.__tablename__
    for t in (
        writeback_table.WritebackEvent,
        writeback_table.ImportItem,
        writeback_table.WaitlistEntry,
        writeback_table.SlotOffer,
    )
}


def test_0002_matches_the_models_and_downgrades(db_url: str) -> None:
    upgrade_url(db_url)
    eng = make_engine(db_url)
    try:
        with eng.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
        mine = [d for d in diffs if any(name in repr(d) for name in MINE)]
        assert mine == []
        assert set(inspect(eng).get_table_names()) >= MINE
        command.downgrade(alembic_config(db_url), "0001")
        assert not MINE & set(inspect(eng).get_table_names())
        upgrade_url(db_url)
        assert set(inspect(eng).get_table_names()) >= MINE
    finally:
        eng.dispose()
