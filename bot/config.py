"""config.yaml: a typed schema. Unknown keys are errors; errors name the key, the value and the line.

Secrets never live here: they come from the environment (see ``bot.settings``).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from bot.durations import parse_duration
from bot.langs import normalize_lang
from bot.retention import RecordsConfig
from bot.stats import RetentionConfig
from bot.waitlist import WaitlistConfig
from bot.writeback import WritebackConfig

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def _duration(v: Any) -> timedelta:
    if isinstance(v, timedelta):
        return v
    return parse_duration(v)


Duration = Annotated[timedelta, BeforeValidator(_duration)]


def _hhmm(v: Any) -> str:
    if not isinstance(v, str) or not _HHMM.match(v):
        raise ValueError('expected a local time "HH:MM"')
    return v


HHMM = Annotated[str, BeforeValidator(_hhmm)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Reminders(Strict):
    offsets: list[Duration] = Field(default_factory=lambda: [parse_duration("24h"), parse_duration("2h")])
    answer_timeout: Duration = parse_duration("12h")


class QuietHours(Strict):
    start: HHMM = "21:00"
    end: HHMM = "08:00"


class MissedSession(Strict):
    delay: Duration = parse_duration("2h")
    answer_timeout: Duration = parse_duration("1d")


class Feedback(Strict):
    delay: Duration = parse_duration("3h")
    answer_timeout: Duration = parse_duration("1d")


class Limits(Strict):
    per_day: int = Field(default=3, ge=0)
    per_week: int = Field(default=10, ge=0)


class OnCall(Strict):
    name: str = Field(min_length=1)
    phone: str | None = None
    telegram: str | None = None

    @field_validator("telegram", mode="before")
    @classmethod
    def _tg(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v


class Crisis(Strict):
    oncall: list[OnCall] = Field(default_factory=list)
    ack_timeout: Duration = parse_duration("10m")
    include_client_text: bool = False
    resources: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("oncall")
    @classmethod
    def _unique(cls, v: list[OnCall]) -> list[OnCall]:
        names = [o.name for o in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"on-call names must be unique: {sorted(dup)}")
        return v


class Clinician(Strict):
    id: str = Field(min_length=1)
    name: str = ""
    tz: str = "UTC"
    session_minutes: int = Field(default=50, ge=5, le=600)
    availability: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("tz")
    @classmethod
    def _tz(cls, v: str) -> str:
        return _check_tz(v)

    @field_validator("availability")
    @classmethod
    def _avail(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for day, windows in v.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r} (use {', '.join(WEEKDAYS)})")
            for w in windows:
                m = _WINDOW.match(w) if isinstance(w, str) else None
                if not m or (m.group(1), m.group(2)) >= (m.group(3), m.group(4)):
                    raise ValueError(f'bad window {w!r} on {day} (use "HH:MM-HH:MM", start before end)')
        return v


class Conversation(Strict):
    reschedule_timeout: Duration = parse_duration("1d")
    slot_horizon: Duration = parse_duration("4w")
    slot_lead: Duration = parse_duration("2h")


class Nlu(Strict):
    backend: str = "builtin"
    rasa_url: str | None = None
    timeout: Duration = parse_duration("1s")

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str) -> str:
        if v not in ("builtin", "rasa"):
            raise ValueError("expected builtin or rasa")
        return v


class Config(Strict):
    practice_name: str = ""  # empty: each language's own "your practice"
    languages: list[str] = Field(default_factory=lambda: ["en", "pt_BR", "es"])
    default_language: str | None = None
    default_country: str = "US"
    default_tz: str = "UTC"
    database_url: str | None = None
    locales_dir: str | None = None
    reminders: Reminders = Reminders()
    quiet_hours: QuietHours = QuietHours()
    missed_session: MissedSession = MissedSession()
    feedback: Feedback = Feedback()
    limits: Limits = Limits()
    crisis: Crisis = Crisis()
    clinicians: list[Clinician] = Field(default_factory=list)
    conversation: Conversation = Conversation()
    nlu: Nlu = Nlu()
    records: RecordsConfig = RecordsConfig()
    retention: RetentionConfig = RetentionConfig()
    waitlist: WaitlistConfig = WaitlistConfig()
    writeback: WritebackConfig = WritebackConfig()

    @field_validator("languages")
    @classmethod
    def _langs(cls, v: list[str]) -> list[str]:
        out = []
        for tag in v:
            n = normalize_lang(tag)
            if not n:
                raise ValueError(f"empty language tag in {v!r}")
            out.append(n)
        if not out:
            raise ValueError("at least one language")
        return out

    @field_validator("default_country")
    @classmethod
    def _country(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z]{2}$", v):
            raise ValueError("expected an ISO 3166 two-letter country code")
        return v.upper()

    @field_validator("default_tz")
    @classmethod
    def _dtz(cls, v: str) -> str:
        return _check_tz(v)

    @field_validator("database_url")
    @classmethod
    def _db(cls, v: str | None) -> str | None:
        if v and re.search(r"://[^/@]*:[^/@]*@", v):
            raise ValueError("no passwords in config.yaml: put the URL with its password in RAPPORT_DATABASE_URL")
        return v

    @property
    def fallback_language(self) -> str:
        return normalize_lang(self.default_language) or self.languages[0]

    def clinician(self, cid: str | None) -> Clinician | None:
        if cid is None:
            return self.clinicians[0] if len(self.clinicians) == 1 else None
        return next((c for c in self.clinicians if c.id == cid), None)


def _check_tz(v: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:  # OSError: a key too long for a file name
        raise ValueError(f"unknown time zone {v!r}") from e
    return v


class ConfigError(Exception):
    """One clear line: the key, the bad value and, when it came from a file, the line."""

    def __init__(self, message: str):
        # A key or a YAML reader message may carry line breaks; the promise is one line.
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))


def _line_index(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path in a YAML document to its 1-based line."""
    out: dict[tuple[str, ...], int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return out

    seen: set[int] = set()

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        # An alias can point back at its own anchor (``x: &a [*a]``): visit each node once.
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                p = (*path, str(k.value))
                out[p] = k.start_mark.line + 1
                walk(v, p)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                p = (*path, str(i))
                out[p] = v.start_mark.line + 1
                walk(v, p)

    if root is not None:
        walk(root, ())
    return out


def _describe(e: ValidationError, data: Any, lines: dict[tuple[str, ...], int], source: str) -> str:
    err = e.errors()[0]
    loc = tuple(str(x) for x in err["loc"])
    key = ".".join(loc) or "(top level)"
    value = err.get("input")
    line = None
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            line = lines[loc[:n]]
            break
    where = f"{source}, line {line}" if line else source
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key {key!r}"
    return f"{where}: {key} = {value!r}: {msg}"


def parse_config(data: Any, *, source: str = "config", text: str | None = None) -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level")
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(e, data, _line_index(text or ""), source)) from None


def load_config(path: str | Path | None = None, overlay: dict[str, Any] | None = None) -> tuple[Config, Path | None]:
    """Load config.yaml (``--config``, else ``RAPPORT_CONFIG``, else ``./config.yaml`` if present).

    Returns the config and the file it came from (None when running on defaults).
    """
    explicit = path or os.environ.get("RAPPORT_CONFIG")
    p = Path(explicit) if explicit else Path("config.yaml")
    data: Any = {}
    text = ""
    source = str(p)
    if p.exists():
        raw = p.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line_no = raw.count(b"\n", 0, e.start) + 1
            raise ConfigError(f"{source}, line {line_no}: not UTF-8 (byte 0x{raw[e.start]:02x})") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f", line {mark.line + 1}" if mark is not None else ""
            problem = (str(getattr(e, "problem", None) or e).splitlines() or ["?"])[0]
            raise ConfigError(f"{source}{line}: not valid YAML: {problem}") from None
        except RecursionError:
            raise ConfigError(f"{source}: not valid YAML: nested too deeply") from None
    elif explicit:
        raise ConfigError(f"{source}: no such file")
    else:
        source = "defaults"
    if overlay:
        data = merge(data if isinstance(data, dict) else {}, overlay)
        text = ""
    return parse_config(data, source=source, text=text), (p.resolve() if p.exists() else None)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge, lists and scalars replace."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out
