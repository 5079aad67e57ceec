"""`rapport db upgrade`: Alembic migrations, from the first table on, for SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig

from bot.config import Config
from storage.db import resolve_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> AlembicConfig:
    ac = AlembicConfig()
    ac.set_main_option("script_location", str(MIGRATIONS))
    ac.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return ac


def upgrade_url(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def upgrade(cfg: Config, config_path: Path | None, revision: str = "head") -> int:
    url = resolve_url(cfg.database_url, config_path)
    upgrade_url(url, revision)
    print(f"database is at {revision}")
    return 0
