"""Telegram through python-telegram-bot 22 (async): updates in, messages out, chats tied to clients.

An update becomes one of: an inbound message (text, a caption, a pressed inline button), a
channel event (the bot was blocked -> opted out; a chat tied to a client by a ``/start <token>``
deep link or by sharing the contact whose phone matches a client), or nothing (stickers, photos
without a caption, edits that are not a crisis). Each ``update_id`` is handled once.

Deep links are signed (HMAC), expire, and work once. ``issue_link`` records each one in the audit
log (who it is for, until when); the token carries only a nonce, the expiry and the signature, so it
fits Telegram's 64-character ``start`` parameter whatever the client id.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import struct
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import phonenumbers
from sqlalchemy.engine import Engine as DbEngine
from sqlmodel import Session, col, select
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.warnings import PTBDeprecationWarning

from channels.base import Inbound, Outbound, SendResult
from storage import store
from storage.tables import AuditLog, Client, InboundSeen, Message, Outbox

if TYPE_CHECKING:
    from bot.service import Service

log = logging.getLogger("rapport.channels.telegram")

ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
LINK_ENTITY = "telegram_link"
SEEN_LINK = "telegram_link"  # InboundSeen channel for spent link nonces
MAX_TEXT = 4096
# Shown on the share-contact button for chats not tied to a client yet.
SHARE_LABEL = {"en": "Share my phone number", "pt": "Compartilhar meu número", "es": "Compartir mi número"}


@dataclass(frozen=True)
class Throttled(SendResult):
    """Telegram said 429: try again, not before ``retry_after`` seconds."""

    retry_after: float | None = None


# -- deep links -----------------------------------------------------------------------------------

_NONCE = 12
_MAC = 12


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _mac(key: bytes, nonce: bytes, exp: int, client_id: str) -> bytes:
    return hmac.new(key, nonce + struct.pack(">I", exp) + client_id.encode(), hashlib.sha256).digest()[:_MAC]


def issue_link(db: DbEngine, key: bytes, client_id: str, now: datetime, ttl: timedelta, actor: str = "cli") -> str:
    """A single-use ``/start`` token for one client, valid for ``ttl``. Raises LookupError if unknown."""
    import secrets

    nonce = secrets.token_bytes(_NONCE)
    exp = int((now + ttl).timestamp())
    with Session(db) as s:
        if s.get(Client, client_id) is None:
            raise LookupError(client_id)
        store.audit(
            s,
            now,
            actor,
            LINK_ENTITY,
            _b64(nonce),
            "issued",
            client=client_id,
            expires=datetime.fromtimestamp(exp, UTC).isoformat(),
        )
        s.commit()
    return _b64(nonce + struct.pack(">I", exp) + _mac(key, nonce, exp, client_id))


class LinkError(Exception):
    pass


def _redeem(s: Session, key: bytes, token: str, now: datetime) -> str:
    """The client a token is for, spending it. Raises LinkError (bad, expired, spent)."""
    try:
        raw = _unb64(token)
    except (ValueError, TypeError):
        raise LinkError("malformed") from None
    if len(raw) != _NONCE + 4 + _MAC:
        raise LinkError("malformed")
    nonce, exp, mac = raw[:_NONCE], struct.unpack(">I", raw[_NONCE : _NONCE + 4])[0], raw[_NONCE + 4 :]
    row = s.exec(
        select(AuditLog).where(
            AuditLog.entity == LINK_ENTITY, AuditLog.entity_id == _b64(nonce), AuditLog.action == "issued"
        )
    ).first()
    client_id = str(row.detail.get("client", "")) if row else ""
    if not hmac.compare_digest(mac, _mac(key, nonce, exp, client_id)) or not client_id:
        raise LinkError("bad signature")
    if now.timestamp() > exp:
        raise LinkError("expired")
    if s.get(InboundSeen, (SEEN_LINK, _b64(nonce))) is not None:
        raise LinkError("already used")
    s.add(InboundSeen(channel=SEEN_LINK, provider_id=_b64(nonce), at=now))
    return client_id


def normalize_phone(raw: str) -> str | None:
    v = raw.strip()
    if not v.startswith("+"):
        v = "+" + v
    try:
        n = phonenumbers.parse(v, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(n):
        return None
    return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)


# -- receiving ------------------------------------------------------------------------------------


def _check_readable(u: Update) -> None:
    """ValueError unless the parts ``handle`` reads have their types: PTB reads a missing or null
    object (``"chat": null``) as None and a text of another type as is."""

    def text_ok(v: Any) -> bool:
        return v is None or isinstance(v, str)

    for m in (u.message, u.edited_message):
        if m is None:
            continue
        if m.chat is None or not isinstance(m.chat.id, int):
            raise ValueError("message without a chat")
        if not (text_ok(m.text) and text_ok(m.caption)):
            raise ValueError("message text is not a string")
        if m.contact is not None and not isinstance(m.contact.phone_number, str):
            raise ValueError("contact without a phone number")
    cq = u.callback_query
    if cq is not None:
        chat = getattr(cq.message, "chat", None) if cq.message is not None else None
        who = chat if chat is not None else cq.from_user
        if who is None or not isinstance(who.id, int) or not text_ok(cq.data):
            raise ValueError("callback query without a chat or a sender")
    cm = u.my_chat_member
    if cm is not None and (
        cm.chat is None or cm.new_chat_member is None or not isinstance(cm.new_chat_member.status, str)
    ):
        raise ValueError("chat member update without a chat or a status")


class TelegramAdapter:
    """Turns updates into service calls. Database work runs in threads; PTB calls are awaited."""

    def __init__(
        self,
        bot: Bot,
        svc: Service,
        link_key: bytes | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        run: Callable[..., Awaitable[Any]] | None = None,
    ):
        self.bot = bot
        # How blocking database work runs off the loop (the web app passes its bounded runner).
        self.run: Callable[..., Awaitable[Any]] = run or asyncio.to_thread
        # Set by the web app to its group-commit batcher; without it each message is its own unit.
        self.inbound: Callable[[Inbound, datetime], Awaitable[str]] | None = None
        self.svc = svc
        self.link_key = link_key
        self.clock = clock
        self._background: set[asyncio.Task[Any]] = set()

    def parse(self, data: Any) -> Update:
        """A webhook body as an Update; ValueError when it is not one.

        An object with an ``update_id`` whose content PTB cannot read (a kind newer than the library,
        a field of an unexpected shape) is still an update: it is acknowledged and ignored, or
        Telegram would deliver it again and again.
        """
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("update_id"), int)
            or isinstance(data.get("update_id"), bool)
        ):
            raise ValueError("not a Telegram update")
        try:
            update = Update.de_json(data, self.bot)
            _check_readable(update)
            return update
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            log.warning("update %s unreadable (%s): ignored", data["update_id"], type(e).__name__)
            return Update(update_id=data["update_id"])

    async def handle(self, update: Update) -> str:
        """Act on one update. Returns what happened (for logs and metrics; never the text)."""
        uid = str(update.update_id)
        if update.callback_query is not None:
            return await self._callback(update, uid)
        if update.message is not None:
            m = update.message
            chat = str(m.chat.id)
            if m.contact is not None:
                return await self.run(
                    self._contact,
                    uid,
                    chat,
                    m.contact.phone_number,
                    m.contact.user_id,
                    m.from_user.id if m.from_user else None,
                )
            text = m.text or m.caption
            if not text or not text.strip():
                return await self.run(self._mark_seen, uid)
            parts = text.strip().split(maxsplit=1)
            if parts[0].split("@", 1)[0].lower() == "/start" and len(parts) == 2 and self.link_key:
                outcome = await self.run(self._link, uid, chat, parts[1].strip())
                if outcome != "link_failed":
                    return outcome
            return await self._inbound(Inbound("telegram", text, address=chat, provider_id=uid))
        if update.edited_message is not None:
            m = update.edited_message
            text = m.text or m.caption or ""
            # An edit is not a new answer, but what it says still matters: a crisis is always heard.
            if text.strip() and await self.run(_is_crisis, text):
                return await self._inbound(Inbound("telegram", text, address=str(m.chat.id), provider_id=uid))
            return await self.run(self._mark_seen, uid)
        if update.my_chat_member is not None:
            cm = update.my_chat_member
            if cm.new_chat_member.status in ("kicked", "left"):
                now = self.clock()
                await self.run(self.svc.opt_out_by_provider, "telegram", str(cm.chat.id), now, "blocked the bot")
                return "blocked"
            return "member_update"
        return "ignored"

    async def _inbound(self, inb: Inbound) -> str:
        if self.inbound is not None:
            return await self.inbound(inb, self.clock())
        return await self.run(self.svc.handle_inbound, inb, self.clock())

    async def _callback(self, update: Update, uid: str) -> str:
        cq = update.callback_query
        assert cq is not None
        try:
            chat = str(cq.message.chat.id) if cq.message is not None else str(cq.from_user.id)
            data = (cq.data or "").strip()
            if data:
                outcome = await self._inbound(Inbound("telegram", data, address=chat, provider_id=uid))
            else:
                outcome = await self.run(self._mark_seen, uid)
        finally:
            # Every callback query is answered, or the client's button spins until it times out.
            try:
                await self.bot.answer_callback_query(cq.id)
            except TelegramError as e:
                log.warning("answering a callback query failed: %s", type(e).__name__)
        return outcome

    def _mark_seen(self, uid: str) -> str:
        with Session(self.svc.db) as s:
            if s.get(InboundSeen, ("telegram", uid)) is not None:
                return "duplicate"
            s.add(InboundSeen(channel="telegram", provider_id=uid, at=self.clock()))
            s.commit()
        return "ignored"

    def _link(self, uid: str, chat: str, token: str) -> str:
        assert self.link_key is not None
        now = self.clock()
        queued = False
        with Session(self.svc.db, expire_on_commit=False) as s:
            if s.get(InboundSeen, ("telegram", uid)) is not None:
                return "duplicate"
            try:
                client_id = _redeem(s, self.link_key, token, now)
            except LinkError as e:
                s.rollback()
                log.info("a deep link was refused: %s", e)
                return "link_failed"
            s.add(InboundSeen(channel="telegram", provider_id=uid, at=now))
            store.lock_client(s, client_id)
            client = s.get(Client, client_id)
            if client is None:
                s.rollback()
                return "link_failed"
            s.refresh(client)
            self._tie(s, client, chat, now, "deep_link")
            queued = self._welcome(s, client, chat, now)
            s.commit()
        if queued and self.svc.on_outbox:
            self.svc.on_outbox()
        return "linked"

    def _contact(self, uid: str, chat: str, phone: str, contact_user: int | None, sender: int | None) -> str:
        now = self.clock()
        with Session(self.svc.db, expire_on_commit=False) as s:
            if s.get(InboundSeen, ("telegram", uid)) is not None:
                return "duplicate"
            s.add(InboundSeen(channel="telegram", provider_id=uid, at=now))
            e164 = normalize_phone(phone)
            if contact_user is None or sender is None or contact_user != sender or e164 is None:
                s.commit()  # someone else's contact card proves nothing
                return "contact_ignored"
            client = store.client_by_address(s, "sms", e164)
            if client is None:
                s.commit()
                return "contact_unknown"
            store.lock_client(s, client.id)
            s.refresh(client)
            self._tie(s, client, chat, now, "shared_contact")
            queued = self._welcome(s, client, chat, now)
            s.commit()
        if queued and self.svc.on_outbox:
            self.svc.on_outbox()
        return "linked"

    @staticmethod
    def _tie(s: Session, client: Client, chat: str, now: datetime, how: str) -> None:
        for other in s.exec(select(Client).where(Client.telegram == chat, col(Client.id) != client.id)):
            other.telegram = None
            s.add(other)
            store.audit(s, now, "system:telegram", "client", other.id, "telegram_unlinked", reason=how)
        client.telegram = chat
        client.channel = "telegram"
        s.add(client)
        store.audit(s, now, f"client:{client.id}", "client", client.id, "telegram_linked", how=how)

    def _welcome(self, s: Session, client: Client, chat: str, now: datetime) -> bool:
        """Tell the client the chat is connected (``telegram.linked``, else the help text)."""
        scripts = self.svc.scripts
        lang = scripts.pick_lang(client.lang, self.svc.cfg.fallback_language)
        msg_id = "telegram.linked" if scripts.has(lang, "telegram.linked") else "help.text"
        if not scripts.has(lang, msg_id):
            return False
        params = {"name": client.name or "", "practice": self.svc.cfg.practice_name}
        text = scripts.render(lang, msg_id, params, client.tz)
        m = Message(
            client_id=client.id,
            direction="out",
            channel="telegram",
            body=text,
            dialogue="help",
            step="linked",
            status="queued",
            reason="help.linked",
            created_at=now,
        )
        s.add(m)
        s.flush()
        assert m.id is not None
        s.add(
            Outbox(
                message_id=m.id, channel="telegram", to=chat, body=text, priority=5, next_attempt_at=now, created_at=now
            )
        )
        return True

    # -- long polling (a laptop without a public URL) ----------------------------------------------

    async def poll(self, stop: asyncio.Event, timeout: int = 25) -> None:
        await self.bot.delete_webhook()
        offset: int | None = None
        while not stop.is_set():
            try:
                updates = await self.bot.get_updates(offset=offset, timeout=timeout, allowed_updates=ALLOWED_UPDATES)
            except RetryAfter as e:
                await _sleep_or_stop(stop, _retry_after(e))
                continue
            except (NetworkError, TimedOut) as e:
                log.warning("telegram polling: %s", type(e).__name__)
                await _sleep_or_stop(stop, 2.0)
                continue
            for u in updates:
                try:
                    await self.handle(u)
                except Exception as e:  # tracebacks can quote message text: type only at this level
                    log.error("telegram update %s failed: %s", u.update_id, type(e).__name__)
                    log.debug("traceback", exc_info=e)
                offset = u.update_id + 1


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def _retry_after(e: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that the type becomes a timedelta; both are handled
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        return _seconds(e.retry_after)


def _seconds(v: Any) -> float:
    if isinstance(v, timedelta):
        return v.total_seconds()
    return float(v)


def _is_crisis(text: str) -> bool:
    from bot import safety

    return bool(safety.scan(text, None).crisis)


# -- sending ------------------------------------------------------------------------------------


class TelegramSender:
    """Sends through ``Bot.send_message``: inline keyboards for choices, with a plain-text fallback."""

    channel = "telegram"

    def __init__(
        self,
        bot: Bot,
        db: DbEngine | None = None,
        staff_chats: Sequence[str] = (),
        per_second: float = 30.0,
        per_chat: float = 1.0,
        lang: str = "en",
    ):
        self.bot = bot
        self.share_label = SHARE_LABEL.get(lang.split("_")[0], SHARE_LABEL["en"])
        self.db = db
        self.staff_chats = set(staff_chats)
        self.per_second = per_second
        self.per_chat = per_chat

    def pacing(self, out: Outbound) -> Sequence[tuple[str, float, float, float]]:
        return (("telegram", self.per_second, self.per_second, 1.0), (f"telegram:{out.to}", self.per_chat, 1.0, 1.0))

    def _unknown_chat(self, chat: str) -> bool:
        if self.db is None or chat in self.staff_chats:
            return False
        with Session(self.db) as s:
            return store.client_by_address(s, "telegram", chat) is None

    async def send(self, out: Outbound) -> SendResult:
        chat: int | str = int(out.to) if out.to.lstrip("-").isdigit() else out.to
        markup: InlineKeyboardMarkup | ReplyKeyboardMarkup | None = None
        if out.buttons:
            buttons = [
                InlineKeyboardButton(b, callback_data=b.encode()[:64].decode(errors="ignore")) for b in out.buttons
            ]
            rows = [buttons] if sum(len(b) for b in out.buttons) <= 30 else [[b] for b in buttons]
            markup = InlineKeyboardMarkup(rows)
        elif await asyncio.to_thread(self._unknown_chat, out.to):
            share = KeyboardButton(self.share_label, request_contact=True)
            markup = ReplyKeyboardMarkup([[share]], one_time_keyboard=True, resize_keyboard=True)
        text = out.text[:MAX_TEXT]
        try:
            try:
                m = await self.bot.send_message(chat_id=chat, text=text, reply_markup=markup)
            except BadRequest as e:
                if markup is None or "chat not found" in str(e).lower():
                    raise
                # The keyboard was refused: the same message as plain text, choices written out.
                m = await self.bot.send_message(chat_id=chat, text=_with_choices(text, out.buttons)[:MAX_TEXT])
        except Forbidden as e:
            return SendResult(ok=False, error=f"telegram 403: {_short(e)}", opted_out=True)
        except RetryAfter as e:
            return Throttled(ok=False, error="telegram 429", retry=True, retry_after=_retry_after(e))
        except TimedOut:
            return SendResult(ok=False, error="timeout (outcome unknown)", retry=True)
        except BadRequest as e:
            return SendResult(ok=False, error=f"telegram 400: {_short(e)}")
        except NetworkError as e:  # includes 5xx answers from the Bot API
            return SendResult(ok=False, error=f"network: {_short(e)}", retry=True)
        except TelegramError as e:
            return SendResult(ok=False, error=f"telegram: {_short(e)}")
        return SendResult(ok=True, provider_id=f"{m.chat_id}:{m.message_id}")


def _with_choices(text: str, buttons: Sequence[str]) -> str:
    missing = [b for b in buttons if b.lower() not in text.lower()]
    if not missing:
        return text
    return text + "\n" + "\n".join(f"{i}. {b}" for i, b in enumerate(missing, start=1))


def _short(e: Exception) -> str:
    # Provider error messages never carry the message text; keep them short for the error column.
    return str(e)[:120]


def make_bot(token: str, api_base_url: str = "https://api.telegram.org") -> Bot:
    """A PTB ``Bot`` whose calls go to ``{base}/bot{token}/{method}``."""
    base = api_base_url.rstrip("/")
    return Bot(token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot")
