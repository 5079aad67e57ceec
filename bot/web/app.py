"""The ASGI app: provider webhooks, the practice API, the web simulator, /healthz and /metrics.

Handlers are async but never block the loop: database work runs in worker threads through one
capacity limiter (one writer at a time on SQLite, where writers serialise anyway and a queue in
Python is fairer than SQLite's busy-wait; a pool's worth on PostgreSQL).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from bot import outbox
from bot.service import Service
from bot.settings import Settings
from bot.web.batcher import InboundBatcher
from bot.web.metrics import CONTENT_TYPE, Metrics
from bot.web.security import SecurityMiddleware, protect_logs, secret_values
from channels.sms import TwilioWebhook, WebhookError
from channels.telegram import TelegramAdapter

log = logging.getLogger("rapport.web")
T = TypeVar("T")
MAX_BODY = 64 * 1024
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
Hook = Callable[[], Awaitable[None]]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Runner:
    """Runs blocking database work off the event loop, bounded by the database's write concurrency."""

    def __init__(self, svc: Service, threads: int | None = None):
        sqlite = svc.db.dialect.name == "sqlite"
        self.limiter = anyio.CapacityLimiter(threads or (1 if sqlite else 8))

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise WebhookError(413, "body too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise WebhookError(413, "body too large")
        chunks.append(chunk)
    return b"".join(chunks)


class SafeErrors:
    """Any unhandled error becomes a 500 logged by its type only.

    A traceback can quote SQL parameters, which carry message text and phone numbers: it is logged
    at DEBUG, never at the default level.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as e:
            log.error("%s %s failed: %s", scope.get("method"), scope.get("path"), type(e).__name__)
            log.debug("traceback", exc_info=True)
            if not started:
                body = b'{"error": {"field": null, "message": "internal error"}}'
                await send(
                    {"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"application/json")]}
                )
                await send({"type": "http.response.body", "body": body})


Endpoint = Callable[[Request], Awaitable[Response]]


class FastPaths:
    """POST to a provider webhook goes straight to its handler, past FastAPI's router, dependency
    solving and exception layers.

    Webhooks are the one request that comes at message rate, and that machinery cost a fifth of
    the CPU a webhook took (docs/deploy.md, "Throughput"). Mounted inside SafeErrors and
    SecurityMiddleware, so the body caps, the headers and the error handling are the same; any
    other method or path goes on to the app (a GET on a webhook still gets FastAPI's 405).
    """

    def __init__(self, app: Any, routes: dict[str, Endpoint]):
        self.app = app
        self.routes = routes  # filled in by create_app once the handlers exist

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.routes.get(scope["path"])
            if endpoint is not None:
                response = await endpoint(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    svc: Service,
    settings: Settings,
    *,
    telegram: TelegramAdapter | None = None,
    metrics: Metrics | None = None,
    sim: Any = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    run: Runner | None = None,
) -> FastAPI:
    """The web app. ``sim`` is a ``bot.web.sim.WebSim`` when the simulator is the channel."""
    metrics = metrics or Metrics(svc.db)
    run = run or Runner(svc)
    twilio = TwilioWebhook(settings.twilio_auth_token, settings.public_url) if settings.twilio_auth_token else None
    tg_secret = settings.telegram_secret
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for hook in on_startup:
            await hook()
        state["ready"] = True
        try:
            yield
        finally:
            state["ready"] = False
            for hook in on_shutdown:
                await hook()

    app = FastAPI(title="Rapport", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    webhooks: dict[str, Endpoint] = {}
    app.add_middleware(FastPaths, routes=webhooks)
    app.add_middleware(SafeErrors)
    # Outermost: body caps before any handler reads, headers on every answer (500s included),
    # and the /metrics credential (RAPPORT_METRICS_TOKEN, else loopback only). See SECURITY.md.
    app.add_middleware(
        SecurityMiddleware,
        https=bool(settings.public_url and settings.public_url.startswith("https://")),
        metrics_token=settings.metrics_token,
    )
    protect_logs(secret_values(settings, os.environ, svc.db.url))
    app.state.svc = svc
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.run = run
    batcher = InboundBatcher(svc, run)
    app.state.batcher = batcher
    if telegram is not None:
        telegram.run = run
        telegram.inbound = batcher.submit
    if metrics.on_notes not in svc.observers:
        svc.observers.append(metrics.on_notes)

    # -- health and metrics ---------------------------------------------------------------------

    def _ping() -> None:
        with svc.db.connect() as c:
            c.execute(text("SELECT 1"))

    @app.get("/healthz")
    async def healthz() -> Response:
        if not state["ready"]:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            await anyio.to_thread.run_sync(_ping)
        except Exception as e:
            log.warning("healthz: database unavailable (%s)", type(e).__name__)
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics")
    async def prometheus() -> Response:
        body = await anyio.to_thread.run_sync(metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    # -- Twilio -----------------------------------------------------------------------------------

    async def _twilio_verified(request: Request, kind: str) -> Any:
        if twilio is None:
            return Response(status_code=404)
        try:
            body = await read_body(request)
            url = twilio.url_for(request.url.path, request.url.query, str(request.url))
            return twilio.verify(url, body, request.headers.get("x-twilio-signature"))
        except WebhookError as e:
            metrics.rejected.labels("sms", e.reason).inc()
            log.warning("twilio %s webhook refused: %s", kind, e.reason)
            return Response(status_code=e.status)

    @app.post("/webhooks/twilio")
    async def twilio_inbound(request: Request) -> Response:
        t0 = time.perf_counter()
        params = await _twilio_verified(request, "inbound")
        if isinstance(params, Response):
            return params
        try:
            inb = TwilioWebhook.inbound(params)
        except WebhookError as e:
            metrics.rejected.labels("sms", e.reason).inc()
            return Response(status_code=e.status)
        outcome = "empty" if inb is None else await batcher.submit(inb, utcnow())
        metrics.messages_in.labels("sms", outcome).inc()
        metrics.webhook_seconds.labels("sms").observe(time.perf_counter() - t0)
        return Response(EMPTY_TWIML, media_type="text/xml")

    @app.post("/webhooks/twilio/status")
    async def twilio_status(request: Request) -> Response:
        params = await _twilio_verified(request, "status")
        if isinstance(params, Response):
            return params
        try:
            rep = TwilioWebhook.status(params)
        except WebhookError as e:
            metrics.rejected.labels("sms", e.reason).inc()
            return Response(status_code=e.status)
        now = utcnow()
        if rep.status:
            change = await run(_apply_status, svc, rep.provider_id, rep.status, rep.error, now)
            metrics.delivery.labels("sms", rep.status).inc()
            to = change.to or rep.to
            if rep.opted_out and to:
                await run(svc.opt_out_by_provider, "sms", to, now, f"twilio {rep.error_code}")
            if change.fallback and svc.on_outbox:
                svc.on_outbox()
        return Response(status_code=204)

    # -- Telegram ---------------------------------------------------------------------------------

    @app.post("/webhooks/telegram")
    async def telegram_update(request: Request) -> Response:
        t0 = time.perf_counter()
        if telegram is None or tg_secret is None:
            return Response(status_code=404)
        given = request.headers.get("x-telegram-bot-api-secret-token", "")
        if not hmac.compare_digest(given.encode(), tg_secret.encode()):
            metrics.rejected.labels("telegram", "bad secret").inc()
            log.warning("telegram webhook refused: %s", "missing secret" if not given else "bad secret")
            return Response(status_code=403)
        try:
            body = await read_body(request)
            update = telegram.parse(json.loads(body))
        except WebhookError as e:
            metrics.rejected.labels("telegram", e.reason).inc()
            return Response(status_code=e.status)
        except ValueError:  # includes JSONDecodeError and bad UTF-8
            metrics.rejected.labels("telegram", "malformed").inc()
            return Response(status_code=400)
        outcome = await telegram.handle(update)
        metrics.messages_in.labels("telegram", outcome).inc()
        metrics.webhook_seconds.labels("telegram").observe(time.perf_counter() - t0)
        return JSONResponse({})

    webhooks["/webhooks/twilio"] = twilio_inbound
    webhooks["/webhooks/telegram"] = telegram_update

    # -- the practice API and the simulator --------------------------------------------------------

    from bot.web.api import router as api_router

    app.include_router(api_router(svc, settings, run))
    from bot.web.admin import mount as mount_admin

    mount_admin(app, svc, settings, run)
    if sim is not None:
        app.include_router(sim.router(run))
    else:
        from bot.web.sim import status_page

        @app.get("/")
        async def index() -> Response:
            return status_page(svc, settings)

    return app


def _apply_status(svc: Service, provider_id: str, status: str, error: str | None, now: datetime) -> outbox.StatusChange:
    return outbox.apply_status(svc.db, "sms", provider_id, status, error, now, oncall=svc.cfg.crisis.oncall)
