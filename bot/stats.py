"""The retention dashboard's numbers: pure functions over the database (no writes, no clock).

Definitions (the dashboard shows them beside the numbers):

- A *session* is an appointment marked ``attended``. A client *started* with their first session.
- *Came back after the first session*: of the clients who started, the share with a second
  session. Field reference: about 35% of clients do not return after the first session, so 65%.
- *Still coming after the third session*: of the clients who started, the share with a fourth
  session. Field reference: about 50% are gone by the third, so 50%.
- A client is *undecided* for a milestone (and left out of its share) while they have not reached
  it but might: they have an upcoming appointment, or their last session is more recent than
  ``retention.inactive_after``. Without this, every new client would count as a drop-out.
- *No-show rate*: missed / (attended + missed), by appointment start in the period.
- *Confirmation rate*: of the appointments in the period (less those the practice cancelled), the
  share the client confirmed (a ``confirmed`` status in its history).
- *At risk*: clients who started, are not opted out, have no upcoming appointment, and whose last
  session is at least ``retention.inactive_after`` ago.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict
from sqlalchemy.engine import Engine as DbEngine
from sqlmodel import Session, col, select

from bot.durations import parse_duration
from storage.tables import Appointment, Client, Feedback

UPCOMING = ("scheduled", "confirmed", "reschedule_requested", "rescheduled")
REFERENCE_AFTER_FIRST = 0.65  # "about 35% do not return after the first session"
REFERENCE_AFTER_THIRD = 0.50  # "about 50% are gone by the third"


def _duration(v: Any) -> timedelta:
    return v if isinstance(v, timedelta) else parse_duration(v)


class RetentionConfig(BaseModel):
    """``retention:`` in config.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    inactive_after: Annotated[timedelta, BeforeValidator(_duration)] = parse_duration("6w")


@dataclass(frozen=True)
class Share:
    numerator: int
    denominator: int
    undecided: int = 0
    reference: float | None = None

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "value": self.value}


@dataclass(frozen=True)
class _Appt:
    client_id: str
    clinician_id: str | None
    start: datetime
    status: str
    history: list[dict[str, Any]]


def _appointments(s: Session, since: datetime | None = None, until: datetime | None = None) -> list[_Appt]:
    q = select(Appointment)
    if since is not None:
        q = q.where(Appointment.start >= since)
    if until is not None:
        q = q.where(Appointment.start < until)
    return [_Appt(a.client_id, a.clinician_id, a.start, a.status, a.history) for a in s.exec(q)]


@dataclass
class _Journey:
    sessions: list[datetime] = field(default_factory=list)
    upcoming: bool = False
    clinician: str | None = None


def _journeys(appts: list[_Appt], now: datetime) -> dict[str, _Journey]:
    out: dict[str, _Journey] = defaultdict(_Journey)
    for a in sorted(appts, key=lambda x: x.start):
        j = out[a.client_id]
        if a.status == "attended" and a.start <= now:
            j.sessions.append(a.start)
            j.clinician = a.clinician_id
        elif a.status in UPCOMING and a.start > now:
            j.upcoming = True
    return out


def _milestone(journeys: dict[str, _Journey], now: datetime, inactive_after: timedelta, reached: int) -> Share:
    num = den = undecided = 0
    for j in journeys.values():
        if not j.sessions:
            continue
        if len(j.sessions) >= reached:
            num += 1
            den += 1
        elif j.upcoming or now - j.sessions[-1] < inactive_after:
            undecided += 1
        else:
            den += 1
    ref = {2: REFERENCE_AFTER_FIRST, 4: REFERENCE_AFTER_THIRD}.get(reached)
    return Share(num, den, undecided, ref)


def return_rates(db: DbEngine, now: datetime, inactive_after: timedelta) -> dict[str, Share]:
    """``after_first`` and ``after_third`` (see the module docstring), with the field's references."""
    with Session(db) as s:
        journeys = _journeys(_appointments(s), now)
    return {
        "after_first": _milestone(journeys, now, inactive_after, 2),
        "after_third": _milestone(journeys, now, inactive_after, 4),
    }


def no_show_rate(db: DbEngine, since: datetime, until: datetime, clinician: str | None = None) -> Share:
    with Session(db) as s:
        appts = [a for a in _appointments(s, since, until) if clinician is None or a.clinician_id == clinician]
    missed = sum(1 for a in appts if a.status == "missed")
    marked = sum(1 for a in appts if a.status in ("missed", "attended"))
    return Share(missed, marked)


def _practice_cancelled(a: _Appt) -> bool:
    if a.status != "cancelled":
        return False
    last = next((h for h in reversed(a.history) if h.get("status") == "cancelled"), {})
    return not str(last.get("by", "")).startswith("client:")


def confirmation_rate(db: DbEngine, since: datetime, until: datetime, clinician: str | None = None) -> Share:
    with Session(db) as s:
        appts = [a for a in _appointments(s, since, until) if clinician is None or a.clinician_id == clinician]
    counted = [a for a in appts if not _practice_cancelled(a)]
    confirmed = sum(1 for a in counted if any(h.get("status") == "confirmed" for h in a.history))
    return Share(confirmed, len(counted))


def _bucket(at: datetime, tz: str, by: str) -> date:
    d = at.astimezone(ZoneInfo(tz)).date()
    if by == "month":
        return d.replace(day=1)
    return d - timedelta(days=d.weekday())  # the Monday of its week


def ratings_over_time(
    db: DbEngine, since: datetime, until: datetime, tz: str = "UTC", by: str = "week"
) -> list[dict[str, Any]]:
    """Feedback ratings per clinician per week (or month) in ``tz``: count and mean, oldest first."""
    if by not in ("week", "month"):
        raise ValueError("by is week or month")
    with Session(db) as s:
        rows = s.exec(
            select(Feedback.clinician_id, Feedback.rating, Feedback.created_at).where(
                col(Feedback.rating).is_not(None),
                col(Feedback.created_at) >= since,
                col(Feedback.created_at) < until,
            )
        ).all()
    groups: dict[tuple[str, date], list[int]] = defaultdict(list)
    for clinician, rating, at in rows:
        if rating is None or at is None:
            continue
        groups[(clinician or "", _bucket(at, tz, by))].append(rating)
    return [
        {
            "clinician": clin or None,
            "period": period.isoformat(),
            "count": len(vals),
            "average": round(sum(vals) / len(vals), 2),
        }
        for (clin, period), vals in sorted(groups.items())
    ]


@dataclass(frozen=True)
class AtRisk:
    client_id: str
    name: str
    lang: str
    channel: str
    clinician: str | None
    sessions: int
    last_session: datetime
    days_since: int

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "last_session": self.last_session.isoformat()}


def clients_at_risk(db: DbEngine, now: datetime, inactive_after: timedelta) -> list[AtRisk]:
    """Clients drifting away, most recently lapsed first (the likeliest to come back if asked)."""
    with Session(db) as s:
        journeys = _journeys(_appointments(s), now)
        lapsed = {
            cid: j
            for cid, j in journeys.items()
            if j.sessions and not j.upcoming and now - j.sessions[-1] >= inactive_after
        }
        clients = {c.id: c for c in s.exec(select(Client).where(col(Client.id).in_(list(lapsed))))} if lapsed else {}
    out = []
    for cid, j in lapsed.items():
        c = clients.get(cid)
        if c is None or c.opted_out:
            continue
        last = j.sessions[-1]
        out.append(
            AtRisk(
                cid, c.name, c.lang, c.channel, j.clinician, len(j.sessions), last, (now - last) // timedelta(days=1)
            )
        )
    return sorted(out, key=lambda r: (-r.last_session.timestamp(), r.client_id))


def dashboard(
    db: DbEngine, now: datetime, cfg: RetentionConfig, *, tz: str = "UTC", period: timedelta = timedelta(weeks=12)
) -> dict[str, Any]:
    """Everything the dashboard page shows, JSON-ready."""
    since = now - period
    rates = return_rates(db, now, cfg.inactive_after)
    return {
        "at": now.isoformat(),
        "since": since.isoformat(),
        "returned_after_first": rates["after_first"].to_json(),
        "returned_after_third": rates["after_third"].to_json(),
        "no_show_rate": no_show_rate(db, since, now).to_json(),
        "confirmation_rate": confirmation_rate(db, since, now + timedelta(days=1)).to_json(),
        "ratings": ratings_over_time(db, since, now, tz),
        "at_risk": [r.to_json() for r in clients_at_risk(db, now, cfg.inactive_after)],
    }
