"""Twilio: the real twilio library against a fake Twilio on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from bot import outbox
from bot.service import PRIORITY_CRISIS
from channels.base import Outbound, SendResult
from channels.sms import STATUS, TwilioSender, TwilioWebhook, WebhookError, parse_form, segments
from storage.tables import Client, Message, Outbox
from tests.channels.fakes import FakeTwilio, running
from tests.channels.helpers import CLIENT_PHONE, add_client, make_service, now, outbox_rows

FROM = "+15550009999"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with running(FakeTwilio()) as f:
        yield f


def sender(fake: FakeTwilio, **kw: object) -> TwilioSender:
    opts: dict = {
        "from_": FROM,
        "api_base_url": fake.base_url,
        "timeout": 1.0,
        "status_callback": "https://rapport.example.org/webhooks/twilio/status",
    }
    opts.update(kw)
    return TwilioSender(fake.account_sid, fake.auth_token, **opts)


def queue(
    svc, text: str, to: str = CLIENT_PHONE, priority: int = 5, client_id: str | None = "c1", dialogue: str = "help"
) -> int:
    t = now()
    with Session(svc.db) as s:
        m = Message(
            client_id=client_id,
            direction="out",
            channel="sms",
            body=text,
            dialogue=dialogue,
            step="x",
            status="queued",
            reason=f"{dialogue}.x",
            created_at=t,
        )
        s.add(m)
        s.flush()
        row = Outbox(
            message_id=m.id, channel="sms", to=to, body=text, priority=priority, next_attempt_at=t, created_at=t
        )
        s.add(row)
        s.commit()
        return int(row.id)


def test_send_goes_to_the_messages_resource_with_from_and_status_callback(fake: FakeTwilio) -> None:
    r = sender(fake).send_sync(Outbound("sms", CLIENT_PHONE, "See you Thursday", (), 1))
    assert r.ok and r.provider_id and r.provider_id.startswith("SM")
    method, path, params = fake.requests[-1]
    assert (method, path) == ("POST", f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json")
    assert params["To"] == CLIENT_PHONE and params["From"] == FROM and params["Body"] == "See you Thursday"
    assert params["StatusCallback"] == "https://rapport.example.org/webhooks/twilio/status"


def test_messaging_service_instead_of_a_number(fake: FakeTwilio) -> None:
    s = sender(fake, from_=None, messaging_service_sid="MG" + "1" * 32)
    assert s.send_sync(Outbound("sms", CLIENT_PHONE, "hi")).ok
    params = fake.requests[-1][2]
    assert params["MessagingServiceSid"] == "MG" + "1" * 32 and "From" not in params


@pytest.mark.parametrize("planned, retry, opted_out", [(429, True, False), (500, True, False), (21610, False, True)])
def test_provider_errors_map_to_retry_or_opt_out(fake: FakeTwilio, planned: int, retry: bool, opted_out: bool) -> None:
    fake.plan = [planned]
    r = sender(fake).send_sync(Outbound("sms", CLIENT_PHONE, "hi"))
    assert not r.ok and r.retry is retry and r.opted_out is opted_out
    assert r.error and "hi" not in r.error


def send_once(s: TwilioSender, out: Outbound) -> SendResult:
    """One async send on its own event loop, its pooled connections closed after."""

    async def go() -> SendResult:
        try:
            return await s.send(out)
        finally:
            await s.aclose()

    return asyncio.run(go())


# The worker sends on the event loop (twilio's async interface over channels/http1.py); the simulator and the
# synchronous drain use the blocking client. Both must read the provider the same way.
@pytest.mark.parametrize(
    "planned, ok, retry, opted_out",
    [(None, True, False, False), (429, False, True, False), (500, False, True, False), (21610, False, False, True)],
)
def test_async_send_reads_the_provider_like_the_blocking_one(
    fake: FakeTwilio, planned: int | None, ok: bool, retry: bool, opted_out: bool
) -> None:
    out = Outbound("sms", CLIENT_PHONE, "See you Thursday")
    results = []
    for send in ("sync", "async"):
        fake.plan = [planned] if planned else []
        s = sender(fake)
        results.append(s.send_sync(out) if send == "sync" else send_once(s, out))
    for r in results:
        assert (r.ok, r.retry, r.opted_out) == (ok, retry, opted_out)
        assert (r.provider_id or "").startswith("SM") is ok
    if ok:
        sent = [m for m in fake.messages if m["body"] == "See you Thursday"]
        assert len(sent) == 2 and all(m["from"] == FROM and m["to"] == CLIENT_PHONE for m in sent)
        assert all(m["status_callback"] == "https://rapport.example.org/webhooks/twilio/status" for m in sent)


def test_async_send_of_a_provider_that_is_down_or_silent_is_a_retry(fake: FakeTwilio) -> None:
    out = Outbound("sms", CLIENT_PHONE, "hi")
    fake.lost_answer_seconds = 1.5
    fake.down = True
    down = send_once(sender(fake), out)
    fake.down = False
    fake.plan = ["lost"]
    silent = send_once(sender(fake, timeout=0.5), out)
    assert not down.ok and down.retry and down.error and down.error.startswith("network")
    assert not silent.ok and silent.retry and silent.error == "timeout (outcome unknown)"


def test_429_then_200_is_sent_once_on_the_second_try(tmp_path: Path, fake: FakeTwilio) -> None:
    svc = make_service(tmp_path)
    add_client(svc)
    row_id = queue(svc, "reminder text")
    fake.plan = [429]
    senders = {"sms": sender(fake).send_sync}
    assert outbox.drain(svc.db, senders, now()) == 1
    assert outbox.drain(svc.db, senders, now()) == 1
    assert outbox.drain(svc.db, senders, now()) == 0
    row = next(r for r in outbox_rows(svc) if r.id == row_id)
    assert row.status == "sent" and row.attempts == 2 and row.provider_id == fake.messages[0]["sid"]
    assert [m["body"] for m in fake.messages] == ["reminder text"]


def test_21610_marks_the_client_opted_out(tmp_path: Path, fake: FakeTwilio) -> None:
    svc = make_service(tmp_path)
    add_client(svc)
    queue(svc, "reminder text")
    fake.plan = [21610]
    outbox.drain(
        svc.db,
        {"sms": sender(fake).send_sync},
        now(),
        on_opted_out=lambda ch, to, why: svc.opt_out_by_provider(ch, to, now(), why),
    )
    row = outbox_rows(svc)[-1]
    assert row.status == "failed" and "21610" in (row.error or "") and "opted out" in (row.error or "")
    with Session(svc.db) as s:
        c = s.get(Client, "c1")
        assert c is not None and c.opted_out


def test_provider_down_for_a_minute_loses_nothing_and_doubles_nothing(
    tmp_path: Path, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "_testing", False)  # the real backoff, on a virtual clock
    svc = make_service(tmp_path)
    add_client(svc)
    texts = [f"message {i}" for i in range(5)]
    for t in texts:
        queue(svc, t)
    start = now()
    clock = {"t": start}
    s = sender(fake, mps=1000.0)
    worker = outbox.Worker(svc.db, {"sms": s}, clock=lambda: clock["t"])

    async def go() -> None:
        for second in range(0, 600):
            clock["t"] = start + timedelta(seconds=second)
            fake.down = second < 60
            await worker.run_once()

    asyncio.run(go())
    assert sorted(m["body"] for m in fake.messages) == texts  # each exactly once
    rows = outbox_rows(svc)
    assert all(r.status == "sent" for r in rows)
    assert all(r.attempts > 1 for r in rows)  # they really were retried through the outage


def test_a_lost_answer_is_reconciled_not_resent(tmp_path: Path, fake: FakeTwilio) -> None:
    svc = make_service(tmp_path)
    add_client(svc)
    queue(svc, "your appointment is confirmed")
    fake.plan = ["lost"]
    fake.lost_answer_seconds = 1.5
    s = sender(fake, timeout=0.5)
    worker = outbox.Worker(svc.db, {"sms": s})

    async def go() -> None:
        await worker.run_once()  # times out: outcome unknown, back to pending
        await worker.run_once()  # a retry: lists the recipient's messages first, finds it

    asyncio.run(go())
    posts = [r for r in fake.requests if r[0] == "POST"]
    assert len(posts) == 1 and len(fake.messages) == 1
    row = outbox_rows(svc)[-1]
    assert row.status == "sent" and row.provider_id == fake.messages[0]["sid"]
    assert any(r[0] == "GET" for r in fake.requests)


def test_a_row_left_sending_by_a_dead_process_is_recovered_and_reconciled(tmp_path: Path, fake: FakeTwilio) -> None:
    svc = make_service(tmp_path)
    add_client(svc)
    queue(svc, "the process died after Twilio took this")
    t0 = now()
    claimed = outbox.claim(svc.db, t0, 10)  # claimed, then the process "dies" mid-send
    sender(fake).send_sync(claimed[0].outbound())
    assert outbox.recover_stale(svc.db, t0 + timedelta(seconds=30)) == 0  # lease still running
    assert outbox.recover_stale(svc.db, t0 + outbox.LEASE + timedelta(seconds=1)) == 1
    worker = outbox.Worker(svc.db, {"sms": sender(fake)}, clock=lambda: t0 + outbox.LEASE + timedelta(seconds=2))
    asyncio.run(worker.run_once())
    assert len(fake.messages) == 1
    assert outbox_rows(svc)[-1].status == "sent"


def test_a_failed_crisis_sms_goes_out_on_telegram_and_raises_the_alert(tmp_path: Path, fake: FakeTwilio) -> None:
    svc = make_service(tmp_path)
    add_client(svc, phone=CLIENT_PHONE, telegram="700001", channel="sms")
    queue(svc, "crisis resources", priority=PRIORITY_CRISIS, dialogue="crisis")
    fake.plan = [21610]
    telegram_sent: list[Outbound] = []

    def tg(out: Outbound):  # type: ignore[no-untyped-def]
        telegram_sent.append(out)
        from channels.base import SendResult

        return SendResult(ok=True, provider_id="1:1")

    outbox.drain(svc.db, {"sms": sender(fake).send_sync, "telegram": tg}, now())
    outbox.drain(svc.db, {"sms": sender(fake).send_sync, "telegram": tg}, now())
    assert [(o.to, o.text) for o in telegram_sent] == [("700001", "crisis resources")]
    rows = outbox_rows(svc)
    assert rows[0].status == "failed" and rows[1].channel == "telegram" and rows[1].status == "sent"


def test_signature_is_checked_against_the_public_url() -> None:
    hook = TwilioWebhook("tok", "https://rapport.example.org")
    params = {"MessageSid": "SM1", "From": CLIENT_PHONE, "Body": "yes"}
    url = hook.url_for("/webhooks/twilio", "", "http://10.0.0.5:8000/webhooks/twilio")
    assert url == "https://rapport.example.org/webhooks/twilio"
    sig = RequestValidator("tok").compute_signature(url, params)
    body = "&".join(f"{k}={v}" for k, v in params.items()).replace("+", "%2B").encode()
    got = hook.verify(url, body, sig)
    assert TwilioWebhook.inbound(got).address == CLIENT_PHONE  # type: ignore[union-attr]
    with pytest.raises(WebhookError) as e:
        hook.verify("http://10.0.0.5:8000/webhooks/twilio", body, sig)
    assert e.value.status == 403
    with pytest.raises(WebhookError) as e:
        hook.verify(url, body, None)
    assert e.value.status == 403


@pytest.mark.parametrize(
    "signed_url, token, ok",
    [
        ("https://rapport.example.org/webhooks/twilio", "tok", True),  # exactly what was requested
        ("https://rapport.example.org:443/webhooks/twilio", "tok", True),  # Twilio's port variant
        ("https://rapport.example.org/webhooks/twilio", "other", False),  # another account's token
        ("https://rapport.example.org/webhooks/twilio/status", "tok", False),  # another endpoint's
        ("https://evil.example.org/webhooks/twilio", "tok", False),
    ],
)
def test_signature_fast_path_accepts_what_the_validator_accepts(signed_url: str, token: str, ok: bool) -> None:
    """verify checks the exact URL first and falls back to twilio's validator: the set of accepted
    signatures is the validator's."""
    hook = TwilioWebhook("tok", "https://rapport.example.org")
    url = "https://rapport.example.org/webhooks/twilio"
    params = {"MessageSid": "SM1", "From": CLIENT_PHONE, "Body": "yes"}
    body = "&".join(f"{k}={v}" for k, v in params.items()).replace("+", "%2B").encode()
    sig = RequestValidator(token).compute_signature(signed_url, params)
    assert RequestValidator("tok").validate(url, params, sig) is ok
    if ok:
        assert hook.verify(url, body, sig).first("MessageSid") == "SM1"
    else:
        with pytest.raises(WebhookError) as e:
            hook.verify(url, body, sig)
        assert e.value.status == 403


@pytest.mark.parametrize("body", [b"a=1&&b=2", b"%zz", b"Body=%FF", b"\xff\xfe"])
def test_malformed_forms_are_400(body: bytes) -> None:
    with pytest.raises(WebhookError) as e:
        parse_form(body)
    assert e.value.status == 400


def test_status_mapping() -> None:
    assert {STATUS[s] for s in ("queued", "sent", "delivered", "undelivered", "failed")} == {
        "queued",
        "sent",
        "delivered",
        "undelivered",
        "failed",
    }
    rep = TwilioWebhook.status(parse_form(b"MessageSid=SM1&MessageStatus=undelivered&ErrorCode=21610&To=%2B1555"))
    assert rep.status == "undelivered" and rep.opted_out and rep.error == "twilio 21610"


def test_segments() -> None:
    assert segments("a" * 160) == 1 and segments("a" * 161) == 2
    assert segments("olá " * 10) == 1 and segments("ã" * 71) == 2  # an accent outside GSM-7 forces UCS-2
    assert segments("😀" * 35) == 1 and segments("😀" * 36) == 2  # surrogate pairs count twice


def test_pacing_is_per_number_and_by_segment() -> None:
    s = TwilioSender("AC1", "t", from_=FROM, mps=1.0)
    ((key, rate, burst, cost),) = s.pacing(Outbound("sms", CLIENT_PHONE, "a" * 200))
    assert key == f"sms:{FROM}" and rate == 1.0 and cost == 2.0
    pace = outbox.Pace(rate, burst)
    t0 = pace.last
    assert pace.reserve(1, t0) == 0.0
    assert pace.reserve(2, t0) == pytest.approx(2.0)  # 1 s/segment: a 2-segment message waits 2 s
    assert pace.reserve(1, t0 + 3.0) == pytest.approx(0.0)


def test_crisis_rows_are_never_held_back_by_pacing(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    s = TwilioSender("AC1", "t", from_=FROM, mps=0.01)
    worker = outbox.Worker(svc.db, {"sms": s})
    normal = outbox.Claimed(1, 1, "sms", CLIENT_PHONE, "x", (), 0, 1, now())
    urgent = outbox.Claimed(2, 2, "sms", CLIENT_PHONE, "x", (), PRIORITY_CRISIS, 1, now())
    assert worker._reserve(s, normal, normal.outbound()) == 0.0
    assert worker._reserve(s, normal, normal.outbound()) > 50  # the bucket is empty now
    assert worker._reserve(s, urgent, urgent.outbound()) == 0.0


def test_date_of_claim_lease_is_in_the_future(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    add_client(svc)
    queue(svc, "x")
    t0: datetime = now()
    (_c,) = outbox.claim(svc.db, t0, 5)
    assert outbox.claim(svc.db, t0, 5) == []  # claimed rows are not claimed twice
    row = outbox_rows(svc)[0]
    assert row.status == "sending" and row.next_attempt_at is not None and row.next_attempt_at > t0


class SlowSender:
    """Takes 0.3 s per send and paces at one message per 10 s (so the second row waits its turn)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def pacing(self, out: Outbound) -> list[tuple[str, float, float, float]]:
        return [("slow", 0.1, 1.0, 1.0)]

    async def send(self, out: Outbound) -> SendResult:
        await asyncio.sleep(0.3)
        self.sent.append(out.text)
        return SendResult(ok=True, provider_id=f"P{len(self.sent)}")


def test_shutdown_finishes_sends_in_flight_and_hands_back_the_rest(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    add_client(svc)
    queue(svc, "first")
    queue(svc, "second")
    slow = SlowSender()
    worker = outbox.Worker(svc.db, {"sms": slow})

    async def go() -> None:
        worker.start()
        worker.wake()
        await asyncio.sleep(0.1)  # "first" is at the provider, "second" waits for its pacing slot
        await worker.stop()

    asyncio.run(go())
    rows = {r.body: r for r in outbox_rows(svc)}
    assert slow.sent == ["first"]
    assert rows["first"].status == "sent" and rows["first"].provider_id == "P1"
    assert rows["second"].status == "pending" and rows["second"].attempts == 0


def test_a_crisis_reply_refused_by_sms_goes_to_telegram_and_the_alert_becomes_high(
    tmp_path: Path, fake: FakeTwilio
) -> None:
    from channels.base import Inbound
    from storage.tables import Alert

    svc = make_service(tmp_path)
    add_client(svc, phone=CLIENT_PHONE, telegram="700001", channel="sms")
    svc.handle_inbound(Inbound("sms", "I wish I could disappear", address=CLIENT_PHONE, provider_id="SMin"), now())
    with Session(svc.db) as s:
        (alert,) = s.exec(select(Alert)).all()
        assert alert.level == "moderate"
    fake.plan = [21610]  # the client's reply is refused; the staff alert (second row) goes through
    got: list[Outbound] = []

    def tg(out: Outbound) -> SendResult:
        got.append(out)
        return SendResult(ok=True, provider_id="1:1")

    senders = {"sms": sender(fake).send_sync, "telegram": tg}
    while outbox.drain(svc.db, senders, now()):
        pass
    assert [o.to for o in got] == ["700001"]
    with Session(svc.db) as s:
        assert s.exec(select(Alert)).one().level == "high"


class InstantSender:
    def __init__(self) -> None:
        self.sent = 0

    def pacing(self, out: Outbound) -> list[tuple[str, float, float, float]]:
        return [("instant", 1e6, 1e6, 1.0)]

    async def send(self, out: Outbound) -> SendResult:
        await asyncio.sleep(0)
        self.sent += 1
        return SendResult(ok=True, provider_id=f"P{out.outbox_id}")


def test_a_burst_of_successful_sends_is_recorded_in_a_few_commits(tmp_path: Path) -> None:
    from sqlalchemy import event

    svc = make_service(tmp_path)
    add_client(svc)
    ids = [queue(svc, f"reminder {i}") for i in range(20)]
    commits: list[int] = []
    event.listen(svc.db, "commit", lambda conn: commits.append(1))
    worker = outbox.Worker(svc.db, {"sms": InstantSender()})
    assert asyncio.run(worker.run_once()) == 20
    rows = {r.id: r for r in outbox_rows(svc)}
    assert all(rows[i].status == "sent" and rows[i].provider_id == f"P{i}" for i in ids)
    with Session(svc.db) as s:
        msgs = s.exec(select(Message).where(Message.direction == "out")).all()
    assert len(msgs) == 20 and all(m.status == "sent" and m.provider_id for m in msgs)
    # one commit claims the 20 rows; the outcomes share commits instead of taking one each
    assert 2 <= len(commits) <= 5, len(commits)


def test_record_sent_does_not_move_a_delivered_message_back(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    add_client(svc)
    row_id = queue(svc, "x")
    (c,) = outbox.claim(svc.db, now(), 5)
    with Session(svc.db) as s:
        m = s.get(Message, c.message_id)
        assert m is not None
        m.status = "delivered"  # the delivery report raced ahead of the send's own record
        s.add(m)
        s.commit()
    outbox.record_sent(svc.db, [(row_id, c.message_id, "SM1")])
    outbox.record_sent(svc.db, [])
    with Session(svc.db) as s:
        m = s.get(Message, c.message_id)
        row = s.get(Outbox, row_id)
    assert m is not None and m.status == "delivered" and m.provider_id == "SM1"
    assert row is not None and row.status == "sent" and row.provider_id == "SM1"
