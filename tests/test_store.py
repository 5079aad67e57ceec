"""The store on SQLite and on a real PostgreSQL: the same tests, both engines."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, func, select

from bot import outbox
from storage import make_engine, store
from storage.admin_tables import Takeover
from storage.migrate import upgrade_url
from storage.tables import Alert, Appointment, AuditLog, Client, Conversation, InboundSeen, Message, Outbox, Timer
from tests.conftest import fresh_pg_database

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(db_url: str):  # type: ignore[no-untyped-def]
    upgrade_url(db_url)
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def test_datetimes_come_back_timezone_aware(db) -> None:  # type: ignore[no-untyped-def]
    start = datetime(2026, 12, 3, 15, 0, tzinfo=ZoneInfo("America/Sao_Paulo"))
    with Session(db) as s:
        s.add(Client(id="c1", name="Ana", created_at=T0))
        s.add(Appointment(id="a1", client_id="c1", start=start, minutes=50, history=[]))
        s.commit()
    with Session(db) as s:
        a = s.get(Appointment, "a1")
        assert a is not None
        assert a.start.tzinfo is not None
        assert a.start == start
        assert a.start.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(db) -> None:  # type: ignore[no-untyped-def]
    with Session(db) as s:
        s.add(Timer(kind="x", due_at=datetime(2026, 1, 1)))
        with pytest.raises(Exception, match="naive"):
            s.commit()


def test_due_timers_in_order_and_only_pending(db) -> None:  # type: ignore[no-untyped-def]
    with Session(db) as s:
        s.add(Timer(kind="b", due_at=T0 + timedelta(minutes=2)))
        s.add(Timer(kind="a", due_at=T0 + timedelta(minutes=1)))
        s.add(Timer(kind="done", due_at=T0, done=True))
        s.add(Timer(kind="later", due_at=T0 + timedelta(hours=1)))
        s.commit()
    with Session(db) as s:
        t = store.next_due_timer(s, T0 + timedelta(minutes=5))
        assert t is not None and t.kind == "a"
        assert store.next_due_timer(s, T0) is None
        assert store.earliest_pending_due(s) == T0 + timedelta(minutes=1)


def test_an_inbound_provider_id_is_stored_once(db) -> None:  # type: ignore[no-untyped-def]
    with Session(db) as s:
        s.add(InboundSeen(channel="sms", provider_id="SM1", at=T0))
        s.commit()
    with Session(db) as s:
        s.add(InboundSeen(channel="sms", provider_id="SM1", at=T0))
        with pytest.raises(IntegrityError):
            s.commit()
    with Session(db) as s:
        s.add(InboundSeen(channel="telegram", provider_id="SM1", at=T0))
        s.commit()


def test_count_automated_ignores_held_and_replies(db) -> None:  # type: ignore[no-untyped-def]
    with Session(db) as s:
        for i, (auto, status) in enumerate([(True, "sent"), (True, "held"), (False, "sent"), (True, "queued")]):
            s.add(
                Message(
                    client_id="c1",
                    direction="out",
                    channel="sms",
                    automated=auto,
                    status=status,
                    created_at=T0 + timedelta(minutes=i),
                )
            )
        s.add(
            Message(
                client_id="c1",
                direction="out",
                channel="sms",
                automated=True,
                status="sent",
                created_at=T0 - timedelta(days=2),
            )
        )
        s.commit()
    with Session(db) as s:
        assert store.count_automated(s, "c1", T0 - timedelta(days=1)) == 2
        assert store.count_automated(s, "c1", T0 - timedelta(days=7)) == 3


def _context_fixture(s: Session) -> None:
    s.add(Client(id="c1", phone="+15550001", telegram="901"))
    s.add(Client(id="c2", phone="+15550002"))
    s.add(Conversation(client_id="c1", dialogue="old", step="x", active=False))
    s.add(Conversation(client_id="c1", dialogue="feedback", step="rating", active=True))
    s.add(Conversation(client_id="c2", dialogue="other", step="x", active=True))
    for aid, start, status in [
        ("past", T0 - timedelta(days=1), "scheduled"),
        ("gone", T0 + timedelta(days=1), "cancelled"),
        ("next", T0 + timedelta(days=2), "confirmed"),
        ("later", T0 + timedelta(days=9), "scheduled"),
    ]:
        s.add(Appointment(id=aid, client_id="c1", start=start, status=status))
    s.add(Alert(client_id="c1", level="high", status="resolved"))
    s.add(Alert(client_id="c1", level="high", status="acked"))
    s.add(Alert(client_id="c2", level="high", status="open"))
    s.add(Takeover(client_id="c2", by="dr_a", at=T0))
    s.commit()


def test_inbound_context_is_what_the_separate_lookups_give(db) -> None:  # type: ignore[no-untyped-def]
    """The one-statement context (client, active conversation, next appointment, open alert,
    takeover) agrees with the lookups it replaces, by address, by Telegram chat and by id."""
    with Session(db) as s:
        _context_fixture(s)
    with Session(db) as s:
        for ctx in (
            store.inbound_context(s, T0, channel="sms", address="+15550001"),
            store.inbound_context(s, T0, channel="telegram", address="901"),
            store.inbound_context(s, T0, client_id="c1"),
        ):
            assert ctx is not None and ctx.client.id == "c1"
            assert ctx.conversation is not None and ctx.conversation == store.active_conversation(s, "c1")
            assert ctx.conversation.dialogue == "feedback"
            nxt = store.next_appointment(s, "c1", T0)
            assert ctx.appointment is not None and nxt is not None and ctx.appointment.id == "next" == nxt.id
            alert, taken = store.open_alert(s, "c1"), s.get(Takeover, "c1") is not None
            assert alert is not None and ctx.alert_id == alert.id and ctx.taken_over is taken is False
        two = store.inbound_context(s, T0, channel="sms", address="+15550002")
        assert two is not None and two.appointment is None and two.taken_over and two.alert_id is not None
        assert store.inbound_context(s, T0, channel="sms", address="+15559999") is None
        assert store.inbound_context(s, T0, client_id="nobody") is None
        assert store.client_id_by_address(s, "sms", "+15550002") == "c2"
        assert store.client_id_by_address(s, "telegram", "901") == "c1"


def _columns(obj: object) -> dict[str, object]:
    return {c.key: getattr(obj, c.key) for c in store.table_of(type(obj)).c}


def test_the_context_read_on_the_cursor_loads_what_the_orm_loads(db) -> None:  # type: ignore[no-untyped-def]
    """store.inbound_context runs on the DBAPI cursor (storage.hot) and attaches its rows as the
    session's objects: the same values as the ORM's own load (aware datetimes, JSON), tracked the
    same way (nothing dirty after the read, a change written at commit)."""
    with Session(db) as s:
        _context_fixture(s)
        c1 = s.get(Client, "c1")
        assert c1 is not None
        c1.consent_at = T0
        conv = store.active_conversation(s, "c1")
        assert conv is not None
        conv.vars = {"slots": ["2026-12-04T11:30:00-05:00"], "n": 1}
        conv.wait = {"expects": "reschedule_time"}
        s.commit()
    with Session(db) as orm:
        c, v, a = orm.get(Client, "c1"), store.active_conversation(orm, "c1"), orm.get(Appointment, "next")
        want = [_columns(c), _columns(v), _columns(a)]
    keys = ({"channel": "sms", "address": "+15550001"}, {"channel": "telegram", "address": "901"}, {"client_id": "c1"})
    for key in keys:
        with Session(db) as s:
            ctx = store.inbound_context(s, T0, **key)  # type: ignore[arg-type]
            assert ctx is not None and ctx.conversation is not None and ctx.appointment is not None
            assert not s.dirty and ctx.client in s and ctx.conversation in s and ctx.appointment in s
            assert [_columns(ctx.client), _columns(ctx.conversation), _columns(ctx.appointment)] == want
            assert ctx.client.consent_at == T0 and ctx.client.consent_at.tzinfo is not None
            assert ctx.conversation.vars["slots"] == ["2026-12-04T11:30:00-05:00"]
            ctx.conversation.step = "moved"
            ctx.client.lang = "es"
            s.commit()
        with Session(db) as s:
            c, v = s.get(Client, "c1"), store.active_conversation(s, "c1")
            assert c is not None and v is not None and (c.lang, v.step) == ("es", "moved")
            c.lang, v.step = "en", "rating"
            s.commit()


def test_the_context_read_keeps_objects_the_session_holds(db) -> None:  # type: ignore[no-untyped-def]
    """A client (or conversation) already in the session is not replaced by the read: the ORM reads
    it, and an unflushed change the unit made stays."""
    with Session(db) as s:
        _context_fixture(s)
    with Session(db) as s, s.no_autoflush:
        held = s.get(Client, "c1")
        assert held is not None
        held.lang = "pt_BR"  # not flushed
        ctx = store.inbound_context(s, T0, channel="sms", address="+15550001")
        assert ctx is not None and ctx.client is held and held.lang == "pt_BR"
        assert ctx.conversation is not None and ctx.conversation.dialogue == "feedback"


def test_the_context_read_takes_any_address(db) -> None:  # type: ignore[no-untyped-def]
    """Addresses come from outside: a NUL (which PostgreSQL text cannot hold), quotes, SQL."""
    with Session(db) as s:
        _context_fixture(s)
    with Session(db) as s:
        for address in ("90\x001", "' OR 1=1 --", "+1555'0001", "", "x" * 5000):
            assert store.inbound_context(s, T0, channel="telegram", address=address) is None
            assert store.inbound_context(s, T0, channel="sms", address=address) is None


def test_deferred_writes_land_at_flush_in_order_with_their_outbox_rows(db) -> None:  # type: ignore[no-untyped-def]
    with Session(db) as s:
        store.defer_writes(s)
        store.add_message(
            s, client_id="c1", direction="in", channel="sms", body="yes", status="received", created_at=T0
        )
        ids = [
            store.add_outbound(
                s,
                {
                    "client_id": "c1",
                    "direction": "out",
                    "channel": "sms",
                    "body": f"reply {k}",
                    "status": "queued",
                    "created_at": T0,
                },
                {"channel": "sms", "to": "+15550001", "body": f"reply {k}", "next_attempt_at": T0, "created_at": T0},
            )
            for k in range(3)
        ]
        store.audit(s, T0, "client:c1", "appointment", "a1", "confirmed")
        assert ids == [None, None, None]  # nothing written yet
        assert s.exec(select(func.count()).select_from(Message)).one() == 0
        store.flush_deferred(s)
        store.flush_deferred(s)  # twice is harmless: the lists were emptied
        s.commit()
    with Session(db) as s:
        msgs = list(s.exec(select(Message).order_by(col(Message.id))))
        assert [m.body for m in msgs] == ["yes", "reply 0", "reply 1", "reply 2"]
        rows = list(s.exec(select(Outbox).order_by(col(Outbox.id))))
        by_id = {m.id: m.body for m in msgs}
        assert [(by_id[r.message_id], r.body) for r in rows] == [(f"reply {k}", f"reply {k}") for k in range(3)]
        assert len(list(s.exec(select(AuditLog)))) == 1
    with Session(db) as s:  # without defer_writes: written at once, the id returned
        mid = store.add_outbound(
            s,
            {
                "client_id": "c1",
                "direction": "out",
                "channel": "sms",
                "body": "now",
                "status": "queued",
                "created_at": T0,
            },
            {"channel": "sms", "to": "+15550001", "body": "now", "next_attempt_at": T0, "created_at": T0},
        )
        assert mid is not None and s.get(Message, mid) is not None


def test_count_automated_sees_deferred_messages(db) -> None:  # type: ignore[no-untyped-def]
    with Session(db) as s:
        store.defer_writes(s)
        store.add_outbound(
            s,
            {
                "client_id": "c1",
                "direction": "out",
                "channel": "sms",
                "body": "r",
                "status": "queued",
                "automated": True,
                "created_at": T0,
            },
            {"channel": "sms", "to": "+1", "body": "r", "next_attempt_at": T0, "created_at": T0},
        )
        assert store.count_automated(s, "c1", T0 - timedelta(days=1)) == 1


def test_outbox_claims_by_priority(db) -> None:  # type: ignore[no-untyped-def]
    with Session(db) as s:
        s.add(Outbox(message_id=1, channel="sms", to="+1", body="low", priority=0, next_attempt_at=T0))
        s.add(Outbox(message_id=2, channel="sms", to="+1", body="crisis", priority=10, next_attempt_at=T0))
        s.add(
            Outbox(
                message_id=3, channel="sms", to="+1", body="later", priority=10, next_attempt_at=T0 + timedelta(hours=1)
            )
        )
        s.commit()
    # the worker's claim (bot/outbox.py): one statement on both databases
    assert [r.body for r in outbox.claim(db, T0, 50)] == ["crisis", "low"]


def test_outbox_records_a_batch_of_sends(db) -> None:  # type: ignore[no-untyped-def]
    """record_sent (one statement over arrays on PostgreSQL, two executemany on SQLite): every row
    and its message sent with its provider id; a message already delivered stays delivered; rows
    not in the batch are untouched."""
    statuses = ["queued", "delivered", "queued", "queued"]
    with Session(db) as s:
        msgs = [
            # ids unlike the outbox rows': a mix-up of the two shows
            Message(id=100 + i, direction="out", channel="sms", body=f"m{i}", status=st, error="try 1/10: 503")
            for i, st in enumerate(statuses)
        ]
        s.add_all(msgs)
        s.flush()
        rows = [
            Outbox(
                message_id=m.id, channel="sms", to="+1", body=m.body, status="sending", error="x", next_attempt_at=T0
            )
            for m in msgs
        ]
        s.add_all(rows)
        s.commit()
        ids = [(r.id, m.id) for r, m in zip(rows, msgs, strict=True)]
    pids = ["SM1", "SM'2\"", None]
    outbox.record_sent(db, [(r, m, p) for (r, m), p in zip(ids[:3], pids, strict=True)])
    outbox.record_sent(db, [])
    with Session(db) as s:
        got_rows = [s.get(Outbox, r) for r, _ in ids]
        got_msgs = [s.get(Message, m) for _, m in ids]
    assert [(r.status, r.provider_id, r.error) for r in got_rows if r] == [
        ("sent", "SM1", None),
        ("sent", "SM'2\"", None),
        ("sent", None, None),
        ("sending", None, "x"),
    ]
    assert [(m.status, m.provider_id, m.error) for m in got_msgs if m] == [
        ("sent", "SM1", None),
        ("delivered", "SM'2\"", None),
        ("sent", None, None),
        ("queued", None, "try 1/10: 503"),
    ]


def test_postgres_client_lock_holds_across_connections(pg_url: str) -> None:
    db_url = fresh_pg_database(pg_url)
    upgrade_url(db_url)
    eng = make_engine(db_url)
    with Session(eng) as s1:
        store.lock_client(s1, "c1")
        with Session(eng) as s2:
            s2.execute(text("SET lock_timeout = '200ms'"))
            with pytest.raises(OperationalError):
                store.lock_client(s2, "c1")
        with Session(eng) as s3:
            store.lock_client(s3, "c2")  # another client is not blocked
            s3.commit()
        s1.commit()
    with Session(eng) as s4:
        store.lock_client(s4, "c1")  # released at commit
        s4.commit()
    eng.dispose()


def test_postgres_timers_are_claimed_by_one_process(pg_url: str) -> None:
    db_url = fresh_pg_database(pg_url)
    upgrade_url(db_url)
    eng = make_engine(db_url)
    with Session(eng) as s:
        s.add(Timer(kind="a", due_at=T0))
        s.add(Timer(kind="b", due_at=T0))
        s.commit()
    with Session(eng) as s1, Session(eng) as s2:
        t1 = store.next_due_timer(s1, T0)
        t2 = store.next_due_timer(s2, T0)
        assert t1 is not None and t2 is not None and t1.id != t2.id
        with Session(eng) as s3:
            assert store.next_due_timer(s3, T0) is None
    eng.dispose()


def test_sqlite_writers_serialise(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade_url(url)
    eng = make_engine(url)
    order: list[str] = []
    first_in = threading.Event()

    def writer(name: str, hold: threading.Event | None) -> None:
        with Session(eng) as s:
            s.add(Timer(kind=name, due_at=T0))
            s.flush()
            order.append(f"{name}-in")
            first_in.set()
            if hold is not None:
                hold.wait(5)
            order.append(f"{name}-out")
            s.commit()

    release = threading.Event()
    a = threading.Thread(target=writer, args=("a", release))
    a.start()
    first_in.wait(5)
    b = threading.Thread(target=writer, args=("b", None))
    b.start()
    b.join(0.3)  # b cannot get in while a holds the write lock
    release.set()
    a.join()
    b.join()
    assert order == ["a-in", "a-out", "b-in", "b-out"]
    eng.dispose()


def test_db_upgrade_command_on_the_default_sqlite_beside_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    (tmp_path / "config.yaml").write_text("practice_name: X\n")
    env = {k: v for k, v in os.environ.items() if k != "RAPPORT_DATABASE_URL"}
    r = subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", "upgrade", "--config", str(tmp_path / "config.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "rapport.db").exists()
    eng = make_engine(f"sqlite:///{tmp_path / 'rapport.db'}")
    with eng.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar()
    eng.dispose()


def test_db_upgrade_command_honours_the_environment_url(pg_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    url = fresh_pg_database(pg_url)
    r = subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", "upgrade", "--config", str(tmp_path / "none.yaml")],
        capture_output=True,
        text=True,
        env={**os.environ, "RAPPORT_DATABASE_URL": url},
        timeout=120,
    )
    assert r.returncode == 2 and "no such file" in r.stderr  # an explicit config must exist
    (tmp_path / "c.yaml").write_text("{}\n")
    r = subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", "upgrade", "--config", str(tmp_path / "c.yaml")],
        capture_output=True,
        text=True,
        env={**os.environ, "RAPPORT_DATABASE_URL": url},
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    eng = make_engine(url)
    with Session(eng) as s:
        s.add(Client(id="c1", created_at=T0))
        s.commit()
    eng.dispose()


def test_a_periodic_job_runs_in_one_process_at_a_time(pg_url: str) -> None:
    db_url = fresh_pg_database(pg_url)
    a, b = make_engine(db_url), make_engine(db_url)
    with store.job_lock(a, "purge") as first, store.job_lock(b, "purge") as second, store.job_lock(b, "x") as other:
        assert (first, second, other) == (True, False, True)
    with store.job_lock(b, "purge") as again:
        assert again
    a.dispose()
    b.dispose()


@pytest.mark.parametrize(
    "cls, values",
    [
        (Conversation, {"client_id": "c1", "dialogue": "help", "step": "", "started_at": T0, "updated_at": T0}),
        (Conversation, {"client_id": "c1", "dialogue": "x", "step": "s", "vars": {"a": 1}, "wait": {"expects": "y"}}),
        (Timer, {"kind": "reminder", "client_id": "c1", "due_at": T0, "payload": {"offset": "1d"}}),
        (Timer, {"kind": "reminder", "due_at": T0}),
    ],
)
def test_new_row_is_the_constructor_without_its_cost(db, cls, values) -> None:  # type: ignore[no-untyped-def]
    from storage.tables import new_row

    made, built = new_row(cls, **values), cls(**values)
    assert made.model_dump() == built.model_dump()
    # defaults made per row, never shared between rows
    if "vars" not in values and cls is Conversation:
        assert new_row(cls, **values).vars is not made.vars
    with Session(db) as s:
        s.add(made)
        s.flush()
        made_id = made.id
        made.client_id = "c2"  # a change after the insert is tracked as usual
        s.commit()
    with Session(db) as s:
        got = s.get(cls, made_id)
        assert got is not None
        assert {**got.model_dump(), "client_id": None, "id": None} == {**built.model_dump(), "client_id": None}
        assert got.client_id == "c2"


def test_new_row_refuses_a_row_without_its_required_fields() -> None:
    from storage.tables import new_row

    with pytest.raises(TypeError, match="due_at"):
        new_row(Timer, kind="reminder")


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 11, 28, 0, 49, 19, 123456, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 3, 8, 1, 59, 59, 999999, tzinfo=ZoneInfo("America/New_York")),
        datetime(9, 12, 31, 23, 0, tzinfo=ZoneInfo("Asia/Tokyo")),
    ],
)
def test_sqlite_timestamps_are_sqlalchemys_own_text(value: datetime) -> None:
    """UTCDateTime writes and reads SQLite's column text itself: the same text SQLAlchemy's DATETIME
    writes (databases written before read the same), read back aware and equal, in any zone."""
    from sqlalchemy.dialects import sqlite

    from storage.types import UTCDateTime

    d = sqlite.dialect()
    t = UTCDateTime().dialect_impl(d)
    bind, result = t.bind_processor(d), t.result_processor(d, None)
    assert bind is not None and result is not None
    sqlalchemys = sqlite.DATETIME().bind_processor(d)
    assert sqlalchemys is not None
    text_ = bind(value)
    assert text_ == sqlalchemys(value.astimezone(UTC).replace(tzinfo=None))
    back = result(text_)
    assert back == value and back.tzinfo is UTC
    legacy = sqlite.DATETIME().result_processor(d, None)
    assert legacy is not None
    for stored in (text_, text_[:19], text_.replace(" ", "T"), text_[:21]):
        assert result(stored) == legacy(stored).replace(tzinfo=UTC)


def test_sqlite_timestamp_columns_keep_their_ddl_and_text(tmp_path) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    from storage import create_all

    create_all(eng)
    with Session(eng) as s:
        start = datetime(2026, 12, 3, 15, 0, tzinfo=ZoneInfo("America/Sao_Paulo"))
        s.add(Appointment(id="a1", client_id="c1", start=start))
        s.commit()
    with eng.connect() as c:
        ddl = c.execute(text("SELECT sql FROM sqlite_master WHERE name = 'appointments'")).scalar()
        assert "start DATETIME NOT NULL" in ddl
        assert c.execute(text("SELECT start FROM appointments")).scalar() == "2026-12-03 18:00:00.000000"
        assert c.execute(text("SELECT count(*) FROM appointments WHERE start > '2026-12-03 17:59'")).scalar() == 1


def test_a_failing_statement_on_the_cursor_raises_what_sqlalchemy_would(db) -> None:  # type: ignore[no-untyped-def]
    """Errors from storage.hot's statements are SQLAlchemy's (callers catch those), parameters hidden."""
    with Session(db) as s:
        s.execute(text("DROP TABLE takeovers"))
        s.commit()
    with Session(db) as s, pytest.raises(OperationalError if db.dialect.name == "sqlite" else Exception) as e:
        store.inbound_context(s, T0, channel="sms", address="+15550001")
    from sqlalchemy.exc import DBAPIError

    assert isinstance(e.value, DBAPIError) and "+15550001" not in str(e.value)


def test_client_ids_of_many_addresses_agree_with_one_at_a_time(db) -> None:  # type: ignore[no-untyped-def]
    """The batch lookup (an inbound batch on PostgreSQL) gives what the one-address lookup gives,
    for every address: unknown ones, one two clients share (the smallest id), quotes, a NUL."""
    with Session(db) as s:
        s.add(Client(id="b2", phone="+15550003"))
        s.add(Client(id="b1", phone="+15550003"))
        s.add(Client(id="c1", phone="+15550001", telegram="901"))
        s.add(Client(id="q", phone="+1555'\"; --"))
        s.add(Client(id="n", phone="+1555\ufffd0"))  # how PostgreSQL stores an address with a NUL
        s.commit()
    addresses = ["+15550001", "+15550003", "+15559999", "+1555'\"; --", "+1555\x000", "x" * 5000, "+15550001"]
    with Session(db) as s:
        many = store.client_ids_by_address(s, "sms", addresses)
        assert many == {a: store.client_id_by_address(s, "sms", a) for a in addresses}
        picked = (many["+15550001"], many["+15550003"], many["+15559999"], many["+1555'\"; --"])
        assert picked == ("c1", "b1", None, "q")
        assert store.client_ids_by_address(s, "telegram", ["901", "+15550001"]) == {"901": "c1", "+15550001": None}
        assert store.client_ids_by_address(s, "sms", []) == {}


def _positive_keys(n: int) -> list[str]:
    """Client ids whose lock keys are not negative, in key order: pg_locks shows them as objid."""
    ids = [f"c{i}" for i in range(200) if store.lock_key(f"c{i}") >= 0]
    return sorted(ids[:n], key=store.lock_key)


def test_postgres_many_client_locks_hold_across_connections_and_go_in_key_order(pg_url: str) -> None:
    db_url = fresh_pg_database(pg_url)
    upgrade_url(db_url)
    eng = make_engine(db_url)
    small, big = _positive_keys(2)
    with Session(eng) as s1:
        held = store.lock_clients(s1, [big, "addr:+15550001", big])
        assert held == {store.lock_key(big), store.lock_key("addr:+15550001")}
        for key in (big, "addr:+15550001"):
            with Session(eng) as s2:
                s2.execute(text("SET lock_timeout = '200ms'"))
                with pytest.raises(OperationalError):
                    store.lock_client(s2, key)
        # Listed big first, taken small first: the other transaction holds `small` while it waits.
        done = threading.Event()

        def other() -> None:
            with Session(eng) as s3:
                store.lock_clients(s3, [big, small])
                s3.commit()
            done.set()

        t = threading.Thread(target=other)
        t.start()
        granted: list[int] = []
        for _ in range(100):
            granted = [
                r[0]
                for r in s1.execute(
                    text(
                        "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted"
                        " AND pid <> pg_backend_pid()"
                    )
                )
            ]
            if granted:
                break
            done.wait(0.05)
        assert granted == [store.lock_key(small)] and not done.is_set()
        s1.commit()
    t.join(10)
    assert done.is_set()
    with Session(eng) as s4:
        assert store.lock_clients(s4, []) == set()
        s4.commit()
    eng.dispose()
