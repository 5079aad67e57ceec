"""`rapport simulate`: the real service, engine, scheduler and storage on a virtual clock.

Input and output are JSON lines (DESIGN §5). Timers fire as the clock passes them: a timer due at T
prints at T, before an input line with the same ``at``. A bad line gives an ``error`` line naming the
problem, and the run goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from bot import outbox
from bot.config import Config, ConfigError, load_config
from bot.jsonl import dumps_line
from bot.records import MAX_YEAR, MIN_YEAR, RecordError
from bot.service import Service
from bot.unit import Note
from channels.base import Inbound
from channels.sim import SimChannel
from storage.db import create_all, make_engine

KINDS = ("config", "client", "appointment", "cancel_appointment", "attendance", "inbound", "ack", "resolve")
SENDERS = ("sms", "telegram", "sim")


class LineError(ValueError):
    pass


def _iso(dt: datetime, tz: tzinfo) -> str:
    return dt.astimezone(tz).replace(microsecond=0).isoformat()


def _expect(d: Any, keys: set[str], required: set[str], what: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise LineError(f"{what}: expected an object")
    unknown = set(d) - keys
    if unknown:
        raise LineError(f"{what}: unknown key {sorted(unknown)[0]!r}")
    missing = required - set(d)
    if missing:
        raise LineError(f"{what}: missing {sorted(missing)[0]!r}")
    return d


class Simulator:
    def __init__(self, out: TextIO, config_path: str | None = None, db_url: str | None = None):
        self.out = out
        self.db_url = db_url
        self.config_path = config_path
        self.svc: Service | None = None
        self.clock: datetime | None = None
        self.display: tzinfo = ZoneInfo("UTC")
        self.channel = SimChannel()

    # -- set-up -----------------------------------------------------------------------------------

    def _boot(self, overlay: dict[str, Any] | None) -> None:
        cfg, path = load_config(self.config_path, overlay)
        self._boot_with(cfg, path)

    def _boot_with(self, cfg: Config, path: Path | None) -> None:
        if self.db_url:
            from storage.migrate import upgrade_url

            upgrade_url(self.db_url)
            db = make_engine(self.db_url)
        else:
            db = make_engine("sqlite://")
            create_all(db)
        self.svc = Service(cfg, db, config_dir=path.parent if path else None)
        self.svc.observers.append(self._print_notes)
        outbox.set_testing(True)

    # -- output -----------------------------------------------------------------------------------

    def emit(self, obj: dict[str, Any]) -> None:
        self.out.write(dumps_line(obj) + "\n")
        self.out.flush()

    def _at(self, dt: datetime, tz: str | None) -> str:
        return _iso(dt, ZoneInfo(tz) if tz else self.display)

    def _print_notes(self, notes: list[Note]) -> None:
        for n in notes:
            line: dict[str, Any] = {"at": self._at(n.at, n.tz), "type": n.type}
            for k, v in n.data.items():
                line[k] = self._at(v, n.tz) if isinstance(v, datetime) else v
            self.emit(line)

    def error(self, lineno: int, message: str, at: datetime | None = None) -> None:
        when = at or self.clock
        line: dict[str, Any] = {
            "at": _iso(when, self.display) if when else None,
            "type": "error",
            "line": lineno,
            "message": message,
        }
        self.emit(line)

    # -- the run ----------------------------------------------------------------------------------

    def run(self, lines: Iterable[str]) -> int:
        errors = 0
        for lineno, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                errors += self.step(lineno, raw)
            except ConfigError as e:
                self.error(lineno, str(e))
                errors += 1
        if self.svc is None:
            self._boot(None)
        return 0

    def step(self, lineno: int, raw: str) -> int:
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            self._ensure_booted()
            self.error(lineno, f"malformed JSON: {e.msg} at column {e.colno}")
            return 1
        except RecursionError:
            self._ensure_booted()
            self.error(lineno, "malformed JSON: nested too deeply")
            return 1
        if not isinstance(obj, dict):
            self._ensure_booted()
            self.error(lineno, "expected a JSON object")
            return 1
        kinds = [k for k in obj if k != "at"]
        unknown = [k for k in kinds if k not in KINDS]
        if "config" in obj:
            if self.svc is not None:
                self.error(lineno, "config is only allowed on the first line")
                return 1
            if not isinstance(obj["config"], dict):
                self._boot(None)
                self.error(lineno, "config: expected an object")
                return 1
            try:
                self._boot(obj["config"])
            except ConfigError as e:
                self._boot(None)
                self.error(lineno, f"config: {e}")
                return 1
            at = self._parse_at(obj.get("at"), lineno, required=False)
            if at is not None:
                self.clock = at
            return 0
        self._ensure_booted()
        if unknown:
            self.error(lineno, f"unknown key {unknown[0]!r}")
            return 1
        if len(kinds) > 1:
            self.error(lineno, f"one event per line, got {', '.join(kinds)}")
            return 1
        try:
            at = self._parse_at(obj.get("at"), lineno, required=True)
        except LineError as e:
            self.error(lineno, str(e))
            return 1
        assert at is not None
        if self.clock is not None and at < self.clock:
            self.error(
                lineno, f"time going backwards: {obj['at']} is before {_iso(self.clock, self.display)}", at=self.clock
            )
            return 1
        self.display = at.tzinfo or self.display
        self.advance(at)
        if not kinds:
            return 0
        kind = kinds[0]
        try:
            self.apply(kind, obj[kind], at)
        except LineError as e:
            self.error(lineno, str(e), at=at)
            return 1
        except RecordError as e:
            self.error(lineno, f"{kind}.{e.field}: {e.message}", at=at)
            return 1
        self.advance(at)
        return 0

    def _ensure_booted(self) -> None:
        if self.svc is None:
            self._boot(None)

    def _parse_at(self, v: Any, lineno: int, *, required: bool) -> datetime | None:
        if v is None:
            if required:
                raise LineError('missing "at"')
            return None
        if not isinstance(v, str):
            raise LineError('"at" must be an ISO 8601 string with an offset')
        try:
            dt = datetime.fromisoformat(v)
        except ValueError:
            raise LineError(f'"at" is not ISO 8601: {v!r}') from None
        if dt.tzinfo is None:
            raise LineError(f'"at" needs an offset: {v!r}')
        # The clock runs timers days and years ahead: near datetime's limits that overflows.
        if not MIN_YEAR <= dt.year <= MAX_YEAR:
            raise LineError(f'"at" must be between the years {MIN_YEAR} and {MAX_YEAR}: {v!r}')
        return dt

    def advance(self, to: datetime) -> None:
        """Fire every timer due up to ``to`` at its own due time, then move the clock."""
        svc = self.svc
        assert svc is not None
        while svc.fire_one(to, at_due_time=True) is not None:
            self._drain(to)
        self.clock = to
        self._drain(to)

    def _drain(self, now: datetime) -> None:
        assert self.svc is not None
        senders = {c: self.channel.send for c in SENDERS}
        while outbox.drain(self.svc.db, senders, now + timedelta(days=3650)):
            pass

    def apply(self, kind: str, body: Any, at: datetime) -> None:
        svc = self.svc
        assert svc is not None
        if kind == "client":
            svc.upsert_client(
                _expect(
                    body,
                    {"id", "name", "phone", "telegram", "lang", "tz", "country", "channel", "consent"},
                    {"id"},
                    "client",
                ),
                at,
                actor="sim",
            )
        elif kind == "appointment":
            svc.upsert_appointment(
                _expect(
                    body, {"id", "client", "clinician", "start", "minutes"}, {"id", "client", "start"}, "appointment"
                ),
                at,
                actor="sim",
            )
        elif kind == "cancel_appointment":
            b = _expect(body, {"id"}, {"id"}, "cancel_appointment")
            svc.cancel_appointment(str(b["id"]), at, actor="sim")
        elif kind == "attendance":
            b = _expect(body, {"appointment", "status"}, {"appointment", "status"}, "attendance")
            svc.mark_attendance(str(b["appointment"]), str(b["status"]), at, actor="sim")
        elif kind == "inbound":
            b = _expect(body, {"client", "from", "text", "channel", "id"}, {"text"}, "inbound")
            if not isinstance(b["text"], str):
                raise LineError("inbound: text must be a string")
            if ("client" in b) == ("from" in b):
                raise LineError('inbound: give exactly one of "client" or "from"')
            channel = b.get("channel")
            if channel is not None and channel not in ("sms", "telegram"):
                raise LineError(f"inbound: unknown channel {channel!r}")
            if "client" in b:
                from sqlmodel import Session

                from storage.tables import Client

                with Session(svc.db) as s:
                    c = s.get(Client, str(b["client"]))
                if c is None:
                    raise LineError(f"inbound: unknown client {b['client']!r}")
                svc.handle_inbound(
                    Inbound(
                        channel or c.channel, b["text"], client_id=c.id, provider_id=str(b["id"]) if "id" in b else None
                    ),
                    at,
                )
            else:
                frm = str(b["from"])
                ch = channel or ("telegram" if frm.startswith("telegram:") else "sms")
                svc.handle_inbound(
                    Inbound(ch, b["text"], address=frm, provider_id=str(b["id"]) if "id" in b else None), at
                )
        elif kind in ("ack", "resolve"):
            b = _expect(body, {"alert", "by", "client"}, {"by"}, kind)
            alert_id = b.get("alert")
            if alert_id is not None:
                try:
                    alert_id = int(alert_id)
                except (TypeError, ValueError):
                    raise LineError(f"{kind}: alert must be an alert id number") from None
            fn = svc.ack_alert if kind == "ack" else svc.resolve_alert
            done = fn(alert_id, str(b["by"]), at, client_id=b.get("client"))
            if not done:
                raise LineError(f"{kind}: no open alert" + (f" {alert_id}" if alert_id is not None else ""))


def run_simulate(stdin: TextIO, stdout: TextIO, config_path: str | None) -> int:
    return Simulator(stdout, config_path).run(stdin)
