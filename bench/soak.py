"""Soak: `rapport serve` on PostgreSQL under a steady inbound load with reminders firing.

    .venv/bin/python bench/soak.py [--minutes 30] [--rate 200] [--clients 2000] [--per-clinician 40] [--window 60]

One `rapport serve` process (web, outbox worker and scheduler together), or with ``--split`` two
(``--role web`` and ``--role worker``, the deployment docs/deploy.md describes), on a throwaway
PostgreSQL, Twilio faked on 127.0.0.1. The load is open-loop: signed Twilio webhooks sent on a fixed
schedule at ``--rate`` per second whatever the answers do (a slow server meets a growing queue, not
a politely slower client), each a new MessageSid from one of ``--clients`` clients, the same
ordinary mix as bench/webhook_bench.py plus a crisis message now and then. Every client has an
appointment whose reminder comes due during the run, so the scheduler fires reminders all along.

Every ``--window`` seconds it prints one line: requests sent and answered, errors, p50/p99/max
latency, the server processes' resident memory, the outbox backlog, replies the fake provider received, and
reminders sent. At the end: the first and last windows side by side and whether anything was lost.
Everything is on loopback and bounded by ``--minutes``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import psycopg
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from loadgen import Pool  # noqa: E402
from webhook_bench import PUBLIC, TEXTS, TOKEN, Server, clinician_of, clinicians_for, pct  # noqa: E402

from tests.channels.fakes import FakeTwilio  # noqa: E402
from tests.pgserver import PgServer, available  # noqa: E402

CRISIS_EVERY = 500  # one message in this many is a crisis message (an alert, a reply, a staff page)


def phone(i: int) -> str:
    return f"+1555{3000000 + i:07d}"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def seed(base: str, clients: int, minutes: float, per_clinician: int) -> None:
    """Clients with an appointment each; reminders (offset 2h) come due evenly over the run.
    ``per_clinician`` clients share a clinician (0: all with one)."""
    first = datetime.now(UTC) + timedelta(hours=2, minutes=1)
    span = timedelta(minutes=minutes)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
        for i in range(clients):
            r = c.put(
                f"/api/clients/s{i}",
                json={"name": f"Client {i}", "phone": phone(i), "lang": "en", "tz": "America/New_York"},
            )
            r.raise_for_status()
            start = first + span * (i / clients)
            appt = {"client": f"s{i}", "clinician": clinician_of(i, per_clinician), "start": start.isoformat()}
            r = c.put(f"/api/appointments/s{i}-1", json=appt)
            r.raise_for_status()


class Window:
    def __init__(self) -> None:
        self.sent = 0
        self.ok = 0
        self.errors = 0
        self.lat: list[float] = []


async def drive(
    base: str, token: str, rate: float, seconds: float, clients: int, window_s: float, report
) -> list[Window]:  # type: ignore[no-untyped-def]
    v = RequestValidator(token)
    url = PUBLIC + "/webhooks/twilio"
    windows: list[Window] = [Window()]
    inflight: set[asyncio.Task[None]] = set()
    host, port = base.removeprefix("http://").rsplit(":", 1)
    pool = Pool(host, int(port), size=256)
    try:

        async def one(i: int, w: Window) -> None:
            text = "I can't do this anymore, I want to end my life" if i % CRISIS_EVERY == 7 else TEXTS[i % len(TEXTS)]
            params = {
                "MessageSid": f"SM{i:032d}",
                "AccountSid": "AC" + "0" * 32,
                "From": phone(i % clients),
                "To": "+15550009999",
                "Body": text,
                "NumMedia": "0",
            }
            t0 = time.perf_counter()
            status = await pool.post(
                "/webhooks/twilio",
                urlencode(params).encode(),
                {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": v.compute_signature(url, params),
                },
            )
            w.lat.append(time.perf_counter() - t0)
            if status == 200:
                w.ok += 1
            else:
                w.errors += 1

        start = time.perf_counter()
        next_window = start + window_s
        i = 0
        while True:
            now = time.perf_counter()
            if now - start >= seconds:
                break
            if now >= next_window:
                await report(windows[-1], len(windows))
                windows.append(Window())
                next_window += window_s
            due = int((now - start) * rate)
            while i < due:
                w = windows[-1]
                w.sent += 1
                t = asyncio.create_task(one(i, w))
                inflight.add(t)
                t.add_done_callback(inflight.discard)
                i += 1
            await asyncio.sleep(0.002)
        if inflight:
            await asyncio.gather(*inflight)
        await report(windows[-1], len(windows))
    finally:
        await pool.close()
    return windows


def print_pg_stats(db: psycopg.Connection) -> None:
    """Where PostgreSQL's time went, and how far vacuum kept up: for a latency that drifts."""
    print("statements by total time (calls, total s, mean ms, rows):")
    for calls, total, mean, nrows, query in db.execute(
        "SELECT calls, total_exec_time / 1000, mean_exec_time, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 150)"
        " FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12"
    ).fetchall():
        print(f"  {calls:>8} {total:>8.1f} {mean:>8.3f} {nrows:>9}  {query}")
    print("tables (live, dead, autovacuums, autoanalyzes, seq scans, rows read by seq scans):")
    for row in db.execute(
        "SELECT relname, n_live_tup, n_dead_tup, autovacuum_count, autoanalyze_count, seq_scan, seq_tup_read"
        " FROM pg_stat_user_tables ORDER BY n_live_tup DESC LIMIT 10"
    ).fetchall():
        print("  " + "  ".join(str(x) for x in row))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--clients", type=int, default=2000)
    ap.add_argument("--window", type=float, default=60)
    ap.add_argument(
        "--split", action="store_true", help="two processes: --role web and --role worker (sending, timers)"
    )
    ap.add_argument(
        "--pg-stats",
        action="store_true",
        help="load pg_stat_statements; at the end print the statements by total time and the tables' vacuum state",
    )
    ap.add_argument("--keep-logs", type=Path, default=None, help="copy the servers' logs here at the end")
    ap.add_argument(
        "--web",
        type=int,
        default=1,
        help="with --split: this many --role web processes sharing one port (--reuse-port)",
    )
    ap.add_argument(
        "--per-clinician",
        type=int,
        default=40,
        help="clients a clinician (a caseload; a reschedule reads its clinician's bookings). 0: one clinician",
    )
    args = ap.parse_args()
    if args.web > 1 and not args.split:
        ap.error("--web needs --split")
    reason = available()
    if reason:
        print(f"soak skipped: {reason}")
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="rapport-soak-"))
    pg = PgServer(options="-c shared_preload_libraries=pg_stat_statements" if args.pg_stats else "")
    pg.start()
    if args.pg_stats:
        with psycopg.connect(pg.url, autocommit=True) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    fake = FakeTwilio()
    fake.record = False
    fake.start()
    extra = "reminders: {offsets: ['2h']}\n"
    n_clin = clinicians_for(args.clients, args.per_clinician)
    role = "web" if args.split else "all"
    shared = ("--reuse-port",) if args.web > 1 else ()
    server = Server(
        pg.url, fake, workdir, extra_config=extra, role=role, clinicians=n_clin, extra_args=shared, name="web1"
    )
    webs = [server] + [
        Server(
            pg.url,
            fake,
            workdir,
            extra_config=extra,
            role=role,
            clinicians=n_clin,
            port=server.port,
            extra_args=shared,
            name=f"web{k + 1}",
        )
        for k in range(1, args.web)
    ]
    worker = Server(pg.url, fake, workdir, extra_config=extra, role="worker", clinicians=n_clin) if args.split else None
    try:
        server.wait_ready()
        for w in webs[1:]:  # /healthz on the shared port may reach any of them
            w.wait_log("Application startup complete")
        if worker is not None:
            worker.wait_log("worker running")
        t0 = time.perf_counter()
        seed(server.base, args.clients, args.minutes, args.per_clinician)
        shape = f"{args.web} web + 1 worker processes" if args.split else "one process"
        print(
            f"rapport soak: {os.cpu_count()} CPUs, PostgreSQL, {shape}, "
            f"{args.rate:g} webhooks/s for {args.minutes:g} min, {n_clin} clinicians, "
            f"{args.clients} clients (seeded in {time.perf_counter() - t0:.0f} s), window {args.window:g} s",
            flush=True,
        )
        print(
            "window  sent    ok  errors  p50 ms  p99 ms  max ms   rss MB  outbox  replies  reminders  load",
            flush=True,
        )
        db = psycopg.connect(pg.url, autocommit=True)
        pids = [w.proc.pid for w in webs] + ([worker.proc.pid] if worker is not None else [])
        rows: list[tuple[int, float, float, float]] = []

        async def report(w: Window, n: int) -> None:
            backlog = db.execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')").fetchone()
            reminders = db.execute(
                "SELECT count(*) FROM messages WHERE direction = 'out' AND dialogue = 'appointment_reminder'"
                " AND automated"
            ).fetchone()
            rss = sum(rss_kb(p) for p in pids) / 1024
            p50 = pct(w.lat, 50) * 1000 if w.lat else 0.0
            p99 = pct(w.lat, 99) * 1000 if w.lat else 0.0
            mx = max(w.lat) * 1000 if w.lat else 0.0
            rows.append((n, rss, p99, p50))
            print(
                f"{n:>6} {w.sent:>5} {w.ok:>5} {w.errors:>7} {p50:>7.1f} {p99:>7.1f} {mx:>7.0f} {rss:>8.1f}"
                f" {backlog[0] if backlog else -1:>7} {fake.created:>8} {reminders[0] if reminders else -1:>10}"
                f"  {os.getloadavg()[0]:.1f}",
                flush=True,
            )

        windows = asyncio.run(
            drive(server.base, fake.auth_token, args.rate, args.minutes * 60, args.clients, args.window, report)
        )
        sent = sum(w.sent for w in windows)
        ok = sum(w.ok for w in windows)
        deadline = time.time() + 120
        while time.time() < deadline:
            row = db.execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')").fetchone()
            if row and row[0] == 0:
                break
            time.sleep(1)
        row = db.execute("SELECT count(*) FROM messages WHERE direction = 'in'").fetchone()
        stored = row[0] if row else -1
        row = db.execute("SELECT count(*) FROM outbox WHERE status = 'failed'").fetchone()
        failed = row[0] if row else -1
        full = [r for r in rows if r[0] > 1] or rows
        print(
            f"total: {sent} webhooks sent, {ok} answered 200, {sent - ok} errors; {stored} inbound stored; "
            f"{fake.created} messages reached the provider; {failed} outbox rows failed"
        )
        if len(full) >= 2:
            print(
                f"first vs last full window: rss {full[0][1]:.1f} -> {full[-1][1]:.1f} MB, "
                f"p99 {full[0][2]:.1f} -> {full[-1][2]:.1f} ms, p50 {full[0][3]:.1f} -> {full[-1][3]:.1f} ms"
            )
        if args.pg_stats:
            print_pg_stats(db)
        db.close()
    finally:
        for w in webs:
            w.stop()
        if worker is not None:
            worker.stop()
        for log in workdir.glob("serve-*.log"):
            warnings = [ln for ln in log.read_text().splitlines() if " WARNING " in ln or " ERROR " in ln]
            if warnings:
                print(f"{log.name}: {len(warnings)} warnings/errors, the last ones:")
                print("\n".join(warnings[-5:]))
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in workdir.glob("serve-*.log"):
                shutil.copy(log, args.keep_logs / log.name)
        fake.stop()
        pg.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
