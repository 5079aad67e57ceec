"""Text normalisation: the one canonical form every pattern is written against.

``fold`` lower-cases and strips accents. ``normalize`` also maps emoji, drops apostrophes,
turns punctuation into clause separators (" , ") and question marks into " ? ", squeezes
letter repeats ("siiiim" -> "sim"), expands SMS shorthand and corrects typos in keywords.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from rapidfuzz import process
from rapidfuzz.distance import OSA

if TYPE_CHECKING:
    from bot.understanding.lexicon import Lexicon

MAX_CHARS = 2000  # replies longer than this are cut: nobody confirms an appointment in an essay

_STARS = re.compile("[\u2b50\U0001f31f\u2605\u272d\u272e\u2729\u272a\u272b\u272c\u2730]")
_OK_EMOJI = re.compile(
    "[\U0001f44d\U0001f44c\u2705\u2714\u2611\U0001f64c\U0001f919\U0001f197\U0001f91d\U0001f4af]"
)
_NO_EMOJI = re.compile("[\U0001f44e\u274c\u274e\U0001f6ab\u2716\U0001f645]")
_APOSTROPHES = re.compile("['\u2019\u2018`\u00b4\u02bc]")
_AMPM_DOTS = re.compile(r"\b([ap])\.\s?m\b\.?")
_DOTTED_DATE = re.compile(r"(?<![\d.])(\d{1,2})\.(\d{1,2})\.(\d{4}|\d{2})(?![\d.])")
_DIGIT_DOT = re.compile(r"(?<=\d)[.h](?=[0-5]\d\b)")
_DIGIT_DASH = re.compile(r"(?<![\d-])(\d{1,2})\s*-\s*(\d{1,2})(?![\d-])")  # "3-4pm", not 2026-04-02
_SEPARATORS = re.compile(r"[,.!;\u2026()\[\]{}\"\u201c\u201d*_~|\n\r\t]+")
_QUESTION = re.compile(r"[?\u00bf]+")
_NOT_KEPT = re.compile(r"[^a-z0-9:/?,@\- ]+")
_COLON_NOT_TIME = re.compile(r"(?<!\d):|:(?!\d)")
_DASH_NOT_RANGE = re.compile(r"(?<!\d)-|-(?!\d)")
_SLASH_NOT_NUMBER = re.compile(r"(?<!\d)/|/(?!\d)")
_REPEATS = re.compile(r"([a-z])\1{2,}")
_LAUGH = re.compile(r"^(?:k{3,}|(?:ha){2,}h?|(?:ja){2,}j?|(?:he){2,}h?|(?:rs){2,}|(?:hi){2,})$")
_SPACES = re.compile(r"\s+")
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
# Control and format characters (C0, C1, zero-width, bidi controls, BOM).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff0-\uffff]")


def fold(text: str) -> str:
    """Lower case, accents removed (``"Não"`` -> ``"nao"``, ``"mañana"`` -> ``"manana"``)."""
    low = text.lower()
    if low.isascii():
        return low
    return _COMBINING.sub("", unicodedata.normalize("NFKD", low))


@dataclass(frozen=True)
class Normalized:
    """A reply in canonical form plus the signals read from the raw text."""

    text: str  # tokens separated by single spaces; "," and "?" are tokens
    stars: int  # count of star emoji
    empty: bool  # nothing readable (emoji-only, blank)


def _clean(raw: str, lex: Lexicon) -> tuple[str, int]:
    t = unicodedata.normalize("NFKC", raw[:MAX_CHARS])
    stars = len(_STARS.findall(t))
    t = _STARS.sub(" ", t)
    t = _OK_EMOJI.sub(" ok ", t)
    t = _NO_EMOJI.sub(f" {lex.no_word} ", t)
    t = fold(t)
    t = _CONTROL.sub(" ", t)
    t = _APOSTROPHES.sub("", t)
    t = _AMPM_DOTS.sub(r"\1m", t)
    t = _DOTTED_DATE.sub(r"\1/\2/\3", t)  # 03.12.2026 -> 03/12/2026 before "15.30" becomes a time
    t = _DIGIT_DOT.sub(":", t)
    t = _DIGIT_DASH.sub(r"\1-\2", t)
    t = _QUESTION.sub(" ? ", t)
    t = _SEPARATORS.sub(" , ", t)
    t = _NOT_KEPT.sub(" ", t)
    t = _COLON_NOT_TIME.sub(" ", t)
    t = _DASH_NOT_RANGE.sub(" ", t) if "-" in t else t
    t = _SLASH_NOT_NUMBER.sub(" ", t) if "/" in t else t
    return t, stars


def _squeeze(tok: str) -> str:
    if _LAUGH.match(tok):
        return "haha"
    return _REPEATS.sub(r"\1", tok)


@lru_cache(maxsize=16384)
def _correct(lang: str, tok: str) -> str:
    """The keyword a typo most likely meant, or the token itself."""
    from bot.understanding.lexicon import load

    lex = load(lang)
    if tok in lex.vocabulary or len(tok) < 5 or not tok.isalpha():
        return tok
    max_d = 1 if len(tok) < 8 else 2
    best = process.extractOne(tok, lex.fuzzy_targets, scorer=OSA.distance, score_cutoff=max_d)
    if best is None:
        return tok
    cand = str(best[0])
    if cand[0] != tok[0] and len(tok) < 8:
        return tok
    return cand


def _expand(tokens: list[str], lex: Lexicon) -> list[str]:
    out: list[str] = []
    for tok in tokens:
        if tok in (",", "?", "-", "/"):
            if out and out[-1] == tok == ",":
                continue
            out.append(tok)
            continue
        tok = _squeeze(tok)
        mapped = lex.shorthand.get(tok)
        if mapped is None and tok not in lex.vocabulary:
            squeezed2 = re.sub(r"([a-z])\1+$", r"\1", tok)  # "yess", "okk", "siim" end doubles
            if squeezed2 != tok and (squeezed2 in lex.vocabulary or squeezed2 in lex.shorthand):
                tok = squeezed2
                mapped = lex.shorthand.get(tok)
        if mapped is not None:
            out.extend(mapped.split())
            continue
        out.append(_correct(lex.lang, tok))
    while out and out[0] == ",":
        out.pop(0)
    while out and out[-1] == ",":
        out.pop()
    return out


def normalize(raw: str, lex: Lexicon) -> Normalized:
    cleaned, stars = _clean(raw, lex)
    tokens = _expand(_SPACES.split(cleaned.strip()), lex) if cleaned.strip() else []
    text = " ".join(tokens)
    readable = any(ch.isalnum() for ch in text)
    return Normalized(text=text, stars=stars, empty=not readable and stars == 0 and "?" not in text)
