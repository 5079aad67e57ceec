"""Provider webhooks through the real app: signatures, duplicates, malformed bodies, timing."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from storage.tables import Client, InboundSeen, Message, Outbox
from tests.channels.fakes import FakeTelegram, FakeTwilio
from tests.channels.helpers import CLIENT_PHONE, CLIENT_TG, STAFF_PHONE, add_client, messages, outbox_rows
from tests.web.conftest import TG_SECRET

PUBLIC = "https://rapport.example.org"


def twilio_post(
    client: TestClient,
    token: str,
    params: dict[str, str],
    path: str = "/webhooks/twilio",
    signature: str | None = "compute",
    body: bytes | None = None,
) -> Any:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature == "compute":
        signature = RequestValidator(token).compute_signature(PUBLIC + path, params)
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return client.post(path, content=body if body is not None else urlencode(params).encode(), headers=headers)


def sms(sid: str, text: str, sender: str = CLIENT_PHONE) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": "+15550009999",
        "Body": text,
        "NumMedia": "0",
    }


def seen_count(svc: Any) -> int:
    with Session(svc.db) as s:
        return len(list(s.exec(select(InboundSeen))))


def wait_for(pred: Any, timeout: float = 5.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if pred():
            return time.perf_counter() - t0
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_healthz_and_metrics(live: tuple[Any, TestClient]) -> None:
    _rt, client = live
    assert client.get("/healthz").json() == {"status": "ok"}
    text = client.get("/metrics").text
    for name in (
        "rapport_messages_in_total",
        "rapport_outbox_queue_depth",
        "rapport_alerts_open",
        "rapport_send_seconds",
    ):
        assert name in text


def test_signed_sms_is_processed_once_and_answered_through_the_outbox(
    live: tuple[Any, TestClient], fake_twilio: FakeTwilio
) -> None:
    rt, client = live
    add_client(rt.svc)
    r = twilio_post(client, fake_twilio.auth_token, sms("SM100", "what time is my appointment?"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml") and "<Response>" in r.text
    r2 = twilio_post(client, fake_twilio.auth_token, sms("SM100", "what time is my appointment?"))
    assert r2.status_code == 200
    assert len(messages(rt.svc, "in")) == 1
    wait_for(lambda: len(fake_twilio.messages) >= 1)
    time.sleep(0.2)
    assert [m["to"] for m in fake_twilio.messages] == [CLIENT_PHONE]
    assert 'rapport_messages_in_total{channel="sms",outcome="duplicate"} 1.0' in client.get("/metrics").text


@pytest.mark.parametrize("signature", [None, "", "forged+signature=", "compute-wrong-url"])
def test_forged_or_missing_signature_is_403_and_nothing_is_stored(
    live: tuple[Any, TestClient], fake_twilio: FakeTwilio, signature: str | None
) -> None:
    rt, client = live
    params = sms("SM200", "hello")
    if signature == "compute-wrong-url":
        signature = RequestValidator(fake_twilio.auth_token).compute_signature(
            "http://testserver/webhooks/twilio", params
        )
    r = twilio_post(client, fake_twilio.auth_token, params, signature=signature)
    assert r.status_code == 403
    assert messages(rt.svc) == [] and seen_count(rt.svc) == 0 and outbox_rows(rt.svc) == []


def test_a_signature_by_another_token_is_refused(live: tuple[Any, TestClient]) -> None:
    rt, client = live
    r = twilio_post(client, "not-the-auth-token", sms("SM201", "hello"))
    assert r.status_code == 403 and messages(rt.svc) == []


@pytest.mark.parametrize("body", [b"a=1&&b=2", b"Body=%FF&From=x", b"%zz"])
def test_malformed_form_is_400(live: tuple[Any, TestClient], fake_twilio: FakeTwilio, body: bytes) -> None:
    rt, client = live
    r = twilio_post(client, fake_twilio.auth_token, {}, body=body, signature="whatever")
    assert r.status_code == 400 and messages(rt.svc) == []


def test_signed_form_without_a_sender_is_400(live: tuple[Any, TestClient], fake_twilio: FakeTwilio) -> None:
    _rt, client = live
    r = twilio_post(client, fake_twilio.auth_token, {"Body": "x"})
    assert r.status_code == 400


def test_a_10kb_body(live: tuple[Any, TestClient], fake_twilio: FakeTwilio) -> None:
    rt, client = live
    add_client(rt.svc)
    text = ("I need to talk about my appointment. " * 300)[:10_000]
    r = twilio_post(client, fake_twilio.auth_token, sms("SM300", text))
    assert r.status_code == 200
    assert [len(m.body) for m in messages(rt.svc, "in")] == [10_000]


def test_an_oversized_body_is_413(live: tuple[Any, TestClient], fake_twilio: FakeTwilio) -> None:
    rt, client = live
    r = twilio_post(client, fake_twilio.auth_token, sms("SM301", "x" * 100_000))
    assert r.status_code == 413 and messages(rt.svc) == []


def test_an_unknown_sender_gets_an_answer(live: tuple[Any, TestClient], fake_twilio: FakeTwilio) -> None:
    _rt, client = live
    r = twilio_post(client, fake_twilio.auth_token, sms("SM400", "hi who is this", sender="+15557770000"))
    assert r.status_code == 200
    wait_for(lambda: any(m["to"] == "+15557770000" for m in fake_twilio.messages))


def test_a_crisis_reply_reaches_the_provider_within_a_second(
    live: tuple[Any, TestClient], fake_twilio: FakeTwilio
) -> None:
    rt, client = live
    add_client(rt.svc)
    t0 = time.perf_counter()
    r = twilio_post(client, fake_twilio.auth_token, sms("SM500", "I want to kill myself"))
    assert r.status_code == 200
    wait_for(lambda: any(m["to"] == CLIENT_PHONE for m in fake_twilio.messages), timeout=5)
    assert time.perf_counter() - t0 < 1.0
    wait_for(lambda: any(m["to"] == STAFF_PHONE for m in fake_twilio.messages), timeout=5)
    assert time.perf_counter() - t0 < 5.0
    with Session(rt.svc.db) as s:
        row = s.exec(select(Outbox).where(Outbox.to == CLIENT_PHONE)).first()
        assert row is not None and row.priority >= 9


def test_status_callbacks(live: tuple[Any, TestClient], fake_twilio: FakeTwilio) -> None:
    rt, client = live
    add_client(rt.svc)
    twilio_post(client, fake_twilio.auth_token, sms("SM600", "what time is my appointment?"))
    wait_for(lambda: any(m.status == "sent" for m in messages(rt.svc, "out")))
    out = next(m for m in messages(rt.svc, "out") if m.status == "sent")
    path = "/webhooks/twilio/status"

    def status(st: str, code: str | None = None) -> int:
        p = {"MessageSid": str(out.provider_id), "MessageStatus": st, "To": CLIENT_PHONE}
        if code:
            p["ErrorCode"] = code
        return int(twilio_post(client, fake_twilio.auth_token, p, path=path).status_code)

    assert status("delivered") == 204
    assert status("sent") == 204  # a late "sent" never moves a delivered message back
    with Session(rt.svc.db) as s:
        assert s.get(Message, out.id).status == "delivered"  # type: ignore[union-attr]
    assert status("undelivered", "21610") == 204
    with Session(rt.svc.db) as s:
        m = s.get(Message, out.id)
        assert m is not None and m.status == "undelivered" and m.error == "twilio 21610"
        c = s.get(Client, "c1")
        assert c is not None and c.opted_out
    bad = twilio_post(
        client, fake_twilio.auth_token, {"MessageSid": "SMx", "MessageStatus": "failed"}, path=path, signature="forged"
    )
    assert bad.status_code == 403


# -- Telegram -----------------------------------------------------------------------------------------


def tg_post(client: TestClient, data: Any, secret: str | None = TG_SECRET, raw: bytes | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return client.post(
        "/webhooks/telegram", content=raw if raw is not None else json.dumps(data).encode(), headers=headers
    )


def tg_update(uid: int, text: str, chat: str = CLIENT_TG) -> dict[str, Any]:
    return {
        "update_id": uid,
        "message": {
            "message_id": uid,
            "date": 1_700_000_000,
            "text": text,
            "chat": {"id": int(chat), "type": "private"},
            "from": {"id": int(chat), "is_bot": False, "first_name": "Ana"},
        },
    }


@pytest.mark.parametrize("secret", [None, "", "wrong-secret"])
def test_telegram_without_the_secret_is_403(live: tuple[Any, TestClient], secret: str | None) -> None:
    rt, client = live
    assert tg_post(client, tg_update(1, "hello"), secret=secret).status_code == 403
    assert messages(rt.svc) == [] and seen_count(rt.svc) == 0


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'{"update_id": "x"}', b"\xff\xfe", b""])
def test_telegram_malformed_json_is_400(live: tuple[Any, TestClient], raw: bytes) -> None:
    _rt, client = live
    assert tg_post(client, None, raw=raw).status_code == 400


def test_telegram_update_handled_once_and_answered(live: tuple[Any, TestClient], fake_telegram: FakeTelegram) -> None:
    rt, client = live
    add_client(rt.svc, phone=None, telegram=CLIENT_TG, channel="telegram")
    assert tg_post(client, tg_update(7, "what time is my session?")).status_code == 200
    assert tg_post(client, tg_update(7, "what time is my session?")).status_code == 200
    assert len(messages(rt.svc, "in")) == 1
    wait_for(lambda: len(fake_telegram.sent) >= 1)
    assert fake_telegram.sent[0]["chat_id"] == CLIENT_TG


def test_telegram_webhook_is_registered_with_the_secret(
    live: tuple[Any, TestClient], fake_telegram: FakeTelegram
) -> None:
    assert fake_telegram.webhook is not None
    assert fake_telegram.webhook["url"] == f"{PUBLIC}/webhooks/telegram"
    assert fake_telegram.webhook["secret_token"] == TG_SECRET


def test_serve_with_telegram_polling(tmp_path: Any, fake_telegram: FakeTelegram) -> None:
    from bot.server import Runtime
    from tests.channels.helpers import make_service
    from tests.web.conftest import settings_for

    svc = make_service(tmp_path)
    add_client(svc, phone=None, telegram=CLIENT_TG, channel="telegram")
    rt = Runtime(svc, settings_for(telegram=fake_telegram), telegram_polling=True, timer_interval=0.2)
    with TestClient(rt.app()):
        fake_telegram.updates = [tg_update(300, "what time is my session?")]
        wait_for(lambda: len(messages(svc, "in")) == 1)
        wait_for(lambda: len(fake_telegram.sent) >= 1)
    assert fake_telegram.webhook is None  # polling removed any webhook
    assert fake_telegram.sent[0]["chat_id"] == CLIENT_TG


def test_webhooks_past_the_router_keep_the_apps_edges(
    live: tuple[Any, TestClient], fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POSTs to the webhooks skip FastAPI's router (bot.web.app.FastPaths); the security headers,
    the 405 for another method and the typed-only 500 are still theirs."""
    rt, client = live
    add_client(rt.svc)
    r = twilio_post(client, fake_twilio.auth_token, sms("SM900", "yes"))
    assert r.status_code == 200
    assert r.headers["x-content-type-options"] == "nosniff" and "content-security-policy" in r.headers
    assert client.get("/webhooks/twilio").status_code == 405
    assert client.get("/webhooks/telegram").status_code == 405

    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("boom: +15551234567 said something private")

    monkeypatch.setattr(rt.svc, "handle_inbound_batch", broken)
    monkeypatch.setattr(rt.svc, "handle_inbound", broken)
    r = twilio_post(client, fake_twilio.auth_token, sms("SM901", "hello again"))
    assert r.status_code == 500 and "+1555" not in r.text and "private" not in r.text
    assert r.headers["x-content-type-options"] == "nosniff"
