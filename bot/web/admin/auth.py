"""Staff sign-in: argon2 password hashes, server-side sessions, CSRF tokens, roles.

The session cookie holds a random token; the database holds only its SHA-256, so a leaked
database cannot be replayed as a cookie. Every form carries the session's CSRF token (compared in
constant time); the sign-in form, which has no session yet, uses a double-submit cookie. Cookies
are HttpOnly and SameSite=Lax, and Secure when ``RAPPORT_PUBLIC_URL`` is https.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine as DbEngine
from sqlmodel import Session, col, delete, select

from storage.admin_tables import ROLES, StaffSession, StaffUser

SESSION_COOKIE = "rapport_session"
LOGIN_CSRF_COOKIE = "rapport_login_csrf"
SESSION_TTL = timedelta(hours=12)
MIN_PASSWORD = 10

_hasher = PasswordHasher()
# Verified against when the username is unknown, so that both cases take the same time.
_DUMMY_HASH = _hasher.hash("not a password anyone has")


class Throttle:
    """Refuses sign-in for a username after ``limit`` failures within ``window`` (per process).

    Argon2 already makes each guess slow; this stops a patient guesser at a handful per window.
    """

    def __init__(self, limit: int = 5, window: timedelta = timedelta(minutes=15)):
        self.limit = limit
        self.window = window
        self.failures: dict[str, list[datetime]] = {}
        self.lock = threading.Lock()

    def _recent(self, key: str, now: datetime) -> list[datetime]:
        recent = [t for t in self.failures.get(key, []) if now - t < self.window]
        if recent:
            self.failures[key] = recent
        else:
            self.failures.pop(key, None)
        return recent

    def blocked(self, username: str, now: datetime) -> bool:
        with self.lock:
            return len(self._recent(username.strip().lower(), now)) >= self.limit

    def failed(self, username: str, now: datetime) -> None:
        key = username.strip().lower()[:64]
        with self.lock:
            if len(self.failures) > 10_000:  # a flood of made-up names cannot grow this without bound
                self.failures.clear()
            self._recent(key, now)
            self.failures.setdefault(key, []).append(now)

    def succeeded(self, username: str) -> None:
        with self.lock:
            self.failures.pop(username.strip().lower(), None)


class UserError(ValueError):
    """A user that cannot be created as asked; the message says why."""


@dataclass(frozen=True)
class Staff:
    """The signed-in person, as the pages see them."""

    id: int
    username: str
    name: str
    role: str
    csrf: str
    clinician: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def display(self) -> str:
        return self.name or self.username


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_clinician(clinician: str | None, known: Collection[str] | None) -> str | None:
    """The clinician id to store: blank is none; with ``known`` given, it must be one of them."""
    clinician = (clinician or "").strip() or None
    if clinician is not None and known is not None and clinician not in known:
        raise UserError(f"clinician: no clinician {clinician!r} in config.yaml")
    return clinician


def create_user(
    db: DbEngine,
    username: str,
    password: str,
    role: str,
    now: datetime,
    name: str = "",
    clinician: str | None = None,
    known_clinicians: Collection[str] | None = None,
) -> StaffUser:
    username = username.strip().lower()
    if not username or len(username) > 64 or not all(c.isalnum() or c in "._-@" for c in username):
        raise UserError("username: 1-64 letters, digits and . _ - @")
    if role not in ROLES:
        raise UserError(f"role: one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password: at least {MIN_PASSWORD} characters")
    clinician = check_clinician(clinician, known_clinicians)
    with Session(db, expire_on_commit=False) as s:
        if s.exec(select(StaffUser).where(StaffUser.username == username)).first() is not None:
            raise UserError(f"username: {username!r} exists already")
        u = StaffUser(
            username=username,
            name=name.strip(),
            role=role,
            clinician=clinician,
            password_hash=_hasher.hash(password),
            created_at=now,
        )
        s.add(u)
        s.commit()
        return u


def set_password(db: DbEngine, username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password: at least {MIN_PASSWORD} characters")
    with Session(db) as s:
        u = s.exec(select(StaffUser).where(StaffUser.username == username.strip().lower())).first()
        if u is None:
            raise UserError(f"username: no user {username!r}")
        u.password_hash = _hasher.hash(password)
        s.add(u)
        s.exec(delete(StaffSession).where(col(StaffSession.user_id) == u.id))
        s.commit()


def users(db: DbEngine) -> list[StaffUser]:
    with Session(db) as s:
        return list(s.exec(select(StaffUser).order_by(col(StaffUser.username))))


def _user(s: Session, user_id: int) -> StaffUser:
    u = s.get(StaffUser, user_id)
    if u is None:
        raise UserError("no such user")
    return u


def _other_active_admin(s: Session, u: StaffUser) -> bool:
    q = select(StaffUser).where(StaffUser.role == "admin", StaffUser.active == True, StaffUser.id != u.id)  # noqa: E712
    return s.exec(q).first() is not None


def set_active(db: DbEngine, user_id: int, active: bool) -> StaffUser:
    """Enable or disable a user; disabling ends their sessions at once (not at the next expiry)."""
    with Session(db, expire_on_commit=False) as s:
        u = _user(s, user_id)
        if not active and u.role == "admin" and u.active and not _other_active_admin(s, u):
            raise UserError("this is the last active admin: nobody could manage users any more")
        u.active = active
        s.add(u)
        if not active:
            s.exec(delete(StaffSession).where(col(StaffSession.user_id) == u.id))
        s.commit()
        return u


def update_user(
    db: DbEngine, user_id: int, role: str, clinician: str | None, known_clinicians: Collection[str] | None, name: str
) -> StaffUser:
    """Change a user's role, clinician and name. Their open sessions pick it up on the next page."""
    if role not in ROLES:
        raise UserError(f"role: one of {', '.join(ROLES)}")
    clinician = check_clinician(clinician, known_clinicians)
    with Session(db, expire_on_commit=False) as s:
        u = _user(s, user_id)
        if u.role == "admin" and role != "admin" and u.active and not _other_active_admin(s, u):
            raise UserError("this is the last active admin: make someone else admin first")
        u.role, u.clinician, u.name = role, clinician, name.strip()
        s.add(u)
        s.commit()
        return u


def reset_password(db: DbEngine, user_id: int, password: str) -> StaffUser:
    """A new password set by an admin; the user's sessions end (whoever knew the old one is out)."""
    with Session(db, expire_on_commit=False) as s:
        u = _user(s, user_id)
    set_password(db, u.username, password)
    return u


def authenticate(db: DbEngine, username: str, password: str) -> StaffUser | None:
    with Session(db, expire_on_commit=False) as s:
        u = s.exec(select(StaffUser).where(StaffUser.username == username.strip().lower())).first()
        stored = u.password_hash if u is not None and u.active else _DUMMY_HASH
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if u is None or not u.active:
            return None
        if _hasher.check_needs_rehash(u.password_hash):
            u.password_hash = _hasher.hash(password)
            s.add(u)
            s.commit()
        return u


def start_session(db: DbEngine, user: StaffUser, now: datetime) -> str:
    """A new session for the user; returns the cookie value."""
    assert user.id is not None
    token = secrets.token_urlsafe(32)
    with Session(db) as s:
        s.exec(delete(StaffSession).where(col(StaffSession.expires_at) < now))
        s.add(
            StaffSession(
                token_hash=_digest(token),
                user_id=user.id,
                csrf=secrets.token_urlsafe(32),
                created_at=now,
                expires_at=now + SESSION_TTL,
            )
        )
        s.commit()
    return token


def current(db: DbEngine, token: str | None, now: datetime) -> Staff | None:
    if not token or len(token) > 200:
        return None
    with Session(db) as s:
        sess = s.get(StaffSession, _digest(token))
        if sess is None or sess.expires_at <= now:
            return None
        u = s.get(StaffUser, sess.user_id)
        if u is None or not u.active or u.id is None:
            return None
        return Staff(u.id, u.username, u.name, u.role, sess.csrf, u.clinician)


def end_session(db: DbEngine, token: str | None) -> None:
    if not token:
        return
    with Session(db) as s:
        s.exec(delete(StaffSession).where(col(StaffSession.token_hash) == _digest(token)))
        s.commit()


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())
