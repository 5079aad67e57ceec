"""`rapport serve`: the web app, the timer poller and the outbox worker in one process (by default).

Start-up: config, database URL (``RAPPORT_DATABASE_URL`` wins), migrations, the service, the
channels whose credentials are in the environment (none: the web simulator is the channel).
APScheduler interval jobs poll due timers and do housekeeping (rows left mid-send by a dead process
are reconciled); the outbox worker is woken at once by every commit that queues a message, and on
PostgreSQL across processes by ``LISTEN/NOTIFY``. Shutdown stops claiming, lets sends in flight
finish, then closes.

``--role web`` serves without sending; ``--role worker`` sends and fires timers without serving.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import text
from sqlalchemy.engine import Engine as DbEngine

from bot import outbox
from bot.config import load_config
from bot.service import Service
from bot.settings import Settings, SettingsError
from bot.web.app import Runner, create_app
from bot.web.metrics import Metrics
from bot.web.security import protect_logs, secret_values
from channels.base import Outbound, SendResult

log = logging.getLogger("rapport.server")
NOTIFY_CHANNEL = "rapport_outbox"
TIMER_BATCH = 20


def utcnow() -> datetime:
    return datetime.now(UTC)


class Runtime:
    """Everything `rapport serve` runs besides uvicorn: channels, worker, scheduler, Telegram polling."""

    def __init__(
        self,
        svc: Service,
        settings: Settings,
        *,
        role: str = "all",
        telegram_polling: bool = False,
        timer_interval: float = 1.0,
        housekeeping_interval: float = 30.0,
        senders: Mapping[str, Any] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        from bot.web.sim import WebSim
        from channels import sms, telegram

        # Before any library sees a token: python-telegram-bot logs its API URL (token included) at DEBUG.
        protect_logs(secret_values(settings, os.environ, svc.db.url))
        self.svc = svc
        self.settings = settings
        self.role = role
        self.telegram_polling = telegram_polling
        self.timer_interval = timer_interval
        self.housekeeping_interval = housekeeping_interval
        self.clock = clock
        self.metrics = Metrics(svc.db)
        svc.observers.append(self.metrics.on_notes)
        self.run = Runner(svc, settings.db_threads)
        self.sim: WebSim | None = None
        self.bot: Any = None
        self.telegram: telegram.TelegramAdapter | None = None
        built: dict[str, Any] = {}
        if settings.telegram_enabled:
            assert settings.telegram_bot_token is not None
            self.bot = telegram.make_bot(settings.telegram_bot_token, settings.telegram_api_base_url)
            self.telegram = telegram.TelegramAdapter(self.bot, svc, settings.deep_link_key, clock=clock, run=self.run)
            staff = [p.telegram for p in svc.cfg.crisis.oncall if p.telegram]
            built["telegram"] = telegram.TelegramSender(self.bot, svc.db, staff, lang=svc.cfg.fallback_language)
        if settings.twilio_enabled:
            built["sms"] = sms.sender_from_settings(settings)
        if settings.simulator_enabled:
            self.sim = WebSim(svc, clock=clock)
            for ch in ("sms", "telegram", "sim"):
                real = built.get(ch)
                # Demo clients' addresses start with "sim-": those go to the page, the rest to the provider.
                built[ch] = self.sim.send if real is None else SimRouted(real, self.sim.send)
        if senders is not None:
            built.update(senders)
        self.worker = outbox.Worker(
            svc.db,
            outbox.wrap_senders(built),
            oncall=svc.cfg.crisis.oncall,
            on_opted_out=self._opted_out,
            on_result=self.metrics.on_send,
            poll=settings.outbox_poll,
            clock=clock,
            run=self.run,
        )
        self.scheduler: AsyncIOScheduler | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._listener: threading.Thread | None = None
        self._stop_listening = threading.Event()
        if role == "web":
            svc.on_outbox = self._notify if _is_pg(svc.db) else None
        else:
            svc.on_outbox = self.worker.wake

    # -- waking the worker ---------------------------------------------------------------------------

    def _notify(self) -> None:
        try:
            with self.svc.db.connect() as c:
                c.execute(text("SELECT pg_notify(:ch, '')"), {"ch": NOTIFY_CHANNEL})
                c.commit()
        except Exception as e:
            log.warning("NOTIFY failed (%s): workers will pick the rows up at their next poll", type(e).__name__)

    def _listen(self) -> None:
        import psycopg

        url = self.svc.db.url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://")
        while not self._stop_listening.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not self._stop_listening.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.worker.wake()
            except Exception as e:
                log.warning("LISTEN connection lost (%s); retrying", type(e).__name__)
                self._stop_listening.wait(2.0)

    def _opted_out(self, channel: str, address: str, reason: str) -> None:
        self.svc.opt_out_by_provider(channel, address, self.clock(), reason)

    # -- jobs ------------------------------------------------------------------------------------------

    async def fire_timers(self) -> int:
        total = 0
        while True:
            n = await self.run(self.svc.fire_due, self.clock(), TIMER_BATCH)
            total += n
            if n < TIMER_BATCH or self._stop.is_set():
                return total

    async def housekeeping(self) -> None:
        from bot.web.admin import overrides

        await self.run(overrides.apply, self.svc)  # this process's copy of the script edits
        await self.run(self._shared_housekeeping)

    def _shared_housekeeping(self) -> None:
        """Jobs on shared rows: one process at a time (each is also safe to overlap, being claim-based)."""
        from storage.store import job_lock

        with job_lock(self.svc.db, "housekeeping") as mine:
            if mine:
                outbox.recover_stale(self.svc.db, self.clock())
                self._writeback()

    def _writeback(self) -> None:
        from bot import writeback

        writeback.deliver_pending(
            self.svc.db, self.clock(), writeback.httpx_post, self.svc.cfg.writeback, writeback.secret_from_env()
        )

    async def purge_records(self) -> None:
        await self.run(self._purge_once)

    def _purge_once(self) -> None:
        """The daily purge, in one process at a time however many run against the database."""
        from bot import retention
        from storage.store import job_lock

        with job_lock(self.svc.db, "records-purge") as mine:
            if mine:
                retention.purge(self.svc.db, self.clock(), self.svc.cfg.records)

    async def _job(self, fn: Callable[[], Any]) -> None:
        try:
            await fn()
        except Exception as e:
            outbox.log_failure(f"scheduled job {getattr(fn, '__name__', fn)}", e, log)

    # -- life cycle -----------------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Build what the first message would otherwise pay for (crisis phrase matchers, parsers), so
        that a crisis reply is on time from the first message on."""
        from bot import safety, understanding

        # dateparser's language data alone costs about a second on the first date-bearing message
        understanding.warm_up(freeze_gc=False)
        now = self.clock()
        for lang in self.svc.cfg.languages:
            safety.scan("warm up", lang)
            self.svc.parse("warm up", lang, "none", now, self.svc.cfg.default_tz)
        safety.scan("warm up", None)
        # Everything built so far lives as long as the process: moved out of the collector's reach,
        # a full collection no longer walks it. With the crisis matchers built after the parsers'
        # freeze, each full collection took about 50 ms (measured after this warm-up) in the
        # middle of some webhook.
        gc.collect()
        gc.freeze()

    async def start(self) -> None:
        self._stop.clear()
        if self.role in ("all", "web"):
            try:
                await asyncio.to_thread(self.warm_up)
            except Exception as e:
                outbox.log_failure("warm-up", e, log)
        sending = self.role in ("all", "worker")
        if sending:
            await self.housekeeping()
            self.worker.start()
            self.scheduler = AsyncIOScheduler(timezone=UTC)
            self.scheduler.add_job(
                self._job,
                "interval",
                args=[self.fire_timers],
                seconds=self.timer_interval,
                max_instances=1,
                coalesce=True,
                id="timers",
                next_run_time=self.clock(),
            )
            self.scheduler.add_job(
                self._job,
                "interval",
                args=[self.housekeeping],
                seconds=self.housekeeping_interval,
                max_instances=1,
                coalesce=True,
                id="housekeeping",
            )
            self.scheduler.add_job(
                self._job,
                "interval",
                args=[self.purge_records],
                hours=24,
                max_instances=1,
                coalesce=True,
                id="records-purge",
            )
            self.scheduler.start()
            if _is_pg(self.svc.db):
                self._stop_listening.clear()
                self._listener = threading.Thread(target=self._listen, name="outbox-listen", daemon=True)
                self._listener.start()
        if self.bot is not None:
            await self._start_telegram()

    async def _start_telegram(self) -> None:
        from channels.telegram import ALLOWED_UPDATES

        try:
            await self.bot.initialize()
        except Exception as e:
            log.error("Telegram: could not reach the Bot API (%s); will keep trying on each send", type(e).__name__)
            return
        if self.telegram_polling and self.telegram is not None and self.role in ("all", "web"):
            self._tasks.append(asyncio.create_task(self.telegram.poll(self._stop), name="telegram-poll"))
            log.info("Telegram: long polling")
        elif self.settings.public_url and self.role in ("all", "web"):
            try:
                await self.bot.set_webhook(
                    url=f"{self.settings.public_url}/webhooks/telegram",
                    secret_token=self.settings.telegram_secret,
                    allowed_updates=ALLOWED_UPDATES,
                )
                log.info("Telegram: webhook registered")
            except Exception as e:
                log.error("Telegram: setWebhook failed (%s)", type(e).__name__)

    async def stop(self) -> None:
        self._stop.set()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        await self.worker.stop()
        self._stop_listening.set()
        if self.bot is not None:
            with contextlib.suppress(Exception):
                await self.bot.shutdown()
        log.info("stopped: no new claims, sends in flight finished")

    def app(self) -> Any:
        return create_app(
            self.svc,
            self.settings,
            telegram=self.telegram,
            metrics=self.metrics,
            sim=self.sim,
            on_startup=[self.start],
            on_shutdown=[self.stop],
            run=self.run,
        )

    async def run_headless(self) -> None:
        """``--role worker``: no web app; until SIGINT/SIGTERM."""
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, done.set)
        await self.start()
        log.info("worker running")
        try:
            await done.wait()
        finally:
            await self.stop()


class SimRouted:
    """A real channel with the web simulator beside it (``RAPPORT_WEB_SIMULATOR=1`` with providers)."""

    def __init__(self, real: outbox.ChannelSender, sim: Callable[[Outbound], SendResult]):
        self.real = real
        self.sim = sim

    def pacing(self, out: Outbound) -> Sequence[outbox.Pacing]:
        return () if out.to.startswith("sim-") else self.real.pacing(out)

    async def send(self, out: Outbound) -> SendResult:
        if out.to.startswith("sim-"):
            return self.sim(out)
        return await self.real.send(out)

    async def reconcile(self, out: Outbound, since: datetime) -> SendResult | None:
        if out.to.startswith("sim-") or not isinstance(self.real, outbox.Reconciler):
            return None
        return await self.real.reconcile(out, since)


def _is_pg(db: DbEngine) -> bool:
    return db.dialect.name == "postgresql"


def configure_logging() -> None:
    """Our own loggers at INFO (they never carry message text or numbers); libraries at WARNING."""
    logging.getLogger("rapport").setLevel(logging.INFO)
    for noisy in ("httpx", "httpcore", "twilio", "telegram", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # A timer tick still running when the next is due is skipped by design (max_instances=1, the
    # next tick takes what is due): not worth a warning a second under load. Job errors still log.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)


def build_service(config: str | None, settings: Settings) -> Service:
    from storage.db import make_engine, resolve_url
    from storage.migrate import upgrade_url

    cfg, path = load_config(config)
    url = resolve_url(cfg.database_url, path)
    upgrade_url(url)
    db = make_engine(url)
    return Service(cfg, db, public_url=settings.public_url, config_dir=path.parent if path else None)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    configure_logging()
    try:
        settings = Settings.from_env()
    except SettingsError as e:
        print(f"rapport: {e}", file=sys.stderr)
        return 2
    from storage import crypto

    try:
        crypto.load_from_env()
    except crypto.DataKeyError as e:
        print(f"rapport: {e}", file=sys.stderr)
        return 2
    crypto.startup_notice(log)
    svc = build_service(args.config, settings)
    rt = Runtime(svc, settings, role=args.role, telegram_polling=args.telegram_polling)
    chans = [c for c, on in (("sms", settings.twilio_enabled), ("telegram", settings.telegram_enabled)) if on]
    log.info("channels: %s; role %s", ", ".join(chans) or "web simulator", args.role)
    if args.role == "worker":
        asyncio.run(rt.run_headless())
        return 0
    sockets = None
    if args.reuse_port:
        if not _is_pg(svc.db):
            print(
                "rapport: --reuse-port runs several processes, which needs PostgreSQL (docs/deploy.md §2)",
                file=sys.stderr,
            )
            return 2
        try:
            sockets = [shared_listener(args.host, args.port)]
        except OSError as e:
            print(f"rapport: cannot listen on {args.host}:{args.port} with SO_REUSEPORT: {e}", file=sys.stderr)
            return 2
    server = uvicorn.Server(
        uvicorn.Config(
            rt.app(),
            host=args.host,
            port=args.port,
            log_level="info",
            lifespan="on",
            timeout_graceful_shutdown=30,
            access_log=settings.access_log,
        )
    )
    server.run(sockets=sockets)
    return 0


def shared_listener(host: str, port: int) -> socket.socket:
    """A listening socket that other processes may bind too (SO_REUSEPORT): the kernel hashes each new
    connection to one of them, so several web processes share a port without a proxy in front."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("SO_REUSEPORT is not available on this platform")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def run_link(args: argparse.Namespace) -> int:
    """``rapport link CLIENT``: print a single-use Telegram deep link that ties a chat to the client."""
    from bot.durations import parse_duration
    from channels.telegram import issue_link
    from storage.db import make_engine, resolve_url

    try:
        settings = Settings.from_env()
    except SettingsError as e:
        print(f"rapport: {e}", file=sys.stderr)
        return 2
    key = settings.deep_link_key
    if key is None:
        print("rapport: set TELEGRAM_BOT_TOKEN (or RAPPORT_LINK_SECRET) to sign links", file=sys.stderr)
        return 2
    try:
        ttl = parse_duration(args.ttl) if getattr(args, "ttl", None) else timedelta(hours=settings.link_ttl_hours)
    except ValueError as e:
        print(f"rapport: --ttl: {e}", file=sys.stderr)
        return 2
    cfg, path = load_config(args.config)
    db = make_engine(resolve_url(cfg.database_url, path))
    try:
        token = issue_link(db, key, args.client, utcnow(), ttl)
    except LookupError:
        print(f"rapport: unknown client {args.client!r}", file=sys.stderr)
        return 1
    username = _bot_username(settings) if settings.telegram_enabled else None
    if username:
        print(f"https://t.me/{username}?start={token}")
    else:
        print(f"/start {token}")
    return 0


def _bot_username(settings: Settings) -> str | None:
    from channels.telegram import make_bot

    assert settings.telegram_bot_token is not None
    bot = make_bot(settings.telegram_bot_token, settings.telegram_api_base_url)

    async def go() -> str | None:
        async with bot:
            return bot.username

    try:
        return asyncio.run(go())
    except Exception as e:
        print(
            f"rapport: could not ask Telegram for the bot's name ({type(e).__name__}); printing the command",
            file=sys.stderr,
        )
        return None


__all__ = ["Runtime", "build_service", "run_link", "run_serve"]
