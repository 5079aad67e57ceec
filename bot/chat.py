"""`rapport chat`: talk to Rapport in the terminal as a demo client, on a virtual clock.

Plain lines are your messages. Commands: /advance 1d, /missed, /attended, /lang es, /help, /quit.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from bot.durations import parse_duration
from bot.langs import normalize_lang
from bot.simulate import Simulator

HELP = """commands:
  /advance 1d     move the clock forward (s, m, h, d, w); reminders and check-ins fire as it passes
  /attended       mark the current appointment attended (feedback follows)
  /missed         mark it missed (a check-in follows)
  /lang es        switch language (en, pt_BR, es)
  /quit           leave
anything else is a text message from you, the demo client."""


class ChatPrinter(Simulator):
    """The simulator with human-readable output instead of JSON lines."""

    def emit(self, obj: dict[str, Any]) -> None:
        kind = obj.get("type")
        at = str(obj.get("at", ""))[:16].replace("T", " ")
        if kind == "message" and not str(obj.get("to", "")).startswith("staff:"):
            self.out.write(f"\n[{at}] Rapport ({obj['dialogue']}):\n  " + str(obj["text"]).replace("\n", "\n  ") + "\n")
        elif kind == "message":
            self.out.write(f"  · [{at}] to {obj['to']}: {obj['text']}\n")
        elif kind == "error":
            self.out.write(f"  ! {obj['message']}\n")
        else:
            rest = {k: v for k, v in obj.items() if k not in ("at", "type")}
            self.out.write(f"  · [{at}] {kind}: {json.dumps(rest, ensure_ascii=False)}\n")
        self.out.flush()


class Chat:
    def __init__(self, out: TextIO, config_path: str | None, lang: str | None, now: datetime | None = None):
        self.sim = ChatPrinter(out, config_path)
        self.out = out
        self.n = 0
        self.sim._boot(None)
        assert self.sim.svc is not None
        cfg = self.sim.svc.cfg
        self.tz = cfg.clinicians[0].tz if cfg.clinicians else cfg.default_tz
        start = (now or datetime.now(UTC)).astimezone(ZoneInfo(self.tz)).replace(second=0, microsecond=0)
        self.clock = start
        self.lang = normalize_lang(lang) or cfg.fallback_language
        self.appointment = "demo-1"

    def begin(self) -> None:
        assert self.sim.svc is not None
        cfg = self.sim.svc.cfg
        tomorrow = (self.clock + timedelta(days=1)).replace(hour=10, minute=0)
        clinician = cfg.clinicians[0].id if cfg.clinicians else None
        self.feed(
            {
                "client": {
                    "id": "demo",
                    "name": "Alex",
                    "lang": self.lang,
                    "tz": self.tz,
                    "country": cfg.default_country,
                    "channel": "sms",
                    "phone": "+15555550100",
                }
            }
        )
        appt: dict[str, Any] = {"id": self.appointment, "client": "demo", "start": tomorrow.isoformat()}
        if clinician:
            appt["clinician"] = clinician
        self.feed({"appointment": appt})

    def feed(self, event: dict[str, Any]) -> None:
        self.n += 1
        self.sim.step(self.n, json.dumps({"at": self.clock.isoformat(), **event}))

    def handle(self, line: str) -> bool:
        """One line from the user. Returns False to stop."""
        text = line.strip()
        if not text:
            return True
        if not text.startswith("/"):
            self.feed({"inbound": {"client": "demo", "text": text}})
            return True
        cmd, _, arg = text.partition(" ")
        if cmd in ("/quit", "/exit"):
            return False
        if cmd == "/help":
            self.out.write(HELP + "\n")
        elif cmd == "/advance":
            try:
                self.clock += parse_duration(arg or "1h")
            except ValueError as e:
                self.out.write(f"  ! {e}\n")
                return True
            self.feed({})
            self.out.write(f"  · clock: {self.clock:%Y-%m-%d %H:%M} ({self.tz})\n")
        elif cmd in ("/missed", "/attended"):
            self.feed({"attendance": {"appointment": self._current(), "status": cmd[1:]}})
        elif cmd == "/lang":
            lang = normalize_lang(arg)
            if not lang:
                self.out.write("  ! usage: /lang es\n")
                return True
            self.lang = lang
            self.feed(
                {
                    "client": {
                        "id": "demo",
                        "name": "Alex",
                        "lang": lang,
                        "tz": self.tz,
                        "channel": "sms",
                        "phone": "+15555550100",
                    }
                }
            )
            self.out.write(f"  · language: {lang}\n")
        else:
            self.out.write(f"  ! unknown command {cmd}; /help lists them\n")
        return True

    def _current(self) -> str:
        from sqlmodel import Session, col, select

        from storage.tables import Appointment

        assert self.sim.svc is not None
        with Session(self.sim.svc.db) as s:
            a = s.exec(
                select(Appointment).where(Appointment.client_id == "demo").order_by(col(Appointment.start).desc())
            ).first()
        return a.id if a else self.appointment


def run_chat(config_path: str | None, lang: str | None, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    chat = Chat(out, config_path, lang)
    out.write(f"You are Alex, a demo client with a session tomorrow at 10:00 ({chat.tz}). /help for commands.\n")
    chat.begin()
    interactive = stdin.isatty()
    while True:
        if interactive:
            out.write("you> ")
            out.flush()
        line = stdin.readline()
        if not line:
            return 0
        if not chat.handle(line):
            return 0
