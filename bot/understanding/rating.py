"""Session ratings, 1-5: digits, number words, "nota 4", "4/5", "4 stars", star emoji.

Where a rating was asked (context ``rating``) a bare "4" or "four" is a rating; elsewhere only an
explicit scale ("4/5", "4 stars", "⭐⭐⭐⭐", "nota 4") is.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.understanding.lexicon import Lexicon

_FRACTION = re.compile(r"(?<![\d:/])(?P<n>\d{1,2}(?:[.,]\d)?) ?/ ?(?P<of>5|10|100)(?![\d:/])")
_OUT_OF = re.compile(
    r"(?<![\d:/])(?P<n>\d{1,2}(?:[.,]\d)?) (?:out of|of|de|sobre|em) (?P<of>5|10|cinco|five|diez|dez)(?![\d])"
)
_DIGIT = re.compile(
    r"(?<![\d:/.,])(?P<n>\d{1,3})(?:[.,](?P<f>\d))?(?![\d:/]|[.,]\d)"
    r"(?! ?(?:am|pm|h|hs|horas|min|minutes|minutos)\b)"
)
_SCALE_WORD = {"five": 5, "cinco": 5, "ten": 10, "diez": 10, "dez": 10}


def _clip(value: float, scale: int) -> int | None:
    if scale != 5:
        value = value * 5 / scale
    r = int(value + 0.5)
    return r if 1 <= r <= 5 else None


def _number(raw: str) -> float:
    return float(raw.replace(",", "."))


def extract(text: str, stars: int, lex: Lexicon, *, asked: bool) -> int | None:
    """The rating in normalised ``text`` (with ``stars`` star emoji), or None."""
    if stars > 1:
        return min(stars, 5)
    m = _FRACTION.search(text)
    if m:
        return _clip(_number(m["n"]), int(m["of"]))
    m = _OUT_OF.search(text)
    if m:
        of = m["of"]
        return _clip(_number(m["n"]), int(of) if of.isdigit() else _SCALE_WORD[of])
    scale_word = lex.re_rating_scale.search(text) or (stars == 1 and "star")
    rating_word = lex.re_rating_words.search(text)
    if not asked and not scale_word and not (rating_word and rating_word.group(0) != "un"):
        return None
    tokens = text.split()
    for m in _DIGIT.finditer(text):
        n = float(m["n"] + ("." + m["f"] if m["f"] else ""))
        if n == 10 and (rating_word or scale_word or asked) and len(tokens) <= 4:
            return 5  # "nota 10", "10!" – a perfect score on a 0-10 habit
        r = _clip(n, 5) if n <= 5 else None
        if r is not None:
            return r
        if n > 5:
            return None
    if stars == 1:
        return 1 if asked or lex.re_rating_words.search(text) else None
    words = [t for t in tokens if t in lex.numbers]
    if words and (len(tokens) <= 4 or rating_word or scale_word):
        n = lex.numbers[words[0]]
        if 1 <= n <= 5:
            return n
        if n == 10 and (rating_word or scale_word):
            return 5
    return None
