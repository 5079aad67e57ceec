"""The admin pages' tables: staff users (argon2 hashes), their sessions, per-language script
overrides, and conversations a person has taken over from the scripts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column
from sqlmodel import Field, Session, SQLModel

from storage.types import UTCDateTime

ROLES = ("admin", "clinician")


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


class StaffUser(SQLModel, table=True):
    __tablename__ = "staff_users"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, index=True)
    name: str = ""
    role: str = "clinician"  # admin | clinician
    # The ``clinicians`` id (config.yaml) this person is: a clinician-role user sees that
    # clinician's clients only (bot/web/admin/scope.py). None for an admin, or not mapped yet.
    clinician: str | None = None
    password_hash: str
    active: bool = True
    created_at: datetime | None = _ts()


class StaffSession(SQLModel, table=True):
    """A signed-in browser. Only the SHA-256 of the cookie value is stored."""

    __tablename__ = "staff_sessions"
    token_hash: str = Field(primary_key=True)
    user_id: int = Field(index=True)
    csrf: str
    created_at: datetime | None = _ts()
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class ScriptOverride(SQLModel, table=True):
    """A practice's own text for one message id in one language, edited in the admin."""

    __tablename__ = "script_overrides"
    lang: str = Field(primary_key=True)
    msg_id: str = Field(primary_key=True)
    text: str
    updated_by: str = ""
    updated_at: datetime | None = _ts()


class Takeover(SQLModel, table=True):
    """A client whose conversation a person has taken over: the scripts stay quiet until handed back."""

    __tablename__ = "takeovers"
    client_id: str = Field(primary_key=True)
    by: str
    at: datetime | None = _ts()


def taken_over(s: Session, client_id: str) -> bool:
    """True while a person has taken the client's conversation over (``Service._inbound`` asks this)."""
    return s.get(Takeover, client_id) is not None
