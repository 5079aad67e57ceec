"""User management on the admin pages (admins only): list, create with a role and clinician,
reset a password, disable and enable; a disabled user's sessions end at once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bot.service import Service
from bot.web.admin import auth
from bot.web.app import create_app
from storage.admin_tables import StaffUser
from tests.admin.conftest import PASSWORD, csrf_of, make_user, sign_in
from tests.channels.helpers import CONFIG, make_service
from tests.web.conftest import settings_for

CLINICIANS = [*CONFIG["clinicians"], {"id": "costa", "name": "Dra. Costa", "tz": "America/Sao_Paulo"}]
NEW_PASSWORD = "a brand new password"


@pytest.fixture
def svc(tmp_path: Path) -> Service:
    return make_service(tmp_path, clinicians=CLINICIANS)


def client(svc: Service) -> TestClient:
    return TestClient(create_app(svc, settings_for()), base_url="https://testserver")


@pytest.fixture
def web(svc: Service) -> Iterator[TestClient]:
    with client(svc) as c:
        yield c


def user(svc: Service, username: str) -> StaffUser | None:
    with Session(svc.db) as s:
        return s.exec(select(StaffUser).where(StaffUser.username == username)).first()


def uid(svc: Service, username: str) -> int:
    u = user(svc, username)
    assert u is not None and u.id is not None
    return u.id


def test_an_admin_creates_a_clinician_who_then_sees_only_their_clients(svc: Service, web: TestClient) -> None:
    make_user(svc, "boss", "admin")
    csrf = sign_in(web, "boss")
    form = {"csrf": csrf, "username": "Costa", "name": "Dra. Costa", "role": "clinician", "clinician": "costa"}
    r = web.post("/admin/users", data={**form, "password": NEW_PASSWORD}, follow_redirects=False)
    assert r.status_code == 303
    u = user(svc, "costa")
    assert u is not None and (u.role, u.clinician, u.name, u.active) == ("clinician", "costa", "Dra. Costa", True)
    listing = web.get("/admin/users").text
    row = listing.split('data-user="costa"')[1].split("</tr>")[0]
    assert "clinician" in row and "Dra. Costa" in row and "active" in row
    with client(svc) as other:
        sign_in(other, "costa", NEW_PASSWORD)
        assert "/admin/users" not in other.get("/admin/appointments").text  # no Users link for a clinician


BAD_USERS = [
    ("short password", {"username": "x1", "role": "clinician", "password": "short"}, "at least"),
    ("duplicate", {"username": "BOSS", "role": "admin", "password": NEW_PASSWORD}, "exists already"),
    ("bad role", {"username": "x2", "role": "owner", "password": NEW_PASSWORD}, "role"),
    (
        "unknown clinician",
        {"username": "x3", "role": "clinician", "clinician": "house", "password": NEW_PASSWORD},
        "no clinician",
    ),
    ("bad username", {"username": "a b", "role": "admin", "password": NEW_PASSWORD}, "username"),
    ("empty form", {}, "username"),
]


@pytest.mark.parametrize(("form", "reason"), [b[1:] for b in BAD_USERS], ids=[b[0] for b in BAD_USERS])
def test_a_bad_new_user_is_refused_with_the_reason(
    svc: Service, web: TestClient, form: dict[str, str], reason: str
) -> None:
    make_user(svc, "boss", "admin")
    csrf = sign_in(web, "boss")
    r = web.post("/admin/users", data={"csrf": csrf, **form}, follow_redirects=False)
    assert r.status_code == 422 and reason in r.text
    assert [u.username for u in auth.users(svc.db)] == ["boss"]


REFUSED = [
    ("get", "/admin/users", 403),
    ("get", "/admin/users/1", 403),
    ("post", "/admin/users", 403),
    ("post", "/admin/users/1", 403),
    ("post", "/admin/users/1/password", 403),
    ("post", "/admin/users/1/active", 403),
]


@pytest.mark.parametrize(("method", "path", "status"), REFUSED, ids=[f"{m} {p}" for m, p, _ in REFUSED])
def test_a_clinician_cannot_manage_users(svc: Service, web: TestClient, method: str, path: str, status: int) -> None:
    make_user(svc, "boss", "admin")
    make_user(svc, "costa", "clinician")
    csrf = sign_in(web, "costa")
    data = {"csrf": csrf, "username": "x9", "role": "admin", "password": NEW_PASSWORD, "active": "0"}
    r = web.get(path) if method == "get" else web.post(path, data=data, follow_redirects=False)
    assert r.status_code == status
    assert user(svc, "x9") is None and user(svc, "boss").active  # type: ignore[union-attr]


@pytest.mark.parametrize("path", ["/admin/users", "/admin/users/1/active", "/admin/users/1/password"])
def test_user_forms_need_the_csrf_token(svc: Service, web: TestClient, path: str) -> None:
    make_user(svc, "boss", "admin")
    make_user(svc, "costa", "clinician")
    sign_in(web, "boss")
    r = web.post(path, data={"username": "x9", "password": NEW_PASSWORD, "active": "0"}, follow_redirects=False)
    assert r.status_code == 403
    assert user(svc, "x9") is None and user(svc, "boss").active  # type: ignore[union-attr]


def test_reset_password_and_disable_end_the_users_sessions(svc: Service, web: TestClient) -> None:
    make_user(svc, "boss", "admin")
    make_user(svc, "costa", "clinician")
    csrf = sign_in(web, "boss")
    costa = uid(svc, "costa")
    with client(svc) as other:
        sign_in(other, "costa")
        r = web.post(
            f"/admin/users/{costa}/password", data={"csrf": csrf, "password": NEW_PASSWORD}, follow_redirects=False
        )
        assert r.status_code == 303
        assert other.get("/admin/inbox", follow_redirects=False).status_code == 303  # signed out
        assert auth.authenticate(svc.db, "costa", PASSWORD) is None
        sign_in(other, "costa", NEW_PASSWORD)
        r = web.post(f"/admin/users/{costa}/active", data={"csrf": csrf, "active": "0"}, follow_redirects=False)
        assert r.status_code == 303 and not user(svc, "costa").active  # type: ignore[union-attr]
        assert other.get("/admin/inbox", follow_redirects=False).status_code == 303
        assert auth.authenticate(svc.db, "costa", NEW_PASSWORD) is None
        assert "disabled" in web.get(f"/admin/users/{costa}").text
        web.post(f"/admin/users/{costa}/active", data={"csrf": csrf, "active": "1"}, follow_redirects=False)
        sign_in(other, "costa", NEW_PASSWORD)


def test_role_and_clinician_are_changed_on_the_user_page(svc: Service, web: TestClient) -> None:
    make_user(svc, "boss", "admin")
    make_user(svc, "costa", "clinician")
    csrf = sign_in(web, "boss")
    costa = uid(svc, "costa")
    page = web.get(f"/admin/users/{costa}").text
    assert csrf_of(page) == csrf
    r = web.post(
        f"/admin/users/{costa}",
        data={"csrf": csrf, "role": "clinician", "clinician": "costa", "name": "Dra. Costa"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    u = user(svc, "costa")
    assert u is not None and (u.clinician, u.name) == ("costa", "Dra. Costa")
    assert re.search(r'<option value="costa" selected>', web.get(f"/admin/users/{costa}").text)


GUARDS = [
    ("disable yourself", "active", {"active": "0"}, "cannot disable yourself"),
    ("demote the last admin", "", {"role": "clinician"}, "last active admin"),
    ("an unknown clinician", "", {"role": "admin", "clinician": "house"}, "no clinician"),
    ("a short password", "password", {"password": "short"}, "at least"),
]


@pytest.mark.parametrize(("action", "form", "reason"), [g[1:] for g in GUARDS], ids=[g[0] for g in GUARDS])
def test_changes_that_would_lock_the_practice_out_are_refused(
    svc: Service, web: TestClient, action: str, form: dict[str, str], reason: str
) -> None:
    make_user(svc, "boss", "admin")
    csrf = sign_in(web, "boss")
    path = f"/admin/users/{uid(svc, 'boss')}" + (f"/{action}" if action else "")
    r = web.post(path, data={"csrf": csrf, **form}, follow_redirects=False)
    assert r.status_code == 422 and reason in r.text
    u = user(svc, "boss")
    assert u is not None and (u.role, u.active, u.clinician) == ("admin", True, None)
    assert auth.authenticate(svc.db, "boss", PASSWORD) is not None


@pytest.mark.parametrize("path", ["/admin/users/999", "/admin/users/x", "/admin/users/99999999999999999999"])
def test_an_unknown_user_is_404(svc: Service, web: TestClient, path: str) -> None:
    make_user(svc, "boss", "admin")
    sign_in(web, "boss")
    assert web.get(path).status_code == 404


def test_a_blank_clinician_is_none_and_ids_are_trimmed(svc: Service) -> None:
    a = auth.create_user(svc.db, "one", NEW_PASSWORD, "clinician", datetime.now(UTC), clinician=" costa ")
    b = auth.create_user(svc.db, "two", NEW_PASSWORD, "clinician", datetime.now(UTC), clinician="  ")
    assert (a.clinician, b.clinician) == ("costa", None)
