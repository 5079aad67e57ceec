"""The admin pages under ``/admin``: server-rendered HTML, one form per action, CSRF on every POST.

Every page and action asks :func:`signed_in` first: without a valid session a GET is redirected to
the sign-in page and a POST is refused with 403. Admin-only pages (the script editor) refuse a
clinician with 403.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from bot.records import RecordError
from bot.scripts_check import segments
from bot.service import Service
from bot.settings import Settings
from bot.web.admin import auth, charts, data, overrides, scope
from bot.web.admin.auth import Staff
from bot.web.admin.scope import Scope
from storage import store
from storage.admin_tables import ROLES

Run = Callable[..., Awaitable[Any]]
TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "admin"
MAX_FORM = 32 * 1024
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}
NOTICES = {
    "sent": "Message queued for sending.",
    "taken": "You have taken this conversation over: the scripts stay quiet until you hand it back.",
    "handed": "Conversation handed back to the scripts.",
    "acked": "Alert acknowledged.",
    "resolved": "Alert resolved.",
    "saved": "Override saved: new messages use it now.",
    "reset": "Override removed: the catalog text is back.",
    "user_created": "User created.",
    "user_saved": "User saved.",
    "password_set": "Password set: the user is signed out everywhere.",
    "user_active": "Done: a disabled user's sessions have ended.",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Forbidden(Exception):
    pass


def router(svc: Service, settings: Settings, run: Run, clock: Callable[[], datetime] = utcnow) -> APIRouter:
    r = APIRouter(prefix="/admin")
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True))
    secure = bool(settings.public_url and settings.public_url.startswith("https://"))
    db = svc.db
    zone = ZoneInfo(svc.cfg.default_tz)
    env.filters["local"] = lambda dt: dt.astimezone(zone).strftime("%a %d %b %H:%M") if dt else ""
    throttle = auth.Throttle()
    overrides.apply(svc)

    def page(request: Request, name: str, user: Staff | None, status: int = 200, **ctx: Any) -> HTMLResponse:
        notice = NOTICES.get(request.query_params.get("done", ""))
        body = env.get_template(name).render(
            user=user, practice=svc.cfg.practice_name or "Rapport", notice=notice, path=request.url.path, **ctx
        )
        return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)

    def to(path: str) -> RedirectResponse:
        return RedirectResponse(path, status_code=303, headers={"Cache-Control": "no-store"})

    async def who(request: Request) -> Staff | None:
        return await run(auth.current, db, request.cookies.get(auth.SESSION_COOKIE), clock())

    def to_login(request: Request) -> RedirectResponse:
        return to("/admin/login?next=" + quote(request.url.path))

    async def form(request: Request) -> dict[str, str]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_FORM:
            raise Forbidden
        raw = await request.body()
        if len(raw) > MAX_FORM:
            raise Forbidden
        try:
            parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
        except (UnicodeDecodeError, ValueError):
            return {}
        return {k: v[0] for k, v in parsed.items()}

    async def posted(request: Request, admin_only: bool = False) -> tuple[Staff, dict[str, str]] | Response:
        """The signed-in user and the form of a POST, or the refusal to send back."""
        user = await who(request)
        if user is None:
            return Response("sign in first", status_code=403)
        try:
            f = await form(request)
        except Forbidden:
            return Response("form too large", status_code=413)
        if not auth.same(f.get("csrf"), user.csrf):
            return Response("the form expired or did not come from this site: reload the page", status_code=403)
        if admin_only and not user.is_admin:
            return Response("admins only", status_code=403)
        return user, f

    # -- signing in and out ---------------------------------------------------------------------

    @r.get("/login")
    async def login_page(request: Request) -> Response:
        token = secrets.token_urlsafe(32)
        resp = page(request, "login.html", None, csrf=token, next=_safe_next(request.query_params.get("next")))
        resp.set_cookie(
            auth.LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax", secure=secure, path="/admin", max_age=3600
        )
        return resp

    @r.post("/login")
    async def login(request: Request) -> Response:
        try:
            f = await form(request)
        except Forbidden:
            return Response("form too large", status_code=413)
        if not auth.same(f.get("csrf"), request.cookies.get(auth.LOGIN_CSRF_COOKIE)):
            return Response("the form expired: reload the sign-in page", status_code=403)
        username = f.get("username", "")
        nxt = _safe_next(f.get("next"))
        if throttle.blocked(username, clock()):
            user = None
            status, message = 429, "Too many failed attempts: wait a few minutes and try again."
        else:
            user = await run(auth.authenticate, db, username, f.get("password", ""))
            status, message = 401, "Wrong username or password."
        if user is None:
            if status == 401:
                throttle.failed(username, clock())
            token = secrets.token_urlsafe(32)
            resp = page(request, "login.html", None, status, csrf=token, next=nxt, error=message)
            resp.set_cookie(
                auth.LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax", secure=secure, path="/admin", max_age=3600
            )
            return resp
        throttle.succeeded(username)
        cookie = await run(auth.start_session, db, user, clock())
        ok = to(nxt)
        ok.set_cookie(
            auth.SESSION_COOKIE,
            cookie,
            httponly=True,
            samesite="lax",
            secure=secure,
            path="/",
            max_age=int(auth.SESSION_TTL.total_seconds()),
        )
        ok.delete_cookie(auth.LOGIN_CSRF_COOKIE, path="/admin")
        return ok

    @r.post("/logout")
    async def logout(request: Request) -> Response:
        got = await posted(request)
        if isinstance(got, Response):
            return got
        await run(auth.end_session, db, request.cookies.get(auth.SESSION_COOKIE))
        resp = to("/admin/login")
        resp.delete_cookie(auth.SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure)
        return resp

    # -- pages ----------------------------------------------------------------------------------

    @r.get("")
    @r.get("/")
    async def home(request: Request) -> Response:
        user = await who(request)
        return to_login(request) if user is None else to("/admin/appointments")

    @r.get("/appointments")
    async def appointments(request: Request) -> Response:
        user = await who(request)
        if user is None:
            return to_login(request)
        days = await run(data.appointment_days, svc, clock(), Scope.of(user))
        return page(request, "appointments.html", user, days=days, tz=svc.cfg.default_tz)

    @r.get("/inbox")
    async def inbox(request: Request) -> Response:
        user = await who(request)
        if user is None:
            return to_login(request)
        rows = await run(data.inbox, svc, Scope.of(user))
        return page(request, "inbox.html", user, rows=rows, tz=svc.cfg.default_tz)

    @r.get("/inbox/{client_id}")
    async def conversation(request: Request, client_id: str) -> Response:
        user = await who(request)
        if user is None:
            return to_login(request)
        conv = await run(data.conversation, svc, client_id, Scope.of(user))
        if conv is None:
            return page(request, "error.html", user, 404, message="No such client.")
        return page(request, "conversation.html", user, tz=svc.cfg.default_tz, error=None, **conv)

    async def client_action(
        request: Request, client_id: str, fn: Callable[..., Any], done: str, *args: Any
    ) -> Response:
        got = await posted(request)
        if isinstance(got, Response):
            return got
        user, f = got
        try:
            await run(data.allowed, svc, Scope.of(user), client_id)
            await run(fn, svc, client_id, *[f.get(a, "") for a in args], user.display, clock())
        except data.NotFound as e:
            return page(request, "error.html", user, 404, message=str(e))
        except data.ActionError as e:
            conv = await run(data.conversation, svc, client_id, Scope.of(user))
            if conv is None:
                return page(request, "error.html", user, 404, message=str(e))
            return page(request, "conversation.html", user, 422, tz=svc.cfg.default_tz, error=str(e), **conv)
        return to(f"/admin/inbox/{quote(client_id)}?done={done}")

    @r.post("/inbox/{client_id}/reply")
    async def reply(request: Request, client_id: str) -> Response:
        return await client_action(request, client_id, data.reply, "sent", "text")

    @r.post("/inbox/{client_id}/takeover")
    async def takeover(request: Request, client_id: str) -> Response:
        return await client_action(request, client_id, data.take_over, "taken")

    @r.post("/inbox/{client_id}/handback")
    async def handback(request: Request, client_id: str) -> Response:
        return await client_action(request, client_id, data.hand_back, "handed")

    @r.get("/alerts")
    async def alerts(request: Request) -> Response:
        user = await who(request)
        if user is None:
            return to_login(request)
        lists = await run(data.alerts, svc, Scope.of(user))
        return page(request, "alerts.html", user, tz=svc.cfg.default_tz, **lists)

    async def alert_action(request: Request, alert_id: str, action: Callable[..., Any], done: str) -> Response:
        got = await posted(request)
        if isinstance(got, Response):
            return got
        user, _f = got
        if not alert_id.isdigit() or len(alert_id) > 18:
            return page(request, "error.html", user, 404, message="No such alert.")
        try:
            changed = await run(action, int(alert_id), user.display, clock())
        except RecordError:
            return page(request, "error.html", user, 404, message="No such alert.")
        return to("/admin/alerts" + (f"?done={done}" if changed else ""))

    @r.post("/alerts/{alert_id}/ack")
    async def ack(request: Request, alert_id: str) -> Response:
        return await alert_action(request, alert_id, svc.ack_alert, "acked")

    @r.post("/alerts/{alert_id}/resolve")
    async def resolve(request: Request, alert_id: str) -> Response:
        return await alert_action(request, alert_id, svc.resolve_alert, "resolved")

    @r.get("/dashboard")
    async def dashboard(request: Request) -> Response:
        user = await who(request)
        if user is None:
            return to_login(request)
        d = await run(scope.dashboard, db, clock(), svc.cfg.retention, svc.cfg.default_tz, Scope.of(user))
        return page(
            request, "dashboard.html", user, d=d, error=request.query_params.get("error"), charts=_charts(svc, d)
        )

    @r.post("/clients/{client_id}/welcome-back")
    async def welcome_back(request: Request, client_id: str) -> Response:
        got = await posted(request)
        if isinstance(got, Response):
            return got
        user, _f = got
        try:
            await run(data.allowed, svc, Scope.of(user), client_id)
            await run(data.welcome_back, svc, client_id, user.display, clock())
        except data.NotFound as e:
            return page(request, "error.html", user, 404, message=str(e))
        except data.ActionError as e:
            return to("/admin/dashboard?error=" + quote(str(e)))
        return to(f"/admin/inbox/{quote(client_id)}?done=sent")

    @r.get("/clients")
    async def clients(request: Request) -> Response:
        user = await who(request)
        if user is None:
            return to_login(request)
        rows = await run(data.clients, svc, Scope.of(user))
        return page(request, "clients.html", user, rows=rows)

    # -- users (admins) -----------------------------------------------------------------------------

    def clinician_names() -> dict[str, str]:
        return {c.id: c.name or c.id for c in svc.cfg.clinicians}

    def known() -> list[str] | None:
        # Without clinicians in config.yaml there is nothing to check an id against.
        return list(clinician_names()) or None

    def users_page(request: Request, user: Staff, status: int = 200, error: str | None = None, **form: str) -> Response:
        return page(
            request,
            "users.html",
            user,
            status,
            users=auth.users(db),
            roles=ROLES,
            clinicians=clinician_names(),
            min_password=auth.MIN_PASSWORD,
            error=error,
            form=form,
        )

    async def admin_page(request: Request) -> Staff | Response:
        user = await who(request)
        if user is None:
            return to_login(request)
        if not user.is_admin:
            return page(request, "error.html", user, 403, message="User management is for admins.")
        return user

    @r.get("/users")
    async def users(request: Request) -> Response:
        user = await admin_page(request)
        if isinstance(user, Response):
            return user
        return await run(users_page, request, user)

    @r.post("/users")
    async def user_create(request: Request) -> Response:
        got = await posted(request, admin_only=True)
        if isinstance(got, Response):
            return got
        user, f = got
        fields = {k: f.get(k, "") for k in ("username", "name", "role", "clinician")}
        try:
            u = await run(
                auth.create_user,
                db,
                fields["username"],
                f.get("password", ""),
                fields["role"],
                clock(),
                fields["name"],
                fields["clinician"],
                known(),
            )
        except auth.UserError as e:
            msg = str(e)
            return await run(lambda: users_page(request, user, 422, msg, **fields))
        return to(f"/admin/users/{u.id}?done=user_created")

    def edit_page(request: Request, user: Staff, target: Any, status: int = 200, error: str | None = None) -> Response:
        form = {"name": target.name, "role": target.role, "clinician": target.clinician or ""}
        return page(
            request,
            "user_edit.html",
            user,
            status,
            target=target,
            roles=ROLES,
            clinicians=clinician_names(),
            min_password=auth.MIN_PASSWORD,
            error=error,
            form=form,
        )

    def target_of(user_id: str) -> Any:
        if not user_id.isdigit() or len(user_id) > 18:
            return None
        return next((u for u in auth.users(db) if u.id == int(user_id)), None)

    @r.get("/users/{user_id}")
    async def user_edit(request: Request, user_id: str) -> Response:
        user = await admin_page(request)
        if isinstance(user, Response):
            return user
        target = await run(target_of, user_id)
        if target is None:
            return page(request, "error.html", user, 404, message="No such user.")
        return edit_page(request, user, target)

    async def user_action(
        request: Request, user_id: str, fn: Callable[[Staff, int, dict[str, str]], Any], done: str
    ) -> Response:
        got = await posted(request, admin_only=True)
        if isinstance(got, Response):
            return got
        user, f = got
        target = await run(target_of, user_id)
        if target is None:
            return page(request, "error.html", user, 404, message="No such user.")
        try:
            await run(fn, user, target.id, f)
        except auth.UserError as e:
            return edit_page(request, user, await run(target_of, user_id), 422, str(e))
        return to(f"/admin/users/{target.id}?done={done}")

    @r.post("/users/{user_id}")
    async def user_update(request: Request, user_id: str) -> Response:
        def go(user: Staff, uid: int, f: dict[str, str]) -> None:
            auth.update_user(db, uid, f.get("role", ""), f.get("clinician"), known(), f.get("name", ""))
            store_audit(user, uid, "user_updated")

        return await user_action(request, user_id, go, "user_saved")

    @r.post("/users/{user_id}/password")
    async def user_password(request: Request, user_id: str) -> Response:
        def go(user: Staff, uid: int, f: dict[str, str]) -> None:
            auth.reset_password(db, uid, f.get("password", ""))
            store_audit(user, uid, "password_reset")

        return await user_action(request, user_id, go, "password_set")

    @r.post("/users/{user_id}/active")
    async def user_active(request: Request, user_id: str) -> Response:
        def go(user: Staff, uid: int, f: dict[str, str]) -> None:
            active = f.get("active") == "1"
            if not active and uid == user.id:
                raise auth.UserError("you cannot disable yourself: ask another admin")
            auth.set_active(db, uid, active)
            store_audit(user, uid, "user_enabled" if active else "user_disabled")

        return await user_action(request, user_id, go, "user_active")

    def store_audit(user: Staff, uid: int, what: str) -> None:
        with svc.unit(clock()) as u:
            store.audit(u.s, clock(), f"staff:{user.display}", "staff_user", str(uid), what)

    # -- the script editor (admins) ------------------------------------------------------------------

    def languages() -> list[str]:
        return sorted(overrides.base(svc.scripts))

    @r.get("/scripts")
    async def scripts(request: Request) -> Response:
        user = await who(request)
        if user is None:
            return to_login(request)
        if not user.is_admin:
            return page(request, "error.html", user, 403, message="The script editor is for admins.")
        langs = languages()
        lang = request.query_params.get("lang") or (langs[0] if langs else "en")
        if lang not in langs:
            return page(request, "error.html", user, 404, message="No such language.")
        orig = overrides.base(svc.scripts)
        current = svc.scripts.texts.get(lang, {})
        ids = sorted(set(orig.get("en", {})) | set(orig.get(lang, {})))
        rows = [
            {
                "id": i,
                "text": current.get(i, ""),
                "overridden": current.get(i) != orig.get(lang, {}).get(i),
                "segments": segments(current.get(i, "")),
            }
            for i in ids
        ]
        return page(request, "scripts.html", user, langs=langs, lang=lang, rows=rows)

    @r.get("/scripts/{lang}/{msg_id}")
    async def script_edit(request: Request, lang: str, msg_id: str) -> Response:
        user = await who(request)
        if user is None:
            return to_login(request)
        if not user.is_admin:
            return page(request, "error.html", user, 403, message="The script editor is for admins.")
        return _editor(request, user, lang, msg_id, None, None)

    def _editor(request: Request, user: Staff, lang: str, msg_id: str, text: str | None, error: str | None) -> Response:
        orig = overrides.base(svc.scripts)
        if lang not in orig or (msg_id not in orig.get("en", {}) and msg_id not in orig[lang]):
            return page(request, "error.html", user, 404, message="No such message.")
        catalog = orig[lang].get(msg_id, "")
        current = svc.scripts.texts.get(lang, {}).get(msg_id, catalog)
        shown = current if text is None else text
        return page(
            request,
            "script_edit.html",
            user,
            422 if error else 200,
            lang=lang,
            msg_id=msg_id,
            catalog=catalog,
            text=shown,
            overridden=current != catalog,
            error=error,
            preview=overrides.preview(shown),
            placeholders=sorted(overrides.placeholders(catalog or orig.get("en", {}).get(msg_id, ""))),
        )

    @r.post("/scripts/{lang}/{msg_id}")
    async def script_save(request: Request, lang: str, msg_id: str) -> Response:
        got = await posted(request, admin_only=True)
        if isinstance(got, Response):
            return got
        user, f = got
        text = f.get("text", "").replace("\r\n", "\n")
        if lang not in overrides.base(svc.scripts):
            return page(request, "error.html", user, 404, message="No such language.")
        problem = overrides.check(svc, lang, msg_id, text)
        if problem:
            return _editor(request, user, lang, msg_id, text, problem)
        await run(overrides.save, svc, lang, msg_id, text, user.display, clock())
        return to(f"/admin/scripts/{quote(lang)}/{quote(msg_id)}?done=saved")

    @r.post("/scripts/{lang}/{msg_id}/reset")
    async def script_reset(request: Request, lang: str, msg_id: str) -> Response:
        got = await posted(request, admin_only=True)
        if isinstance(got, Response):
            return got
        user, _f = got
        await run(overrides.reset, svc, lang, msg_id, user.display, clock())
        return to(f"/admin/scripts/{quote(lang)}/{quote(msg_id)}?done=reset")

    @r.get("/scripts-preview")
    async def script_preview(request: Request, text: str = "") -> Response:
        user = await who(request)
        if user is None:
            return JSONResponse({"error": "sign in first"}, status_code=401)
        return JSONResponse(overrides.preview(text[: overrides.MAX_TEXT * 2]), headers={"Cache-Control": "no-store"})

    return r


def _safe_next(v: str | None) -> str:
    """Only a path inside the admin: never another host (an open redirect)."""
    if not v:
        return "/admin/appointments"
    parts = urlsplit(v)
    if parts.scheme or parts.netloc or not v.startswith("/admin") or v.startswith("//") or "\\" in v:
        return "/admin/appointments"
    return v


def _charts(svc: Service, d: dict[str, Any]) -> dict[str, str]:
    def share(key: str, label: str) -> charts.Bar:
        v = d[key]
        detail = f"{v['numerator']} of {v['denominator']}"
        if v.get("undecided"):
            detail += f", {v['undecided']} too early to tell"
        return charts.Bar(label, v["value"], detail, v.get("reference"))

    names = {c.id: c.name or c.id for c in svc.cfg.clinicians}
    return {
        "returns_svg": charts.share_bars(
            [
                share("returned_after_first", "Came back after 1st session"),
                share("returned_after_third", "Still coming after 3rd"),
            ],
            "Clients who come back, beside the field's reference points",
        ),
        "rates_svg": charts.share_bars(
            [share("no_show_rate", "No-show rate"), share("confirmation_rate", "Confirmation rate")],
            "No-show and confirmation rates",
        ),
        "ratings_svg": charts.rating_lines(d["ratings"], names),
    }
