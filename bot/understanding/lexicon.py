"""Per-language understanding data, loaded once from ``locales/<lang>/understanding.yaml``.

The same files feed the builtin parser (patterns, words) and the Rasa export (examples), so
there is a single source of truth. Everything here is compiled once per language and cached.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from bot.understanding.text import fold

LANGS: tuple[str, ...] = ("en", "pt_BR", "es")
INTENT_ORDER: tuple[str, ...] = ("confirm", "cancel", "reschedule", "opt_out", "opt_in", "help", "human")

_LOCK = threading.Lock()


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: ``yes``, ``no``, ``on``, ``off``, ``y``, ``n`` stay words (they are replies!)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def locales_dir() -> Path:
    """Where the shipped ``locales/`` folder is (``RAPPORT_LOCALES_DIR`` overrides)."""
    env = os.environ.get("RAPPORT_LOCALES_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "locales"


def _alternation(items: list[str], *, escape: bool) -> str:
    """One regex alternation, longest first so that the longest phrase wins at a position."""
    uniq = sorted({i for i in items if i}, key=lambda s: (-len(s), s))
    parts = [re.escape(i) if escape else i for i in uniq]
    return "|".join(parts) if parts else r"(?!x)x"


def _bounded(alt: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z0-9])(?:" + alt + r")(?![a-z0-9])")


def _words_in(patterns: list[str]) -> set[str]:
    return set(re.findall(r"[a-z]{2,}", " ".join(patterns)))


def _fold_keys(d: dict[str, Any]) -> dict[str, Any]:
    return {fold(str(k)): v for k, v in d.items()}


@dataclass(frozen=True)
class IntentPatterns:
    whole: re.Pattern[str] | None
    strong: re.Pattern[str] | None
    weak: re.Pattern[str] | None


@dataclass
class Lexicon:
    """Compiled understanding data for one language."""

    lang: str
    shorthand: dict[str, str]
    vocabulary: frozenset[str]
    fuzzy_targets: tuple[str, ...]
    negators: frozenset[str]
    no_word: str
    intents: dict[str, IntentPatterns]
    examples: dict[str, list[str]]
    numbers: dict[str, int]
    weekdays: dict[str, int]
    months: dict[str, int]
    relative_days: dict[str, int]
    numeric_date_order: str
    re_clause_break: re.Pattern[str]
    re_disjunction: re.Pattern[str]
    re_instead_of: re.Pattern[str]
    re_request: re.Pattern[str]
    re_rating_words: re.Pattern[str]
    re_rating_scale: re.Pattern[str]
    re_relative: re.Pattern[str]
    re_weekday: re.Pattern[str]
    re_dom: list[re.Pattern[str]]
    re_month_day: re.Pattern[str]
    re_day_month: re.Pattern[str]
    re_in_days: list[re.Pattern[str]]
    re_in_weeks: list[re.Pattern[str]]
    re_vague_days: re.Pattern[str]
    re_time_prefixed: re.Pattern[str]
    re_time_vague: re.Pattern[str]
    re_time_range: re.Pattern[str]
    re_time_prefix_end: re.Pattern[str]
    re_time_pod: re.Pattern[str]
    re_oclock: re.Pattern[str]
    re_half: list[re.Pattern[str]]
    re_quarter_past: list[re.Pattern[str]]
    re_quarter_to: list[re.Pattern[str]]
    re_am_after: re.Pattern[str]
    re_pm_after: re.Pattern[str]
    re_am_any: re.Pattern[str]
    re_pm_any: re.Pattern[str]
    re_noon: re.Pattern[str]
    re_midnight: re.Pattern[str]
    re_part_of_day: re.Pattern[str]
    re_dateish: re.Pattern[str]
    re_wellbeing: re.Pattern[str]
    re_date_trigger: re.Pattern[str]
    next_week_suffix: frozenset[str] = field(default_factory=frozenset)
    weekday_next: frozenset[str] = field(default_factory=frozenset)
    example_index: list[tuple[str, str]] = field(default_factory=list)
    example_texts: tuple[str, ...] = ()


def _compile(lang: str, raw: dict[str, Any]) -> Lexicon:
    def lst(key: str) -> list[str]:
        return [fold(str(x)) for x in (raw.get(key) or [])]

    def raw_lst(key: str) -> list[str]:
        return [str(x) for x in (raw.get(key) or [])]

    shorthand = {fold(str(k)): fold(str(v)) for k, v in (raw.get("shorthand") or {}).items()}
    numbers = {fold(k): int(v) for k, v in (raw.get("numbers") or {}).items()}
    weekdays = {fold(k): int(v) for k, v in (raw.get("weekdays") or {}).items()}
    months = {fold(k): int(v) for k, v in (raw.get("months") or {}).items()}
    relative = {fold(k): int(v) for k, v in (raw.get("relative_days") or {}).items()}

    intents: dict[str, IntentPatterns] = {}
    pattern_sources: list[str] = []
    for name, spec in (raw.get("intents") or {}).items():
        whole = [str(x) for x in (spec.get("whole") or [])]
        strong = [str(x) for x in (spec.get("strong") or [])]
        weak = [str(x) for x in (spec.get("weak") or [])]
        pattern_sources += whole + strong + weak
        intents[name] = IntentPatterns(
            whole=re.compile("(?:" + _alternation(whole, escape=False) + ")") if whole else None,
            strong=_bounded(_alternation(strong, escape=False)) if strong else None,
            weak=_bounded(_alternation(weak, escape=False)) if weak else None,
        )

    undecided = [str(x) for x in (raw.get("undecided") or [])]
    if undecided:
        pattern_sources += undecided
        intents["other"] = IntentPatterns(whole=None, strong=_bounded(_alternation(undecided, escape=False)), weak=None)
    examples = {str(k): [str(x) for x in v] for k, v in (raw.get("examples") or {}).items()}

    num_alt = r"\d{1,2}|" + _alternation(list(numbers), escape=True)
    wd_alt = _alternation(list(weekdays), escape=True)
    month_alt = _alternation(list(months), escape=True)
    prefix_this = lst("weekday_this") + lst("weekday_next")
    suffixes = lst("next_week_suffix") + lst("weekday_plain_suffix")
    re_weekday = _bounded(
        r"(?:(?P<pre>" + _alternation(prefix_this, escape=True) + r") )?(?P<wd>" + wd_alt + r")"
        r"(?: (?P<suf>" + _alternation(suffixes, escape=True) + r"))?"
        # "a segunda opção", "the second one": an ordinal picking a slot, not Monday
        r"(?! (?:opcao|opcoes|opcion|option|alternativa|one|vez|hora|horario))"
    )
    am_words = lst("am_words")
    pm_words = lst("pm_words")
    pod_words = _alternation(am_words + pm_words, escape=True)
    minute_tail = r"(?:(?::|h| e | y | and )?(?P<mm>[0-5]\d))?"
    oclock_alt = _alternation(lst("oclock"), escape=True)
    re_time_prefixed = _bounded(
        r"(?:" + _alternation(lst("time_prefix"), escape=True) + r") (?P<h>" + num_alt + r")" + minute_tail
        + r"(?: ?(?:" + oclock_alt + r"))?(?![\d/])"
    )
    vague_alt = _alternation(lst("time_vague_prefix"), escape=True)
    re_time_vague = _bounded(
        r"(?:" + vague_alt + r") (?:" + num_alt + r")(?:[:h]\d\d)?(?: ?(?:" + oclock_alt + r"|am|pm))?"
        r"(?: (?:" + _alternation(lst("time_range_join"), escape=True) + r") (?:"
        + _alternation(lst("time_prefix"), escape=True) + r" )?(?:" + num_alt + r")(?:[:h]\d\d)?"
        r"(?: ?(?:" + oclock_alt + r"|am|pm))?)?"
    )
    clock = r"\d{1,2}(?::[0-5]\d)?(?: ?(?:am|pm|h|hs))?"
    bare_joins = [j for j in lst("time_range_join") if j not in ("as", "a", "e", "y", "and")] + lst("disjunctions")
    re_time_range = _bounded(
        r"(?<![-/])" + clock + r" ?(?:" + _alternation(bare_joins, escape=True) + r") ?" + clock + r"(?![-/])"
    )
    re_time_pod = _bounded(r"(?P<h>" + num_alt + r")" + minute_tail + r" (?P<pod>" + pod_words + r")")

    def group_patterns(key: str) -> list[re.Pattern[str]]:
        out = []
        for p in raw_lst(key):
            out.append(_bounded(p.replace(r"\w+", "(?:" + num_alt + ")")))
        return out

    # Any token that can start a date or time expression; texts without one skip the resolver.
    trigger_words = (
        list(weekdays) + list(months) + list(relative) + list(numbers)
        + lst("noon_words") + lst("midnight_words") + lst("part_of_day") + lst("am_words") + lst("pm_words")
        + [w for p in raw_lst("vague_days") + raw_lst("half_past") + raw_lst("quarter_past") + raw_lst("quarter_to")
           for w in re.findall(r"[a-z]{3,}", p)]
    )
    re_date_trigger = re.compile(r"\d|(?<![a-z])(?:" + _alternation(trigger_words, escape=True) + r")(?![a-z])")
    vocab = (
        set(lst("common_words"))
        | set(lst("fuzzy_targets"))
        | set(shorthand)
        | {w for v in shorthand.values() for w in v.split()}
        | {w for k in list(numbers) + list(weekdays) + list(months) + list(relative) for w in k.split()}
        | _words_in(pattern_sources)
        | {w for k in examples.values() for e in k for w in fold(e).split()}
    )
    lex = Lexicon(
        lang=lang,
        shorthand=shorthand,
        vocabulary=frozenset(vocab),
        fuzzy_targets=tuple(sorted(set(lst("fuzzy_targets")))),
        negators=frozenset(lst("negators")),
        no_word="nao" if lang == "pt_BR" else "no",
        intents=intents,
        examples=examples,
        numbers=numbers,
        weekdays=weekdays,
        months=months,
        relative_days=relative,
        numeric_date_order=str(raw.get("numeric_date_order") or "dmy"),
        re_clause_break=_bounded(_alternation(lst("clause_breaks"), escape=True)),
        re_disjunction=_bounded(_alternation(lst("disjunctions"), escape=True)),
        re_instead_of=_bounded(_alternation(lst("instead_of"), escape=True)),
        re_request=_bounded(_alternation(raw_lst("request_markers"), escape=False)),
        re_rating_words=_bounded(_alternation(raw_lst("rating_words"), escape=False)),
        re_rating_scale=_bounded(_alternation(raw_lst("rating_scale_words"), escape=False)),
        re_relative=_bounded(_alternation(list(relative), escape=True)),
        re_weekday=re_weekday,
        re_dom=[_bounded(p) for p in raw_lst("day_of_month")],
        re_month_day=_bounded(
            r"(?P<m>" + month_alt + r")(?: (?:the|dia|el))? (?P<d>\d{1,2})(?:st|nd|rd|th)?(?![\d:h])"
            r"(?: ,)?(?: (?:de |del |of )?(?P<y>20\d\d))?"
        ),
        re_day_month=_bounded(
            r"(?P<d>\d{1,2})(?:st|nd|rd|th)?(?: (?:de|of|del))? (?P<m>" + month_alt + r")"
            r"(?: ,)?(?: (?:de |del |of )?(?P<y>20\d\d))?"
        ),
        re_in_days=group_patterns("in_days"),
        re_in_weeks=group_patterns("in_weeks"),
        re_vague_days=_bounded(_alternation(raw_lst("vague_days"), escape=False)),
        re_time_prefixed=re_time_prefixed,
        re_time_vague=re_time_vague,
        re_time_range=re_time_range,
        re_time_prefix_end=re.compile(r"(?:^|\s)(?:" + _alternation(lst("time_prefix"), escape=True) + r")\s$"),
        re_time_pod=re_time_pod,
        re_oclock=_bounded(r"(?P<h>\d{1,2}) ?(?:" + oclock_alt + r")(?! ?\d)"),
        re_half=group_patterns("half_past"),
        re_quarter_past=group_patterns("quarter_past"),
        re_quarter_to=group_patterns("quarter_to"),
        re_am_after=re.compile(r"^ ?(?:" + _alternation(am_words, escape=True) + r")(?![a-z0-9])"),
        re_pm_after=re.compile(r"^ ?(?:" + _alternation(pm_words, escape=True) + r")(?![a-z0-9])"),
        re_am_any=_bounded(_alternation(am_words, escape=True)),
        re_pm_any=_bounded(_alternation(pm_words, escape=True)),
        re_noon=_bounded(_alternation(lst("noon_words"), escape=True)),
        re_midnight=_bounded(_alternation(lst("midnight_words"), escape=True)),
        re_part_of_day=_bounded(_alternation(lst("part_of_day"), escape=True)),
        re_dateish=_bounded(month_alt + r"|\d{4}-\d{2}-\d{2}|\d{1,2}\.\d{1,2}\.\d{2,4}"),
        re_date_trigger=re_date_trigger,
        re_wellbeing=_bounded(_alternation(raw_lst("wellbeing"), escape=False)),
        next_week_suffix=frozenset(lst("next_week_suffix")),
        weekday_next=frozenset(lst("weekday_next")),
    )
    lex.example_index = [(fold_example(e), intent) for intent, exs in examples.items() for e in exs]
    lex.example_texts = tuple(e for e, _ in lex.example_index)
    return lex


def fold_example(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", fold(text)))


@cache
def load(lang: str) -> Lexicon:
    """The compiled lexicon for a shipped language (``en``, ``pt_BR``, ``es``)."""
    if lang not in LANGS:
        raise KeyError(f"no understanding data for language {lang!r}")
    path = locales_dir() / lang / "understanding.yaml"
    with _LOCK, path.open(encoding="utf-8") as fh:
        raw = yaml.load(fh, Loader=_Loader) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return _compile(lang, raw)


def raw_examples(lang: str) -> dict[str, list[str]]:
    """The natural-language examples per intent, as written (for the Rasa export)."""
    return {k: list(v) for k, v in load(lang).examples.items()}
