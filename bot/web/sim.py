"""The web simulator: a phone-shaped page where a visitor plays a demo client.

When no provider is configured it is the channel: outbound rows still go through the real outbox
and worker, and land here instead of at Twilio or Telegram. Each visitor gets a demo client with an
appointment in three days; "next" brings that client's next scheduled message forward to now, and
the attendance buttons mark the session attended or missed. Everything else (understanding, safety,
dialogues, quiet hours, caps) is the real service.
"""

from __future__ import annotations

import html
import secrets
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Template
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from sqlmodel import Session

from bot.records import RecordError
from bot.service import Service
from bot.settings import Settings
from bot.unit import Note
from channels.base import Inbound, Outbound, SendResult
from storage import store

TEMPLATE = Path(__file__).resolve().parent / "templates" / "sim.html"
MAX_SESSIONS = 500
MAX_EVENTS = 500
# Zones tried in order for a demo client, so that it is daytime for them (quiet hours are real here).
DAYTIME_ZONES = (
    "America/New_York",
    "America/Sao_Paulo",
    "Europe/Madrid",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "America/Los_Angeles",
    "Pacific/Honolulu",
)
Run = Callable[..., Awaitable[Any]]


@dataclass
class SimSession:
    sid: str
    client_id: str
    address: str
    appointment_id: str
    events: list[dict[str, Any]] = field(default_factory=list)


def utcnow() -> datetime:
    return datetime.now(UTC)


def daytime_zone(now: datetime) -> str:
    for z in DAYTIME_ZONES:
        if 9 <= now.astimezone(ZoneInfo(z)).hour < 19:
            return z
    return DAYTIME_ZONES[0]


class WebSim:
    def __init__(self, svc: Service, clock: Callable[[], datetime] = utcnow):
        self.svc = svc
        self.clock = clock
        self.sessions: OrderedDict[str, SimSession] = OrderedDict()
        self.by_address: dict[str, str] = {}
        self.by_client: dict[str, str] = {}
        self.by_appointment: dict[str, str] = {}
        self.lock = threading.Lock()
        self._ids = 0
        svc.observers.append(self.on_notes)

    # -- the channel -------------------------------------------------------------------------------

    def send(self, out: Outbound) -> SendResult:
        """The outbox's sender for every channel while the simulator is the channel."""
        with self.lock:
            self._ids += 1
            sid = self.by_address.get(out.to)
            if sid is not None and sid in self.sessions:
                self._push(self.sessions[sid], {"kind": "out", "text": out.text, "buttons": list(out.buttons)})
            return SendResult(ok=True, provider_id=f"WEBSIM{self._ids:08d}")

    def on_notes(self, notes: list[Note]) -> None:
        with self.lock:
            for n in notes:
                sid = None
                if n.type == "appointment":
                    sid = self.by_appointment.get(str(n.data.get("id")))
                    if sid is None:
                        continue
                    text = f"appointment {n.data.get('status')}: {_fmt(n.data.get('start'), n.tz)}"
                elif n.type == "held":
                    sid = self.by_client.get(str(n.data.get("to")))
                    until = n.data.get("until")
                    text = f"{n.data.get('dialogue')} held ({n.data.get('reason')})"
                    if isinstance(until, datetime):
                        text += f" until {_fmt(until, n.tz)}"
                elif n.type == "alert":
                    sid = self.by_client.get(str(n.data.get("client")))
                    text = f"crisis alert #{n.data.get('id')} ({n.data.get('level')}) sent to {n.data.get('to')}"
                elif n.type in ("alert_acked", "alert_resolved"):
                    continue
                else:
                    continue
                if sid is not None and sid in self.sessions:
                    self._push(self.sessions[sid], {"kind": "event", "text": text})

    def _push(self, sess: SimSession, ev: dict[str, Any]) -> None:
        ev["at"] = self.clock().replace(microsecond=0).isoformat()
        ev["n"] = len(sess.events) + 1
        sess.events.append(ev)
        if len(sess.events) > MAX_EVENTS:
            del sess.events[: len(sess.events) - MAX_EVENTS]

    # -- the visitor's actions -----------------------------------------------------------------------

    def start(self, name: str, lang: str) -> SimSession:
        now = self.clock()
        sid = secrets.token_urlsafe(9)
        client_id = f"web-{sid[:8]}"
        address = f"sim-{sid}"
        tz = daytime_zone(now)
        sess = SimSession(sid, client_id, address, f"{client_id}-1")
        with self.lock:
            self.sessions[sid] = sess
            self.by_address[address] = sid
            self.by_client[client_id] = sid
            self.by_appointment[sess.appointment_id] = sid
            while len(self.sessions) > MAX_SESSIONS:
                _old_sid, old = self.sessions.popitem(last=False)
                self.by_address.pop(old.address, None)
                self.by_client.pop(old.client_id, None)
                self.by_appointment.pop(old.appointment_id, None)
        self.svc.upsert_client(
            {
                "id": client_id,
                "name": name,
                "telegram": address,
                "lang": lang,
                "tz": tz,
                "channel": "telegram",
                "consent": True,
            },
            now,
            "web-simulator",
        )
        local = now.astimezone(ZoneInfo(tz))
        start = (local + timedelta(days=3)).replace(hour=15, minute=0, second=0, microsecond=0)
        clinician = self.svc.cfg.clinicians[0].id if self.svc.cfg.clinicians else None
        appt: dict[str, Any] = {"id": sess.appointment_id, "client": client_id, "start": start.isoformat()}
        if clinician:
            appt["clinician"] = clinician
        self.svc.upsert_appointment(appt, now, "web-simulator")
        return sess

    def say(self, sess: SimSession, text: str) -> str:
        with self.lock:
            self._push(sess, {"kind": "in", "text": text})
        return self.svc.handle_inbound(
            Inbound(
                "telegram",
                text,
                address=sess.address,
                client_id=sess.client_id,
                provider_id=f"websim-{secrets.token_hex(8)}",
            ),
            self.clock(),
        )

    def next_event(self, sess: SimSession) -> str:
        """Bring this client's next scheduled timer forward to now and fire what is due."""
        now = self.clock()
        with Session(self.svc.db) as s:
            pending = sorted(store.pending_timers(s, client_id=sess.client_id), key=lambda t: t.due_at)
            if not pending:
                return "nothing scheduled"
            t = pending[0]
            kind = t.kind
            if t.due_at > now:
                t.due_at = now
                s.add(t)
                s.commit()
        self.svc.fire_due(now)
        return kind

    def attendance(self, sess: SimSession, status: str) -> str:
        a = self.svc.mark_attendance(sess.appointment_id, status, self.clock(), "web-simulator")
        return a.status

    # -- routes ------------------------------------------------------------------------------------

    def router(self, run: Run) -> APIRouter:
        r = APIRouter()
        svc = self.svc

        def session(sid: str) -> SimSession | None:
            with self.lock:
                return self.sessions.get(sid)

        @r.get("/")
        async def page() -> Response:
            tpl = Template(TEMPLATE.read_text(encoding="utf-8"))
            langs = "".join(
                f'<option value="{html.escape(lang)}">{html.escape(lang)}</option>' for lang in svc.cfg.languages
            )
            return HTMLResponse(tpl.safe_substitute(practice=html.escape(svc.cfg.practice_name), languages=langs))

        @r.post("/sim/session")
        async def new_session(request: Request) -> Response:
            data = await _json(request)
            name = str(data.get("name") or "Alex")[:60]
            lang = str(data.get("lang") or svc.cfg.fallback_language)
            try:
                sess = await run(self.start, name, lang)
            except RecordError as e:
                return JSONResponse({"error": {"field": e.field, "message": e.message}}, status_code=422)
            return JSONResponse({"session": sess.sid, "client": sess.client_id})

        @r.get("/sim/session/{sid}")
        async def feed(sid: str, after: int = 0) -> Response:
            sess = session(sid)
            if sess is None:
                return JSONResponse({"error": {"field": "session", "message": "unknown session"}}, status_code=404)
            with self.lock:
                events = [e for e in sess.events if e["n"] > after]
            return JSONResponse({"events": events})

        @r.post("/sim/session/{sid}/{action}")
        async def act(sid: str, action: str, request: Request) -> Response:
            sess = session(sid)
            if sess is None:
                return JSONResponse({"error": {"field": "session", "message": "unknown session"}}, status_code=404)
            data = await _json(request)
            try:
                if action == "say":
                    text = str(data.get("text") or "").strip()[:2000]
                    if not text:
                        return JSONResponse({"error": {"field": "text", "message": "empty"}}, status_code=422)
                    outcome = await run(self.say, sess, text)
                elif action == "next":
                    outcome = await run(self.next_event, sess)
                    self._note(sess, f"skipped ahead: {outcome}")
                elif action in ("attended", "missed"):
                    outcome = await run(self.attendance, sess, action)
                else:
                    return JSONResponse({"error": {"field": "action", "message": "unknown action"}}, status_code=404)
            except RecordError as e:
                return JSONResponse({"error": {"field": e.field, "message": e.message}}, status_code=422)
            return JSONResponse({"outcome": outcome})

        return r

    def _note(self, sess: SimSession, text: str) -> None:
        with self.lock:
            self._push(sess, {"kind": "event", "text": text})


async def _json(request: Request) -> dict[str, Any]:
    import json

    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _fmt(v: Any, tz: str | None) -> str:
    if isinstance(v, datetime):
        return v.astimezone(ZoneInfo(tz) if tz else UTC).strftime("%a %d %b %H:%M")
    return str(v)


def status_page(svc: Service, settings: Settings) -> HTMLResponse:
    """``/`` when real providers are the channels: what is on, nothing more."""
    chans = [n for n, on in (("Twilio SMS", settings.twilio_enabled), ("Telegram", settings.telegram_enabled)) if on]
    body = (
        f"<!doctype html><meta charset=utf-8><title>Rapport</title><h1>Rapport — "
        f"{html.escape(svc.cfg.practice_name)}</h1><p>Channels: {html.escape(', '.join(chans) or 'none')}."
        "</p><p>Health: <a href=/healthz>/healthz</a>. Metrics: <a href=/metrics>/metrics</a>.</p>"
    )
    return HTMLResponse(body)
