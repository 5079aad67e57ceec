"""Script text: Babel catalogs per language, keyed by stable message ids, with practice overlays.

Shipped catalogs live in ``locales/<lang>/LC_MESSAGES/messages.po``; a practice points
``locales_dir`` at a folder of the same shape and its entries win, id by id, without touching ours.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime
from babel.messages.pofile import read_po

from bot.langs import normalize_lang

LOCALES_DIR = Path(__file__).resolve().parents[1] / "locales"
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
# Babel's CLDR patterns put narrow no-break spaces before AM/PM; SMS wants plain GSM spaces.
_SPACES = str.maketrans({"\u202f": " ", "\u00a0": " ", "\u2009": " "})


def read_catalog(path: Path) -> dict[str, str]:
    with path.open("rb") as f:
        cat = read_po(f)
    return {str(m.id): str(m.string) for m in cat if m.id and m.string}


class Scripts:
    """All message text for every language, shipped then overlaid. Loaded once at start-up."""

    def __init__(self, overlay_dirs: Iterable[Path] = (), domain: str = "messages", base: Path = LOCALES_DIR):
        self.domain = domain
        self.texts: dict[str, dict[str, str]] = {}
        for root in (base, *overlay_dirs):
            if not root.is_dir():
                continue
            for po in sorted(root.glob(f"*/LC_MESSAGES/{domain}.po")):
                lang = normalize_lang(po.parent.parent.name) or po.parent.parent.name
                self.texts.setdefault(lang, {}).update(read_catalog(po))

    def languages(self) -> list[str]:
        return sorted(self.texts)

    def has(self, lang: str, msg_id: str) -> bool:
        return msg_id in self.texts.get(lang, {})

    def text(self, lang: str, msg_id: str, fallback: str = "en") -> str:
        for candidate in (lang, fallback, "en"):
            t = self.texts.get(candidate, {}).get(msg_id)
            if t:
                return t
        raise KeyError(f"message id {msg_id!r} exists in no catalog")

    def pick_lang(self, lang: str | None, fallback: str) -> str:
        n = normalize_lang(lang)
        if n and n in self.texts:
            return n
        return fallback if fallback in self.texts else "en"

    def format_when(self, lang: str, when: datetime, tz: str, pattern_id: str = "fmt.datetime") -> str:
        return _format_when(lang, when, tz, self.text(lang, pattern_id))

    def render(self, lang: str, msg_id: str, params: Mapping[str, Any], tz: str) -> str:
        values: dict[str, Any] = {}
        for k, v in params.items():
            if isinstance(v, datetime):
                values[k] = self.format_when(lang, v, tz)
            elif k == "slots":
                values[k] = "\n".join(
                    f"{i}) {self.format_when(lang, s, tz, 'fmt.slot')}" for i, s in enumerate(v, start=1)
                )
            else:
                values[k] = v
        template = self.text(lang, msg_id)
        return PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), m.group(0))), template).translate(_SPACES)


@functools.lru_cache(maxsize=4096)
def _format_when(lang: str, when: datetime, tz: str, pattern: str) -> str:
    """Babel's rendering of one instant: cached, since the same appointment times and open slots are
    written again and again (a reminder, its confirmation, every client offered the same slot)."""
    zone = ZoneInfo(tz)
    s = format_datetime(when.astimezone(zone), pattern, tzinfo=zone, locale=Locale.parse(lang))
    return s.translate(_SPACES)
