"""The crisis resource directory: lines and emergency numbers by country, as data.

The shipped table is ``bot/safety/resources.yaml`` (its header documents the entry shape and the
``verified`` levels). A practice replaces or adds a country with ``crisis.resources`` in
config.yaml, e.g. ``{BR: {services: [...]}}``: the keys it gives replace the shipped ones for that
country (``services`` as a whole list), the others stay.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import phonenumbers
import yaml

RESOURCES_FILE = Path(__file__).resolve().parent / "resources.yaml"

# Reachable from most mobile phones worldwide; used only for a country missing from the table.
FALLBACK_EMERGENCY = "112"

_VERIFIED = ("V", "V2", "U")
_AUDIENCES = ("all", "youth", "veterans", "lgbtq_youth")
_COUNTRY_ALIASES = {"UK": "GB"}


class ResourceError(ValueError):
    """A directory entry is malformed; the message names the country and the key."""


@dataclass(frozen=True)
class Resource:
    id: str
    country: str
    name: str
    call: str | None
    text_number: str | None
    text_keyword: str | None
    text_keyword_by_lang: Mapping[str, str]
    text_channel: str  # "sms" or "whatsapp"
    chat: str | None
    hours: str  # "24/7", "HH:MM-HH:MM" (or any text a practice writes), or "unknown"
    languages: tuple[str, ...]
    audience: str
    region: str | None
    priority: bool
    verified: str
    source: tuple[str, ...]
    notes: str | None = None

    @property
    def always_open(self) -> bool:
        return self.hours.replace(" ", "").lower() in ("24/7", "24h", "24x7")

    @property
    def hours_known(self) -> bool:
        return self.hours.strip().lower() not in ("", "unknown", "u")

    def keyword_for(self, lang: str | None) -> str | None:
        """The word to text, in the client's language where the service has one."""
        if lang:
            primary = lang.split("_", 1)[0].lower()
            for key in (lang, primary):
                if key in self.text_keyword_by_lang:
                    return self.text_keyword_by_lang[key]
        return self.text_keyword


def normalize_country(code: str | None) -> str | None:
    """``br`` -> ``BR``, ``UK`` -> ``GB``; None for anything that is not two letters."""
    if not isinstance(code, str):
        return None
    c = code.strip().upper()
    c = _COUNTRY_ALIASES.get(c, c)
    if len(c) == 2 and c.isascii() and c.isalpha():
        return c
    return None


def country_for(client_country: str | None, phone: str | None, default_country: str) -> str:
    """The client record's country, else the phone number's, else the practice default."""
    c = normalize_country(client_country)
    if c:
        return c
    if isinstance(phone, str) and phone.strip():
        try:
            num = phonenumbers.parse(phone.strip(), None)
        except phonenumbers.NumberParseException:
            num = None
        if num is not None:
            region = phonenumbers.region_code_for_number(num)
            c = normalize_country(region)
            if c and region != "001":
                return c
    c = normalize_country(default_country)
    if c:
        return c
    raise ValueError(f"default_country must be a two-letter country code, not {default_country!r}")


_lock = threading.Lock()
_shipped: dict[str, dict[str, Any]] | None = None


def shipped_table() -> dict[str, dict[str, Any]]:
    """The raw shipped table, loaded once (validated by the tests)."""
    global _shipped
    if _shipped is None:
        with _lock:
            if _shipped is None:
                with RESOURCES_FILE.open(encoding="utf-8") as fh:
                    data = yaml.safe_load(fh)
                if not isinstance(data, dict):
                    raise ResourceError(f"{RESOURCES_FILE}: expected a mapping of countries")
                _shipped = {str(k): v for k, v in data.items()}
    return _shipped


def _str_or_none(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        s = str(value).strip()
        return s or None
    raise ResourceError(f"{where}: expected text")


def _parse_service(raw: Any, country: str, i: int) -> Resource:
    where = f"crisis resources {country}.services[{i}]"
    if not isinstance(raw, Mapping):
        raise ResourceError(f"{where}: expected a mapping")
    name = _str_or_none(raw.get("name"), f"{where}.name")
    if not name:
        raise ResourceError(f"{where}.name: required")
    call = _str_or_none(raw.get("call"), f"{where}.call")
    text = raw.get("text")
    text_number = text_keyword = None
    by_lang: dict[str, str] = {}
    channel = "sms"
    if text is not None:
        if isinstance(text, (str, int)) and not isinstance(text, bool):
            text_number = str(text)
        elif isinstance(text, Mapping):
            text_number = _str_or_none(text.get("number"), f"{where}.text.number")
            text_keyword = _str_or_none(text.get("keyword"), f"{where}.text.keyword")
            kbl = text.get("keyword_by_lang") or {}
            if not isinstance(kbl, Mapping):
                raise ResourceError(f"{where}.text.keyword_by_lang: expected a mapping")
            by_lang = {str(k): str(v) for k, v in kbl.items()}
            channel = str(text.get("channel") or "sms")
            if channel not in ("sms", "whatsapp"):
                raise ResourceError(f"{where}.text.channel: sms or whatsapp")
        else:
            raise ResourceError(f"{where}.text: a number or a mapping with number/keyword")
        if not text_number:
            raise ResourceError(f"{where}.text.number: required when text is given")
    if not call and not text_number:
        raise ResourceError(f"{where}: needs a call or a text number")
    hours = _str_or_none(raw.get("hours"), f"{where}.hours") or "unknown"
    langs = raw.get("languages") or []
    if not isinstance(langs, list):
        raise ResourceError(f"{where}.languages: expected a list")
    audience = str(raw.get("audience") or "all")
    if audience not in _AUDIENCES:
        raise ResourceError(f"{where}.audience: one of {', '.join(_AUDIENCES)}")
    verified = str(raw.get("verified") or "U")
    if verified not in _VERIFIED:
        raise ResourceError(f"{where}.verified: one of V, V2, U")
    source = raw.get("source") or []
    if isinstance(source, str):
        source = [source]
    if not isinstance(source, list):
        raise ResourceError(f"{where}.source: a URL or a list of URLs")
    priority = raw.get("priority", False)
    if not isinstance(priority, bool):
        raise ResourceError(f"{where}.priority: true or false")
    return Resource(
        id=str(raw.get("id") or f"{country.lower()}_{i}"),
        country=country,
        name=name,
        call=call,
        text_number=text_number,
        text_keyword=text_keyword,
        text_keyword_by_lang=by_lang,
        text_channel=channel,
        chat=_str_or_none(raw.get("chat"), f"{where}.chat"),
        hours=hours,
        languages=tuple(str(x) for x in langs),
        audience=audience,
        region=_str_or_none(raw.get("region"), f"{where}.region"),
        priority=priority,
        verified=verified,
        source=tuple(str(x) for x in source),
        notes=_str_or_none(raw.get("notes"), f"{where}.notes"),
    )


def _entry(country: str, overrides: Mapping[str, Any] | None) -> dict[str, Any] | None:
    c = normalize_country(country)
    if c is None:
        return None
    shipped = shipped_table().get(c)
    entry: dict[str, Any] = dict(shipped) if isinstance(shipped, Mapping) else {}
    if overrides:
        if not isinstance(overrides, Mapping):
            raise ResourceError("crisis.resources: expected a mapping of country codes")
        for key, value in overrides.items():
            if normalize_country(str(key)) == c:
                if not isinstance(value, Mapping):
                    raise ResourceError(f"crisis.resources.{key}: expected a mapping")
                entry.update(value)
    return entry or None


def resources_for(country: str, overrides: Mapping[str, Any] | None = None) -> list[Resource]:
    """Every line for ``country``, in directory order (practice overrides applied)."""
    entry = _entry(country, overrides)
    if entry is None:
        return []
    c = normalize_country(country) or country
    services = entry.get("services") or []
    if not isinstance(services, list):
        raise ResourceError(f"crisis resources {c}.services: expected a list")
    return [_parse_service(s, c, i) for i, s in enumerate(services)]


def emergency_number(country: str, overrides: Mapping[str, Any] | None = None) -> str:
    """The country's emergency number; 112 for a country missing from the directory."""
    entry = _entry(country, overrides)
    if entry is None:
        return FALLBACK_EMERGENCY
    num = _str_or_none(entry.get("emergency"), f"crisis resources {country}.emergency")
    return num or FALLBACK_EMERGENCY


def known_country(country: str, overrides: Mapping[str, Any] | None = None) -> bool:
    entry = _entry(country, overrides)
    return entry is not None and bool(entry.get("emergency"))


def priority_resources(resources: Sequence[Resource]) -> list[Resource]:
    """What the crisis reply shows: the priority lines, all of them together.

    Several priority lines in one country (adult and youth, or two languages) are shown together
    or not at all, never one alone (the findahelpline/ThroughLine rule). Without any marked
    priority, the first around-the-clock line stands in, else the first line.
    """
    prio = [r for r in resources if r.priority]
    if prio:
        return prio
    for r in resources:
        if r.always_open:
            return [r]
    return list(resources[:1])
