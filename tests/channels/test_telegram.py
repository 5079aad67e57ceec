"""Telegram: a python-telegram-bot ``Bot`` against a fake Bot API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from bot import outbox
from channels.base import Outbound
from channels.telegram import TelegramAdapter, TelegramSender, Throttled, issue_link, make_bot
from storage.tables import Client, InboundSeen, Message
from tests.channels.fakes import FakeTelegram, running
from tests.channels.helpers import CLIENT_PHONE, CLIENT_TG, add_client, make_service, messages, now, outbox_rows

KEY = b"k" * 32


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with running(FakeTelegram()) as f:
        yield f


def update(uid: int, chat: str = CLIENT_TG, text: str | None = "hello", **extra: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "message_id": uid,
        "date": 1_700_000_000,
        "chat": {"id": int(chat), "type": "private"},
        "from": {"id": int(chat), "is_bot": False, "first_name": "Ana"},
    }
    if text is not None:
        msg["text"] = text
    msg.update(extra)
    return {"update_id": uid, "message": msg}


def adapter(svc: Any, fake: FakeTelegram) -> TelegramAdapter:
    return TelegramAdapter(make_bot(fake.token, fake.base_url), svc, KEY)


def handle(ad: TelegramAdapter, data: dict[str, Any]) -> str:
    async def go() -> str:
        return await ad.handle(ad.parse(data))

    return asyncio.run(go())


def send(s: TelegramSender, out: Outbound) -> Any:
    return asyncio.run(s.send(out))


def test_text_is_one_inbound_per_update_id(tmp_path: Path, fake: FakeTelegram) -> None:
    svc = make_service(tmp_path)
    add_client(svc, telegram=CLIENT_TG, channel="telegram")
    ad = adapter(svc, fake)
    assert handle(ad, update(10, text="what time is my session?")) != "duplicate"
    assert handle(ad, update(10, text="what time is my session?")) == "duplicate"
    ins = messages(svc, "in")
    assert len(ins) == 1 and ins[0].client_id == "c1" and ins[0].channel == "telegram"


@pytest.mark.parametrize(
    "extra",
    [
        {
            "sticker": {
                "file_id": "x",
                "file_unique_id": "y",
                "width": 1,
                "height": 1,
                "is_animated": False,
                "is_video": False,
                "type": "regular",
            }
        },
        {"photo": [{"file_id": "x", "file_unique_id": "y", "width": 1, "height": 1}]},
        {"location": {"latitude": 1.0, "longitude": 2.0}},
    ],
)
def test_non_text_messages_never_crash(tmp_path: Path, fake: FakeTelegram, extra: dict[str, Any]) -> None:
    svc = make_service(tmp_path)
    ad = adapter(svc, fake)
    assert handle(ad, update(20, text=None, **extra)) == "ignored"
    assert handle(ad, update(20, text=None, **extra)) == "duplicate"
    assert messages(svc) == []


def test_a_photo_caption_is_read_as_text(tmp_path: Path, fake: FakeTelegram) -> None:
    svc = make_service(tmp_path)
    add_client(svc, telegram=CLIENT_TG, channel="telegram")
    handle(
        adapter(svc, fake),
        update(
            21,
            text=None,
            caption="can we move my session?",
            photo=[{"file_id": "x", "file_unique_id": "y", "width": 1, "height": 1}],
        ),
    )
    assert [m.body for m in messages(svc, "in")] == ["can we move my session?"]


def test_other_update_kinds_never_crash(tmp_path: Path, fake: FakeTelegram) -> None:
    svc = make_service(tmp_path)
    ad = adapter(svc, fake)
    poll = {
        "update_id": 30,
        "poll": {
            "id": "1",
            "question": "q",
            "options": [],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": True,
            "type": "regular",
            "allows_multiple_answers": False,
        },
    }
    assert handle(ad, poll) == "ignored"
    edited = {"update_id": 31, "edited_message": update(31, text="typo fixed")["message"]}
    assert handle(ad, edited) == "ignored"
    with pytest.raises(ValueError):
        ad.parse({"message": {}})
    with pytest.raises(ValueError):
        ad.parse(["not", "an", "object"])


def test_blocking_the_bot_opts_the_client_out(tmp_path: Path, fake: FakeTelegram) -> None:
    svc = make_service(tmp_path)
    add_client(svc, telegram=CLIENT_TG, channel="telegram")
    user = {"id": int(CLIENT_TG), "is_bot": False, "first_name": "Ana"}
    bot_user = {"id": 42, "is_bot": True, "first_name": "Rapport"}
    data = {
        "update_id": 40,
        "my_chat_member": {
            "chat": {"id": int(CLIENT_TG), "type": "private"},
            "from": user,
            "date": 1_700_000_000,
            "old_chat_member": {"status": "member", "user": bot_user},
            "new_chat_member": {"status": "kicked", "user": bot_user, "until_date": 0},
        },
    }
    assert handle(adapter(svc, fake), data) == "blocked"
    with Session(svc.db) as s:
        c = s.get(Client, "c1")
        assert c is not None and c.opted_out


def test_callback_queries_are_answered_and_read_as_the_button_text(tmp_path: Path, fake: FakeTelegram) -> None:
    svc = make_service(tmp_path)
    add_client(svc, telegram=CLIENT_TG, channel="telegram")
    data = {
        "update_id": 50,
        "callback_query": {
            "id": "cbq-1",
            "chat_instance": "ci",
            "data": "Confirm",
            "from": {"id": int(CLIENT_TG), "is_bot": False, "first_name": "Ana"},
            "message": {
                "message_id": 5,
                "date": 1_700_000_000,
                "chat": {"id": int(CLIENT_TG), "type": "private"},
                "text": "Can you make it?",
            },
        },
    }
    handle(adapter(svc, fake), data)
    assert fake.answered == ["cbq-1"]
    assert [m.body for m in messages(svc, "in")] == ["Confirm"]


def test_deep_link_ties_the_chat_once(tmp_path: Path, fake: FakeTelegram) -> None:
    svc = make_service(tmp_path)
    add_client(svc, phone=CLIENT_PHONE, channel="sms")
    token = issue_link(svc.db, KEY, "c1", now(), timedelta(hours=1))
    assert len(token) <= 64 and all(c.isalnum() or c in "-_" for c in token)
    ad = adapter(svc, fake)
    assert handle(ad, update(60, chat="700002", text=f"/start {token}")) == "linked"
    with Session(svc.db) as s:
        c = s.get(Client, "c1")
        assert c is not None and c.telegram == "700002" and c.channel == "telegram"
    assert outbox_rows(svc)[-1].to == "700002"  # a welcome through the outbox
    # Single use: the same link from another chat ties nothing.
    assert handle(ad, update(61, chat="700003", text=f"/start {token}")) != "linked"
    with Session(svc.db) as s:
        assert s.exec(select(Client).where(Client.telegram == "700003")).first() is None


def test_expired_or_forged_links_are_refused(tmp_path: Path, fake: FakeTelegram) -> None:
    svc = make_service(tmp_path)
    add_client(svc)
    ad = adapter(svc, fake)
    old = issue_link(svc.db, KEY, "c1", now() - timedelta(hours=2), timedelta(hours=1))
    assert handle(ad, update(70, chat="700002", text=f"/start {old}")) != "linked"
    good = issue_link(svc.db, KEY, "c1", now(), timedelta(hours=1))
    forged = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    assert handle(ad, update(71, chat="700002", text=f"/start {forged}")) != "linked"
    other_key = issue_link(svc.db, b"x" * 32, "c1", now(), timedelta(hours=1))
    assert handle(ad, update(72, chat="700002", text=f"/start {other_key}")) != "linked"
    assert handle(ad, update(73, chat="700002", text="/start !!!")) != "linked"
    with Session(svc.db) as s:
        c = s.get(Client, "c1")
        assert c is not None and c.telegram is None


def test_sharing_ones_own_contact_matches_by_phone(tmp_path: Path, fake: FakeTelegram) -> None:
    svc = make_service(tmp_path)
    add_client(svc, phone=CLIENT_PHONE)
    ad = adapter(svc, fake)
    someone_else = {"phone_number": CLIENT_PHONE[1:], "first_name": "Ana", "user_id": 123}
    assert handle(ad, update(80, chat="700009", text=None, contact=someone_else)) == "contact_ignored"
    own = {"phone_number": CLIENT_PHONE[1:], "first_name": "Ana", "user_id": 700009}
    assert handle(ad, update(81, chat="700009", text=None, contact=own)) == "linked"
    with Session(svc.db) as s:
        c = s.get(Client, "c1")
        assert c is not None and c.telegram == "700009"


def test_send_with_buttons_uses_an_inline_keyboard(tmp_path: Path, fake: FakeTelegram) -> None:
    svc = make_service(tmp_path)
    add_client(svc, telegram=CLIENT_TG, channel="telegram")
    s = TelegramSender(make_bot(fake.token, fake.base_url), svc.db)
    r = send(s, Outbound("telegram", CLIENT_TG, "Can you make it?", ("Confirm", "Reschedule"), 1))
    assert r.ok and r.provider_id == f"{CLIENT_TG}:1"
    markup = json.loads(fake.sent[-1]["reply_markup"])
    labels = [b["text"] for row in markup["inline_keyboard"] for b in row]
    datas = [b["callback_data"] for row in markup["inline_keyboard"] for b in row]
    assert labels == datas == ["Confirm", "Reschedule"]


def test_unknown_chats_get_a_share_contact_button(tmp_path: Path, fake: FakeTelegram) -> None:
    svc = make_service(tmp_path)
    s = TelegramSender(make_bot(fake.token, fake.base_url), svc.db)
    assert send(s, Outbound("telegram", "555", "Who are you?")).ok
    markup = json.loads(fake.sent[-1]["reply_markup"])
    assert markup["keyboard"][0][0]["request_contact"] is True


def test_a_refused_keyboard_falls_back_to_plain_text(tmp_path: Path, fake: FakeTelegram) -> None:
    svc = make_service(tmp_path)
    add_client(svc, telegram=CLIENT_TG, channel="telegram")
    fake.plan = ["bad_markup"]
    s = TelegramSender(make_bot(fake.token, fake.base_url), svc.db)
    assert send(s, Outbound("telegram", CLIENT_TG, "How was it?", ("1", "2", "3"))).ok
    assert "reply_markup" not in fake.sent[-1]
    assert fake.sent[-1]["text"].endswith("1. 1\n2. 2\n3. 3")


def test_provider_errors(tmp_path: Path, fake: FakeTelegram) -> None:
    svc = make_service(tmp_path)
    s = TelegramSender(make_bot(fake.token, fake.base_url))
    fake.plan = [403, 429, 502]
    blocked = send(s, Outbound("telegram", CLIENT_TG, "x"))
    assert not blocked.ok and blocked.opted_out and not blocked.retry
    throttled = send(s, Outbound("telegram", CLIENT_TG, "x"))
    assert isinstance(throttled, Throttled) and throttled.retry and throttled.retry_after == 1.0
    bad_gateway = send(s, Outbound("telegram", CLIENT_TG, "x"))
    assert not bad_gateway.ok and bad_gateway.retry
    assert send(s, Outbound("telegram", CLIENT_TG, "x")).ok
    del svc


def test_403_through_the_worker_marks_the_client_opted_out(tmp_path: Path, fake: FakeTelegram) -> None:
    svc = make_service(tmp_path)
    add_client(svc, phone=None, telegram=CLIENT_TG, channel="telegram")
    svc.handle_inbound(
        __import__("channels.base", fromlist=["Inbound"]).Inbound(
            "telegram", "help", address=CLIENT_TG, provider_id="u1"
        ),
        now(),
    )
    fake.plan = [403]
    s = TelegramSender(make_bot(fake.token, fake.base_url), svc.db)
    worker = outbox.Worker(
        svc.db, {"telegram": s}, on_opted_out=lambda ch, to, why: svc.opt_out_by_provider(ch, to, now(), why)
    )
    asyncio.run(worker.run_once())
    with Session(svc.db) as ss:
        c = ss.get(Client, "c1")
        assert c is not None and c.opted_out
        m = ss.exec(select(Message).where(Message.direction == "out")).first()
        assert m is not None and m.status == "failed" and "403" in (m.error or "")


def test_429_then_200_through_the_worker(tmp_path: Path, fake: FakeTelegram) -> None:
    svc = make_service(tmp_path)
    add_client(svc, phone=None, telegram=CLIENT_TG, channel="telegram")
    from channels.base import Inbound

    svc.handle_inbound(Inbound("telegram", "help", address=CLIENT_TG, provider_id="u1"), now())
    fake.plan = [429]
    s = TelegramSender(make_bot(fake.token, fake.base_url), svc.db)
    worker = outbox.Worker(svc.db, {"telegram": s})

    async def go() -> None:
        await worker.run_once()
        await worker.run_once()

    asyncio.run(go())
    assert len(fake.sent) == 1
    row = outbox_rows(svc)[-1]
    assert row.status == "sent" and row.attempts == 2


def test_long_polling_feeds_the_same_handler(tmp_path: Path, fake: FakeTelegram) -> None:
    svc = make_service(tmp_path)
    add_client(svc, telegram=CLIENT_TG, channel="telegram")
    fake.updates = [update(90, text="hello"), update(91, text=None)]
    ad = adapter(svc, fake)

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(ad.poll(stop, timeout=0))
        for _ in range(100):
            await asyncio.sleep(0.05)
            with Session(svc.db) as s:
                if s.get(InboundSeen, ("telegram", "91")) is not None:
                    break
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(go())
    assert [m.body for m in messages(svc, "in")] == ["hello"]
    assert fake.webhook is None


def test_rapport_link_prints_a_working_deep_link(
    tmp_path: Path, fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from bot.server import run_link
    from storage.migrate import upgrade_url

    url = f"sqlite:///{tmp_path / 'link.db'}"
    upgrade_url(url)
    monkeypatch.setenv("RAPPORT_DATABASE_URL", url)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", fake.token)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", fake.base_url)
    svc = make_service(tmp_path, url)
    add_client(svc)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("practice_name: Link Test\n", encoding="utf-8")
    assert run_link(argparse.Namespace(config=str(cfg), client="c1", ttl=None)) == 0
    link = capsys.readouterr().out.strip()
    assert link.startswith("https://t.me/rapport_test_bot?start=")
    token = link.split("start=", 1)[1]
    from bot.settings import Settings

    ad = TelegramAdapter(make_bot(fake.token, fake.base_url), svc, Settings.from_env().deep_link_key)
    assert handle(ad, update(100, chat="700123", text=f"/start {token}")) == "linked"
    assert run_link(argparse.Namespace(config=str(cfg), client="nobody", ttl="1h")) == 1
    assert run_link(argparse.Namespace(config=str(cfg), client="c1", ttl="soon")) == 2
