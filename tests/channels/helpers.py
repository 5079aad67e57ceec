"""Shared set-up for channel and web tests: a real Service on a throwaway SQLite database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from bot.config import parse_config
from bot.service import Service
from storage.db import create_all, make_engine
from storage.tables import Client, Message, Outbox

STAFF_PHONE = "+15555550101"
STAFF_TG = "900001"
CLIENT_PHONE = "+15551230001"
CLIENT_TG = "700001"

CONFIG: dict[str, Any] = {
    "practice_name": "Clinica Test",
    "default_tz": "America/New_York",
    "quiet_hours": {"start": "23:59", "end": "00:00"},
    "crisis": {
        "oncall": [
            {"name": "dr_rivera", "phone": STAFF_PHONE, "telegram": STAFF_TG},
            {"name": "dr_costa", "phone": "+15555550102"},
        ]
    },
    "clinicians": [
        {
            "id": "rivera",
            "name": "Dr. Rivera",
            "tz": "America/New_York",
            "session_minutes": 50,
            "availability": {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
        }
    ],
}


def now() -> datetime:
    return datetime.now(UTC)


def make_service(tmp_path: Path, url: str | None = None, **overrides: Any) -> Service:
    db = make_engine(url or f"sqlite:///{tmp_path / 'rapport.db'}")
    create_all(db)
    cfg = parse_config({**CONFIG, **overrides})
    return Service(cfg, db, public_url="https://rapport.example.org")


def add_client(
    svc: Service,
    cid: str = "c1",
    *,
    phone: str | None = CLIENT_PHONE,
    telegram: str | None = None,
    channel: str = "sms",
    lang: str = "en",
) -> Client:
    data: dict[str, Any] = {"id": cid, "name": "Ana", "lang": lang, "tz": "America/New_York", "channel": channel}
    if phone:
        data["phone"] = phone
    if telegram:
        data["telegram"] = telegram
    return svc.upsert_client(data, now(), "test")


def messages(svc: Service, direction: str | None = None) -> list[Message]:
    with Session(svc.db) as s:
        q = select(Message)
        if direction:
            q = q.where(Message.direction == direction)
        return list(s.exec(q.order_by(Message.id)))  # type: ignore[arg-type]


def outbox_rows(svc: Service) -> list[Outbox]:
    with Session(svc.db) as s:
        return list(s.exec(select(Outbox).order_by(Outbox.id)))  # type: ignore[arg-type]
