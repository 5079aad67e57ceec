"""The retention dashboard's numbers, from journeys whose answers are worked out by hand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.stats import (
    RetentionConfig,
    Share,
    clients_at_risk,
    confirmation_rate,
    dashboard,
    no_show_rate,
    ratings_over_time,
    return_rates,
)
from storage import writeback_table  # noqa: F401
from storage.db import create_all, make_engine
from storage.tables import Appointment, Client, Feedback

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
W = timedelta(weeks=1)
SIX_WEEKS = timedelta(weeks=6)


@pytest.fixture
def db() -> Iterator[Engine]:
    eng = make_engine("sqlite://")
    create_all(eng)
    yield eng
    eng.dispose()


def add(db: Engine, client: str, *appts: tuple[timedelta, str], opted_out: bool = False, clin: str = "rivera") -> None:
    """Appointments at NOW + offset with a status; history records who did what."""
    with Session(db) as s:
        if s.get(Client, client) is None:
            s.add(Client(id=client, name=client.title(), opted_out=opted_out))
        for i, (off, status) in enumerate(appts):
            history = [{"status": "scheduled", "by": "api"}]
            if status == "confirmed+attended":
                history.append({"status": "confirmed", "by": f"client:{client}"})
                status = "attended"
            if status == "client-cancelled":
                history.append({"status": "cancelled", "by": f"client:{client}"})
                status = "cancelled"
            elif status == "cancelled":
                history.append({"status": "cancelled", "by": "api"})
            elif status != "scheduled":
                history.append({"status": status, "by": "api"})
            s.add(
                Appointment(
                    id=f"{client}-{i}",
                    client_id=client,
                    clinician_id=clin,
                    start=NOW + off,
                    status=status,
                    history=history,
                )
            )
        s.commit()


JOURNEYS = {
    # client: appointments (offset from now, status)
    "ana": [(-10 * W, "attended")],  # one session long ago: did not come back
    "bia": [(-12 * W, "attended"), (-10 * W, "attended")],  # came back once, then gone
    "cai": [(-8 * W, "attended"), (-6 * W, "attended"), (-4 * W, "attended"), (-1 * W, "attended")],
    "dan": [(-1 * W, "attended")],  # started last week: undecided
    "eva": [(-10 * W, "attended"), (2 * W, "scheduled")],  # booked again: undecided
    "fil": [(-5 * W, "attended"), (-4 * W, "attended"), (-2 * W, "attended")],  # third session recent
    "gus": [(-3 * W, "missed")],  # never started
    "hal": [(-20 * W + timedelta(days=i * 7), "attended") for i in range(5)],  # opted out later
}


@pytest.fixture
def journeys(db: Engine) -> Engine:
    for client, appts in JOURNEYS.items():
        add(db, client, *appts, opted_out=client == "hal")
    return db


RATES = [
    # milestone, returned, counted, undecided (see JOURNEYS), reference
    ("after_first", 4, 5, 2, 0.65),  # bia cai fil hal / ana bia cai fil hal / dan eva
    ("after_third", 2, 4, 3, 0.50),  # cai hal / ana bia cai hal / dan eva fil
]


@pytest.mark.parametrize(("milestone", "num", "den", "undecided", "ref"), RATES)
def test_return_rates(journeys: Engine, milestone: str, num: int, den: int, undecided: int, ref: float) -> None:
    got = return_rates(journeys, NOW, SIX_WEEKS)[milestone]
    assert got == Share(num, den, undecided, ref)
    assert got.value == pytest.approx(num / den)


def test_a_longer_inactivity_window_leaves_more_undecided(journeys: Engine) -> None:
    got = return_rates(journeys, NOW, timedelta(weeks=11))["after_first"]
    assert (got.numerator, got.denominator, got.undecided) == (4, 4, 3)  # ana's 10 weeks: not yet gone


def test_clients_at_risk(journeys: Engine) -> None:
    risk = clients_at_risk(journeys, NOW, SIX_WEEKS)
    assert [(r.client_id, r.sessions, r.days_since) for r in risk] == [("ana", 1, 70), ("bia", 2, 70)]
    assert risk[0].last_session == NOW - 10 * W and risk[0].clinician == "rivera"


def test_nobody_is_at_risk_in_an_empty_practice(db: Engine) -> None:
    assert clients_at_risk(db, NOW, SIX_WEEKS) == []
    assert return_rates(db, NOW, SIX_WEEKS)["after_first"].value is None


NO_SHOWS = [
    ("last 4 weeks", -4 * W, NOW, None, Share(1, 6)),  # cai -4w -1w, dan -1w, fil -4w -2w attended; gus missed
    ("last 12 weeks", -12 * W, NOW, None, Share(1, 13)),  # + ana, bia twice, cai twice more, eva, fil once more
    ("another clinician", -12 * W, NOW, "costa", Share(0, 0)),
    ("the future", NOW - NOW, NOW + 4 * W, None, Share(0, 0)),
]


@pytest.mark.parametrize(("since", "until", "clin", "want"), [n[1:] for n in NO_SHOWS], ids=[n[0] for n in NO_SHOWS])
def test_no_show_rate(journeys: Engine, since: timedelta, until: datetime, clin: str | None, want: Share) -> None:
    assert no_show_rate(journeys, NOW + since, until, clin) == want


def test_confirmation_rate_leaves_out_what_the_practice_cancelled(db: Engine) -> None:
    add(
        db,
        "ana",
        (-3 * W, "confirmed+attended"),
        (-2 * W, "attended"),
        (-1 * W, "client-cancelled"),
        (-1 * W + timedelta(days=1), "cancelled"),  # by the practice: not counted
        (1 * W, "scheduled"),
    )
    assert confirmation_rate(db, NOW - 4 * W, NOW + 2 * W) == Share(1, 4)


def test_ratings_per_clinician_per_week_in_the_practice_zone(db: Engine) -> None:
    monday = datetime(2026, 11, 16, 15, 0, tzinfo=UTC)
    rows = [
        ("rivera", 5, monday),
        ("rivera", 3, monday + timedelta(days=2)),
        ("rivera", 4, monday + W),
        ("costa", 2, monday),
        ("rivera", 1, datetime(2026, 11, 16, 2, 0, tzinfo=UTC)),  # Sunday evening in New York
        ("rivera", None, monday),  # no rating given: not counted
    ]
    with Session(db) as s:
        for clin, rating, at in rows:
            s.add(Feedback(client_id="x", clinician_id=clin, rating=rating, created_at=at))
        s.commit()
    got = ratings_over_time(db, NOW - 4 * W, NOW, "America/New_York")
    assert got == [
        {"clinician": "costa", "period": "2026-11-16", "count": 1, "average": 2.0},
        {"clinician": "rivera", "period": "2026-11-09", "count": 1, "average": 1.0},
        {"clinician": "rivera", "period": "2026-11-16", "count": 2, "average": 4.0},
        {"clinician": "rivera", "period": "2026-11-23", "count": 1, "average": 4.0},
    ]
    by_month = ratings_over_time(db, NOW - 4 * W, NOW, "UTC", by="month")
    assert [(r["clinician"], r["period"], r["count"]) for r in by_month] == [
        ("costa", "2026-11-01", 1),
        ("rivera", "2026-11-01", 4),
    ]
    with pytest.raises(ValueError):
        ratings_over_time(db, NOW - 4 * W, NOW, by="day")


def test_dashboard_is_json_ready(journeys: Engine) -> None:
    import json

    d = dashboard(journeys, NOW, RetentionConfig())
    json.dumps(d)
    assert d["returned_after_first"]["reference"] == 0.65 and d["returned_after_first"]["value"] == 0.8
    assert [r["client_id"] for r in d["at_risk"]] == ["ana", "bia"]


def test_retention_config() -> None:
    assert RetentionConfig().inactive_after == SIX_WEEKS
    assert RetentionConfig(inactive_after="30d").inactive_after == timedelta(days=30)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a duration"):
        RetentionConfig(inactive_after="six weeks")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Extra inputs"):
        RetentionConfig.model_validate({"inactive": "6w"})
