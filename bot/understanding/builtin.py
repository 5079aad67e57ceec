"""The builtin backend: per-language phrases, negation and contrast, context rules, dates, ratings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

from rapidfuzz import fuzz, process

from bot.langs import normalize_lang
from bot.understanding import rating as ratings
from bot.understanding import when as whens
from bot.understanding.lexicon import LANGS, Lexicon, fold_example, load
from bot.understanding.text import Normalized, normalize
from bot.understanding.types import CONTEXTS, Parse

STRONG, WEAK = 2, 1
_CORE = ("confirm", "cancel", "reschedule")
_FLIP = {"confirm": "cancel", "cancel": "confirm"}
_CROSS_LANG = frozenset({"opt_out", "opt_in", "help", "human", "confirm", "cancel", "reschedule"})


class Hit(NamedTuple):
    intent: str
    strength: int
    start: int
    end: int


@dataclass(frozen=True)
class Analysis:
    """Everything about a reply that does not depend on the clock (cached per text and language)."""

    norm: Normalized
    whole: str | None  # intent whose whole-message form this is
    raw_strong: frozenset[str]  # intents with a strong phrase anywhere (before overlap resolution)
    hits: tuple[Hit, ...]  # after overlap resolution and negation
    cancel_clauses: frozenset[int]
    clauses: whens.Clauses
    wellbeing: tuple[tuple[int, int], ...]
    request: bool
    example: tuple[str, float] | None


def _negated(text: str, start: int, lex: Lexicon) -> bool:
    before = text[:start].split()[-3:]
    for tok in reversed(before):
        if tok in (",", "?"):
            return False
        if tok in lex.negators:
            return True
    return False


@lru_cache(maxsize=8)
def _scan_plan(lang: str) -> tuple[tuple[str, int, re.Pattern[str]], ...]:
    lex = load(lang)
    plan = []
    for intent, pats in lex.intents.items():
        for strength, pat in ((STRONG, pats.strong), (WEAK, pats.weak)):
            if pat is not None:
                plan.append((intent, strength, pat))
    return tuple(plan)


def _find_hits(text: str, lex: Lexicon) -> tuple[list[Hit], set[str]]:
    found: list[Hit] = []
    raw_strong: set[str] = set()
    for intent, strength, pat in _scan_plan(lex.lang):
        for m in pat.finditer(text):
            start, end = m.span()
            if end == start:
                continue
            if strength == STRONG:
                raw_strong.add(intent)
            # Negation first ("don't cancel" is a confirm, "não consigo ir hoje" no request to move),
            # then the longest phrase wins where phrases overlap.
            negatable = (strength == STRONG and intent in _FLIP) or intent == "reschedule"
            if negatable and _negated(text, start, lex):
                if intent in _FLIP:
                    found.append(Hit(_FLIP[intent], STRONG, start, end))
                continue
            found.append(Hit(intent, strength, start, end))
    found.sort(key=lambda h: (-(h.end - h.start), -h.strength))
    taken: list[Hit] = []
    for h in found:
        if all(h.end <= t.start or h.start >= t.end for t in taken):
            taken.append(h)
    return sorted(taken, key=lambda h: h.start), raw_strong


def _whole(text: str, lex: Lexicon) -> str | None:
    core = " ".join(t for t in text.split() if t != ",")
    bare = " ".join(t for t in core.split() if t != "?")
    for intent in ("opt_out", "opt_in", "help", "human", "cancel", "confirm"):
        pats = lex.intents.get(intent)
        if pats is None or pats.whole is None:
            continue
        if pats.whole.fullmatch(core) or (bare and intent != "help" and pats.whole.fullmatch(bare)):
            return intent
    return None


def _example(text: str, lex: Lexicon) -> tuple[str, float] | None:
    plain = fold_example(text)
    if len(plain) < 4 or not lex.example_index:
        return None
    best = process.extractOne(plain, lex.example_texts, scorer=fuzz.ratio, score_cutoff=86)
    if best is None:
        return None
    return lex.example_index[best[2]][1], float(best[1]) / 100.0


@lru_cache(maxsize=8192)
def analyse(text: str, lang: str) -> Analysis:
    lex = load(lang)
    norm = normalize(text, lex)
    t = norm.text
    hits, raw_strong = _find_hits(t, lex)
    clause = whens.Clauses(t, lex)
    cancel_clauses = frozenset(
        clause[h.start] for h in hits if h.intent == "cancel" and h.strength == STRONG
    )
    strongish = any(h.strength == STRONG for h in hits) or raw_strong
    return Analysis(
        norm=norm,
        whole=_whole(t, lex),
        raw_strong=frozenset(raw_strong),
        hits=tuple(hits),
        cancel_clauses=cancel_clauses,
        clauses=clause,
        wellbeing=tuple((m.start(), m.end()) for m in lex.re_wellbeing.finditer(t)),
        request=bool(lex.re_request.search(t)),
        example=None if strongish else _example(t, lex),
    )


def _count(hits: tuple[Hit, ...], intent: str, strength: int) -> int:
    return sum(1 for h in hits if h.intent == intent and h.strength == strength)


def _decide(a: Analysis, found: whens.Found, rating: int | None, context: str) -> tuple[str, float]:
    hits = a.hits
    if context == "missed" and a.wellbeing:
        # "I'm fine" answers "everything ok?", not the offer of a new time.
        hits = tuple(h for h in hits if not any(s <= h.start < e for s, e in a.wellbeing))
    for intent in ("opt_out", "opt_in"):
        if a.whole == intent or intent in a.raw_strong:
            return intent, 0.95
    human = a.whole == "human" or "human" in a.raw_strong
    strong = {i: _count(hits, i, STRONG) for i in _CORE}
    if human:
        return "human", 0.9
    if a.whole == "help":
        return "help", 0.9
    if "help" in a.raw_strong and not any(strong.values()):
        return "help", 0.85

    if context == "feedback_text":
        return "other", 0.7
    if context == "rating":
        if rating is not None:
            return "rating", 0.95
        if strong["cancel"] or strong["reschedule"]:
            return ("reschedule" if strong["reschedule"] else "cancel"), 0.7
        return "other", 0.6

    if context == "none" and rating is not None:
        return "rating", 0.8  # only an explicit scale gets here: "4/5", "5 stars", "nota 4"
    date_any = bool(found.days or found.times or found.vague_day or found.vague_time)
    if context == "reschedule_time":
        if strong["cancel"] and not date_any and not strong["reschedule"]:
            return "cancel", 0.85
        if strong["confirm"] and not date_any and not strong["reschedule"] and not found.part_of_day:
            return "confirm", 0.75  # "never mind, keep the original time"
        if date_any or found.part_of_day or strong["reschedule"]:
            return "reschedule", 0.9 if found.when else 0.8
        if a.whole == "cancel" and a.norm.text not in ("no", "nao"):
            return "cancel", 0.8
        return "other", 0.6

    # reminder, missed, none
    if strong["reschedule"]:
        return "reschedule", 0.9
    # After a missed session the bot offered a new time: a day or a time takes it up ("today", alone,
    # is the session that was missed: "I forgot about today").
    new_time = bool(found.times or any(d.day != found.today for d in found.days) or (found.days and a.request))
    if context == "missed" and not strong["cancel"] and new_time:
        return "reschedule", 0.85
    if strong["cancel"]:
        if date_any:
            other_days = [d for d in found.days if not _in_cancel_clause(a, d.start)]
            other_times = [t for t in found.times if not _in_cancel_clause(a, t.start)]
            other_vague = [p for p in found.vague_at if not _in_cancel_clause(a, p)]
            if other_days or other_times or other_vague or found.vague_time or (found.vague_day and a.request):
                return "reschedule", 0.8
        return "cancel", 0.9
    if strong["confirm"]:
        return "confirm", 0.9
    if a.whole in ("confirm", "cancel") and not (context == "missed" and a.wellbeing):
        return a.whole, 0.85
    if (found.days or found.times or found.vague_day or found.vague_time) and (context != "missed" or new_time):
        weak_confirm = _count(hits, "confirm", WEAK)
        # "ok, tomorrow at 3" confirms; "tomorrow at 3?" (or any day after a missed session) asks to move.
        if weak_confirm and not a.request and context != "missed":
            return "confirm", 0.7
        return "reschedule", 0.75
    weak_c, weak_x = _count(hits, "confirm", WEAK), _count(hits, "cancel", WEAK)
    if weak_c or weak_x:
        if weak_c != weak_x:
            return ("confirm" if weak_c > weak_x else "cancel"), 0.7
        last = max((h for h in hits if h.strength == WEAK and h.intent in ("confirm", "cancel")), key=lambda h: h.start)
        return last.intent, 0.6
    if "help" in {h.intent for h in hits}:
        return "help", 0.6
    if a.example is not None and a.example[0] in ("confirm", "cancel", "reschedule", "help", "human"):
        return a.example[0], round(0.6 * a.example[1], 3)
    return "other", 0.5


def _in_cancel_clause(a: Analysis, pos: int) -> bool:
    return a.clauses[pos] in a.cancel_clauses


def parse_in(text: str, lang: str, context: str, now_local: datetime) -> Parse:
    """Parse a reply in one known language (``en``, ``pt_BR``, ``es``)."""
    a = analyse(text, lang)
    if a.norm.empty:
        return Parse("other", 0.3, None, None)
    lex = load(lang)
    found = whens.resolve(
        a.norm.text,
        lex,
        now_local,
        numeric_dates=context != "rating",
        excluded_clauses=a.cancel_clauses,
        clauses=a.clauses,
    )
    rating = None
    if context in ("rating", "none"):
        rating = ratings.extract(a.norm.text, a.norm.stars, lex, asked=context == "rating")
    intent, conf = _decide(a, found, rating, context)
    when = None if intent == "rating" else found.when  # "4/5" is a score, not the 4th of May
    if (
        intent == "reschedule"
        and found.days
        and a.cancel_clauses
        and all(_in_cancel_clause(a, d.start) for d in found.days)
    ):
        when = None  # "can't make it tomorrow, can we do next week?": tomorrow is the old day
    return Parse(intent, conf, when, rating if intent == "rating" else None)


def check_context(context: str) -> str:
    if context not in CONTEXTS:
        raise ValueError(f"unknown context {context!r} (expected one of {', '.join(CONTEXTS)})")
    return context


def local_now(now: datetime, tz: str) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(ZoneInfo(tz))


def parse(text: str, lang: str, context: str, now: datetime, tz: str) -> Parse:
    """The builtin backend (see the package docstring for the contract)."""
    check_context(context)
    now_local = local_now(now, tz)
    if not isinstance(text, str):
        raise TypeError("text must be a string")
    code = normalize_lang(lang)
    if code in LANGS:
        result = parse_in(text, code, context, now_local)
        if result.intent != "other" or context == "feedback_text":
            return result
        primary = analyse(text, code)
        if primary.hits or primary.whole or primary.norm.empty:
            return result  # we understood the words; they just ask for nothing
        # A client may answer in another language than their profile says ("STOP", "ok").
        for other in LANGS:
            if other == code:
                continue
            alt = parse_in(text, other, context, now_local)
            # Keywords carry across languages; dates and numbers do not ("segunda" is not Monday in es).
            if alt.intent in _CROSS_LANG and alt.confidence >= 0.85 and alt.when is None:
                return Parse(alt.intent, round(alt.confidence - 0.1, 3), alt.when, alt.rating)
        return result
    results = [parse_in(text, candidate, context, now_local) for candidate in LANGS]
    return max(results, key=lambda p: (p.intent != "other", p.confidence, p.when is not None))
