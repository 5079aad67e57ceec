"""`rapport serve` as a real process: ready on /healthz, graceful on SIGTERM, web + worker roles."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from tests.channels.fakes import FakeTwilio, running
from tests.pgserver import free_port

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = "https://rapport.example.org"
CONFIG = """\
practice_name: Serve Test
quiet_hours: {start: "23:59", end: "00:00"}
crisis:
  oncall:
    - {name: dr_a, phone: "+15555550101"}
"""


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path, port: int | None = None):
        self.port = port or free_port()
        self.log = log.open("w")
        cmd = [sys.executable, "-m", "bot.cli", "serve", *args, "--host", "127.0.0.1", "--port", str(self.port)]
        self.p = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.p.poll() is None, f"exited early with {self.p.returncode}"
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("never became healthy")

    def terminate(self, timeout: float = 30) -> int:
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
            self.log.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(CONFIG, encoding="utf-8")
    return p


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with running(FakeTwilio()) as f:
        yield f


def twilio_env(fake: FakeTwilio) -> dict[str, str]:
    return {
        "RAPPORT_PUBLIC_URL": PUBLIC,
        "TWILIO_ACCOUNT_SID": fake.account_sid,
        "TWILIO_AUTH_TOKEN": fake.auth_token,
        "TWILIO_FROM": "+15550009999",
        "TWILIO_API_BASE_URL": fake.base_url,
        "RAPPORT_TWILIO_MPS": "100",
    }


def signed(fake: FakeTwilio, sid: str, sender: str, text: str) -> tuple[bytes, dict[str, str]]:
    params = {"MessageSid": sid, "From": sender, "To": "+15550009999", "Body": text}
    sig = RequestValidator(fake.auth_token).compute_signature(PUBLIC + "/webhooks/twilio", params)
    return urlencode(params).encode(), {"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"}


def test_serve_starts_migrates_serves_the_simulator_and_stops_on_sigterm(tmp_path: Path, config: Path) -> None:
    env = {"RAPPORT_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}", "RAPPORT_API_TOKEN": "t0k3n"}
    proc = Proc(["--config", str(config)], env, tmp_path / "serve.log")
    try:
        proc.wait_healthy()
        assert "Serve Test" in httpx.get(proc.base + "/").text
        r = httpx.put(
            proc.base + "/api/clients/c1",
            json={"name": "Ana", "phone": "+15551230001"},
            headers={"Authorization": "Bearer t0k3n"},
        )
        assert r.status_code == 200
    finally:
        code = proc.terminate()
    log = (tmp_path / "serve.log").read_text()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why it stopped.
    assert code in (0, -signal.SIGTERM), log
    assert "Application shutdown complete" in log and "rapport.server stopped" in log


def wait_for_log(proc: Proc, log: Path, timeout: float = 60, line: str = "worker running") -> None:
    """Until the process logs ``line`` (by default, the worker says it runs): a loaded machine can
    take several seconds to start one."""
    deadline = time.time() + timeout
    while line not in log.read_text() and time.time() < deadline:
        assert proc.p.poll() is None, log.read_text()
        time.sleep(0.2)


def test_worker_role_runs_without_a_web_app(tmp_path: Path, config: Path) -> None:
    env = {"RAPPORT_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}
    proc = Proc(["--config", str(config), "--role", "worker"], env, tmp_path / "worker.log")
    wait_for_log(proc, tmp_path / "worker.log")  # SIGTERM before its handler is installed is a kill
    assert proc.p.poll() is None, (tmp_path / "worker.log").read_text()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{proc.base}/healthz", timeout=1)
    assert proc.terminate() == 0


@pytest.mark.postgres
def test_web_and_worker_processes_on_postgres_wake_by_notify(
    tmp_path: Path, config: Path, pg_url: str, fake: FakeTwilio
) -> None:
    from tests.conftest import fresh_pg_database

    url = fresh_pg_database(pg_url)
    # A 30 s poll: only NOTIFY can wake the worker in time.
    env = {"RAPPORT_DATABASE_URL": url, "RAPPORT_API_TOKEN": "t0k3n", "RAPPORT_OUTBOX_POLL": "30", **twilio_env(fake)}
    web = Proc(["--config", str(config), "--role", "web"], env, tmp_path / "web.log")
    worker = None
    try:
        web.wait_healthy()
        worker = Proc(["--config", str(config), "--role", "worker"], env, tmp_path / "worker.log")
        wait_for_log(worker, tmp_path / "worker.log")  # until it is listening
        time.sleep(0.5)
        httpx.put(
            web.base + "/api/clients/c1",
            json={"name": "Ana", "phone": "+15551230001"},
            headers={"Authorization": "Bearer t0k3n"},
        ).raise_for_status()
        body, headers = signed(fake, "SM" + "1" * 32, "+15551230001", "I want to kill myself")
        t0 = time.perf_counter()
        assert httpx.post(web.base + "/webhooks/twilio", content=body, headers=headers).status_code == 200
        while time.perf_counter() - t0 < 5 and not any(m["to"] == "+15551230001" for m in fake.messages):
            time.sleep(0.02)
        elapsed = time.perf_counter() - t0
        assert any(m["to"] == "+15551230001" for m in fake.messages)
        assert elapsed < 1.0, f"crisis reply took {elapsed:.2f}s across processes"
    finally:
        assert web.terminate() in (0, -signal.SIGTERM)
        if worker is not None:
            assert worker.terminate() == 0


def test_reuse_port_needs_postgresql(tmp_path: Path, config: Path) -> None:
    env = {"RAPPORT_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}
    proc = Proc(["--config", str(config), "--reuse-port"], env, tmp_path / "serve.log")
    assert proc.p.wait(60) == 2
    proc.log.close()
    assert "needs PostgreSQL" in (tmp_path / "serve.log").read_text()


@pytest.mark.postgres
def test_web_processes_share_one_port_with_reuse_port(
    tmp_path: Path, config: Path, pg_url: str, fake: FakeTwilio
) -> None:
    """Two `--role web --reuse-port` processes on one port: the kernel spreads new connections between
    them (each one's access log shows webhooks), and every webhook is stored exactly once."""
    from sqlalchemy import create_engine
    from sqlalchemy import text as sql

    from tests.conftest import fresh_pg_database

    url = fresh_pg_database(pg_url)
    env = {"RAPPORT_DATABASE_URL": url, "RAPPORT_ACCESS_LOG": "1", **twilio_env(fake)}
    args = ["--config", str(config), "--role", "web", "--reuse-port"]
    first = Proc(args, env, tmp_path / "web1.log")
    second = None
    try:
        first.wait_healthy()
        second = Proc(args, env, tmp_path / "web2.log", port=first.port)
        # /healthz on the shared port may reach either process: the second one's own log says it is up
        wait_for_log(second, tmp_path / "web2.log", line="Application startup complete")
        for i in range(40):  # a new connection each: the kernel hashes each to one of the two
            body, headers = signed(fake, f"SM{i:032d}", f"+1555123{i:04d}", "hello")
            assert httpx.post(first.base + "/webhooks/twilio", content=body, headers=headers).status_code == 200
        body, headers = signed(fake, f"SM{0:032d}", "+15551230000", "hello")  # a replay, to either process
        assert httpx.post(first.base + "/webhooks/twilio", content=body, headers=headers).status_code == 200
        served = [(tmp_path / name).read_text().count("POST /webhooks/twilio") for name in ("web1.log", "web2.log")]
        assert sum(served) == 41 and min(served) > 0, served
        db = create_engine(url)
        with db.connect() as c:
            stored = c.execute(sql("SELECT count(*), count(DISTINCT provider_id) FROM messages WHERE direction = 'in'"))
            assert tuple(stored.one()) == (40, 40)
        db.dispose()
    finally:
        assert first.terminate() in (0, -signal.SIGTERM)
        if second is not None:
            assert second.terminate() in (0, -signal.SIGTERM)
