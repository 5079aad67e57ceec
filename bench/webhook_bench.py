"""Inbound webhooks per second and p50/p99 latency, at concurrency 1, 8 and 32, on SQLite and PostgreSQL.

    .venv/bin/python bench/webhook_bench.py [--db sqlite,postgres] [--requests 2000] [--concurrency 1,8,32]

`rapport serve` runs as its own process (one uvicorn worker, the outbox worker and the scheduler in
it, as deployed), with Twilio on loopback: a fake Messages API that takes every reply. The load is
signed Twilio webhooks (twilio's RequestValidator), each a new MessageSid, spread over 500 clients
with an upcoming appointment, in a mix of ordinary replies (confirmations, questions, reschedule
requests, thanks). Latency is the HTTP round trip as the load generator sees it; a webhook answers
only after the message, its reply and its outbox row are committed. After each run the bench waits
for the outbox to drain and reports how long the replies took to reach the provider, and the server
process's CPU time per message over the run and the drain (`cpu ms`, Linux), and the load
generator's own (`gen ms`: it shares the cores). ``--role web`` runs the
webhook side alone (no sends), to split the cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from loadgen import Pool  # noqa: E402

from tests.channels.fakes import FakeTwilio  # noqa: E402
from tests.pgserver import PgServer, available  # noqa: E402

PUBLIC = "https://bench.rapport.example"
TOKEN = "bench-api-token"
CLIENTS = 500
TEXTS = [
    "yes",
    "Yes, see you then",
    "what time is my appointment?",
    "can we move it to friday afternoon?",
    "thanks!",
    "ok",
    "I might be a bit late",
    "sim, confirmo",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def phone(i: int) -> str:
    return f"+1555{2000000 + i:07d}"


def clinician(k: int) -> str:
    return "rivera" if k == 0 else f"clin{k}"


def clinicians_for(clients: int, per_clinician: int) -> int:
    return max(1, -(-clients // per_clinician)) if per_clinician > 0 else 1


def clinician_of(i: int, per_clinician: int) -> str:
    """Client i's clinician: ``per_clinician`` clients each, or all with the first (0)."""
    return clinician(i // per_clinician if per_clinician > 0 else 0)


class Server:
    def __init__(
        self,
        db_url: str,
        fake: FakeTwilio,
        workdir: Path,
        extra_config: str = "",
        role: str = "all",
        clinicians: int = 1,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        name: str = "",
    ):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cfg = workdir / "config.yaml"
        week = (
            "availability: {mon: ['09:00-17:00'], tue: ['09:00-17:00'], wed: ['09:00-17:00'],"
            " thu: ['09:00-17:00'], fri: ['09:00-17:00']}"
        )
        cfg.write_text(
            "practice_name: Bench\nquiet_hours: {start: '23:59', end: '00:00'}\n"
            "limits: {per_day: 1000, per_week: 1000}\n"
            "crisis:\n  oncall:\n    - {name: dr_a, phone: '+15555550101'}\n"
            "clinicians:\n"
            + "".join(
                f"  - {{id: {clinician(k)}, tz: America/New_York, session_minutes: 50, {week}}}\n"
                for k in range(clinicians)
            )
            + extra_config,
            encoding="utf-8",
        )
        env = {
            **os.environ,
            "RAPPORT_DATABASE_URL": db_url,
            "RAPPORT_PUBLIC_URL": PUBLIC,
            "RAPPORT_API_TOKEN": TOKEN,
            "RAPPORT_ACCESS_LOG": "0",
            "RAPPORT_TWILIO_MPS": "100000",
            "TWILIO_ACCOUNT_SID": fake.account_sid,
            "TWILIO_AUTH_TOKEN": fake.auth_token,
            "TWILIO_FROM": "+15550009999",
            "TWILIO_API_BASE_URL": fake.base_url,
        }
        cmd = [
            sys.executable,
            "-m",
            "bot.cli",
            "serve",
            "--config",
            str(cfg),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--role",
            role,
            *extra_args,
        ]
        self.sends = role != "web"
        self.log = open(workdir / f"serve-{name or role}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rapport serve exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("rapport serve did not become ready")

    def wait_log(self, line: str, timeout: float = 60) -> None:
        """Until ``line`` is in the process's log (a worker has no /healthz; a web process sharing a
        port with others cannot be told apart by one)."""
        deadline = time.time() + timeout
        while line not in Path(self.log.name).read_text() and time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rapport serve exited with {self.proc.returncode}; see {self.log.name}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def seed(base: str, per_clinician: int = 0) -> None:
    """CLIENTS clients with an appointment 5 days out. ``per_clinician`` 0: all with one clinician at
    the same hour (the bench's historical shape); N: N clients a clinician, at distinct hours, as a
    real caseload (which bounds the bookings a reschedule request reads)."""
    start = (datetime.now(UTC) + timedelta(days=5)).replace(minute=0, second=0, microsecond=0)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
        for i in range(CLIENTS):
            r = c.put(
                f"/api/clients/b{i}",
                json={"name": f"Client {i}", "phone": phone(i), "lang": "en", "tz": "America/New_York"},
            )
            r.raise_for_status()
            at = start + timedelta(hours=i % per_clinician) if per_clinician > 0 else start
            appt = {"client": f"b{i}", "clinician": clinician_of(i, per_clinician), "start": at.isoformat()}
            r = c.put(f"/api/appointments/b{i}-1", json=appt)
            r.raise_for_status()


def requests_for(token: str, n: int, offset: int) -> list[tuple[bytes, str]]:
    v = RequestValidator(token)
    url = PUBLIC + "/webhooks/twilio"
    out = []
    for k in range(n):
        i = offset + k
        params = {
            "MessageSid": f"SM{i:032d}",
            "AccountSid": "AC" + "0" * 32,
            "From": phone(i % CLIENTS),
            "To": "+15550009999",
            "Body": TEXTS[i % len(TEXTS)],
            "NumMedia": "0",
        }
        out.append((urlencode(params).encode(), v.compute_signature(url, params)))
    return out


async def load(base: str, reqs: list[tuple[bytes, str]], concurrency: int) -> tuple[float, list[float], int]:
    """Closed loop: ``concurrency`` senders, each posting its next webhook when the last is answered.

    The lean generator (bench/loadgen.py), not httpx: it shares the two cores with the server it
    measures, and httpx spent about a millisecond of CPU a request, as much as the server."""
    queue: asyncio.Queue[tuple[bytes, str]] = asyncio.Queue()
    for r in reqs:
        queue.put_nowait(r)
    lat: list[float] = []
    errors = 0
    host, port = base.removeprefix("http://").rsplit(":", 1)
    pool = Pool(host, int(port), size=concurrency)

    async def worker() -> None:
        nonlocal errors
        while True:
            try:
                body, sig = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t0 = time.perf_counter()
            status = await pool.post(
                "/webhooks/twilio",
                body,
                {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig},
            )
            lat.append(time.perf_counter() - t0)
            if status != 200:
                errors += 1
                if errors == 1:
                    print(f"first error: HTTP {status}", file=sys.stderr)

    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await pool.close()
    wall = time.perf_counter() - t0
    return wall, lat, errors


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_drained(fake: FakeTwilio, expected: int, timeout: float = 120) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if len(fake.messages) >= expected:
            break
        time.sleep(0.05)
    return time.perf_counter() - t0


def run_one(
    db: str, n: int, concurrencies: list[int], workdir: Path, role: str = "all", per_clinician: int = 0
) -> list[str]:
    pg: PgServer | None = None
    if db == "postgres":
        reason = available()
        if reason:
            return [f"postgres  skipped: {reason}"]
        pg = PgServer()
        pg.start()
        url = pg.url
    else:
        url = f"sqlite:///{workdir / 'bench.db'}"
    fake = FakeTwilio().start()
    server = Server(url, fake, workdir, role=role, clinicians=clinicians_for(CLIENTS, per_clinician))
    rows = []
    try:
        server.wait_ready()
        seed(server.base, per_clinician)
        offset = 0
        warm = requests_for(fake.auth_token, 200, 10_000_000)
        asyncio.run(load(server.base, warm, 8))
        for c in concurrencies:
            before = len(fake.messages)
            reqs = requests_for(fake.auth_token, n, offset)
            offset += n
            cpu0 = cpu_seconds(server.proc.pid)
            gen0 = time.process_time()
            wall, lat, errors = asyncio.run(load(server.base, reqs, c))
            gen = time.process_time() - gen0
            drain = wait_drained(fake, before + n - errors) if server.sends else 0.0
            # the server's CPU over the load and the drain: what one message costs it, sends included
            cpu = cpu_seconds(server.proc.pid) - cpu0
            sent = len(fake.messages) - before
            rows.append(
                f"{db:9} {c:>4} {n:>6} {n / wall:>9.0f} {pct(lat, 50) * 1000:>8.1f} {pct(lat, 99) * 1000:>8.1f}"
                f" {statistics.mean(lat) * 1000:>8.1f} {errors:>6} {sent:>6} {drain:>8.2f} {cpu * 1000 / n:>7.2f}"
                f" {gen * 1000 / n:>7.2f}"
            )
            print(rows[-1], flush=True)
    except Exception:
        server.log.flush()
        print(Path(server.log.name).read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        server.stop()
        fake.stop()
        if pg is not None:
            pg.cleanup()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="sqlite,postgres")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument(
        "--role", default="all", choices=("all", "web"), help="web: the webhook side alone (no sends; deploy guide §7)"
    )
    ap.add_argument(
        "--per-clinician",
        type=int,
        default=0,
        help="clients a clinician, at distinct hours (0: all 500 with one clinician at one hour)",
    )
    args = ap.parse_args()
    concurrencies = [int(x) for x in args.concurrency.split(",")]
    print(
        f"rapport webhook bench: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"{args.requests} signed Twilio webhooks per run, {CLIENTS} clients"
    )
    print("db        conc   reqs    msg/s   p50 ms   p99 ms  mean ms errors  sent  drain s  cpu ms  gen ms")
    for db in args.db.split(","):
        workdir = Path(tempfile.mkdtemp(prefix=f"rapport-bench-{db}-"))
        try:
            run_one(db.strip(), args.requests, concurrencies, workdir, args.role, args.per_clinician)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
