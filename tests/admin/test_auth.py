"""Sign-in: argon2 hashes, cookie flags, CSRF on every POST, roles, sign-out, no open redirect."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bot.service import Service
from bot.web.admin import auth
from bot.web.app import create_app
from storage.admin_tables import StaffSession, StaffUser
from tests.admin.conftest import PASSWORD, csrf_of, make_user, sign_in
from tests.web.conftest import settings_for


def test_passwords_are_argon2_hashes_and_short_ones_are_refused(svc: Service) -> None:
    make_user(svc)
    with Session(svc.db) as s:
        u = s.exec(select(StaffUser)).one()
    assert u.password_hash.startswith("$argon2id$") and PASSWORD not in u.password_hash
    assert auth.authenticate(svc.db, "RIVERA ", PASSWORD) is not None
    assert auth.authenticate(svc.db, "rivera", PASSWORD + "x") is None
    assert auth.authenticate(svc.db, "nobody", PASSWORD) is None
    for bad in (
        ("x", "short", "admin"),
        ("rivera", PASSWORD, "admin"),
        ("ok", PASSWORD, "root"),
        ("a b", PASSWORD, "admin"),
    ):
        try:
            auth.create_user(svc.db, bad[0], bad[1], bad[2], datetime.now(UTC))
        except auth.UserError:
            continue
        raise AssertionError(f"accepted {bad}")


def test_sign_in_sets_a_secure_httponly_lax_cookie(svc: Service, web: TestClient) -> None:
    make_user(svc)
    page = web.get("/admin/login")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    r = web.post(
        "/admin/login",
        data={"csrf": csrf_of(page.text), "username": "rivera", "password": PASSWORD, "next": "/admin/inbox"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/inbox"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(auth.SESSION_COOKIE + "="))
    flags = cookie.lower()
    assert "httponly" in flags and "samesite=lax" in flags and "secure" in flags
    token = cookie.split(";")[0].split("=", 1)[1]
    with Session(svc.db) as s:
        stored = s.exec(select(StaffSession)).one()
    assert stored.token_hash != token  # only a digest is stored


def test_no_secure_flag_when_the_public_url_is_plain_http(svc: Service) -> None:
    make_user(svc)
    app = create_app(svc, settings_for(RAPPORT_PUBLIC_URL="http://localhost:8000"))
    with TestClient(app) as c:
        page = c.get("/admin/login")
        r = c.post(
            "/admin/login",
            data={"csrf": csrf_of(page.text), "username": "rivera", "password": PASSWORD},
            follow_redirects=False,
        )
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(auth.SESSION_COOKIE + "="))
    assert "secure" not in cookie.lower() and "httponly" in cookie.lower()


def test_wrong_password_and_missing_login_csrf(svc: Service, web: TestClient) -> None:
    make_user(svc)
    page = web.get("/admin/login")
    bad = web.post(
        "/admin/login", data={"csrf": csrf_of(page.text), "username": "rivera", "password": "nope nope nope"}
    )
    assert bad.status_code == 401 and "Wrong username or password" in bad.text
    forged = web.post("/admin/login", data={"csrf": "made-up", "username": "rivera", "password": PASSWORD})
    assert forged.status_code == 403
    assert web.get("/admin/appointments", follow_redirects=False).status_code == 303


def test_every_post_needs_the_session_csrf_token(svc: Service, web: TestClient, admin: str) -> None:
    from tests.channels.helpers import add_client

    add_client(svc)
    for path in ("/admin/inbox/c1/takeover", "/admin/inbox/c1/reply", "/admin/alerts/1/ack", "/admin/logout"):
        assert web.post(path, data={"text": "hi"}).status_code == 403, path
        assert web.post(path, data={"text": "hi", "csrf": admin + "x"}).status_code == 403, path
    # and the session still works afterwards: nothing above signed it out
    assert web.get("/admin/inbox").status_code == 200


def test_sign_out_ends_the_session_server_side(svc: Service, web: TestClient, admin: str) -> None:
    cookie = web.cookies.get(auth.SESSION_COOKIE)
    r = web.post("/admin/logout", data={"csrf": admin}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"
    web.cookies.set(auth.SESSION_COOKIE, cookie or "", domain="testserver")
    assert web.get("/admin/appointments", follow_redirects=False).status_code == 303


def test_next_never_leaves_the_admin(svc: Service, web: TestClient) -> None:
    make_user(svc)
    for nxt in ("https://evil.example/", "//evil.example/admin", "/\\evil.example", "/api/alerts"):
        page = web.get("/admin/login")
        r = web.post(
            "/admin/login",
            data={"csrf": csrf_of(page.text), "username": "rivera", "password": PASSWORD, "next": nxt},
            follow_redirects=False,
        )
        assert r.headers["location"] == "/admin/appointments", nxt


def test_clinicians_cannot_edit_scripts(svc: Service, web: TestClient) -> None:
    make_user(svc, "costa", role="clinician", name="Dr Costa")
    csrf = sign_in(web, "costa")
    assert web.get("/admin/scripts").status_code == 403
    assert web.get("/admin/scripts/en/reminder.ask").status_code == 403
    assert web.post("/admin/scripts/en/help.fallback", data={"csrf": csrf, "text": "x"}).status_code == 403
    assert "Scripts" not in web.get("/admin/appointments").text.split("<main>")[0]
    assert web.get("/admin/dashboard").status_code == 200


def test_repeated_wrong_passwords_are_throttled(svc: Service, web: TestClient) -> None:
    make_user(svc)

    def attempt(password: str) -> int:
        page = web.get("/admin/login")
        return web.post(
            "/admin/login",
            data={"csrf": csrf_of(page.text), "username": "rivera", "password": password},
            follow_redirects=False,
        ).status_code

    assert [attempt("wrong guess " + str(i)) for i in range(5)] == [401] * 5
    assert attempt("wrong guess 6") == 429
    assert attempt(PASSWORD) == 429  # even the right password waits out the window
