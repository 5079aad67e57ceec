"""Dialogues as data: the YAML files in dialogues/ parsed into steps. Structure only; text is by id."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DIALOGUES_DIR = Path(__file__).resolve().parents[2] / "dialogues"
SUPPORTED_VERSION = 1

ACTIONS = (
    "confirm_appointment",
    "cancel_appointment",
    "offer_slots",
    "offer_earliest",
    "move_appointment",
    "request_reschedule",
    "record_feedback",
    "handoff",
)
# Branch keys beyond the intents: a slot picked, a new day/time, a rating, any free text.
SPECIAL_BRANCHES = ("pick", "when", "rating", "text", "other")
STEP_KEYS = {"say", "buttons", "wait", "branch", "do", "routes", "next", "capture"}
WAIT_KEYS = {"expects", "timeout", "until_start", "on_timeout"}


class DialogueError(ValueError):
    pass


@dataclass(frozen=True)
class WaitSpec:
    expects: str
    timeout: str  # a duration key in the engine context ("reminders.answer_timeout") or a literal ("12h")
    on_timeout: str
    until_start: bool = False


@dataclass(frozen=True)
class Step:
    name: str
    say: str | dict[str, str] | None = None
    buttons: tuple[str, ...] = ()
    wait: WaitSpec | None = None
    branch: dict[str, Any] = field(default_factory=dict)
    do: str | None = None
    routes: dict[str, str] = field(default_factory=dict)
    next: Any = None
    capture: str | None = None

    def message_ids(self) -> list[str]:
        if self.say is None:
            return []
        return [self.say] if isinstance(self.say, str) else list(self.say.values())


@dataclass(frozen=True)
class Dialogue:
    name: str
    start: str
    steps: dict[str, Step]

    def message_ids(self) -> list[str]:
        return [m for s in self.steps.values() for m in s.message_ids()]


def _step(name: str, raw: Any, where: str) -> Step:
    if not isinstance(raw, dict):
        raise DialogueError(f"{where}: step {name!r} must be a mapping")
    unknown = set(raw) - STEP_KEYS
    if unknown:
        raise DialogueError(f"{where}: step {name!r} has unknown keys {sorted(unknown)}")
    wait = None
    if "wait" in raw:
        w = raw["wait"]
        if not isinstance(w, dict) or set(w) - WAIT_KEYS or not {"expects", "timeout", "on_timeout"} <= set(w):
            raise DialogueError(f"{where}: step {name!r}: wait needs expects, timeout and on_timeout")
        wait = WaitSpec(str(w["expects"]), str(w["timeout"]), str(w["on_timeout"]), bool(w.get("until_start")))
        if not raw.get("branch"):
            raise DialogueError(f"{where}: step {name!r} waits but has no branch")
    if raw.get("do") is not None and raw["do"] not in ACTIONS:
        raise DialogueError(f"{where}: step {name!r}: unknown action {raw['do']!r}")
    if wait is None and raw.get("next") is None:
        raise DialogueError(f"{where}: step {name!r} neither waits nor says where to go next")
    return Step(
        name=name,
        say=raw.get("say"),
        buttons=tuple(str(b) for b in raw.get("buttons", ())),
        wait=wait,
        branch=dict(raw.get("branch") or {}),
        do=raw.get("do"),
        routes=dict(raw.get("routes") or {}),
        next=raw.get("next"),
        capture=raw.get("capture"),
    )


def parse_dialogue(raw: Any, where: str) -> Dialogue:
    if not isinstance(raw, dict):
        raise DialogueError(f"{where}: expected a mapping")
    if raw.get("version") != SUPPORTED_VERSION:
        raise DialogueError(f"{where}: version {raw.get('version')!r} not supported (expected {SUPPORTED_VERSION})")
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, dict) or not steps_raw:
        raise DialogueError(f"{where}: no steps")
    steps = {n: _step(n, s, where) for n, s in steps_raw.items()}
    d = Dialogue(name=str(raw.get("dialogue")), start=str(raw.get("start")), steps=steps)
    if d.start not in steps:
        raise DialogueError(f"{where}: start step {d.start!r} does not exist")
    return d


def load_dialogues(directory: Path = DIALOGUES_DIR) -> dict[str, Dialogue]:
    out: dict[str, Dialogue] = {}
    for path in sorted(directory.glob("*.yaml")):
        d = parse_dialogue(yaml.safe_load(path.read_text(encoding="utf-8")), path.name)
        if d.name != path.stem:
            raise DialogueError(f"{path.name}: dialogue name {d.name!r} does not match the file name")
        out[d.name] = d
    validate_targets(out)
    return out


def validate_targets(dialogues: dict[str, Dialogue]) -> None:
    """Every jump lands somewhere: a step of the same dialogue, another dialogue, or end."""
    for d in dialogues.values():
        for s in d.steps.values():
            targets = [s.next, *s.branch.values(), *s.routes.values()]
            if s.wait:
                targets.append(s.wait.on_timeout)
            for t in targets:
                if t is None or t == "end":
                    continue
                if isinstance(t, dict):
                    other = t.get("dialogue")
                    if other not in dialogues:
                        raise DialogueError(f"{d.name}.{s.name}: jumps to unknown dialogue {other!r}")
                    if "step" in t and t["step"] not in dialogues[other].steps:
                        raise DialogueError(f"{d.name}.{s.name}: unknown step {t['step']!r} in {other}")
                elif t not in d.steps:
                    raise DialogueError(f"{d.name}.{s.name}: jumps to unknown step {t!r}")
