"""CPU time of the inbound unit alone: ``Service.handle_inbound_batch`` in a loop, no HTTP, no sends.

    .venv/bin/python bench/inbound_unit_bench.py [--db sqlite|URL] [--batch 8] [--messages 2000]

The webhook bench (bench/webhook_bench.py) measures the whole server; this one isolates what a
message costs between its webhook and its reply's outbox row: the lookups, the safety scan,
understanding, the engine and the writes, in batches as the webhooks' group commit makes them
under load (bot/web/batcher.py). Same shape as the webhook bench: 500 clients, 40 to a clinician at
distinct hours, each with an appointment five days out, the same mix of replies. Prints CPU
milliseconds per message and the statements a message takes. A PostgreSQL URL is used as given
(its public schema is dropped and recreated).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from webhook_bench import CLIENTS, TEXTS, clinician, clinician_of, clinicians_for, phone  # noqa: E402

from bot.config import parse_config  # noqa: E402
from bot.service import Service  # noqa: E402
from channels.base import Inbound  # noqa: E402
from storage.db import create_all, make_engine  # noqa: E402

PER_CLINICIAN = 40
WEEK = {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}


def build(url: str) -> Service:
    db = make_engine(url)
    if db.dialect.name == "postgresql":
        with db.begin() as c:
            c.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    create_all(db)
    cfg = parse_config(
        {
            "practice_name": "Bench",
            "quiet_hours": {"start": "23:59", "end": "00:00"},
            "limits": {"per_day": 1000, "per_week": 1000},
            "crisis": {"oncall": [{"name": "dr_a", "phone": "+15555550101"}]},
            "clinicians": [
                {"id": clinician(k), "tz": "America/New_York", "session_minutes": 50, "availability": WEEK}
                for k in range(clinicians_for(CLIENTS, PER_CLINICIAN))
            ],
        }
    )
    svc = Service(cfg, db)
    now = datetime.now(UTC)
    start = (now + timedelta(days=5)).replace(minute=0, second=0, microsecond=0)
    for i in range(CLIENTS):
        svc.upsert_client({"id": f"b{i}", "name": f"Client {i}", "phone": phone(i), "lang": "en"}, now)
        at = start + timedelta(hours=i % PER_CLINICIAN)
        appt = {
            "id": f"b{i}-1",
            "client": f"b{i}",
            "clinician": clinician_of(i, PER_CLINICIAN),
            "start": at.isoformat(),
        }
        svc.upsert_appointment(appt, now)
    return svc


def run(svc: Service, lo: int, hi: int, batch: int) -> None:
    for j in range(lo, hi, batch):
        svc.handle_inbound_batch(
            [
                (
                    Inbound("sms", TEXTS[i % len(TEXTS)], address=phone(i % CLIENTS), provider_id=f"SM{i:032d}"),
                    datetime.now(UTC),
                )
                for i in range(j, min(hi, j + batch))
            ]
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="sqlite")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--messages", type=int, default=2000)
    args = ap.parse_args()
    url = f"sqlite:///{tempfile.mkdtemp()}/bench.db" if args.db == "sqlite" else args.db
    svc = build(url)
    statements = 0

    @event.listens_for(svc.db, "before_cursor_execute")
    def _count(*_: object) -> None:
        nonlocal statements
        statements += 1

    warm = 800
    run(svc, 0, warm, args.batch)
    statements = 0
    t = time.process_time()
    run(svc, warm, warm + args.messages, args.batch)
    cpu = time.process_time() - t
    print(
        f"{svc.db.dialect.name}, batches of {args.batch}: {cpu / args.messages * 1000:.2f} ms CPU a message"
        f" ({args.messages / cpu:.0f} messages/s of one core), {statements / args.messages:.1f} statements a message"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
