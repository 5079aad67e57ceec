"""The orchestrating service: every effect happens here, in one transaction, under the client's lock.

Inbound messages follow DESIGN §3: dedupe, staff commands, safety, keywords, open alert, understand,
engine, store. Timers (reminders, check-ins, feedback, wait timeouts, escalations) come back through
``fire_due`` and take the same path. The engine decides; this module acts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine as DbEngine
from sqlmodel import Session

from bot import alerts, safety, understanding, waitlist, writeback
from bot.config import Config
from bot.engine import (
    AppointmentView,
    Availability,
    Ctx,
    Engine,
    NeedsAvailability,
    Rejected,
    Reply,
    State,
    Wait,
    WaitTimeout,
)
from bot.engine import events as ev
from bot.engine.dialogue import load_dialogues
from bot.engine.runner import Sprint
from bot.keywords import keyword
from bot.quiet import quiet_until
from bot.records import AppointmentIn, ClientIn, RecordError, validate
from bot.scripts import Scripts
from bot.understanding.types import Parse
from bot.unit import Note, Unit
from channels.base import Inbound
from storage import store
from storage.tables import (
    Alert,
    Appointment,
    Client,
    Conversation,
    Feedback,
    Message,
    Timer,
    new_row,
)

log = logging.getLogger("rapport.service")


@dataclass(frozen=True)
class Sent:
    """An outbound message written to the messages table and the outbox."""

    id: int | None  # None while deferred (an inbound batch writes its messages when it commits)


class _Unknown:
    """Marks an argument the caller did not look up (None is a real answer: no conversation)."""


UNKNOWN = _Unknown()

PRIORITY_CRISIS = 10
PRIORITY_STAFF = 9
PRIORITY_REPLY = 5
PRIORITY_AUTOMATED = 0
REBOOK_WINDOW = timedelta(days=30)

# Which dialogue and step a trigger starts, by timer kind.
TRIGGERS = {"reminder": "appointment_reminder", "feedback": "feedback", "missed_checkin": "missed_session"}
ParseFn = Callable[[str, str, str, datetime, str], Parse]


class Service:
    def __init__(
        self,
        cfg: Config,
        db: DbEngine,
        *,
        parser: ParseFn | None = None,
        public_url: str | None = None,
        config_dir: Path | None = None,
    ):
        self.cfg = cfg
        self.db = db
        overlay = []
        if cfg.locales_dir:
            p = Path(cfg.locales_dir)
            overlay.append(p if p.is_absolute() or config_dir is None else config_dir / p)
        self.catalog_dirs = overlay
        self.scripts = Scripts(overlay)
        self.engine = Engine(load_dialogues())
        self.parse: ParseFn = parser or understanding.make_parser(
            cfg.nlu.backend, cfg.nlu.rasa_url, cfg.nlu.timeout.total_seconds()
        )
        self.public_url = public_url
        self.observers: list[Callable[[list[Note]], None]] = []
        self.on_outbox: Callable[[], None] | None = None
        self.durations: dict[str, timedelta] = {
            "reminders.answer_timeout": cfg.reminders.answer_timeout,
            "missed_session.answer_timeout": cfg.missed_session.answer_timeout,
            "feedback.answer_timeout": cfg.feedback.answer_timeout,
            "conversation.reschedule_timeout": cfg.conversation.reschedule_timeout,
            "conversation.slot_horizon": cfg.conversation.slot_horizon,
            "conversation.slot_lead": cfg.conversation.slot_lead,
            waitlist.DURATION_KEY: cfg.waitlist.offer_timeout,
        }

    # -- units of work ----------------------------------------------------------------------------

    @contextmanager
    def unit(self, now: datetime) -> Iterator[Unit]:
        with Session(self.db, expire_on_commit=False) as s:
            u = Unit(s, now)
            try:
                yield u
                store.flush_deferred(s)
                s.commit()
            except BaseException:
                s.rollback()
                raise
        for obs in self.observers:
            obs(u.notes)
        if u.wake_outbox and self.on_outbox:
            self.on_outbox()

    # -- the practice's side: clients, appointments, attendance ---------------------------------

    def upsert_client(self, data: dict[str, Any], now: datetime, actor: str = "api") -> Client:
        rec: ClientIn = validate(ClientIn, data)
        with self.unit(now) as u:
            store.lock_client(u.s, rec.id)
            c = u.s.get(Client, rec.id)
            created = c is None
            if c is None:
                c = Client(id=rec.id, created_at=now)
            before_consent = c.consent if not created else None
            for k in ("name", "phone", "telegram", "lang", "tz", "country", "channel", "consent"):
                setattr(c, k, getattr(rec, k))
            if created or before_consent != rec.consent:
                c.consent_source = "practice" if rec.consent else "practice_withdrawn"
                c.consent_at = now
                store.audit(u.s, now, actor, "client", c.id, "consent", consent=rec.consent, source=c.consent_source)
            u.s.add(c)
            store.audit(u.s, now, actor, "client", c.id, "created" if created else "updated")
            return c

    def upsert_appointment(self, data: dict[str, Any], now: datetime, actor: str = "api") -> Appointment:
        rec: AppointmentIn = validate(AppointmentIn, data)
        with self.unit(now) as u:
            store.lock_client(u.s, rec.client)
            client = u.s.get(Client, rec.client)
            if client is None:
                raise RecordError("client", f"unknown client {rec.client!r}")
            if rec.clinician is not None and self.cfg.clinician(rec.clinician) is None and self.cfg.clinicians:
                raise RecordError("clinician", f"unknown clinician {rec.clinician!r}")
            a = u.s.get(Appointment, rec.id)
            clin = self.cfg.clinician(rec.clinician)
            minutes = rec.minutes or (clin.session_minutes if clin else 50)
            if a is None:
                a = Appointment(
                    id=rec.id,
                    client_id=rec.client,
                    clinician_id=rec.clinician,
                    start=rec.start,
                    minutes=minutes,
                    status="scheduled",
                    history=[],
                )
                self._status(u, a, client, "scheduled", actor)
                u.s.add(a)
                u.s.flush()
                self._schedule_reminders(u, a, client)
                return a
            if a.client_id != rec.client:
                raise RecordError("client", "an appointment cannot move to another client")
            a.clinician_id = rec.clinician if rec.clinician is not None else a.clinician_id
            a.minutes = rec.minutes or a.minutes
            if a.start != rec.start:
                a.start = rec.start
                a.confirmed = False
                self._status(u, a, client, "rescheduled", actor)
                self._schedule_reminders(u, a, client)
            u.s.add(a)
            return a

    def cancel_appointment(self, appointment_id: str, now: datetime, actor: str = "api") -> Appointment:
        with self.unit(now) as u:
            a = self._appointment_locked(u, appointment_id)
            client = u.s.get(Client, a.client_id)
            assert client is not None
            if a.status != "cancelled":
                self._cancel(u, a, client, actor)
                conv = store.active_conversation(u.s, client.id)
                if conv and conv.appointment_id == a.id:
                    self._end(u, conv, "appointment_cancelled")
            return a

    def mark_attendance(self, appointment_id: str, status: str, now: datetime, actor: str = "api") -> Appointment:
        if status not in ("attended", "missed"):
            raise RecordError("status", "expected attended or missed")
        with self.unit(now) as u:
            a = self._appointment_locked(u, appointment_id)
            client = u.s.get(Client, a.client_id)
            assert client is not None
            if a.status == status:
                return a
            if a.status == "cancelled":
                raise RecordError("status", "the appointment was cancelled")
            a.attended_at = now
            self._status(u, a, client, status, actor)
            self._drop_timers(u, a.id, ("reminder",), "attendance")
            if status == "attended":
                end = a.start + timedelta(minutes=a.minutes)
                self._timer(u, "feedback", client.id, a.id, max(end, now) + self.cfg.feedback.delay)
            else:
                self._timer(u, "missed_checkin", client.id, a.id, now + self.cfg.missed_session.delay)
            u.s.add(a)
            return a

    def _appointment_locked(self, u: Unit, appointment_id: str) -> Appointment:
        a = u.s.get(Appointment, appointment_id)
        if a is None:
            raise RecordError("id", f"unknown appointment {appointment_id!r}")
        store.lock_client(u.s, a.client_id)
        u.s.refresh(a)
        return a

    # -- inbound ------------------------------------------------------------------------------------

    def handle_inbound(self, inb: Inbound, now: datetime) -> str:
        """Process one inbound message. Returns what happened (for logs and metrics, never the text)."""
        with self.unit(now) as u:
            store.defer_writes(u.s)
            return self._inbound(u, inb)

    def handle_inbound_batch(self, batch: Sequence[tuple[Inbound, datetime]]) -> list[str]:
        """Several inbound messages in one transaction: the webhooks' group commit under load.

        They are taken in address order (stable, so one sender's messages keep their order). On
        PostgreSQL every client lock the batch needs is taken at its start, in one statement and in
        key order (_prepare_batch), so two batches cannot deadlock each other. If anything fails the
        whole batch is rolled back and each message is processed on its own, so a bad message costs
        only itself.
        """
        if len(batch) == 1:
            return [self.handle_inbound(*batch[0])]
        order = sorted(range(len(batch)), key=lambda i: (batch[i][0].channel, batch[i][0].address or ""))
        out = [""] * len(batch)
        try:
            with self.unit(batch[order[0]][1]) as u:
                store.defer_writes(u.s)
                u.batched = True
                # every provider id of the batch recorded in one statement; a message whose id was
                # there already, or came earlier in the batch, is a duplicate
                ids = [(inb.channel, inb.provider_id) for inb, _ in batch if inb.provider_id]
                fresh = store.mark_seen_many(u.s, ids, u.now)
                todo = []
                for i in order:
                    inb = batch[i][0]
                    if inb.provider_id:
                        key = (inb.channel, inb.provider_id)
                        if key not in fresh:
                            out[i] = "duplicate"
                            continue
                        fresh.discard(key)
                    todo.append(i)
                if store.is_postgres(u.s):
                    self._prepare_batch(u, [batch[i][0] for i in todo], min((batch[i][1] for i in todo), default=u.now))
                for i in todo:
                    u.now = batch[i][1]
                    out[i] = self._inbound(u, batch[i][0], seen=True)
        except Exception as e:
            log.warning("a batch of %d inbound messages failed (%s): one at a time", len(batch), type(e).__name__)
            return [self.handle_inbound(inb, now) for inb, now in batch]
        return out

    def _inbound(self, u: Unit, inb: Inbound, *, seen: bool = False) -> str:
        """One inbound message; ``seen``: its provider id is already recorded as new (a batch)."""
        s = u.s
        if inb.provider_id and not seen and not store.mark_seen(s, inb.channel, inb.provider_id, u.now):
            return "duplicate"
        channel, address = _split_address(inb)
        staff = alerts.staff_member(self.cfg, channel, address) if inb.client_id is None else None
        if staff is not None:
            self._record_in(u, None, channel, inb, address=f"staff:{staff.name}")
            return alerts.staff_command(self, u, staff, channel, inb.text)
        ctx = self._locked_context(u, inb, channel, address)
        client = ctx.client if ctx else None
        self._record_in(u, client, channel, inb, address=address)

        # 3. safety first, for everyone, in every state
        scan = safety.scan(inb.text, client.lang if client else None)
        if scan.crisis:
            alerts.on_crisis(self, u, client, channel, address, inb.text, scan)
            return "crisis"

        if client is None:
            if keyword(inb.text, channel, False) != "opt_out":
                lang = alerts.lang_for_address(self, address)
                self._send_text(
                    u,
                    None,
                    self._render(lang, "help.unknown_sender", {}, self.cfg.default_tz),
                    channel=channel,
                    to=inb.address or address or "",
                    dialogue="help",
                    step="unknown_sender",
                    priority=PRIORITY_REPLY,
                )
            return "unknown_sender"

        # 4. carrier keywords, honoured in any state
        kw = keyword(inb.text, channel, client.opted_out)
        conv = None
        if kw is None and not client.opted_out:
            conv = ctx.conversation if ctx else None
            context = conv.wait["expects"] if conv and conv.wait else "none"
            parsed = self._parse(inb.text, client, context, u.now)
            if parsed.intent in ("opt_out", "opt_in", "help"):
                kw = parsed.intent if parsed.intent != "opt_in" else None
        else:
            parsed = None
        if kw == "opt_out":
            self._opt_out(u, client, "client")
            return "opt_out"
        if kw == "opt_in":
            if client.opted_out:
                self._opt_in(u, client)
                return "opt_in"
            kw = "help"
        if kw == "help":
            self._start(u, client, "help", automated=False)
            return "help"
        # 5. an open alert: a person answers, not the scripts (opted out or not)
        assert ctx is not None  # a client was found
        alert = s.get(Alert, ctx.alert_id) if ctx.alert_id is not None else None
        held = ctx.taken_over
        if alert is not None:
            alerts.forward(self, u, alert, client, inb.text)
            return "forwarded"
        if client.opted_out:
            return "opted_out"
        # 5b. a person took the conversation over in the admin: recorded above, the scripts stay quiet
        if held:
            return "taken_over"

        # 6-8. understand, resume or start, act
        assert parsed is not None  # and conv was looked up with it
        if parsed.intent == "human":
            self._start(u, client, "human", automated=False, appt=self._conv_appt(u, conv, client), active=conv)
            return "human"
        if conv is not None and conv.wait:
            state = _state(conv)
            appt = self._conv_appt(u, conv, client)
            try:
                sprint = self._sprint(
                    u, client, appt, lambda ctx: self.engine.resume(state, Reply(inb.text, parsed), ctx)
                )
            except Rejected:
                log.warning("conversation %s rejected a reply", conv.id)
                return "rejected"
            self._apply(u, client, conv, appt, sprint, automated=False)
            return "resumed"
        return self._route_new(u, client, parsed, conv, ctx.appointment)

    def _locked_context(
        self, u: Unit, inb: Inbound, channel: str, address: str | None
    ) -> store.InboundContext | None:
        """The client's lock taken and everything this message reads about the client, in one
        statement (store.inbound_context): by the id the adapter gave, else by address.

        On PostgreSQL the context is read after the lock, since another process may have changed
        it while we waited; SQLite's writers are serialised by the transaction itself, so the
        context is read by address directly, one statement fewer."""
        s = u.s
        if not store.is_postgres(s):
            ctx = self._context(u, client_id=inb.client_id) if inb.client_id else None
            if ctx is None and address:
                ctx = self._context(u, channel=channel, address=address)
            return ctx
        cid = inb.client_id
        if cid is not None:
            self._lock(u, cid)
            ctx = self._context(u, client_id=cid)
            if ctx is not None:
                return ctx
        if not address:
            cid = None
        elif (channel, address) in u.client_ids:
            cid = u.client_ids[(channel, address)]
        else:
            cid = store.client_id_by_address(s, channel, address)
        self._lock(u, cid or f"addr:{address}")
        return self._context(u, client_id=cid) if cid else None

    def _lock(self, u: Unit, client_key: str) -> None:
        if store.lock_key(client_key) not in u.locked:
            store.lock_client(u.s, client_key)

    def _prepare_batch(self, u: Unit, inbs: Sequence[Inbound], earliest: datetime) -> None:
        """PostgreSQL: the ids the batch's addresses belong to, one statement a channel; every
        client lock its messages will take, in one statement (store.lock_clients); then, under
        those locks, every sender's context in one statement: four round trips for the batch
        instead of three a message while it holds its transaction open. Nothing in an inbound
        batch changes a client's address (Telegram ties chats in transactions of their own), so
        the ids read here stay the ones _locked_context would read; a context is used only while
        it is still what a read would give (_prefetched)."""
        addresses: dict[str, set[str]] = {}
        ids: list[str] = []  # the clients whose contexts are read
        unknown: list[str] = []  # addresses no client has: locked by address
        for inb in inbs:
            channel, address = _split_address(inb)
            if inb.client_id is not None:
                ids.append(inb.client_id)
            elif address and alerts.staff_member(self.cfg, channel, address) is None:
                addresses.setdefault(channel, set()).add(address)
        for channel, found in addresses.items():
            for address, cid in store.client_ids_by_address(u.s, channel, found).items():
                u.client_ids[(channel, address)] = cid
                if cid:
                    ids.append(cid)
                else:
                    unknown.append(f"addr:{address}")
        u.locked = store.lock_clients(u.s, [*ids, *unknown])
        store.track_touched(u.s)
        u.prefetched = store.inbound_context_rows(u.s, earliest, ids)

    def _prefetched(self, u: Unit, client_id: str) -> store.InboundContext | None:
        """The client's context as read at the batch's start, if it stands for a read now: nothing
        this transaction did since wrote to the client's rows (pending or flushed), and their next
        appointment has not started in between (store.context_of_row). Used once: a second message
        from the client reads again."""
        row = u.prefetched.pop(client_id)
        if client_id in store.touched(u.s) or store.has_pending(u.s, client_id):
            return None
        return store.context_of_row(u.s, row, u.now)

    def _context(
        self, u: Unit, *, client_id: str | None = None, channel: str = "", address: str = ""
    ) -> store.InboundContext | None:
        """store.inbound_context, without flushing the earlier messages of a batch first.

        A context is one client's rows, so what other clients' messages changed cannot alter it:
        their changes are written together when the batch commits (or by the next query that
        needs them) instead of one flush a message, the largest cost of a batch after the reads.
        When this client has unflushed changes of its own (a second message from them in the batch,
        another client's cancellation offering them a slot) everything is flushed and the context
        read again. The read by id re-reads the rows (populate_existing), which would overwrite
        unflushed changes, so for it the check comes first."""
        s = u.s
        if client_id is not None and client_id in u.prefetched:
            ctx = self._prefetched(u, client_id)
            if ctx is not None:
                return ctx
        if not u.batched:
            return store.inbound_context(s, u.now, client_id=client_id, channel=channel, address=address)
        if client_id is not None and store.has_pending(s, client_id):
            s.flush()
        with s.no_autoflush:
            ctx = store.inbound_context(s, u.now, client_id=client_id, channel=channel, address=address)
        # None: a client row not yet flushed could be the one this address belongs to
        if store.has_pending(s, ctx.client.id if ctx else None):
            s.flush()
            ctx = store.inbound_context(s, u.now, client_id=client_id, channel=channel, address=address)
        return ctx

    def _route_new(
        self, u: Unit, client: Client, parsed: Parse, conv: Conversation | None, appt: Appointment | None
    ) -> str:
        """A message with nothing pending: act on the client's next appointment (``appt``), or explain."""
        intent = parsed.intent
        if intent == "reschedule" and appt is None:
            # Nothing ahead, but a session was just missed or called off: book a new one from it.
            appt = store.last_lapsed_appointment(u.s, client.id, u.now - REBOOK_WINDOW)
        if intent in ("confirm", "cancel", "reschedule") and appt is None:
            self._start(u, client, "help", step="no_appointment", automated=False, active=conv)
            return "no_appointment"
        if intent == "confirm":
            self._start(u, client, "appointment_reminder", step="confirmed", appt=appt, automated=False, active=conv)
        elif intent == "cancel":
            self._start(u, client, "appointment_reminder", step="cancelled", appt=appt, automated=False, active=conv)
        elif intent == "reschedule":
            self._start(
                u,
                client,
                "reschedule",
                appt=appt,
                automated=False,
                vars={"when": parsed.when} if parsed.when else None,
                active=conv,
            )
        else:
            self._start(u, client, "help", step="fallback", automated=False, active=conv)
            return "fallback"
        return intent

    def _parse(self, text: str, client: Client, context: str, now: datetime) -> Parse:
        return self.parse(text, client.lang, context, now.astimezone(ZoneInfo(client.tz)), client.tz)

    def _record_in(self, u: Unit, client: Client | None, channel: str, inb: Inbound, address: str | None) -> None:
        store.add_message(
            u.s,
            client_id=client.id if client else None,
            address=None if client else address,
            direction="in",
            channel=channel,
            body=inb.text,
            provider_id=inb.provider_id,
            status="received",
            created_at=u.now,
        )

    # -- consent and opt-out ------------------------------------------------------------------------

    def _opt_out(self, u: Unit, client: Client, actor: str) -> None:
        conv = store.active_conversation(u.s, client.id)
        if conv:
            self._end(u, conv, "opt_out")
        was = client.opted_out
        client.opted_out = True
        client.opted_out_at = u.now
        # Opting out withdraws consent to automated messages; opting back in gives it again.
        client.consent = False
        client.consent_source = "client_opt_out"
        client.consent_at = u.now
        u.s.add(client)
        store.audit(
            u.s, u.now, f"{actor}:{client.id}" if actor == "client" else actor, "client", client.id, "opted_out"
        )
        if not was:
            # The one message the carrier rules allow after STOP: a confirmation.
            self._start(u, client, "opt_out", automated=False, force=True)

    def _opt_in(self, u: Unit, client: Client) -> None:
        client.opted_out = False
        client.opted_out_at = None
        client.consent = True
        client.consent_source = "client_opt_in"
        client.consent_at = u.now
        u.s.add(client)
        store.audit(u.s, u.now, f"client:{client.id}", "client", client.id, "opted_in")
        self._start(u, client, "opt_in", automated=False)

    def opt_out_by_provider(self, channel: str, address: str, now: datetime, reason: str) -> None:
        """Twilio 21610 or Telegram 403: the provider tells us this client refuses us."""
        with self.unit(now) as u:
            client = store.client_by_address(u.s, channel, address)
            if client is None:
                return
            store.lock_client(u.s, client.id)
            u.s.refresh(client)
            if client.channel == channel and not client.opted_out:
                client.opted_out = True
                client.opted_out_at = now
                u.s.add(client)
                store.audit(u.s, now, f"provider:{channel}", "client", client.id, "opted_out", reason=reason)

    # -- timers -------------------------------------------------------------------------------------

    def fire_due(self, now: datetime, limit: int = 500) -> int:
        """Fire every timer due at ``now`` (each in its own transaction). Returns how many fired."""
        n = 0
        busy: set[int] = set()
        while n < limit:
            r = self.fire_one(now, skip=busy)
            if r is None:
                break
            n += r
        return n

    def fire_one(self, now: datetime, *, at_due_time: bool = False, skip: set[int] | None = None) -> int | None:
        """Claim and fire the earliest due timer: 1 when one fired, 0 when the one found was busy,
        None when nothing is due. With ``at_due_time`` the unit's clock is the timer's own due time
        (the simulator's virtual clock); otherwise ``now``.

        The timer row is claimed first (SKIP LOCKED), then the client's lock is only *tried*: an
        inbound message for the same client holds that lock and may touch this timer's row, so
        waiting here could deadlock. A busy timer is skipped for this round and retried at the next.
        """
        skip = skip if skip is not None else set()
        with self.unit(now) as u:
            t = store.next_due_timer(u.s, now, exclude=skip)
            if t is None:
                return None
            assert t.id is not None
            if at_due_time:
                u.now = t.due_at
            if t.client_id and not store.try_lock_client(u.s, t.client_id):
                skip.add(t.id)
                return 0
            outcome = self._fire(u, t)
            if outcome != "rescheduled":
                t.done = True
                t.outcome = outcome
            u.s.add(t)
            return 1

    def _fire(self, u: Unit, t: Timer) -> str:
        if t.kind == "wait_timeout":
            return self._fire_wait_timeout(u, t)
        if t.kind == "alert_escalation":
            return alerts.escalate(self, u, t)
        if t.kind in TRIGGERS:
            return self._fire_trigger(u, t)
        if t.kind == waitlist.TIMER_KIND:
            return waitlist.fire_timer(self, u, t)
        log.error("unknown timer kind %s", t.kind)
        return "unknown_kind"

    def _fire_wait_timeout(self, u: Unit, t: Timer) -> str:
        conv = u.s.get(Conversation, t.payload.get("conversation"))
        if conv is None or not conv.active or not conv.wait:
            return "stale"
        if conv.wait.get("timeout_at") != t.payload.get("timeout_at"):
            return "stale"
        return "fired" if self._expire(u, conv) else "stale"

    def _expire(self, u: Unit, conv: Conversation) -> bool:
        """Time a waiting conversation out (its wait has passed). False if the engine refuses."""
        assert conv.wait is not None
        client = u.s.get(Client, conv.client_id)
        assert client is not None
        appt = self._conv_appt(u, conv, client)
        try:
            timeout = WaitTimeout(datetime.fromisoformat(conv.wait["timeout_at"]))
            state = _state(conv)
            sprint = self._sprint(u, client, appt, lambda ctx: self.engine.resume(state, timeout, ctx))
        except Rejected:
            return False
        self._apply(u, client, conv, appt, sprint, automated=True)
        if conv.active and conv.wait is None:
            self._end(u, conv, "timeout")
        return True

    def _fire_trigger(self, u: Unit, t: Timer) -> str:
        s = u.s
        client = s.get(Client, t.client_id)
        appt = s.get(Appointment, t.appointment_id) if t.appointment_id else None
        if client is None or appt is None:
            return "stale"
        dialogue = TRIGGERS[t.kind]
        is_reminder = t.kind == "reminder"
        if is_reminder and (appt.status not in store.UPCOMING or _start_of(t) != appt.start):
            return "stale"
        if t.kind == "feedback" and appt.status != "attended":
            return "stale"
        if t.kind == "missed_checkin" and appt.status != "missed":
            return "stale"

        def held(reason: str, until: datetime | None = None) -> str:
            self._held(u, client, dialogue, reason, until)
            if until is not None:
                t.due_at = until
                t.payload = {**t.payload, "held": reason}
                return "rescheduled"
            return f"held:{reason}"

        if client.opted_out:
            return held("opted_out")
        if not client.consent:
            return held("no_consent")
        if is_reminder and u.now >= appt.start:
            return held("past_start")
        alert = store.open_alert(s, client.id)
        if alert is not None and not is_reminder:
            return held("crisis_pause")
        until = quiet_until(u.now, client.tz, self.cfg.quiet_hours.start, self.cfg.quiet_hours.end)
        if until is not None:
            if is_reminder and until >= appt.start:
                return held("past_start")
            return held("quiet_hours", until)
        conv = store.active_conversation(s, client.id)
        if conv is not None and conv.wait and datetime.fromisoformat(conv.wait["timeout_at"]) <= u.now:
            # Its wait has passed but its timer has not fired yet: time it out first, here.
            self._expire(u, conv)
            conv = store.active_conversation(s, client.id)
        if conv is not None and conv.wait:
            # Mid-conversation: wait for it to end (ConversationEnded wakes us) or to time out.
            t.due_at = datetime.fromisoformat(conv.wait["timeout_at"])
            t.payload = {**t.payload, "deferred": True}
            return "rescheduled"
        if self._capped(u, client):
            return held("cap")
        step = None
        if is_reminder and (appt.confirmed or alert is not None):
            step = "notice"
        self._start(u, client, dialogue, step=step, appt=appt, automated=True)
        return "fired"

    def _capped(self, u: Unit, client: Client) -> bool:
        lim = self.cfg.limits
        day = store.count_automated(u.s, client.id, u.now - timedelta(days=1))
        week = store.count_automated(u.s, client.id, u.now - timedelta(weeks=1))
        return day >= lim.per_day or week >= lim.per_week

    def _held(self, u: Unit, client: Client, dialogue: str, reason: str, until: datetime | None) -> None:
        u.s.add(
            Message(
                client_id=client.id,
                direction="out",
                channel=client.channel,
                body="",
                dialogue=dialogue,
                automated=True,
                status="held",
                reason=reason,
                created_at=u.now,
            )
        )
        data: dict[str, Any] = {"to": client.id, "reason": reason, "dialogue": dialogue}
        if until is not None:
            data["until"] = until
        u.note("held", client.tz, **data)

    def _timer(
        self, u: Unit, kind: str, client_id: str | None, appointment_id: str | None, due: datetime, **payload: Any
    ) -> Timer:
        t = new_row(
            Timer,
            kind=kind,
            client_id=client_id,
            appointment_id=appointment_id,
            due_at=due,
            payload=payload,
            created_at=u.now,
        )
        u.s.add(t)
        return t

    def _drop_timers(self, u: Unit, appointment_id: str, kinds: tuple[str, ...], why: str) -> None:
        for t in store.pending_timers(u.s, appointment_id=appointment_id, kinds=kinds):
            t.done = True
            t.outcome = f"dropped:{why}"
            u.s.add(t)

    def _schedule_reminders(self, u: Unit, a: Appointment, client: Client, *, catch_up: bool = True) -> None:
        """Reminders at each offset before the start. Offsets already past: the latest goes now."""
        self._drop_timers(u, a.id, ("reminder",), "rescheduled")
        if a.start <= u.now:
            return
        dues = sorted(((a.start - off, off) for off in self.cfg.reminders.offsets), key=lambda x: x[0])
        past = [d for d in dues if d[0] <= u.now]
        for due, off in dues:
            if due > u.now:
                self._timer(u, "reminder", client.id, a.id, due, start=a.start.isoformat(), offset=str(off))
        if past and catch_up:
            self._timer(u, "reminder", client.id, a.id, u.now, start=a.start.isoformat(), offset=str(past[-1][1]))

    # -- conversations ------------------------------------------------------------------------------

    def _start(
        self,
        u: Unit,
        client: Client,
        dialogue: str,
        *,
        step: str | None = None,
        appt: Appointment | None = None,
        automated: bool,
        vars: dict[str, Any] | None = None,
        force: bool = False,
        active: Conversation | _Unknown | None = UNKNOWN,
    ) -> None:
        old = store.active_conversation(u.s, client.id) if isinstance(active, _Unknown) else active
        one_shot = dialogue == "help" and step in (None, "help")
        if old is not None and not one_shot:
            self._end(u, old, "replaced")
        sprint = self._sprint(u, client, appt, lambda ctx: self.engine.start(dialogue, ctx, vars=vars, step=step))
        conv = new_row(
            Conversation,
            client_id=client.id,
            dialogue=dialogue,
            step=step or "",
            active=True,
            appointment_id=appt.id if appt else None,
            started_at=u.now,
            updated_at=u.now,
        )
        if any(isinstance(e, (ev.WaitStarted, ev.HandoffRequested)) for e in sprint.events):
            u.s.add(conv)
            u.s.flush()  # their rows name the conversation
        elif sprint.state is not None:
            u.s.add(conv)
        # else it ends in this unit: _end writes it once, in its final state, outside the ORM
        self._apply(u, client, conv, appt, sprint, automated=automated, force=force)

    def _apply(
        self,
        u: Unit,
        client: Client,
        conv: Conversation,
        appt: Appointment | None,
        sprint: Sprint,
        *,
        automated: bool,
        force: bool = False,
    ) -> None:
        first = True
        for e in sprint.events:
            if isinstance(e, ev.MessageOut):
                params = dict(e.params)
                text = self._render(client.lang, e.msg_id, params, client.tz, name=client.name)
                self._send_client(
                    u,
                    client,
                    text,
                    e.dialogue,
                    e.step,
                    automated=automated and first,
                    buttons=tuple(
                        self._render(client.lang, f"button.{b}", {}, client.tz) if not b.isdigit() else b
                        for b in e.buttons
                    ),
                    force=force,
                )
                first = False
            elif isinstance(e, ev.WaitStarted):
                assert conv.id is not None
                self._timer(
                    u,
                    "wait_timeout",
                    client.id,
                    conv.appointment_id,
                    e.timeout_at,
                    conversation=conv.id,
                    timeout_at=e.timeout_at.isoformat(),
                )
            elif isinstance(e, ev.AppointmentConfirmed):
                a = u.s.get(Appointment, e.appointment_id)
                if a is not None and a.status in store.UPCOMING:
                    if not a.confirmed:  # a second "yes" leaves the row clean: nothing for the flush
                        a.confirmed = True
                    if a.status != "confirmed":
                        self._status(u, a, client, "confirmed", f"client:{client.id}")
            elif isinstance(e, ev.AppointmentCancelled):
                a = u.s.get(Appointment, e.appointment_id)
                if a is not None and a.status != "cancelled":
                    self._cancel(u, a, client, f"client:{client.id}")
            elif isinstance(e, ev.RescheduleRequested):
                a = u.s.get(Appointment, e.appointment_id)
                if a is not None and a.status in store.UPCOMING:
                    self._status(u, a, client, "reschedule_requested", f"client:{client.id}", when=e.when)
            elif isinstance(e, ev.AppointmentMoved):
                a = u.s.get(Appointment, e.appointment_id)
                if a is not None:
                    a.start = e.start
                    a.confirmed = True  # the client picked this time themselves
                    self._status(u, a, client, "rescheduled", f"client:{client.id}")
                    self._schedule_reminders(u, a, client, catch_up=False)
            elif isinstance(e, ev.AppointmentBooked):
                new = Appointment(
                    id=self._new_appointment_id(u, e.from_appointment_id),
                    client_id=client.id,
                    clinician_id=e.clinician_id,
                    start=e.start,
                    minutes=e.minutes,
                    status="scheduled",
                    confirmed=True,
                    history=[],
                )
                self._status(u, new, client, "scheduled", f"client:{client.id}", rebooked_from=e.from_appointment_id)
                u.s.add(new)
                u.s.flush()
                conv.appointment_id = new.id
                self._schedule_reminders(u, new, client, catch_up=False)
            elif isinstance(e, ev.FeedbackRecorded):
                a = u.s.get(Appointment, e.appointment_id) if e.appointment_id else None
                u.s.add(
                    Feedback(
                        client_id=client.id,
                        appointment_id=e.appointment_id,
                        clinician_id=a.clinician_id if a else None,
                        rating=e.rating,
                        takeaway=e.takeaway,
                        leave_behind=e.leave_behind,
                        created_at=u.now,
                    )
                )
            elif isinstance(e, ev.HandoffRequested):
                store.audit(u.s, u.now, f"client:{client.id}", "conversation", str(conv.id), "handoff", reason=e.reason)
        state = sprint.state
        if state is None:
            self._end(u, conv, "done")
        else:
            conv.dialogue = state.dialogue
            conv.step = state.step
            conv.vars = dict(state.vars)
            conv.wait = state.wait.to_json() if state.wait else None
            conv.updated_at = u.now
            u.s.add(conv)

    def _end(self, u: Unit, conv: Conversation, why: str) -> None:
        if not conv.active:
            return
        conv.active = False
        conv.wait = None
        conv.ended_at = u.now
        conv.ended_by = why
        if conv.id is None:
            # Started and ended in this unit without ever waiting (_start flushes any that waits), so
            # it has no wait timer and deferred no prompt: nothing to release. One the session does not
            # track (_start kept it out) is written here, once.
            if conv not in u.s:
                store.add_finished_conversation(u.s, conv)
            return
        u.s.add(conv)
        for t in store.pending_timers(u.s, client_id=conv.client_id, kinds=("wait_timeout", *TRIGGERS)):
            if t.kind == "wait_timeout":
                if t.payload.get("conversation") == conv.id:
                    t.done = True
                    t.outcome = f"ended:{why}"
                    u.s.add(t)
            elif t.payload.get("deferred") and t.due_at > u.now:
                # A prompt that came due mid-conversation goes now that it is over.
                t.due_at = u.now
                u.s.add(t)

    def _conv_appt(self, u: Unit, conv: Conversation | None, client: Client) -> Appointment | None:
        if conv is not None and conv.appointment_id:
            return u.s.get(Appointment, conv.appointment_id)
        return store.next_appointment(u.s, client.id, u.now)

    def _sprint(self, u: Unit, client: Client, appt: Appointment | None, call: Callable[[Ctx], Sprint]) -> Sprint:
        """Run an engine call; look the clinician's bookings up only if the sprint asks for them."""
        try:
            return call(self._ctx(u, client, appt, with_availability=False))
        except NeedsAvailability:
            return call(self._ctx(u, client, appt, with_availability=True))

    def _ctx(self, u: Unit, client: Client, appt: Appointment | None, *, with_availability: bool) -> Ctx:
        view = None
        avail = None
        if appt is not None:
            view = AppointmentView(appt.id, appt.start, appt.minutes, appt.status, appt.clinician_id, appt.confirmed)
            clin = self.cfg.clinician(appt.clinician_id)
            if with_availability and clin is not None and any(clin.availability.values()):
                horizon = self.cfg.conversation.slot_horizon
                booked = tuple(
                    (start, start + timedelta(minutes=minutes))
                    for start, minutes in store.clinician_bookings(
                        u.s, clin.id if appt.clinician_id else None, u.now, u.now + horizon
                    )
                )
                avail = Availability(clin.tz, clin.session_minutes, clin.availability, booked)
        return Ctx(
            now=u.now,
            tz=client.tz,
            appointment=view,
            availability=avail,
            availability_loaded=with_availability,
            durations=self.durations,
        )

    def _new_appointment_id(self, u: Unit, base: str) -> str:
        n = 2
        while u.s.get(Appointment, f"{base}-{n}") is not None:
            n += 1
        return f"{base}-{n}"

    # -- appointments -------------------------------------------------------------------------------

    def _status(self, u: Unit, a: Appointment, client: Client, status: str, actor: str, **detail: Any) -> None:
        prev = a.status if a.history else None
        previous = a.history[-1] if a.history else None
        a.status = status
        a.history = [
            *a.history,
            {
                "at": u.now.isoformat(),
                "status": status,
                "start": a.start.isoformat(),
                "by": actor,
                **{k: v for k, v in detail.items() if v is not None},
            },
        ]
        u.s.add(a)
        store.audit(
            u.s, u.now, actor, "appointment", a.id, "status", previous=prev, status=status, start=a.start.isoformat()
        )
        u.note("appointment", client.tz, id=a.id, status=status, start=a.start)
        writeback.on_status(self.cfg.writeback, u, a, status, actor, previous)
        waitlist.on_status(self, u, a, status, previous)

    def _cancel(self, u: Unit, a: Appointment, client: Client, actor: str) -> None:
        self._status(u, a, client, "cancelled", actor)
        self._drop_timers(u, a.id, ("reminder", "feedback", "missed_checkin"), "cancelled")

    # -- sending ------------------------------------------------------------------------------------

    def _render(self, lang: str, msg_id: str, params: dict[str, Any], tz: str, name: str = "") -> str:
        lang = self.scripts.pick_lang(lang, self.cfg.fallback_language)
        practice = self.cfg.practice_name or self.scripts.text(lang, "practice.default")
        full = {"name": name or "", "practice": practice, **params}
        return self.scripts.render(lang, msg_id, full, tz)

    def _send_client(
        self,
        u: Unit,
        client: Client,
        text: str,
        dialogue: str,
        step: str,
        *,
        automated: bool,
        buttons: tuple[str, ...] = (),
        priority: int | None = None,
        force: bool = False,
        channel: str | None = None,
    ) -> None:
        ch = channel or client.channel
        if ch == "telegram" and not client.telegram and client.phone:
            ch = "sms"
        to = (client.telegram if ch == "telegram" else client.phone) or client.id
        prio = priority if priority is not None else (PRIORITY_AUTOMATED if automated else PRIORITY_REPLY)
        self._send_text(
            u,
            client,
            text,
            channel=ch,
            to=to,
            dialogue=dialogue,
            step=step,
            automated=automated,
            priority=prio,
            buttons=buttons,
            note_to=client.id,
        )

    def _send_text(
        self,
        u: Unit,
        client: Client | None,
        text: str,
        *,
        channel: str,
        to: str,
        dialogue: str,
        step: str,
        priority: int,
        automated: bool = False,
        buttons: tuple[str, ...] = (),
        note_to: str | None = None,
        reason: str | None = None,
    ) -> Sent:
        m = Sent(
            store.add_outbound(
                u.s,
                {
                    "client_id": client.id if client else None,
                    "address": None if client else (note_to or to),
                    "direction": "out",
                    "channel": channel,
                    "body": text,
                    "dialogue": dialogue,
                    "step": step,
                    "automated": automated,
                    "status": "queued",
                    "reason": reason or (f"{dialogue}.{step}"),
                    "created_at": u.now,
                },
                {
                    "channel": channel,
                    "to": to,
                    "body": text,
                    "priority": priority,
                    "next_attempt_at": u.now,
                    "buttons": list(buttons) or None,
                    "created_at": u.now,
                },
            )
        )
        u.note(
            "message",
            client.tz if client else None,
            to=note_to or to,
            channel=channel,
            text=text,
            dialogue=dialogue,
            step=step,
        )
        u.wake_outbox = True
        return m

    # -- alerts (bot/alerts.py holds the logic; these are the public entry points) -------------------

    def ack_alert(self, alert_id: int | None, by: str, now: datetime, client_id: str | None = None) -> list[Alert]:
        with self.unit(now) as u:
            return alerts.ack(self, u, alert_id, by, client_id)

    def resolve_alert(self, alert_id: int | None, by: str, now: datetime, client_id: str | None = None) -> list[Alert]:
        with self.unit(now) as u:
            return alerts.resolve(self, u, alert_id, by, client_id)


def _start_of(t: Timer) -> datetime | None:
    v = t.payload.get("start")
    return datetime.fromisoformat(v) if isinstance(v, str) else None


def _state(conv: Conversation) -> State:
    return State(conv.dialogue, conv.step, dict(conv.vars), Wait.from_json(conv.wait) if conv.wait else None)


def _split_address(inb: Inbound) -> tuple[str, str | None]:
    """``telegram:<chat>`` in an address means the Telegram channel whatever the adapter said."""
    addr = inb.address
    if addr and addr.startswith("telegram:"):
        return "telegram", addr.split(":", 1)[1]
    return inb.channel, addr
