"""Message bodies encrypted at rest: the column type, keys from the environment, key rotation."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text
from sqlalchemy.engine import Engine

from bot.retention import rotate_key
from storage import crypto
from storage.crypto import DataKeyError, EncryptedText
from storage.db import make_engine
from tests.conftest import fresh_pg_database

K1 = Fernet.generate_key().decode()
K2 = Fernet.generate_key().decode()

meta = MetaData()
notes = Table("crypto_notes", meta, Column("id", Integer, primary_key=True), Column("body", EncryptedText()))


@pytest.fixture(autouse=True)
def _reset_keys() -> Iterator[None]:
    yield
    crypto.configure(None)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    url = (
        f"sqlite:///{tmp_path / 'c.db'}"
        if request.param == "sqlite"
        else fresh_pg_database(request.getfixturevalue("pg_url"))
    )
    eng = make_engine(url)
    meta.create_all(eng)
    yield eng
    eng.dispose()


def stored(db: Engine) -> list[str]:
    with db.connect() as c:
        return [r[0] for r in c.execute(text("SELECT body FROM crypto_notes ORDER BY id"))]


def read(db: Engine) -> list[str]:
    with db.connect() as c:
        return [r[0] for r in c.execute(select(notes.c.body).order_by(notes.c.id))]


def write(db: Engine, *bodies: str) -> None:
    with db.begin() as c:
        c.execute(insert(notes), [{"body": b} for b in bodies])


def test_with_a_key_bodies_are_ciphertext_at_rest(db: Engine) -> None:
    crypto.configure(K1)
    write(db, "I feel much better, thank you", "ação — ñ — 🙂")
    raw = stored(db)
    assert all(r.startswith("enc:v1:") for r in raw)
    assert not any("better" in r for r in raw)
    assert read(db) == ["I feel much better, thank you", "ação — ñ — 🙂"]


def test_without_a_key_bodies_are_plaintext_and_it_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    crypto.configure(None)
    with caplog.at_level(logging.INFO, logger="rapport.crypto"):
        line = crypto.startup_notice()
        crypto.startup_notice()
    assert "plain text" in line and "RAPPORT_DATA_KEY" in line
    assert [r.getMessage() for r in caplog.records] == [line]
    assert crypto.encrypt("hello") == "hello"


def test_rotation_prepend_a_key_then_rotate(db: Engine) -> None:
    crypto.configure(None)
    write(db, "written before any key")
    crypto.configure(K1)
    write(db, "under the first key")
    crypto.configure(f"{K2},{K1}")  # the new key first; the old one still reads
    write(db, "under the second key")
    assert read(db) == ["written before any key", "under the first key", "under the second key"]
    assert rotate_key(db, columns=[("crypto_notes", "body")]) == {"crypto_notes.body": 2}
    assert rotate_key(db, columns=[("crypto_notes", "body")]) == {"crypto_notes.body": 0}  # resumable, idempotent
    crypto.configure(K2)  # the old key can go now
    assert read(db) == ["written before any key", "under the first key", "under the second key"]
    assert all(r.startswith("enc:v1:") for r in stored(db))


def test_removing_a_key_too_early_is_a_clear_error(db: Engine) -> None:
    crypto.configure(K1)
    write(db, "secret")
    crypto.configure(K2)
    with pytest.raises(DataKeyError, match="none of the keys"):
        read(db)
    crypto.configure(None)
    with pytest.raises(DataKeyError, match="is not set"):
        read(db)


BAD_KEYS = ["not-a-key", "YWJj", f"{K1},short", K1[:-2]]


@pytest.mark.parametrize("value", BAD_KEYS)
def test_a_malformed_key_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(DataKeyError) as ei:
        crypto.configure(value)
    assert "RAPPORT_DATA_KEY" in str(ei.value)
    assert value not in str(ei.value) and K1 not in str(ei.value)


def test_rotate_refuses_without_a_key_or_an_encrypted_column(db: Engine) -> None:
    crypto.configure(None)
    with pytest.raises(DataKeyError, match="no key to rotate to"):
        rotate_key(db, columns=[("crypto_notes", "body")])
    crypto.configure(K1)
    with pytest.raises(DataKeyError, match="refusing to write ciphertext"):
        rotate_key(db, columns=[])


def test_keys_come_from_the_environment() -> None:
    crypto.load_from_env({"RAPPORT_DATA_KEY": f" {K2} , {K1} "})
    assert crypto.enabled() and crypto.key_count() == 2
    token = crypto.encrypt("x")
    crypto.configure(K2)
    assert crypto.decrypt(token) == "x"
    crypto.load_from_env({})
    assert not crypto.enabled()
