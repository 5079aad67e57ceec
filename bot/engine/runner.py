"""The pure engine: ``start`` and ``resume`` take state, an input and a context, and return events.

No I/O, no clock, no randomness: the same call always gives the same sprint.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.durations import parse_duration
from bot.engine import events as ev
from bot.engine.dialogue import Dialogue, Step
from bot.engine.inputs import Input, Reply, WaitTimeout
from bot.engine.slots import nearest_open
from bot.engine.state import Ctx, State, Wait

MAX_JUMPS = 32  # a dialogue that loops without waiting is a script bug; stop rather than spin


class Rejected(ValueError):
    """An input the current state cannot accept (e.g. a stale wait timeout)."""


class NeedsAvailability(LookupError):
    """The sprint needs the clinician's open slots: call again with ``Ctx.availability_loaded``."""


@dataclass
class Sprint:
    state: State | None  # None once the conversation has ended
    events: list[Any] = field(default_factory=list)


class Engine:
    def __init__(self, dialogues: dict[str, Dialogue]):
        self.dialogues = dialogues

    # -- entry points -------------------------------------------------------------------------

    def start(self, dialogue: str, ctx: Ctx, vars: dict[str, Any] | None = None, step: str | None = None) -> Sprint:
        d = self._dialogue(dialogue)
        sprint = Sprint(None)
        sprint.state = self._enter(d, step or d.start, dict(vars or {}), ctx, sprint.events)
        return sprint

    def resume(self, state: State, inp: Input, ctx: Ctx) -> Sprint:
        sprint = Sprint(None)
        if isinstance(inp, WaitTimeout):
            if state.wait is None or state.wait.timeout_at != inp.timeout_at:
                raise Rejected(f"resume of type wait_timeout not accepted by {state.dialogue}.{state.step}")
            target = state.wait.on_timeout
            if target == "end":
                sprint.events.append(ev.ConversationEnded("timeout"))
                return sprint
            sprint.state = self._jump(self._dialogue(state.dialogue), target, dict(state.vars), ctx, sprint.events)
            return sprint
        if state.wait is None:
            raise Rejected(f"resume of type msg not accepted by {state.dialogue}.{state.step}: not waiting")
        d = self._dialogue(state.dialogue)
        step = d.steps[state.step]
        vars = dict(state.vars)
        key = self._branch_key(step, inp, vars, ctx)
        sprint.state = self._jump(d, step.branch.get(key, step.branch.get("other", "end")), vars, ctx, sprint.events)
        return sprint

    # -- internals ----------------------------------------------------------------------------

    def _dialogue(self, name: str) -> Dialogue:
        try:
            return self.dialogues[name]
        except KeyError:
            raise Rejected(f"unknown dialogue {name!r}") from None

    def _jump(self, d: Dialogue, target: Any, vars: dict[str, Any], ctx: Ctx, out: list[Any]) -> State | None:
        if target is None or target == "end":
            out.append(ev.ConversationEnded("done"))
            return None
        if isinstance(target, dict):
            other = self._dialogue(target["dialogue"])
            return self._enter(other, target.get("step", other.start), vars, ctx, out)
        return self._enter(d, str(target), vars, ctx, out)

    def _enter(self, d: Dialogue, step_name: str, vars: dict[str, Any], ctx: Ctx, out: list[Any]) -> State | None:
        for _ in range(MAX_JUMPS):
            step = d.steps[step_name]
            if step.do:
                route = _ACTIONS[step.do](vars, ctx, out)
                if route is not None:
                    if route not in step.routes:
                        raise Rejected(
                            f"{d.name}.{step.name}: action {step.do} gave route {route!r} with nowhere to go"
                        )
                    step_name = step.routes[route]
                    continue
            msg = _message_id(step, vars, ctx)
            if msg:
                out.append(ev.MessageOut(msg, d.name, step.name, _params(vars, ctx), step.buttons))
            if step.wait:
                timeout_at = _timeout_at(step, ctx)
                out.append(ev.WaitStarted(step.wait.expects, timeout_at))
                return State(d.name, step.name, vars, Wait(step.wait.expects, timeout_at, step.wait.on_timeout))
            target = step.next
            if target is None or target == "end":
                out.append(ev.ConversationEnded("done"))
                return None
            if isinstance(target, dict):
                d = self._dialogue(target["dialogue"])
                step_name = target.get("step", d.start)
            else:
                step_name = str(target)
        raise Rejected(f"{d.name}: more than {MAX_JUMPS} steps without waiting")

    def _branch_key(self, step: Step, inp: Reply, vars: dict[str, Any], ctx: Ctx) -> str:
        p = inp.parse
        b = step.branch
        if p.when:
            vars["when"] = p.when
        if "pick" in b:
            picked = _pick(inp.text, p.when, vars.get("slots", []), ctx.tz)
            if picked is not None:
                vars["picked"] = picked
                return "pick"
        if "when" in b and p.when:
            return "when"
        if "rating" in b and p.rating is not None:
            vars["rating"] = p.rating
            return "rating"
        if p.intent in b and p.intent not in ("other", "rating"):
            return p.intent
        if "text" in b and inp.text.strip():
            if step.capture:
                vars[step.capture] = inp.text.strip()
            return "text"
        return "other"


# -- actions: each reads vars and the context, may append events, may return a route ------------


def _appt_mode(vars: dict[str, Any], ctx: Ctx) -> str:
    a = ctx.appointment
    if vars.get("cancelled") or (a is not None and a.status in ("cancelled", "missed")):
        return "book"
    return "move"


def _confirm(vars: dict[str, Any], ctx: Ctx, out: list[Any]) -> str | None:
    if ctx.appointment:
        out.append(ev.AppointmentConfirmed(ctx.appointment.id))
    return None


def _cancel(vars: dict[str, Any], ctx: Ctx, out: list[Any]) -> str | None:
    if ctx.appointment:
        out.append(ev.AppointmentCancelled(ctx.appointment.id))
        vars["cancelled"] = True
    return None


def _handoff(vars: dict[str, Any], ctx: Ctx, out: list[Any]) -> str | None:
    out.append(ev.HandoffRequested("client asked for a person" if not vars.get("unclear") else "unclear reply"))
    return None


def _offer(vars: dict[str, Any], ctx: Ctx, out: list[Any], *, earliest: bool = False) -> str | None:
    if not ctx.availability_loaded:
        raise NeedsAvailability()
    av = ctx.availability
    if ctx.appointment is None or av is None or not any(av.windows.values()):
        return "no_availability"
    target: datetime | date | None = None
    if not earliest:
        if not vars.get("when"):
            return "no_time_asked"
        target = _target(vars["when"], ctx.tz)
    horizon = ctx.durations.get("conversation.slot_horizon", timedelta(weeks=4))
    lead = ctx.durations.get("conversation.slot_lead", timedelta(hours=2))
    slots = nearest_open(av, ctx.now, horizon, lead, target, ctx.tz)
    if not slots:
        return "no_slots"
    vars["slots"] = [s.isoformat() for s in slots]
    return None


def _offer_slots(vars: dict[str, Any], ctx: Ctx, out: list[Any]) -> str | None:
    return _offer(vars, ctx, out)


def _offer_earliest(vars: dict[str, Any], ctx: Ctx, out: list[Any]) -> str | None:
    return _offer(vars, ctx, out, earliest=True)


def _move(vars: dict[str, Any], ctx: Ctx, out: list[Any]) -> str | None:
    a = ctx.appointment
    if a is None or "picked" not in vars:
        return None
    start = datetime.fromisoformat(vars["picked"])
    minutes = ctx.availability.session_minutes if ctx.availability else a.minutes
    if _appt_mode(vars, ctx) == "book":
        out.append(ev.AppointmentBooked(a.id, start, minutes, a.clinician_id))
    else:
        out.append(ev.AppointmentMoved(a.id, start))
    vars["new_start"] = vars["picked"]
    return None


def _request(vars: dict[str, Any], ctx: Ctx, out: list[Any]) -> str | None:
    if ctx.appointment:
        out.append(ev.RescheduleRequested(ctx.appointment.id, vars.get("when")))
    return None


def _feedback(vars: dict[str, Any], ctx: Ctx, out: list[Any]) -> str | None:
    out.append(
        ev.FeedbackRecorded(
            ctx.appointment.id if ctx.appointment else None,
            vars.get("rating"),
            vars.get("takeaway"),
            vars.get("leave_behind"),
        )
    )
    return None


_ACTIONS = {
    "confirm_appointment": _confirm,
    "cancel_appointment": _cancel,
    "handoff": _handoff,
    "offer_slots": _offer_slots,
    "offer_earliest": _offer_earliest,
    "move_appointment": _move,
    "request_reschedule": _request,
    "record_feedback": _feedback,
}


# -- helpers -------------------------------------------------------------------------------------


def _message_id(step: Step, vars: dict[str, Any], ctx: Ctx) -> str | None:
    if step.say is None or isinstance(step.say, str):
        return step.say
    return step.say.get(_appt_mode(vars, ctx))


def _params(vars: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    p: dict[str, Any] = {}
    if ctx.appointment:
        p["when"] = ctx.appointment.start
    if "new_start" in vars:
        p["when"] = datetime.fromisoformat(vars["new_start"])
    if "slots" in vars:
        p["slots"] = [datetime.fromisoformat(s) for s in vars["slots"]]
    return p


def _timeout_at(step: Step, ctx: Ctx) -> datetime:
    assert step.wait is not None
    spec = step.wait.timeout
    span = ctx.durations.get(spec) or parse_duration(spec)
    at = ctx.now + span
    if step.wait.until_start and ctx.appointment is not None:
        at = max(ctx.now, min(at, ctx.appointment.start))
    return at


def _target(when: str, tz: str) -> datetime | date:
    if "T" in when:
        return datetime.fromisoformat(when).replace(tzinfo=ZoneInfo(tz))
    return date.fromisoformat(when)


_DIGIT = re.compile(r"(?<![\d:/h])([1-9])(?![\d:/h])")
_ORDINALS = {
    1: ("first", "1st", "primeiro", "primeira", "primero", "primera"),
    2: ("second", "2nd", "segundo", "segunda opcao", "segunda opcion"),
    3: ("third", "3rd", "terceiro", "terceira", "tercero", "tercera"),
}


def _pick(text: str, when: str | None, slots: list[str], tz: str) -> str | None:
    """Which offered slot the client chose: by its number, its ordinal, or its day and time."""
    if not slots:
        return None
    local = [datetime.fromisoformat(s).astimezone(ZoneInfo(tz)) for s in slots]
    if when:
        if "T" in when:
            for s, loc in zip(slots, local, strict=True):
                if loc.strftime("%Y-%m-%dT%H:%M") == when:
                    return s
        else:
            same_day = [s for s, loc in zip(slots, local, strict=True) if loc.date().isoformat() == when]
            if len(same_day) == 1:
                return same_day[0]
        return None
    low = "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))
    nums = {int(m) for m in _DIGIT.findall(low)}
    for n, words in _ORDINALS.items():
        if any(re.search(rf"\b{re.escape(w)}\b", low) for w in words):
            nums.add(n)
    valid = [n for n in nums if 1 <= n <= len(slots)]
    if len(valid) == 1 and len(low) <= 60:
        return slots[valid[0] - 1]
    return None
