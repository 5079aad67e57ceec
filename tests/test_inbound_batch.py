"""Group commit: a batch of inbound messages in one transaction does exactly what one-by-one does."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from bot.config import parse_config
from bot.service import Service
from bot.web.batcher import InboundBatcher
from channels.base import Inbound
from storage import make_engine
from storage.migrate import upgrade_url
from storage.tables import Alert, Appointment, Conversation, Message, Outbox

T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
CFG = parse_config(
    {
        "quiet_hours": {"start": "23:59", "end": "00:00"},
        "crisis": {"oncall": [{"name": "oc", "phone": "+15555550101"}]},
        "clinicians": [
            {
                "id": "rivera",
                "tz": "America/New_York",
                "session_minutes": 50,
                "availability": {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
            }
        ],
    }
)
PHONES = [f"+1212555{1000 + i:04d}" for i in range(5)]

# (sender index, text): several clients, one of them writing twice, a crisis, a duplicate id,
# an unknown sender, a message from the on-call person, and the crisis sender writing again.
MESSAGES: list[tuple[str, str, str | None]] = [
    (PHONES[0], "yes", "SM1"),
    (PHONES[1], "can we move it to friday afternoon?", "SM2"),
    (PHONES[0], "thanks!", "SM3"),
    (PHONES[2], "I want to end my life", "SM4"),
    (PHONES[3], "STOP", "SM5"),
    (PHONES[1], "yes", "SM2"),  # the same provider id again: a duplicate
    ("+12125559999", "hello?", "SM6"),
    ("+15555550101", "OK", "SM7"),
    (PHONES[2], "ok", "SM8"),  # after their crisis message in the same batch: forwarded, not scripted
    # a second and third message from a client whose first one changed their rows in this batch
    # (an offer of slots waiting for an answer, then the appointment moved): their context is read
    # after those changes are written (Service._context)
    (PHONES[1], "1", "SM9"),
    (PHONES[1], "what time is my appointment?", "SM10"),
    (PHONES[0], "I need to cancel my appointment", "SM11"),
    # asks for the afternoon another client's reply took a slot of, earlier in the same batch: that
    # slot is not offered (the move is flushed before the bookings are read; confirmations are not)
    (PHONES[4], "can we move it to friday afternoon?", "SM12"),
]


def setup(db_url: str) -> Service:
    upgrade_url(db_url)
    svc = Service(CFG, make_engine(db_url))
    for i, p in enumerate(PHONES):
        svc.upsert_client({"id": f"c{i}", "name": f"C{i}", "phone": p, "lang": "en", "tz": "America/New_York"}, T0)
        svc.upsert_appointment(
            {"id": f"a{i}", "client": f"c{i}", "clinician": "rivera", "start": (T0 + timedelta(days=2)).isoformat()}, T0
        )
    return svc


def _key(row: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple("" if v is None else str(v) for v in row)


def outcome_of(svc: Service) -> dict[str, Any]:
    with Session(svc.db) as s:
        return {
            "in": sorted(
                ((m.client_id, m.address, m.body) for m in s.exec(select(Message).where(Message.direction == "in"))),
                key=_key,
            ),
            "out": sorted(
                (
                    (m.client_id, m.address, m.dialogue, m.step, m.body)
                    for m in s.exec(select(Message).where(Message.direction == "out"))
                ),
                key=_key,
            ),
            "outbox": len(list(s.exec(select(Outbox)))),
            "appointments": sorted((a.id, a.status) for a in s.exec(select(Appointment))),
            "alerts": [(a.client_id, a.level) for a in s.exec(select(Alert).order_by(col(Alert.id)))],
        }


def inbound(i: int) -> tuple[Inbound, datetime]:
    sender, text, sid = MESSAGES[i]
    return Inbound("sms", text, address=sender, provider_id=sid), T0 + timedelta(seconds=i)


@pytest.mark.parametrize("split", [[13], [3, 10], [5, 8], [1] * 13])
def test_a_batch_does_what_one_by_one_does(db_url: str, tmp_path: Any, split: list[int]) -> None:
    one = setup(f"sqlite:///{tmp_path / 'one.db'}")
    singles = [one.handle_inbound(*inbound(i)) for i in range(len(MESSAGES))]

    svc = setup(db_url)
    got: list[str] = []
    start = 0
    for n in split:
        got += svc.handle_inbound_batch([inbound(i) for i in range(start, start + n)])
        start += n
    assert got == singles
    assert "duplicate" in got and "crisis" in got and "opt_out" in got and "forwarded" in got
    assert got[9] == "resumed" and outcome_of(svc)["appointments"][1][1] == "rescheduled"
    assert outcome_of(svc) == outcome_of(one)


def test_a_failing_message_costs_only_itself(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = setup(db_url)
    real = svc._inbound

    def flaky(u: Any, inb: Inbound) -> str:
        if inb.text == "thanks!":
            raise RuntimeError("boom")
        return real(u, inb)

    monkeypatch.setattr(svc, "_inbound", flaky)
    batch = [inbound(i) for i in range(4)]
    with pytest.raises(RuntimeError):
        svc.handle_inbound_batch(batch)  # one by one after the batch failed: the bad one raises
    monkeypatch.setattr(svc, "_inbound", real)
    # Everything before the bad message was committed on its own; the batch's attempt left nothing.
    with Session(svc.db) as s:
        bodies = sorted(m.body for m in s.exec(select(Message).where(Message.direction == "in")))
    assert bodies == ["can we move it to friday afternoon?", "yes"]


def test_the_batcher_groups_what_arrives_together(tmp_path: Any) -> None:
    svc = setup(f"sqlite:///{tmp_path / 'b.db'}")
    sizes: list[int] = []
    real = svc.handle_inbound_batch

    def spy(batch: Any) -> list[str]:
        sizes.append(len(batch))
        return real(batch)

    svc.handle_inbound_batch = spy  # type: ignore[method-assign]

    async def main() -> list[str]:
        b = InboundBatcher(svc, asyncio.to_thread, max_batch=3)
        return await asyncio.gather(*(b.submit(*inbound(i)) for i in range(len(MESSAGES))))

    outcomes = asyncio.run(main())
    assert outcomes[5] == "duplicate" and outcomes[3] == "crisis"
    assert sum(sizes) == len(MESSAGES) and max(sizes) <= 3 and len(sizes) < len(MESSAGES)


def test_the_batcher_fails_the_webhooks_of_a_batch_that_raises(tmp_path: Any) -> None:
    svc = setup(f"sqlite:///{tmp_path / 'c.db'}")

    def broken(batch: Any) -> list[str]:
        raise RuntimeError("database gone")

    svc.handle_inbound_batch = broken  # type: ignore[method-assign]

    async def main() -> list[Any]:
        b = InboundBatcher(svc, asyncio.to_thread)
        return await asyncio.gather(*(b.submit(*inbound(i)) for i in range(3)), return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(main()))


@pytest.mark.parametrize("by", ["address", "id"])
def test_a_batched_context_read_sees_the_clients_own_unflushed_changes(db_url: str, by: str) -> None:
    """Reading a context in a batch skips the flush of earlier messages' changes, except this
    client's own: a cancelled appointment is not their next one any more, and the read by id
    (which re-reads rows) does not overwrite the change."""
    svc = setup(db_url)
    with svc.unit(T0) as u:
        u.batched = True
        a1, a2 = u.s.get(Appointment, "a1"), u.s.get(Appointment, "a2")
        assert a1 is not None and a2 is not None
        a1.status = "cancelled"  # client c1's, not flushed
        a2.confirmed = True  # another client's, not flushed
        # another client's read leaves the pending changes alone (they go at commit)
        ctx3 = svc._context(u, channel="sms", address=PHONES[3]) if by == "address" else svc._context(u, client_id="c3")
        assert ctx3 is not None and ctx3.appointment is not None and ctx3.appointment.id == "a3"
        assert a1 in u.s.dirty and a2 in u.s.dirty
        ctx = svc._context(u, channel="sms", address=PHONES[1]) if by == "address" else svc._context(u, client_id="c1")
        assert ctx is not None and ctx.client.id == "c1"
        assert ctx.appointment is None and a1.status == "cancelled"
    with Session(svc.db) as s:
        got = s.get(Appointment, "a1")
        assert got is not None and got.status == "cancelled"


def test_a_batch_records_its_provider_ids_in_one_statement(db_url: str) -> None:
    from storage import store

    svc = setup(db_url)
    with svc.unit(T0) as u:
        assert store.mark_seen(u.s, "sms", "SMold", T0)
    with svc.unit(T0) as u:
        items = [("sms", "SMa"), ("sms", "SMold"), ("telegram", "SMa"), ("sms", "SMa")]
        assert store.mark_seen_many(u.s, items, T0) == {("sms", "SMa"), ("telegram", "SMa")}
        assert store.mark_seen_many(u.s, [], T0) == set()
    with svc.unit(T0) as u:
        assert not store.mark_seen(u.s, "telegram", "SMa", T0)


def test_the_slot_search_sees_unflushed_moves_and_leaves_confirmations_pending(db_url: str) -> None:
    from storage import store

    svc = setup(db_url)
    moved_to = T0 + timedelta(days=3, hours=2)
    with svc.unit(T0) as u:
        u.batched = True
        a1, a2 = u.s.get(Appointment, "a1"), u.s.get(Appointment, "a2")
        assert a1 is not None and a2 is not None
        a2.confirmed = True
        a2.status = "confirmed"  # still booked: nothing to flush for the slot search
        before = store.clinician_bookings(u.s, "rivera", T0, T0 + timedelta(days=14))
        assert a2 in u.s.dirty and len(before) == len(PHONES)
        a1.start = moved_to  # another client's move in the same batch: flushed first
        starts = [st for st, _m in store.clinician_bookings(u.s, "rivera", T0, T0 + timedelta(days=14))]
        assert moved_to in starts and a1 not in u.s.dirty and a2 not in u.s.dirty
        a2.status = "cancelled"  # out of the booked statuses: flushed first, its slot is free
        after = store.clinician_bookings(u.s, "rivera", T0, T0 + timedelta(days=14))
        assert len(after) == len(PHONES) - 1


def test_a_postgres_batch_looks_up_its_senders_and_takes_their_locks_once(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not three round trips a message while the batch holds its transaction (Service._prepare_batch):
    the senders' ids, their locks and their contexts once for the batch; a client's second message
    reads its context again, after what the first one changed."""
    from storage import store
    from tests.conftest import fresh_pg_database

    svc = setup(fresh_pg_database(pg_url))
    calls: Counter[str] = Counter()

    def counted(name: str, hot: Any) -> None:
        real = hot.rows

        def rows(*a: Any) -> Any:
            calls[name] += 1
            return real(*a)

        monkeypatch.setattr(hot, "rows", rows)

    counted("lock", store._LOCK)
    counted("locks", store._LOCK_MANY)
    counted("context", store._CONTEXT_HOT["id"])
    counted("contexts", store._CONTEXTS_HOT)
    for ch in ("phone", "telegram"):
        counted("id", store._CLIENT_ID_BY[ch])
        counted("ids", store._CLIENT_IDS_BY[ch])
    clients_only = [i for i, (sender, _, _) in enumerate(MESSAGES) if sender != "+15555550101"]
    got = svc.handle_inbound_batch([inbound(i) for i in clients_only])
    assert "crisis" in got and "resumed" in got and "unknown_sender" in got
    repeats = len(clients_only) - 1 - len({MESSAGES[i][0] for i in clients_only})  # less the duplicate
    assert calls == {"locks": 1, "ids": 1, "contexts": 1, "context": repeats}
    # and what one by one does (the unknown sender has no context to read)
    one = setup(fresh_pg_database(pg_url))
    assert got == [one.handle_inbound(*inbound(i)) for i in clients_only]
    assert outcome_of(svc) == outcome_of(one)


def test_a_postgres_batch_reads_again_a_context_that_an_earlier_message_changed(pg_url: str, tmp_path: Any) -> None:
    """The on-call person's "RESOLVED" comes first in the batch (address order) and closes the
    alert of a client who writes in the same batch: that client's context, read at the batch's
    start with the alert open, is not used; their message goes to the scripts as one by one."""
    from tests.conftest import fresh_pg_database

    late = "+19995550000"  # sorts after the on-call person's number

    def prepared(url: str) -> Service:
        svc = setup(url)
        svc.upsert_client({"id": "late", "name": "L", "phone": late, "lang": "en", "tz": "America/New_York"}, T0)
        crisis = Inbound("sms", "I want to end my life", address=late, provider_id="SMc")
        assert svc.handle_inbound(crisis, T0) == "crisis"
        return svc

    batch = [
        (Inbound("sms", "RESOLVED", address="+15555550101", provider_id="SMr"), T0 + timedelta(minutes=1)),
        (Inbound("sms", "what time is my appointment?", address=late, provider_id="SMl"), T0 + timedelta(minutes=2)),
    ]
    one = prepared(f"sqlite:///{tmp_path / 'one.db'}")
    singles = [one.handle_inbound(*b) for b in batch]
    assert singles[0] == "staff_resolve" and singles[1] != "forwarded"
    svc = prepared(fresh_pg_database(pg_url))
    assert svc.handle_inbound_batch(batch) == singles
    assert outcome_of(svc) == outcome_of(one)


def test_a_prefetched_context_stands_only_while_nothing_wrote_to_the_client(pg_url: str) -> None:
    """Service._prefetched: a row read at the batch's start is not used once a flush wrote to the
    client's rows, nor once their next appointment has started."""
    from storage import store
    from tests.conftest import fresh_pg_database

    svc = setup(fresh_pg_database(pg_url))
    start = T0 + timedelta(days=2)  # every client's appointment (setup)
    with svc.unit(T0) as u:
        u.batched = True
        store.track_touched(u.s)
        u.prefetched = store.inbound_context_rows(u.s, T0, ["c0", "c1", "c2", "c3", "nobody"])
        assert set(u.prefetched) == {"c0", "c1", "c2", "c3"}
        # a row that names the client, not yet written: the context is read after it
        u.s.add(Conversation(client_id="c3", dialogue="feedback", step="rating", active=True, started_at=T0))
        ctx3 = svc._context(u, client_id="c3")
        assert ctx3 is not None and ctx3.conversation is not None and ctx3.conversation.dialogue == "feedback"
        a1 = u.s.get(Appointment, "a1")
        assert a1 is not None
        a1.status = "cancelled"
        u.s.flush()  # written, no longer pending: only the flush's record tells
        assert not store.has_pending(u.s, "c1") and store.touched(u.s) == {"c1", "c3"}
        ctx1 = svc._context(u, client_id="c1")
        assert ctx1 is not None and ctx1.appointment is None  # read again: the cancelled one is not next
        u.now = start  # c2's appointment starts now: not the next one any more
        ctx2 = svc._context(u, client_id="c2")
        assert ctx2 is not None and ctx2.appointment is None
        u.now = T0
        ctx0 = svc._context(u, client_id="c0")  # untouched: the prefetched row, as a read gives it
        assert ctx0 is not None and ctx0.appointment is not None and ctx0.appointment.id == "a0"
        assert ctx0.client in u.s and not u.s.dirty and u.prefetched == {}


def test_postgres_batches_of_the_same_clients_in_two_processes_neither_deadlock_nor_read_stale(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two services on their own engines (two processes' worth) process batches of the same clients
    at once, each client's state moving (offers of slots, a pick, a confirmation). A batch takes
    its locks at its start and reads its contexts after them: no batch is rolled back (a deadlock
    or a conflict would redo it one message at a time), and no client ever has two conversations
    open, which a context read before the other process committed would leave behind."""
    import random
    import threading

    from tests.conftest import fresh_pg_database

    url = fresh_pg_database(pg_url)
    first = setup(url)
    second = Service(CFG, make_engine(url))
    rng = random.Random(5)
    texts = ["can we move it to friday afternoon?", "1", "yes", "thanks!", "what time is my appointment?"]
    plans: list[list[list[tuple[Inbound, datetime]]]] = [[], []]
    for p, plan in enumerate(plans):
        for b in range(15):
            senders = rng.sample(PHONES[:4], 4)  # four clients, a different order each time
            plan.append(
                [
                    (Inbound("sms", rng.choice(texts), address=s, provider_id=f"SM{p}-{b}-{k}"), T0)
                    for k, s in enumerate(senders)
                ]
            )
    results: list[list[str]] = [[], []]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run(i: int, svc: Service) -> None:
        try:
            start.wait()
            for batch in plans[i]:
                results[i] += svc.handle_inbound_batch(batch)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    with caplog.at_level("WARNING", logger="rapport.service"):
        threads = [threading.Thread(target=run, args=(i, svc)) for i, svc in enumerate((first, second))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert not errors and not any(t.is_alive() for t in threads)
    assert not [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(results[0]) == len(results[1]) == 60 and "duplicate" not in results[0] + results[1]
    assert len(outcome_of(first)["in"]) == 120
    with Session(first.db) as s:
        open_ = Counter(c.client_id for c in s.exec(select(Conversation).where(col(Conversation.active))))
    assert open_ and max(open_.values()) == 1
