"""Admin fixtures: the real app over a throwaway SQLite database, and a signed-in browser session."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot.service import Service
from bot.web.admin import auth
from bot.web.app import create_app
from tests.channels.helpers import make_service
from tests.web.conftest import fake_telegram, fake_twilio, settings_for  # noqa: F401  (fixtures)

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def svc(tmp_path: Path) -> Service:
    return make_service(tmp_path)


@pytest.fixture
def web(svc: Service) -> Iterator[TestClient]:
    """The app as `rapport serve` builds it with real providers off; https, as in production."""
    with TestClient(create_app(svc, settings_for()), base_url="https://testserver") as c:
        yield c


def make_user(svc: Service, username: str = "rivera", role: str = "admin", name: str = "Dr Rivera") -> None:
    auth.create_user(svc.db, username, PASSWORD, role, datetime.now(UTC), name=name)


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def sign_in(c: TestClient, username: str = "rivera", password: str = PASSWORD) -> str:
    """Signs in through the form; returns the session's CSRF token (from the next page)."""
    page = c.get("/admin/login")
    r = c.post(
        "/admin/login",
        data={"csrf": csrf_of(page.text), "username": username, "password": password, "next": "/admin/alerts"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    landing = c.get("/admin/alerts")
    assert landing.status_code == 200
    return csrf_of(landing.text)


@pytest.fixture
def admin(svc: Service, web: TestClient) -> str:
    make_user(svc)
    return sign_in(web)
