"""What the admin pages read and do, as plain functions over the service (run in worker threads)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.service import PRIORITY_REPLY, Service
from bot.web.admin.scope import ALL, NOBODY, Scope, client_ids, sees
from storage import store
from storage.admin_tables import Takeover
from storage.tables import Alert, Appointment, Client, Message

CONVERSATION_LIMIT = 200
INBOX_LIMIT = 100


class ActionError(ValueError):
    """A staff action that cannot be done; the message is shown on the page."""


class NotFound(ActionError):
    """No such client, or none this person may see: the same answer, so ids cannot be probed."""


@dataclass(frozen=True)
class Day:
    label: str
    date: str
    rows: list[dict[str, Any]]


def appointment_days(svc: Service, now: datetime, scope: Scope = ALL, days: int = 2) -> list[Day]:
    """Today's and tomorrow's appointments (in the practice's time zone) with their state; a
    clinician sees their own appointments."""
    tz = ZoneInfo(svc.cfg.default_tz)
    today = now.astimezone(tz).date()
    start = datetime.combine(today, time(0), tz)
    end = datetime.combine(today + timedelta(days=days), time(0), tz)
    names = {c.id: c.name or c.id for c in svc.cfg.clinicians}
    with Session(svc.db) as s:
        q = select(Appointment).where(col(Appointment.start) >= start, col(Appointment.start) < end)
        if not scope.everything:
            q = q.where(Appointment.clinician_id == (scope.clinician or NOBODY))
        appts = list(s.exec(q.order_by(col(Appointment.start))))
        ids = {a.client_id for a in appts}
        clients = {c.id: c for c in s.exec(select(Client).where(col(Client.id).in_(ids)))} if ids else {}
    out = []
    for i in range(days):
        d = today + timedelta(days=i)
        rows = []
        for a in appts:
            local = a.start.astimezone(tz)
            if local.date() != d:
                continue
            c = clients.get(a.client_id)
            rows.append(
                {
                    "id": a.id,
                    "time": local.strftime("%H:%M"),
                    "client_id": a.client_id,
                    "client": (c.name or c.id) if c else a.client_id,
                    "clinician": names.get(a.clinician_id or "", a.clinician_id or ""),
                    "status": a.status,
                    "confirmed": a.confirmed or any(h.get("status") == "confirmed" for h in a.history),
                    "channel": c.channel if c else "",
                    "opted_out": bool(c and c.opted_out),
                }
            )
        out.append(Day("Today" if i == 0 else "Tomorrow" if i == 1 else d.strftime("%A"), d.isoformat(), rows))
    return out


def inbox(svc: Service, scope: Scope = ALL) -> list[dict[str, Any]]:
    """Clients by their latest message, newest first, with open alerts and takeovers marked."""
    with Session(svc.db) as s:
        latest = select(Message.client_id, func.max(Message.created_at).label("last"), func.count().label("n")).where(
            col(Message.client_id).is_not(None)
        )
        if not scope.everything:
            latest = latest.where(col(Message.client_id).in_(client_ids(scope)))
        latest = (
            latest.group_by(col(Message.client_id)).order_by(func.max(Message.created_at).desc()).limit(INBOX_LIMIT)
        )
        rows = [(str(cid), last, n) for cid, last, n in s.exec(latest)]
        ids = [r[0] for r in rows]
        clients = {c.id: c for c in s.exec(select(Client).where(col(Client.id).in_(ids)))} if ids else {}
        alerting = set(
            s.exec(select(Alert.client_id).where(col(Alert.client_id).in_(ids), col(Alert.status) != "resolved"))
        )
        taken = {t.client_id: t.by for t in s.exec(select(Takeover).where(col(Takeover.client_id).in_(ids)))}
    return [
        {
            "client_id": cid,
            "name": (clients[cid].name or cid) if cid in clients else cid,
            "last": last,
            "count": n,
            "alert": cid in alerting,
            "taken_by": taken.get(cid),
        }
        for cid, last, n in rows
    ]


def conversation(svc: Service, client_id: str, scope: Scope = ALL) -> dict[str, Any] | None:
    """None for an unknown client and for one outside the scope alike: a guessed URL learns nothing."""
    with Session(svc.db) as s:
        c = s.get(Client, client_id)
        if c is None or not sees(s, scope, client_id):
            return None
        msgs = list(
            s.exec(
                select(Message)
                .where(Message.client_id == client_id)
                .order_by(col(Message.created_at).desc(), col(Message.id).desc())
                .limit(CONVERSATION_LIMIT)
            )
        )
        t = s.get(Takeover, client_id)
        alerts = list(s.exec(select(Alert).where(Alert.client_id == client_id, col(Alert.status) != "resolved")))
        conv = store.active_conversation(s, client_id)
    return {
        "client": c,
        "messages": list(reversed(msgs)),
        "taken_by": t.by if t else None,
        "taken_at": t.at if t else None,
        "alerts": alerts,
        "active": f"{conv.dialogue} / {conv.step}" if conv else None,
    }


def _reachable(c: Client) -> None:
    if c.opted_out:
        raise ActionError("this client has opted out of messages: call them instead")


def reply(svc: Service, client_id: str, text: str, by: str, now: datetime) -> int:
    """Answer the client as the practice: a normal outbound message through the outbox."""
    text = text.strip()
    if not text:
        raise ActionError("the message is empty")
    if len(text) > 1600:
        raise ActionError("the message is longer than 1600 characters")
    with svc.unit(now) as u:
        store.lock_client(u.s, client_id)
        c = u.s.get(Client, client_id)
        if c is None:
            raise ActionError("unknown client")
        _reachable(c)
        m = _send(svc, u, c, text, "staff", "reply", by)
        store.audit(u.s, now, f"staff:{by}", "message", str(m), "staff_reply", client=client_id)
        return m


def _send(svc: Service, u: Any, c: Client, text: str, dialogue: str, step: str, by: str) -> int:
    ch = c.channel
    if ch == "telegram" and not c.telegram and c.phone:
        ch = "sms"
    to = (c.telegram if ch == "telegram" else c.phone) or c.id
    m = svc._send_text(
        u,
        c,
        text,
        channel=ch,
        to=to,
        dialogue=dialogue,
        step=step,
        priority=PRIORITY_REPLY,
        note_to=c.id,
        reason=f"staff:{by}",
    )
    assert m.id is not None
    return m.id


def take_over(svc: Service, client_id: str, by: str, now: datetime) -> None:
    with svc.unit(now) as u:
        store.lock_client(u.s, client_id)
        if u.s.get(Client, client_id) is None:
            raise ActionError("unknown client")
        if u.s.get(Takeover, client_id) is None:
            u.s.add(Takeover(client_id=client_id, by=by, at=now))
            store.audit(u.s, now, f"staff:{by}", "conversation", client_id, "taken_over")


def hand_back(svc: Service, client_id: str, by: str, now: datetime) -> None:
    with svc.unit(now) as u:
        store.lock_client(u.s, client_id)
        t = u.s.get(Takeover, client_id)
        if t is not None:
            u.s.delete(t)
            store.audit(u.s, now, f"staff:{by}", "conversation", client_id, "handed_back")


WELCOME_BACK = "retention.welcome_back"


def welcome_back(svc: Service, client_id: str, by: str, now: datetime) -> int:
    """The one-click "we'd love to see you again" text, in the client's language."""
    with svc.unit(now) as u:
        store.lock_client(u.s, client_id)
        c = u.s.get(Client, client_id)
        if c is None:
            raise ActionError("unknown client")
        _reachable(c)
        if not c.consent:
            raise ActionError("this client has not consented to messages")
        try:
            text = svc._render(c.lang, WELCOME_BACK, {}, c.tz, name=c.name)
        except KeyError:
            raise ActionError(f"the message {WELCOME_BACK!r} is in no catalog yet") from None
        m = _send(svc, u, c, text, "retention", "welcome_back", by)
        store.audit(u.s, now, f"staff:{by}", "message", str(m), "welcome_back", client=client_id)
        return m


def clients(svc: Service, scope: Scope = ALL) -> list[Client]:
    with Session(svc.db) as s:
        q = select(Client)
        if not scope.everything:
            q = q.where(col(Client.id).in_(client_ids(scope)))
        return list(s.exec(q.order_by(col(Client.name), col(Client.id)).limit(1000)))


def alerts(svc: Service, scope: Scope = ALL) -> dict[str, list[Alert]]:
    """Every open alert for everyone (the on-call person acts on any); resolved ones in scope."""
    with Session(svc.db) as s:
        open_ = list(s.exec(select(Alert).where(col(Alert.status) != "resolved").order_by(col(Alert.id).desc())))
        q = select(Alert).where(Alert.status == "resolved")
        if not scope.everything:
            q = q.where(col(Alert.client_id).in_(client_ids(scope)))
        done = list(s.exec(q.order_by(col(Alert.id).desc()).limit(50)))
    return {"open": open_, "resolved": done}


def allowed(svc: Service, scope: Scope, client_id: str) -> None:
    """Raises NotFound when the person may not act on this client (see bot/web/admin/scope.py)."""
    with Session(svc.db) as s:
        if not sees(s, scope, client_id):
            raise NotFound("No such client.")
