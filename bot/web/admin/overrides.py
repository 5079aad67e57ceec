"""Per-language script overrides edited in the admin, laid over the catalogs at runtime.

``Scripts`` loads the shipped catalogs (and a practice's ``locales_dir``) once at start-up. The
overrides live in the ``script_overrides`` table; :func:`apply` rebuilds each language's text
dict as catalogs-then-overrides and swaps it in whole (one assignment per language, so a reader on
another thread sees either the old dict or the new one, never half of each).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from bot.scripts import PLACEHOLDER, Scripts
from bot.scripts_check import segments
from bot.service import Service
from storage import store
from storage.admin_tables import ScriptOverride

MAX_TEXT = 1600

# The catalog text before any override, per Scripts object.
_BASE: dict[int, dict[str, dict[str, str]]] = {}


def base(scripts: Scripts) -> dict[str, dict[str, str]]:
    key = id(scripts)
    if key not in _BASE:
        _BASE[key] = {lang: dict(texts) for lang, texts in scripts.texts.items()}
    return _BASE[key]


def apply(svc: Service) -> int:
    """Lay every stored override over ``svc.scripts``; returns how many there are."""
    orig = base(svc.scripts)
    with Session(svc.db) as s:
        rows = list(s.exec(select(ScriptOverride)))
    by_lang: dict[str, dict[str, str]] = {}
    for r in rows:
        by_lang.setdefault(r.lang, {})[r.msg_id] = r.text
    for lang in set(orig) | set(by_lang):
        svc.scripts.texts[lang] = {**orig.get(lang, {}), **by_lang.get(lang, {})}
    return len(rows)


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def check(svc: Service, lang: str, msg_id: str, text: str) -> str | None:
    """Why ``text`` cannot replace ``msg_id`` in ``lang``, or None when it can."""
    orig = base(svc.scripts)
    reference = orig.get(lang, {}).get(msg_id) or orig.get("en", {}).get(msg_id)
    if reference is None:
        return f"unknown message id {msg_id!r}"
    if not text.strip():
        return "the text is empty (use Reset to go back to the catalog text)"
    if len(text) > MAX_TEXT:
        return f"the text is longer than {MAX_TEXT} characters"
    if not msg_id.startswith("fmt.") and placeholders(text) != placeholders(reference):
        want = ", ".join(sorted("{" + p + "}" for p in placeholders(reference))) or "none"
        return f"placeholders must match the catalog's: {want}"
    return None


def save(svc: Service, lang: str, msg_id: str, text: str, by: str, now: datetime) -> None:
    with Session(svc.db) as s:
        row = s.get(ScriptOverride, (lang, msg_id))
        if row is None:
            row = ScriptOverride(lang=lang, msg_id=msg_id, text=text)
        row.text, row.updated_by, row.updated_at = text, by, now
        s.add(row)
        store.audit(s, now, f"staff:{by}", "script", f"{lang}/{msg_id}", "overridden")
        s.commit()
    apply(svc)


def reset(svc: Service, lang: str, msg_id: str, by: str, now: datetime) -> None:
    with Session(svc.db) as s:
        row = s.get(ScriptOverride, (lang, msg_id))
        if row is not None:
            s.delete(row)
            store.audit(s, now, f"staff:{by}", "script", f"{lang}/{msg_id}", "reset")
            s.commit()
    apply(svc)


def preview(text: str) -> dict[str, object]:
    encoding, count = segments(text)
    return {"encoding": encoding, "segments": count, "characters": len(text)}
