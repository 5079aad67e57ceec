"""The crisis reply: caring words, the right line(s) for the country, the emergency number.

Texts live in Babel catalogs, gettext domain ``crisis``:
``locales/<lang>/LC_MESSAGES/crisis.po``, message ids ``crisis.reply.*`` with str.format
placeholders. A practice overlays its own ``crisis.po`` files from ``catalog_dirs`` (same
layout; later folders win, message by message). A message missing or broken in the client's
language falls back to English, so a reply always goes out.

The reply is honest: it says a person at the practice is being told only when ``staff_told`` is
true (otherwise it says the number is automated), and it says when a line does not answer around
the clock or its hours could not be confirmed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

from bot.langs import normalize_lang, primary

from .phrases import LOCALES_DIR
from .resources import (
    Resource,
    ResourceError,
    emergency_number,
    known_country,
    priority_resources,
    resources_for,
)

log = logging.getLogger(__name__)

DOMAIN = "crisis"
FALLBACK_LANG = "en"
# Aim for two SMS segments of plain text.
TARGET_CHARS = 320

_cache_lock = threading.Lock()
_cache: dict[Path, tuple[float, dict[str, str]]] = {}


def _read_catalog(path: Path) -> dict[str, str]:
    """Message id -> text of one .po file (empty and fuzzy entries left out); cached by mtime."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return {}
    with _cache_lock:
        hit = _cache.get(path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
    try:
        with path.open("rb") as fh:
            catalog = read_po(fh, domain=DOMAIN)
    except Exception:  # a broken overlay must never stop a crisis reply
        log.exception("crisis catalog %s could not be read; ignoring it", path)
        messages: dict[str, str] = {}
    else:
        messages = {
            str(m.id): str(m.string)
            for m in catalog
            if m.id and isinstance(m.id, str) and isinstance(m.string, str) and m.string and not m.fuzzy
        }
    with _cache_lock:
        _cache[path] = (mtime, messages)
    return messages


def _catalog_path(base: Path, lang: str) -> Path:
    return base / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def messages_for(lang: str, catalog_dirs: Sequence[Path] = ()) -> dict[str, str]:
    """The merged messages for one language tag as spelt on disk (``pt_BR``, ``es``)."""
    merged: dict[str, str] = {}
    for base in (LOCALES_DIR, *(Path(d) for d in catalog_dirs)):
        merged.update(_read_catalog(_catalog_path(base, lang)))
    return merged


def _choose_lang(lang: str | None, catalog_dirs: Sequence[Path]) -> str:
    norm = normalize_lang(lang)
    if not norm:
        return FALLBACK_LANG
    for candidate in (norm, primary(norm)):
        if messages_for(candidate, catalog_dirs):
            return candidate
    return FALLBACK_LANG


class _Texts:
    def __init__(self, lang: str, catalog_dirs: Sequence[Path]) -> None:
        self.lang = lang
        # The client's language (practice overlays applied), then English with the overlays, then
        # the shipped English catalog alone, which the tests keep complete.
        self.tables = (
            messages_for(lang, catalog_dirs),
            messages_for(FALLBACK_LANG, catalog_dirs),
            messages_for(FALLBACK_LANG),
        )

    def get(self, msgid: str, **fields: str) -> str:
        for table in self.tables:
            text = table.get(msgid)
            if text:
                try:
                    return text.format(**fields)
                except (KeyError, IndexError, ValueError):
                    log.warning("crisis message %s (%s) has bad placeholders; using English", msgid, self.lang)
        raise LookupError(f"crisis message {msgid} is missing from the shipped English catalog")


def _text_phrase(t: _Texts, r: Resource, lang: str) -> str:
    number = r.text_number or ""
    if r.text_channel == "whatsapp":
        return t.get("crisis.reply.text_whatsapp", number=number)
    keyword = r.keyword_for(lang)
    if keyword:
        return t.get("crisis.reply.text_keyword", keyword=keyword, number=number)
    return t.get("crisis.reply.text_number", number=number)


def _line(t: _Texts, r: Resource, lang: str) -> str:
    keyword = r.keyword_for(lang)
    if r.call and r.text_number:
        if r.call == r.text_number and not keyword and r.text_channel == "sms":
            line = t.get("crisis.reply.line.call_or_text", name=r.name, number=r.call)
        else:
            line = t.get("crisis.reply.line.call_and_text", name=r.name, call=r.call, text=_text_phrase(t, r, lang))
    elif r.call:
        line = t.get("crisis.reply.line.call", name=r.name, call=r.call)
    else:
        line = t.get("crisis.reply.line.text", name=r.name, text=_text_phrase(t, r, lang))
    if r.always_open:
        suffix = t.get("crisis.reply.open_24h")
    elif r.hours_known:
        suffix = t.get("crisis.reply.not_24h", hours=r.hours)
    else:
        suffix = t.get("crisis.reply.hours_unknown")
    return f"{line} {suffix}"


def _lines(country: str, overrides: Mapping[str, Any] | None) -> tuple[list[Resource], str, bool]:
    """The lines to show, the emergency number, and whether the country is in the directory."""
    try:
        resources = resources_for(country, overrides)
        emergency = emergency_number(country, overrides)
        known = known_country(country, overrides)
    except ResourceError:
        # A broken practice override must not stop the reply: use the shipped directory.
        log.exception("crisis.resources override for %s is invalid; using the shipped entry", country)
        resources = resources_for(country)
        emergency = emergency_number(country)
        known = known_country(country)
    return priority_resources(resources), emergency, known


def crisis_reply(
    lang: str | None,
    country: str,
    *,
    about: str,
    staff_told: bool,
    overrides: Mapping[str, Any] | None = None,
    catalog_dirs: Sequence[Path] = (),
) -> str:
    """The full crisis reply in the client's language (English when it has no crisis catalog).

    ``about`` is the scan's ``"self"`` or ``"other"``; ``overrides`` is config.yaml's
    ``crisis.resources``; ``catalog_dirs`` are the practice's locale folders.
    """
    chosen = _choose_lang(lang, catalog_dirs)
    t = _Texts(chosen, catalog_dirs)
    other = about == "other"
    lines, emergency, known = _lines(country, overrides)

    parts = [t.get("crisis.reply.other" if other else "crisis.reply.self")]
    parts.extend(_line(t, r, chosen) for r in lines)
    if known:
        parts.append(t.get("crisis.reply.emergency_other" if other else "crisis.reply.emergency", emergency=emergency))
    else:
        key = "crisis.reply.emergency_unknown_other" if other else "crisis.reply.emergency_unknown"
        parts.append(t.get(key, emergency=emergency))
    parts.append(t.get("crisis.reply.staff_told" if staff_told else "crisis.reply.automated"))
    return "\n".join(parts)
