"""Message bodies encrypted at rest: a SQLAlchemy column type over Fernet (``cryptography``).

Keys come from the environment, never from config.yaml: ``RAPPORT_DATA_KEY`` holds one or more
Fernet keys separated by commas (or whitespace), newest first. New values are encrypted with the
first key; any listed key decrypts. Rotation is therefore: prepend a new key, restart, and run
``rapport records rotate-key`` (re-encrypts every stored body with the new key), then drop the old
key. See docs/records.md.

Stored form: ``enc:v1:<Fernet token>``. A value without that prefix is plaintext (written before a
key was configured) and is read as is; ``rotate-key`` encrypts such rows too. Without a key,
bodies are stored in plaintext and ``startup_notice`` says so once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

log = logging.getLogger("rapport.crypto")

ENV_VAR = "RAPPORT_DATA_KEY"
PREFIX = "enc:v1:"


class DataKeyError(RuntimeError):
    """The key set cannot read a stored value, or the environment holds a malformed key.

    Messages never include key material.
    """


class _Keys:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fernet: MultiFernet | None = None
        self.primary: Fernet | None = None
        self.count = 0
        self.loaded = False
        self.noticed = False


_keys = _Keys()


def parse_keys(value: str | None) -> list[Fernet]:
    """``RAPPORT_DATA_KEY``'s value as Fernet keys, newest first. Empty or None: no keys."""
    if not value or not value.strip():
        return []
    out = []
    for i, part in enumerate(value.replace(",", " ").split(), start=1):
        try:
            out.append(Fernet(part.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            raise DataKeyError(
                f"{ENV_VAR}: key #{i} is not a Fernet key (32 url-safe base64-encoded bytes; "
                "see docs/records.md for how to make one)"
            ) from None
    return out


def configure(value: str | None) -> None:
    """Install a key set (a ``RAPPORT_DATA_KEY``-style string, or None for plaintext)."""
    keys = parse_keys(value)
    with _keys.lock:
        _keys.fernet = MultiFernet(keys) if keys else None
        _keys.primary = keys[0] if keys else None
        _keys.count = len(keys)
        _keys.loaded = True
        _keys.noticed = False


def load_from_env(env: Mapping[str, str] | None = None) -> None:
    configure((os.environ if env is None else env).get(ENV_VAR))


def _ensure_loaded() -> None:
    if not _keys.loaded:
        load_from_env()


def enabled() -> bool:
    _ensure_loaded()
    return _keys.fernet is not None


def key_count() -> int:
    _ensure_loaded()
    return _keys.count


def startup_notice(logger: logging.Logger | None = None) -> str:
    """Say once, at start-up, whether bodies are encrypted. Returns the line it logged."""
    _ensure_loaded()
    lg = logger or log
    if _keys.fernet is None:
        line = f"message bodies are stored in plain text: set {ENV_VAR} to encrypt them at rest"
        if not _keys.noticed:
            lg.warning(line)
    else:
        line = f"message bodies are encrypted at rest ({_keys.count} key(s) loaded from {ENV_VAR})"
        if not _keys.noticed:
            lg.info(line)
    _keys.noticed = True
    return line


def is_encrypted(stored: str) -> bool:
    return stored.startswith(PREFIX)


def encrypt(plain: str) -> str:
    """The stored form of ``plain``: encrypted with the newest key, or plaintext without keys."""
    _ensure_loaded()
    f = _keys.fernet
    if f is None:
        return plain
    return PREFIX + f.encrypt(plain.encode("utf-8")).decode("ascii")


def decrypt(stored: str) -> str:
    if not stored.startswith(PREFIX):
        return stored
    _ensure_loaded()
    f = _keys.fernet
    if f is None:
        raise DataKeyError(f"an encrypted message body was read but {ENV_VAR} is not set")
    try:
        return f.decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise DataKeyError(
            f"an encrypted message body matches none of the keys in {ENV_VAR} (was an old key removed too early?)"
        ) from None


def needs_rotation(stored: str) -> bool:
    """True when ``stored`` is plaintext, or encrypted with a key other than the newest one."""
    _ensure_loaded()
    primary = _keys.primary
    if primary is None:
        return False
    if not stored.startswith(PREFIX):
        return True
    try:
        primary.decrypt(stored[len(PREFIX) :].encode("ascii"))
    except InvalidToken:
        return True
    return False


class EncryptedText(TypeDecorator[str]):
    """A TEXT column whose values are Fernet-encrypted when ``RAPPORT_DATA_KEY`` is set.

    Encryption is randomised: the column cannot be compared or searched in SQL.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return encrypt(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return decrypt(str(value))
