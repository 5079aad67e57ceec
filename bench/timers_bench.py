"""Timers at volume: the due-timer poll and a burst of reminders, on SQLite and PostgreSQL.

Loads ``--appointments`` appointments (default 1,000,000; four per client) with three timers each
(two reminders and a feedback prompt: about three million rows) by bulk INSERT (SQLite) or COPY
(PostgreSQL), straight into a database migrated to head. Half the appointments are in the past and
their timers are done; the other half are upcoming and their timers pending, due over the next 90
days, none of them now. Then, on each database:

- **poll**: the real ``store.next_due_timer`` query (in a transaction that is rolled back), timed
  with nothing due and again with a burst of ``--burst`` reminders due; on PostgreSQL its
  ``EXPLAIN (ANALYZE, BUFFERS)``: the rows and buffers it touches do not depend on the table size;
- **burst**: ``Service.fire_due`` fires the burst (each reminder its own transaction: claim, client
  lock, conversation, message, outbox row), then ``outbox.drain`` hands the rows to a no-op channel.
  Printed: reminders fired per second, and sent (fired and drained) per second;
- **window**: the crash window no reconciliation can close for a provider without a message list
  (Telegram): from the moment the provider has the message to the commit that records it, through
  the real ``outbox.Worker``. (Twilio sends in that window are reconciled; docs/deploy.md.)

    .venv/bin/python bench/timers_bench.py                      # 1,000,000 appointments, both databases
    .venv/bin/python bench/timers_bench.py --appointments 10000 --db postgresql

At 1,000,000 appointments a run takes about ten minutes (most of it loading SQLite and building
its indexes); PostgreSQL is started in a temporary directory unless ``--pg-url`` names one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, text, update  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import Session, SQLModel, col  # noqa: E402

from bot import outbox  # noqa: E402
from bot.config import Config  # noqa: E402
from bot.service import Service  # noqa: E402
from channels.base import Outbound, SendResult  # noqa: E402
from storage import store  # noqa: E402
from storage.db import make_engine  # noqa: E402
from storage.migrate import upgrade_url  # noqa: E402
from storage.tables import Timer  # noqa: E402

PER_CLIENT = 4
CHUNK = 50_000
OFFSETS = (timedelta(hours=24), timedelta(hours=2))


def noop_parser(text_: str, lang: str, context: str, now: datetime, tz: str) -> Any:
    raise AssertionError("the bench sends no inbound messages")


def rows(n_appts: int, now: datetime) -> Iterator[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """(kind, values) batches: clients, appointments and timers, CHUNK appointments at a time."""
    n_clients = max(1, n_appts // PER_CLIENT)
    for lo in range(0, n_clients, CHUNK):
        yield (
            "clients",
            {},
            [
                {
                    "id": f"c{i}",
                    "name": f"Client {i}",
                    "phone": f"+1555{i:07d}",
                    "lang": "en",
                    "tz": "UTC",
                    "channel": "sms",
                    "consent": True,
                    "consent_source": "practice",
                    "consent_at": now,
                    "opted_out": False,
                    "created_at": now,
                }
                for i in range(lo, min(n_clients, lo + CHUNK))
            ],
        )
    horizon = 90 * 24 * 3600
    for lo in range(0, n_appts, CHUNK):
        appts: list[dict[str, Any]] = []
        timers: list[dict[str, Any]] = []
        for i in range(lo, min(n_appts, lo + CHUNK)):
            past = i % 2 == 0
            # Upcoming: 1-90 days ahead (the first reminder at least 2 h away). Past: up to 90 days back.
            secs = (i * 7919) % horizon
            start = now - timedelta(seconds=secs + 3600) if past else now + timedelta(seconds=secs + 26 * 3600)
            cid = f"c{i % n_clients}"
            aid = f"a{i}"
            appts.append(
                {
                    "id": aid,
                    "client_id": cid,
                    "start": start,
                    "minutes": 50,
                    "status": "attended" if past else "scheduled",
                    "confirmed": False,
                    "history": [],
                }
            )
            for off in OFFSETS:
                timers.append(
                    {
                        "kind": "reminder",
                        "client_id": cid,
                        "appointment_id": aid,
                        "due_at": start - off,
                        "payload": {"start": start.isoformat(), "offset": str(off)},
                        "done": past,
                        "outcome": "fired" if past else None,
                        "created_at": now,
                    }
                )
            timers.append(
                {
                    "kind": "feedback",
                    "client_id": cid,
                    "appointment_id": aid,
                    "due_at": start + timedelta(hours=2),
                    "payload": {},
                    "done": past,
                    "outcome": "fired" if past else None,
                    "created_at": now,
                }
            )
        yield "appointments", {}, appts
        yield "timers", {}, timers


def load(db: Engine, n_appts: int, now: datetime) -> float:
    t0 = time.perf_counter()
    tables = SQLModel.metadata.tables
    if db.dialect.name == "postgresql":
        raw = db.raw_connection()
        try:
            cur = raw.cursor()
            for name, _, batch in rows(n_appts, now):
                cols = list(batch[0])
                with cur.copy(f"COPY {name} ({', '.join(cols)}) FROM STDIN") as cp:
                    for r in batch:
                        cp.write_row([json.dumps(v) if isinstance(v, dict | list) else v for v in r.values()])
            raw.commit()
            cur.execute("ANALYZE")
            raw.commit()
        finally:
            raw.close()
    else:
        with db.begin() as conn:
            for name, _, batch in rows(n_appts, now):
                conn.execute(tables[name].insert(), batch)
        with db.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - t0


@contextmanager
def captured(db: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements (and parameters) run on ``db`` inside the block."""
    seen: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        seen.append((statement, params))

    event.listen(db, "before_cursor_execute", grab)
    try:
        yield seen
    finally:
        event.remove(db, "before_cursor_execute", grab)


def poll_ms(db: Engine, now: datetime, reps: int) -> tuple[float, int | None]:
    """Median time of one ``store.next_due_timer`` call (claim, then roll back), and the id it found."""
    times = []
    found = None
    for _ in range(reps):
        with Session(db) as s:
            t0 = time.perf_counter()
            t = store.next_due_timer(s, now)
            times.append(time.perf_counter() - t0)
            found = t.id if t else None
            s.rollback()
    return statistics.median(times) * 1000, found


def explain(db: Engine, now: datetime) -> list[str]:
    with Session(db) as s, captured(db) as seen:
        store.next_due_timer(s, now)
        s.rollback()
    stmt, params = next((q, p) for q, p in seen if "FROM timers" in q)
    with db.connect() as conn:
        cur = conn.connection.cursor()
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + stmt, params)
        plan = [r[0] for r in cur.fetchall()]
        conn.rollback()
    return plan


def sqlite_plan(db: Engine, now: datetime) -> list[str]:
    with Session(db) as s, captured(db) as seen:
        store.next_due_timer(s, now)
        s.rollback()
    stmt, params = next((q, p) for q, p in seen if "FROM timers" in q)
    with db.connect() as conn:
        return [str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + stmt, params)]


def make_due(db: Engine, now: datetime, n: int, *, last: bool = False) -> None:
    """Bring ``n`` pending reminders (one per appointment, distinct clients) due just before ``now``:
    the first clients', or with ``last`` the last clients' (a second burst for clients not yet busy)."""
    order = "DESC" if last else ""
    with db.begin() as conn:
        ids: list[int] = list(
            conn.execute(
                text(
                    "SELECT min(id) FROM timers WHERE kind = 'reminder' AND NOT done "
                    f"GROUP BY client_id ORDER BY min(id) {order} LIMIT :n"
                ),
                {"n": n},
            ).scalars()
        )
        conn.execute(update(Timer).where(col(Timer.id).in_(ids)).values(due_at=now - timedelta(seconds=1)))


def window_ms(db: Engine, n: int, inflight: int) -> tuple[float, float]:
    """Provider took it -> outcome committed, through the real Worker with ``inflight`` sends at
    once: median and 99th percentile, in ms."""
    took: dict[int, float] = {}
    gaps: list[float] = []
    real_record = outbox.record

    def send(out: Outbound) -> SendResult:
        assert out.outbox_id is not None
        took[out.outbox_id] = time.perf_counter()
        return SendResult(ok=True, provider_id=f"P{out.outbox_id}")

    def record(db_: Engine, row_id: int, result: SendResult, now: datetime, **kw: Any) -> str:
        r = real_record(db_, row_id, result, now, **kw)
        gaps.append(time.perf_counter() - took[row_id])
        return r

    outbox.record = record  # type: ignore[assignment]
    try:
        w = outbox.Worker(db, outbox.wrap_senders({"sms": send}), max_inflight=inflight)

        async def go() -> None:
            while len(gaps) < n and await w.run_once():
                pass

        asyncio.run(go())
    finally:
        outbox.record = real_record
    gaps.sort()
    return statistics.median(gaps) * 1000, gaps[int(len(gaps) * 0.99) - 1] * 1000 if gaps else 0.0


def bench(url: str, n_appts: int, burst: int) -> None:
    name = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    upgrade_url(url)
    db = make_engine(url)
    now = datetime.now(UTC)
    secs = load(db, n_appts, now)
    with db.connect() as conn:
        total: int = conn.execute(text("SELECT count(*) FROM timers")).scalar_one()
        pending: int = conn.execute(text("SELECT count(*) FROM timers WHERE NOT done")).scalar_one()
    print(f"\n== {name}: {n_appts:,} appointments, {total:,} timers ({pending:,} pending), loaded in {secs:.1f}s")

    idle, found = poll_ms(db, now, 200)
    assert found is None
    print(f"poll, nothing due:            {idle:7.3f} ms")
    make_due(db, now, burst)
    busy, found = poll_ms(db, now, 200)
    assert found is not None
    print(f"poll, {burst:,} due:             {busy:7.3f} ms")
    plan = explain(db, now) if name == "PostgreSQL" else sqlite_plan(db, now)
    print("plan:\n    " + "\n    ".join(plan))
    if name == "PostgreSQL":
        # The same poll with only the (done, due_at) index that predates migration 0004.
        with db.begin() as conn:
            conn.execute(text("DROP INDEX ix_timers_due_pending"))
        old, _ = poll_ms(db, now, 200)
        print(f"poll, {burst:,} due, without 0004's partial index: {old:7.3f} ms; plan:")
        print("    " + "\n    ".join(explain(db, now)))
        with db.begin() as conn:
            conn.execute(text("CREATE INDEX ix_timers_due_pending ON timers (due_at, id) WHERE NOT done"))

    cfg = Config.model_validate({"quiet_hours": {"start": "00:00", "end": "00:00"}, "limits": {"per_day": 100}})
    svc = Service(cfg, db, parser=noop_parser)
    t0 = time.perf_counter()
    fired = 0
    while True:
        n = svc.fire_due(now, limit=burst)
        fired += n
        if n == 0:
            break
    fire_s = time.perf_counter() - t0
    sent = 0
    noop = {"sms": lambda out: SendResult(ok=True, provider_id=f"P{out.outbox_id}")}
    while (n := outbox.drain(db, noop, now, 500)) > 0:
        sent += n
    all_s = time.perf_counter() - t0
    assert fired == burst and sent == burst, (fired, sent)
    print(f"burst of {burst:,}: fired {fired / fire_s:7.0f}/s; fired and sent {sent / all_s:7.0f}/s")
    idle_after, found = poll_ms(db, now, 200)
    assert found is None
    print(f"poll after the burst:         {idle_after:7.3f} ms")

    make_due(db, now, 500, last=True)
    svc.fire_due(now, limit=500)
    for inflight, n in ((1, 100), (64, 400)):
        med, p99 = window_ms(db, n, inflight)
        print(f"window, provider took it -> recorded, {inflight:2d} in flight: median {med:.2f} ms, p99 {p99:.2f} ms")
    db.dispose()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--appointments", type=int, default=1_000_000)
    ap.add_argument("--burst", type=int, default=2000)
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--pg-url", help="an empty PostgreSQL database (default: start one in a temp dir)")
    args = ap.parse_args(argv)
    # Each burst reminder (and each of the 500 for the window) needs a distinct client with upcoming
    # appointments: half the clients have them, and there is one client per PER_CLIENT appointments.
    if (args.burst + 500) * 2 * PER_CLIENT > args.appointments:
        ap.error(f"--appointments must be at least {(args.burst + 500) * 2 * PER_CLIENT:,} for this --burst")
    with tempfile.TemporaryDirectory(prefix="rapport-timers-") as tmp:
        if args.db in ("sqlite", "both"):
            bench(f"sqlite:///{Path(tmp) / 'timers.db'}", args.appointments, args.burst)
        if args.db in ("postgresql", "both"):
            if args.pg_url:
                bench(args.pg_url, args.appointments, args.burst)
            else:
                from tests.pgserver import PgServer, available

                reason = available()
                if reason:
                    print(f"PostgreSQL skipped: {reason}")
                    return 0
                srv = PgServer()
                srv.start()
                try:
                    bench(srv.url, args.appointments, args.burst)
                finally:
                    srv.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
