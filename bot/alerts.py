"""Crisis alerts: raise, send to the on-call person, escalate until acknowledged, forward, resolve.

An alert never closes by itself or because the client later says they are fine; only a person
acknowledges (stops escalation) and resolves (resumes the scripts).
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

import phonenumbers

from bot import safety
from bot.config import Config, OnCall
from bot.safety.types import Scan
from bot.unit import Unit
from storage import store
from storage.tables import Alert, Client, Timer

if TYPE_CHECKING:
    from bot.service import Service

LEVEL_RANK = {"moderate": 1, "high": 2}
COUNTRY_LANG = {
    "BR": "pt_BR",
    "PT": "pt_BR",
    "ES": "es",
    "MX": "es",
    "AR": "es",
    "CO": "es",
    "CL": "es",
    "FR": "fr",
    "DE": "de",
}
_ACK = re.compile(r"^\s*(ok|ack|okay|recebido|entendido|visto)\s*#?\s*(\d+)?\s*[.!]?\s*$", re.I)
_RESOLVE = re.compile(r"^\s*(resolved?|resolvid[oa]|resuelt[oa]|resolver|close[d]?)\s*#?\s*(\d+)?\s*[.!]?\s*$", re.I)


def staff_member(cfg: Config, channel: str, address: str | None) -> OnCall | None:
    if not address:
        return None
    for p in cfg.crisis.oncall:
        if channel == "telegram" and p.telegram and p.telegram == address:
            return p
        if channel != "telegram" and p.phone and _same_phone(p.phone, address):
            return p
    return None


def _same_phone(a: str, b: str) -> bool:
    return _e164(a) == _e164(b)


@functools.lru_cache(maxsize=4096)
def _e164(number: str) -> str:
    """A number as E.164 (the text itself when it does not parse). Cached: every inbound message
    from a phone is checked against the on-call list, and its sender usually wrote before."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(number, None), phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        return number


def lang_for_address(svc: Service, address: str | None) -> str:
    country = safety.country_for(None, address, svc.cfg.default_country)
    return COUNTRY_LANG.get(country, svc.cfg.fallback_language)


def _who(client: Client | None, alert: Alert) -> str:
    if client is not None:
        return f"{client.name} ({client.id})" if client.name else client.id
    return alert.address or "an unknown sender"


def _link(svc: Service, alert: Alert) -> str:
    if svc.public_url:
        return f"{svc.public_url.rstrip('/')}/api/alerts/{alert.id}"
    return f"/api/alerts/{alert.id}"


def _staff_send(svc: Service, u: Unit, person: OnCall, text: str, step: str, priority: int) -> None:
    channel = "sms" if person.phone else "telegram"
    to = person.phone or person.telegram or person.name
    svc._send_text(
        u,
        None,
        text,
        channel=channel,
        to=to,
        dialogue="crisis",
        step=step,
        priority=priority,
        note_to=f"staff:{person.name}",
    )


def _staff_lang(svc: Service) -> str:
    return svc.scripts.pick_lang(svc.cfg.fallback_language, "en")


def on_crisis(
    svc: Service, u: Unit, client: Client | None, channel: str, address: str | None, text: str, scan: Scan
) -> None:
    from bot.service import PRIORITY_CRISIS, PRIORITY_STAFF

    s = u.s
    if client is not None:
        conv = store.active_conversation(s, client.id)
        if conv is not None:
            svc._end(u, conv, "crisis")
    alert = store.open_alert(s, client.id if client else None, None if client else address)
    oncall = svc.cfg.crisis.oncall
    lang = client.lang if client else lang_for_address(svc, address)
    country = safety.country_for(
        client.country if client else None, client.phone if client else address, svc.cfg.default_country
    )
    reply = safety.crisis_reply(
        lang,
        country,
        about=scan.about or "self",
        staff_told=bool(oncall),
        overrides=svc.cfg.crisis.resources,
        catalog_dirs=svc.catalog_dirs,
    )
    if client is not None:
        # Answering a message the client just sent is allowed even after an opt-out.
        svc._send_client(u, client, reply, "crisis", "reply", automated=False, priority=PRIORITY_CRISIS)
    else:
        svc._send_text(
            u,
            None,
            reply,
            channel=channel,
            to=address or "",
            dialogue="crisis",
            step="reply",
            priority=PRIORITY_CRISIS,
            note_to=_raw_from(channel, address),
        )
    if alert is not None:
        if LEVEL_RANK.get(scan.level or "", 0) > LEVEL_RANK.get(alert.level, 0):
            alert.level = scan.level or alert.level
        alert.matched = sorted(set(alert.matched) | set(scan.matched))
        s.add(alert)
        forward(svc, u, alert, client, text)
        return
    alert = Alert(
        client_id=client.id if client else None,
        address=None if client else _raw_from(channel, address),
        channel=channel,
        level=scan.level or "high",
        about=scan.about,
        matched=list(scan.matched),
        status="open",
        created_at=u.now,
    )
    s.add(alert)
    s.flush()
    store.audit(s, u.now, "system:safety", "alert", str(alert.id), "raised", level=alert.level, client=alert.client_id)
    tz = client.tz if client else None
    if not oncall:
        u.note("alert", tz, id=alert.id, client=_alert_client(alert), level=alert.level, to=None)
        return
    _send_alert(svc, u, alert, client, 0, PRIORITY_STAFF, again=False)


def _raw_from(channel: str, address: str | None) -> str:
    return f"telegram:{address}" if channel == "telegram" and address else (address or "")


def _alert_client(alert: Alert) -> str | None:
    return alert.client_id or alert.address


def _send_alert(
    svc: Service, u: Unit, alert: Alert, client: Client | None, index: int, priority: int, *, again: bool
) -> None:
    oncall = svc.cfg.crisis.oncall
    person = oncall[index % len(oncall)]
    alert.oncall_index = index % len(oncall)
    alert.sends += 1
    u.s.add(alert)
    lang = _staff_lang(svc)
    text = svc._render(
        lang,
        "staff.alert_again" if again else "staff.alert",
        {"id": alert.id, "level": alert.level, "who": _who(client, alert), "link": _link(svc, alert)},
        svc.cfg.default_tz,
    )
    if client is not None and client.opted_out and client.channel == "sms" and not client.telegram:
        text += " " + svc._render(lang, "staff.must_call", {}, svc.cfg.default_tz)
    u.note(
        "alert",
        client.tz if client else None,
        id=alert.id,
        client=_alert_client(alert),
        level=alert.level,
        to=f"staff:{person.name}",
    )
    _staff_send(svc, u, person, text, "alert", priority)
    svc._timer(
        u,
        "alert_escalation",
        alert.client_id,
        None,
        u.now + svc.cfg.crisis.ack_timeout,
        alert=alert.id,
        index=alert.oncall_index,
    )


def escalate(svc: Service, u: Unit, t: Timer) -> str:
    from bot.service import PRIORITY_STAFF

    alert = u.s.get(Alert, t.payload.get("alert"))
    if alert is None or alert.status != "open" or not svc.cfg.crisis.oncall:
        return "stale"
    nxt = int(t.payload.get("index", 0)) + 1
    if nxt >= len(svc.cfg.crisis.oncall):
        # Everyone has been tried: start again from the first and flag the alert as unanswered.
        alert.unanswered = True
        store.audit(u.s, u.now, "system:escalation", "alert", str(alert.id), "unanswered")
    client = u.s.get(Client, alert.client_id) if alert.client_id else None
    _send_alert(svc, u, alert, client, nxt, PRIORITY_STAFF + 1, again=True)
    return "fired"


def forward(svc: Service, u: Unit, alert: Alert, client: Client | None, text: str) -> None:
    """While an alert is open the client's messages go to a person: the one who took it, else on call."""
    from bot.service import PRIORITY_STAFF

    oncall = svc.cfg.crisis.oncall
    if not oncall:
        return
    person = next((p for p in oncall if p.name == alert.acked_by), None) or oncall[alert.oncall_index % len(oncall)]
    lang = _staff_lang(svc)
    params = {"id": alert.id, "who": _who(client, alert), "link": _link(svc, alert), "text": text}
    msg = "staff.forward_text" if svc.cfg.crisis.include_client_text else "staff.forward"
    _staff_send(svc, u, person, svc._render(lang, msg, params, svc.cfg.default_tz), "forward", PRIORITY_STAFF)


def _find(svc: Service, u: Unit, alert_id: int | None, client_id: str | None, statuses: tuple[str, ...]) -> list[Alert]:
    from sqlmodel import col, select

    from bot.records import RecordError

    if alert_id is not None:
        a = u.s.get(Alert, int(alert_id))
        if a is None:
            raise RecordError("alert", f"unknown alert {alert_id}")
        return [a] if a.status in statuses else []
    q = select(Alert).where(col(Alert.status).in_(statuses))
    if client_id is not None:
        q = q.where(Alert.client_id == client_id)
    return list(u.s.exec(q.order_by(col(Alert.id))))


def ack(svc: Service, u: Unit, alert_id: int | None, by: str, client_id: str | None = None) -> list[Alert]:
    done = []
    for a in _find(svc, u, alert_id, client_id, ("open",)):
        if a.client_id:
            store.lock_client(u.s, a.client_id)
        a.status = "acked"
        a.acked_by = by
        a.acked_at = u.now
        u.s.add(a)
        store.audit(u.s, u.now, f"staff:{by}", "alert", str(a.id), "acknowledged")
        client = u.s.get(Client, a.client_id) if a.client_id else None
        u.note("alert_acked", client.tz if client else None, id=a.id, by=by)
        done.append(a)
    return done


def resolve(svc: Service, u: Unit, alert_id: int | None, by: str, client_id: str | None = None) -> list[Alert]:
    done = []
    for a in _find(svc, u, alert_id, client_id, ("open", "acked")):
        if a.client_id:
            store.lock_client(u.s, a.client_id)
        if a.status == "open":
            a.acked_by = a.acked_by or by
            a.acked_at = a.acked_at or u.now
        a.status = "resolved"
        a.resolved_by = by
        a.resolved_at = u.now
        u.s.add(a)
        store.audit(u.s, u.now, f"staff:{by}", "alert", str(a.id), "resolved")
        client = u.s.get(Client, a.client_id) if a.client_id else None
        u.note("alert_resolved", client.tz if client else None, id=a.id, by=by)
        done.append(a)
    return done


def staff_command(svc: Service, u: Unit, person: OnCall, channel: str, text: str) -> str:
    """ "OK 42" acknowledges alert 42, "RESOLVED 42" resolves it; a bare "OK" takes the newest open one."""
    lang = _staff_lang(svc)
    m_ack, m_res = _ACK.match(text), _RESOLVE.match(text)
    m = m_ack or m_res
    if m is None:
        _staff_send(svc, u, person, svc._render(lang, "staff.unknown_command", {}, svc.cfg.default_tz), "command", 5)
        return "staff_unknown"
    alert_id = int(m.group(2)) if m.group(2) else None
    from bot.records import RecordError

    try:
        if alert_id is None:
            candidates = _find(svc, u, None, None, ("open",) if m_ack else ("open", "acked"))
            if not candidates:
                raise RecordError("alert", "no open alert")
            alert_id = candidates[-1].id
        done = ack(svc, u, alert_id, person.name) if m_ack else resolve(svc, u, alert_id, person.name)
    except RecordError:
        done = []
    if not done:
        _staff_send(svc, u, person, svc._render(lang, "staff.unknown_command", {}, svc.cfg.default_tz), "command", 5)
        return "staff_noop"
    msg = "staff.acked" if m_ack else "staff.resolved"
    _staff_send(
        svc, u, person, svc._render(lang, msg, {"id": alert_id, "by": person.name}, svc.cfg.default_tz), "command", 5
    )
    return "staff_ack" if m_ack else "staff_resolve"
