"""Mermaid diagrams of the dialogues, generated from dialogues/*.yaml (`rapport scripts diagram`)."""

from __future__ import annotations

from typing import Any

from bot.engine.dialogue import Dialogue, load_dialogues

HEADER = (
    "# Dialogues\n\n"
    "Generated from `dialogues/*.yaml` by `rapport scripts diagram`; do not edit by hand.\n"
    "Boxes are steps (action, then message id); arrows are the reply's meaning, `timeout`, or an action's route.\n"
)


def _node(d: Dialogue, name: str) -> str:
    return f"{d.name}__{name}"


def _target(d: Dialogue, t: Any) -> str:
    if t is None or t == "end":
        return f"{d.name}__end"
    if isinstance(t, dict):
        return f"{t['dialogue']}_ext[/{t['dialogue']}/]"
    return _node(d, str(t))


def mermaid(d: Dialogue) -> str:
    lines = ["flowchart TD", f"  {d.name}__start(( )) --> {_node(d, d.start)}"]
    for s in d.steps.values():
        label = [s.name]
        if s.do:
            label.append(f"do: {s.do}")
        for m in s.message_ids():
            label.append(f"say: {m}")
        if s.wait:
            label.append(f"wait: {s.wait.expects}")
        lines.append(f'  {_node(d, s.name)}["{"<br/>".join(label)}"]')
        for key, t in s.branch.items():
            lines.append(f"  {_node(d, s.name)} -->|{key}| {_target(d, t)}")
        for key, t in s.routes.items():
            lines.append(f"  {_node(d, s.name)} -.->|{key}| {_target(d, t)}")
        if s.wait:
            lines.append(f"  {_node(d, s.name)} -.->|timeout| {_target(d, s.wait.on_timeout)}")
        if s.next is not None:
            lines.append(f"  {_node(d, s.name)} --> {_target(d, s.next)}")
    lines.append(f"  {d.name}__end(((end)))")
    return "\n".join(lines)


def document() -> str:
    parts = [HEADER]
    for name, d in sorted(load_dialogues().items()):
        parts.append(f"## {name}\n\n```mermaid\n{mermaid(d)}\n```\n")
    return "\n".join(parts)
