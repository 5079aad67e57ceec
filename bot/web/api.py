"""The practice API (DESIGN §5): clients, appointments, attendance and crisis alerts, as JSON.

Every call needs ``Authorization: Bearer $RAPPORT_API_TOKEN`` (compared in constant time); without
a configured token the API is closed. Errors are ``{"error": {"field", "message"}}``: 401 without a
valid token, 404 for an unknown id, 422 for an invalid field, 400 for a body that is not JSON, 413
for a body over ``MAX_BODY``, 409 for a client that cannot be deleted yet (an open crisis alert).
"""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlmodel import Session, col, select
from starlette.convertors import Convertor, register_url_convertor

from bot.erasure import ErasureRefused, erase_client
from bot.records import RecordError
from bot.service import Service
from bot.settings import Settings
from storage.tables import Alert, Appointment, Client, Message

Run = Callable[..., Awaitable[Any]]


class _AnyPath(Convertor[str]):
    """Starlette's ``path`` is ``.*``, which stops at a newline: ``/api/x%2Fy%0A`` then missed the
    catch-all and got FastAPI's own 404, with neither the token check nor the error shape."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anypath", _AnyPath())
Handler = Callable[..., Awaitable[Any]]
CONVERSATION_LIMIT = 200
MAX_BODY = 64 * 1024  # one client or appointment is a few hundred bytes


class ApiError(Exception):
    def __init__(self, status: int, field: str, message: str):
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message


def error(status: int, field: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"field": field, "message": message}}, status_code=status)


def iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).replace(microsecond=0).isoformat() if dt else None


def client_json(c: Client) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "phone": c.phone,
        "telegram": c.telegram,
        "lang": c.lang,
        "tz": c.tz,
        "country": c.country,
        "channel": c.channel,
        "consent": c.consent,
        "opted_out": c.opted_out,
    }


def appointment_json(a: Appointment) -> dict[str, Any]:
    return {
        "id": a.id,
        "client": a.client_id,
        "clinician": a.clinician_id,
        "start": iso(a.start),
        "minutes": a.minutes,
        "status": a.status,
        "confirmed": a.confirmed,
        "history": a.history,
    }


def alert_json(a: Alert) -> dict[str, Any]:
    return {
        "id": a.id,
        "client": a.client_id,
        "address": a.address,
        "channel": a.channel,
        "level": a.level,
        "about": a.about,
        "matched": a.matched,
        "status": a.status,
        "unanswered": a.unanswered,
        "sends": a.sends,
        "acked_by": a.acked_by,
        "acked_at": iso(a.acked_at),
        "resolved_by": a.resolved_by,
        "resolved_at": iso(a.resolved_at),
        "created_at": iso(a.created_at),
    }


def message_json(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "at": iso(m.created_at),
        "direction": m.direction,
        "channel": m.channel,
        "text": m.body,
        "status": m.status,
        "dialogue": m.dialogue,
        "step": m.step,
        "reason": m.reason,
        "error": m.error,
    }


def router(svc: Service, settings: Settings, run: Run) -> APIRouter:
    r = APIRouter(prefix="/api")
    token = settings.api_token

    def authorize(request: Request) -> None:
        if not token:
            raise ApiError(401, "authorization", "the API is closed: set RAPPORT_API_TOKEN")
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise ApiError(401, "authorization", "a valid bearer token is required")

    def endpoint(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kw: Any) -> Response:
            request: Request = kw["request"]
            try:
                authorize(request)
                result = await fn(*args, **kw)
            except ApiError as e:
                return error(e.status, e.field, e.message)
            except RecordError as e:
                unknown_id = e.field in ("id", "alert") and e.message.startswith("unknown")
                return error(404 if unknown_id else 422, e.field, e.message)
            return result if isinstance(result, Response) else JSONResponse(result)

        return wrapper

    async def body_of(request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            raise ApiError(413, "(body)", f"larger than {MAX_BODY} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise ApiError(413, "(body)", f"larger than {MAX_BODY} bytes")
            chunks.append(chunk)
        raw = b"".join(chunks)
        try:
            data = json.loads(raw) if raw.strip() else None
        except ValueError:
            raise ApiError(400, "(body)", "malformed JSON") from None
        if not isinstance(data, dict):
            raise ApiError(422, "(body)", "expected a JSON object")
        return data

    def now() -> datetime:
        return datetime.now(UTC)

    def read(fn: Callable[[Session], Any]) -> Callable[[], Any]:
        def go() -> Any:
            with Session(svc.db, expire_on_commit=False) as s:
                return fn(s)

        return go

    # -- clients -----------------------------------------------------------------------------------

    @r.put("/clients/{client_id}")
    @endpoint
    async def put_client(request: Request, client_id: str) -> Any:
        data = await body_of(request)
        if data.setdefault("id", client_id) != client_id:
            raise ApiError(422, "id", "does not match the id in the URL")
        c = await run(svc.upsert_client, data, now(), "api")
        return client_json(c)

    @r.get("/clients/{client_id}")
    @endpoint
    async def get_client(request: Request, client_id: str) -> Any:
        c = await run(read(lambda s: s.get(Client, client_id)))
        if c is None:
            raise ApiError(404, "id", f"unknown client {client_id!r}")
        return client_json(c)

    @r.delete("/clients/{client_id}")
    @endpoint
    async def delete_client(request: Request, client_id: str) -> Any:
        """Erase the client across every table (bot.erasure): the practice's answer to a deletion request."""
        try:
            done = await run(erase_client, svc.db, client_id, now(), "api")
        except ErasureRefused as e:
            raise ApiError(409, e.field, e.message) from None
        return {"id": client_id, "erased": True, **done.as_dict()}

    # -- appointments ------------------------------------------------------------------------------

    @r.put("/appointments/{appointment_id}")
    @endpoint
    async def put_appointment(request: Request, appointment_id: str) -> Any:
        data = await body_of(request)
        if data.setdefault("id", appointment_id) != appointment_id:
            raise ApiError(422, "id", "does not match the id in the URL")
        a = await run(svc.upsert_appointment, data, now(), "api")
        return appointment_json(a)

    @r.get("/appointments/{appointment_id}")
    @endpoint
    async def get_appointment(request: Request, appointment_id: str) -> Any:
        a = await run(read(lambda s: s.get(Appointment, appointment_id)))
        if a is None:
            raise ApiError(404, "id", f"unknown appointment {appointment_id!r}")
        return appointment_json(a)

    @r.delete("/appointments/{appointment_id}")
    @endpoint
    async def delete_appointment(request: Request, appointment_id: str) -> Any:
        a = await run(svc.cancel_appointment, appointment_id, now(), "api")
        return appointment_json(a)

    @r.post("/appointments/{appointment_id}/attendance")
    @endpoint
    async def attendance(request: Request, appointment_id: str) -> Any:
        data = await body_of(request)
        status = data.get("status")
        if not isinstance(status, str):
            raise ApiError(422, "status", "expected attended or missed")
        extra = set(data) - {"status"}
        if extra:
            raise ApiError(422, sorted(extra)[0], "unknown field")
        a = await run(svc.mark_attendance, appointment_id, status, now(), "api")
        return appointment_json(a)

    # -- alerts ------------------------------------------------------------------------------------

    @r.get("/alerts")
    @endpoint
    async def list_alerts(request: Request) -> Any:
        wanted = request.query_params.get("status", "open,acked")
        statuses = ("open", "acked", "resolved") if wanted == "all" else tuple(wanted.split(","))
        bad = [s for s in statuses if s not in ("open", "acked", "resolved")]
        if bad:
            raise ApiError(422, "status", "expected open, acked, resolved or all")
        rows = await run(
            read(
                lambda s: list(
                    s.exec(
                        select(Alert).where(col(Alert.status).in_(statuses)).order_by(col(Alert.id).desc()).limit(500)
                    )
                )
            )
        )
        return {"alerts": [alert_json(a) for a in rows]}

    def _alert_id(raw: str) -> int:
        # ASCII digits only ('²'.isdigit() is true, int('²') fails) and within a 64-bit column.
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            raise ApiError(404, "alert", f"unknown alert {raw!r}")
        return int(raw)

    @r.get("/alerts/{alert_id}")
    @endpoint
    async def get_alert(request: Request, alert_id: str) -> Any:
        aid = _alert_id(alert_id)

        def load(s: Session) -> tuple[Alert | None, list[Message], Client | None]:
            a = s.get(Alert, aid)
            if a is None:
                return None, [], None
            q = select(Message)
            q = q.where(Message.client_id == a.client_id) if a.client_id else q.where(Message.address == a.address)
            msgs = list(s.exec(q.order_by(col(Message.id).desc()).limit(CONVERSATION_LIMIT)))
            return a, msgs[::-1], s.get(Client, a.client_id) if a.client_id else None

        a, msgs, client = await run(read(load))
        if a is None:
            raise ApiError(404, "alert", f"unknown alert {alert_id}")
        out = alert_json(a)
        out["client_detail"] = client_json(client) if client else None
        out["conversation"] = [message_json(m) for m in msgs if m.status != "held"]
        return out

    async def _staff_action(request: Request, alert_id: str, action: Callable[..., Any]) -> Any:
        aid = _alert_id(alert_id)
        data = await body_of(request)
        by = data.get("by")
        if not isinstance(by, str) or not by.strip():
            raise ApiError(422, "by", "who is acting: a name")
        await run(action, aid, by.strip(), now())
        a = await run(read(lambda s: s.get(Alert, aid)))
        return alert_json(a)

    @r.post("/alerts/{alert_id}/ack")
    @endpoint
    async def ack_alert(request: Request, alert_id: str) -> Any:
        return await _staff_action(request, alert_id, svc.ack_alert)

    @r.post("/alerts/{alert_id}/resolve")
    @endpoint
    async def resolve_alert(request: Request, alert_id: str) -> Any:
        return await _staff_action(request, alert_id, svc.resolve_alert)

    @r.api_route("/{rest:anypath}", methods=["GET", "PUT", "POST", "DELETE", "PATCH"])
    @endpoint
    async def not_found(request: Request, rest: str) -> Any:
        raise ApiError(404, "(path)", f"no such endpoint: /api/{rest}")

    return r
