"""What a signed-in person may see: admins everything, a clinician their own clients.

The rule follows the data model: clients belong to no clinician themselves; appointments do. A
clinician's clients are the clients with at least one appointment (any status, past or
future) with that clinician, so a client seen by two clinicians is visible to both, and a
client moved to a colleague stays visible to the first one for the history they share.

Crisis alerts are the exception: whoever is signed in sees every open alert and may open that
client's conversation, acknowledge, resolve and answer, because the person on call at 3 am is
rarely the client's own clinician. Resolved alerts, like everything else, are scoped.

A clinician-role user without a clinician id (``rapport admin create-user --clinician``, or the
users page) sees no clients, only the open alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from bot import stats
from bot.config import RetentionConfig
from bot.web.admin.auth import Staff
from storage.tables import Alert, Appointment


@dataclass(frozen=True)
class Scope:
    everything: bool
    clinician: str | None = None

    @classmethod
    def of(cls, user: Staff) -> Scope:
        return cls(True) if user.is_admin else cls(False, user.clinician)


ALL = Scope(True)
NOBODY = "\x00"  # matches no clinician id: a clinician-role user not mapped to one sees no clients


def client_ids(scope: Scope) -> SelectOfScalar[str]:
    """A subquery of the client ids in scope (use only when not ``scope.everything``)."""
    return select(Appointment.client_id).where(Appointment.clinician_id == (scope.clinician or NOBODY)).distinct()


def sees(s: Session, scope: Scope, client_id: str) -> bool:
    """May this person open the client's conversation and act on it?"""
    if scope.everything:
        return True
    if scope.clinician is not None:
        q = select(Appointment.id).where(
            Appointment.client_id == client_id, Appointment.clinician_id == scope.clinician
        )
        if s.exec(q.limit(1)).first() is not None:
            return True
    return (
        s.exec(select(Alert.id).where(Alert.client_id == client_id, col(Alert.status) != "resolved").limit(1)).first()
        is not None
    )


def dashboard(db: Any, now: datetime, retention: RetentionConfig, tz: str, scope: Scope) -> dict[str, Any]:
    """``stats.dashboard``, narrowed to the clinician's own sessions, clients and ratings.

    Built from ``bot.stats``' own pieces (its journeys and milestones) so the figures mean
    the same as the practice-wide ones."""
    d = stats.dashboard(db, now, retention, tz=tz)
    if scope.everything:
        return d
    clin = scope.clinician or NOBODY
    since = datetime.fromisoformat(d["since"])
    with Session(db) as s:
        mine = set(s.exec(client_ids(scope)))
        # The return rates follow each of the clinician's clients over all their sessions.
        journeys = {cid: j for cid, j in stats._journeys(stats._appointments(s), now).items() if cid in mine}
    first = stats._milestone(journeys, now, retention.inactive_after, 2)
    third = stats._milestone(journeys, now, retention.inactive_after, 4)
    d["returned_after_first"] = first.to_json()
    d["returned_after_third"] = third.to_json()
    d["no_show_rate"] = stats.no_show_rate(db, since, now, clinician=clin).to_json()
    d["confirmation_rate"] = stats.confirmation_rate(db, since, now + timedelta(days=1), clinician=clin).to_json()
    d["ratings"] = [r for r in d["ratings"] if r["clinician"] == clin]
    d["at_risk"] = [r for r in d["at_risk"] if r["client_id"] in mine]
    return d
