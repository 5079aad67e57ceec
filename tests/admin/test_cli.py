"""`rapport admin create-user` / `set-password` (the function behind the argparse lines)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bot.web.admin import auth
from bot.web.admin.cli import PASSWORD_ENV, run_admin
from storage.db import make_engine


def args(config: Path, command: str, username: str, **kw: str) -> argparse.Namespace:
    return argparse.Namespace(config=str(config), admin_command=command, username=username, **kw)


def test_create_user_then_set_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("practice_name: Test\n", encoding="utf-8")
    monkeypatch.delenv("RAPPORT_DATABASE_URL", raising=False)
    monkeypatch.setenv(PASSWORD_ENV, "first password 123")
    assert run_admin(args(cfg, "create-user", "Rivera", role="admin", name="Dr Rivera")) == 0
    assert "created admin rivera" in capsys.readouterr().out
    db = make_engine(f"sqlite:///{tmp_path / 'rapport.db'}")  # beside config.yaml, migrated to head
    u = auth.authenticate(db, "rivera", "first password 123")
    assert u is not None and u.role == "admin" and u.name == "Dr Rivera"
    assert run_admin(args(cfg, "create-user", "rivera", role="admin", name="")) == 1
    assert "exists already" in capsys.readouterr().err
    monkeypatch.setenv(PASSWORD_ENV, "short")
    assert run_admin(args(cfg, "create-user", "costa", role="clinician", name="")) == 1
    assert "at least" in capsys.readouterr().err
    monkeypatch.setenv(PASSWORD_ENV, "second password 456")
    assert run_admin(args(cfg, "set-password", "rivera")) == 0
    assert auth.authenticate(db, "rivera", "first password 123") is None
    assert auth.authenticate(db, "rivera", "second password 456") is not None
    db.dispose()


def test_no_password_without_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("practice_name: Test\n", encoding="utf-8")
    monkeypatch.delenv("RAPPORT_DATABASE_URL", raising=False)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert run_admin(args(cfg, "create-user", "rivera", role="admin", name="")) == 1
    assert PASSWORD_ENV in capsys.readouterr().err


CLINICIAN_CASES = [
    ("mapped", "costa", 0, "created clinician costa (clinician costa)", "costa"),
    ("unknown id", "house", 1, "no clinician 'house'", None),
    ("not given", None, 0, "created clinician costa", None),
]


@pytest.mark.parametrize(
    ("clinician", "status", "said", "stored"), [c[1:] for c in CLINICIAN_CASES], ids=[c[0] for c in CLINICIAN_CASES]
)
def test_create_user_with_a_clinician(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    clinician: str | None,
    status: int,
    said: str,
    stored: str | None,
) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("clinicians:\n  - {id: costa, name: Dra. Costa, tz: America/Sao_Paulo}\n", encoding="utf-8")
    monkeypatch.delenv("RAPPORT_DATABASE_URL", raising=False)
    monkeypatch.setenv(PASSWORD_ENV, "first password 123")
    a = args(cfg, "create-user", "costa", role="clinician", name="")
    a.clinician = clinician
    assert run_admin(a) == status
    out = capsys.readouterr()
    assert said in (out.out if status == 0 else out.err)
    db = make_engine(f"sqlite:///{tmp_path / 'rapport.db'}")
    users = {u.username: u.clinician for u in auth.users(db)}
    db.dispose()
    assert users == ({"costa": stored} if status == 0 else {})
