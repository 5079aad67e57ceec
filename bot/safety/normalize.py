"""Text normalisation for crisis matching: one pass over the message, shared by every language.

The result is lower-case ASCII words separated by single spaces, so phrase patterns can be
written once, without accents, and survive how people really text:

- case and accents: ``NÃO`` -> ``nao``, ``ß`` -> ``ss``;
- apostrophes join (``don't`` -> ``dont``, ``j'ai`` -> ``jai``); other punctuation, emoji,
  control characters, zero-width and bidi marks become word breaks;
- leetspeak inside words: ``su1c1d3`` -> ``suicide``, ``k!ll`` -> ``kill``, ``$uicide``;
- every run of a repeated letter collapses to one: ``morrerrrr`` and ``morrer`` both become
  ``morer``, ``kill`` becomes ``kil`` (patterns go through the same collapse);
- spaced-out words join: ``k i l l  m y s e l f`` -> ``kilmyself``.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

# Characters that vanish (join their neighbours): apostrophes, soft hyphen, zero-width and
# bidirectional formatting marks.
_DELETE = "'’‘`´ʼ\u00ad\u200b\u200c\u200d\u2060\ufeff\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

# Letters that do not decompose under NFKD.
_SPECIAL = {
    "ß": "ss",
    "ẞ": "ss",
    "æ": "ae",
    "Æ": "ae",
    "œ": "oe",
    "Œ": "oe",
    "ø": "o",
    "Ø": "o",
    "ð": "d",
    "Ð": "d",
    "þ": "th",
    "Þ": "th",
    "ł": "l",
    "Ł": "l",
    "đ": "d",
    "Đ": "d",
    "ı": "i",
}
# Emoji that stand for a means or a place, read as the word (an emoji-only message is still a
# message: "🪢🪑", "💊💊💊 tonight", "🌉 now"); other emoji stay word breaks.
_EMOJI_WORDS = {
    "🪢": " rope ",
    "🔫": " gun ",
    "🔪": " knife ",
    "🗡": " knife ",
    "💊": " pills ",
    "💉": " syringe ",
    "🌉": " bridge ",
    "🩸": " blood ",
    "🪑": " chair ",
    "⚰": " coffin ",
    "🪦": " grave ",
    "🛤": " train tracks ",
    "🩹": " bandage ",
    "🕊": " dove ",
    "🖤": " blackheart ",
    "🚆": " train ",
    "🚉": " train ",
    "🚄": " train ",
    "🚇": " train ",
}
_FOLD = {**_SPECIAL, **dict.fromkeys(_DELETE, ""), **_EMOJI_WORDS}


def _fold_error(err: UnicodeError) -> tuple[str, int]:
    """Encoding error handler: what a non-ASCII run becomes after NFKD.

    Combining marks (the accents NFKD split off) and apostrophe-like or invisible characters
    vanish, a few letters get their usual spelling, anything else (emoji, other scripts,
    punctuation) becomes a word break.
    """
    if not isinstance(err, UnicodeEncodeError):
        raise err
    out = []
    for ch in err.object[err.start : err.end]:
        if unicodedata.combining(ch):
            continue
        out.append(_FOLD.get(ch, " "))
    return "".join(out), err.end


codecs.register_error("rapport_safety_fold", _fold_error)


def _build_byte_table() -> bytes:
    """Upper to lower case, letters and digits kept, anything else a space."""
    out = bytearray(b" " * 256)
    for i in range(256):
        ch = chr(i)
        if "a" <= ch <= "z" or "0" <= ch <= "9":
            out[i] = i
        elif "A" <= ch <= "Z":
            out[i] = i + 32
    return bytes(out)


_BYTE_TABLE = _build_byte_table()
_BYTE_DELETE = b"'`"
_LOOKALIKE_IN_WORD = re.compile(r"(?<=[a-z0-9])[@$!|]+(?=[a-z0-9])|[@$](?=[a-z])")
_LOOKALIKE_MAP = str.maketrans({"@": "a", "$": "s", "!": "i", "|": "l"})
_LEET_WORD = re.compile(r"(?<![a-z0-9])(?=[a-z]*[0-9])(?=[0-9]*[a-z])[a-z0-9]+")
_LEET_MAP = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b"})
_DIGIT = re.compile(r"[0-9]")
# The letter before is captured by the look-behind, so the substitution is a plain deletion
# (no per-match template expansion, which is several times slower).
_REPEAT = re.compile(r"(?<=([a-z]))\1+")
_SPACED = re.compile(r"(?<![a-z0-9])(?:[a-z] ){3,}[a-z](?![a-z0-9])")


def _leet(m: re.Match[str]) -> str:
    word = m.group(0)
    # Ordinal and time shorthand ("3pm", "2nd", "10am") is not leetspeak.
    if re.fullmatch(r"[0-9]+(?:am|pm|h|hs|hrs|min|mins|st|nd|rd|th|x|k|kg|km|kms|mg|ml|o|a|er|e|eme|ieme)", word):
        return word
    return word.translate(_LEET_MAP)


def normalize(text: str) -> str:
    """The matching form of ``text``: ASCII words separated by single spaces."""
    return finish(fold(text))


def fold(text: str) -> str:
    """The first half of :func:`normalize`: ASCII, lower case, look-alike symbols read as
    letters, every other non-alphanumeric a break, single spaces. Leetspeak, spaced-out letters
    and repeated letters are left to :func:`finish`.

    Both halves work word by word except the joining of spaced-out letters, which spans words:
    the detector folds and finishes each whitespace-separated piece of a message once and
    remembers it, and falls back to the whole text when single letters run across pieces.
    """
    if text.isascii():
        raw = text.encode("ascii")
    else:
        # NFKD splits accents off their letters and folds compatibility forms (full-width
        # letters, ligatures) to plain ones; the error handler drops the accents.
        raw = unicodedata.normalize("NFKD", text).encode("ascii", "rapport_safety_fold")
    if b"@" in raw or b"$" in raw or b"!" in raw or b"|" in raw:
        low = raw.decode("ascii").lower()
        raw = _LOOKALIKE_IN_WORD.sub(lambda m: m.group(0).translate(_LOOKALIKE_MAP), low).encode("ascii")
    # Lower case, apostrophes out, every other non-alphanumeric a space; then single spaces.
    return " ".join(raw.translate(_BYTE_TABLE, _BYTE_DELETE).decode("ascii").split())


def finish(s: str) -> str:
    """The second half of :func:`normalize`, on :func:`fold`'s output."""
    if _DIGIT.search(s):
        s = _LEET_WORD.sub(_leet, s)
    if _SPACED.search(s):
        s = _SPACED.sub(lambda m: m.group(0).replace(" ", ""), s)
    return _REPEAT.sub("", s)


def normalize_pattern_letters(pattern: str) -> str:
    """Apply the letter part of :func:`normalize` to a regex source (metacharacters kept)."""
    out = []
    for ch in pattern.lower():
        if ch in _DELETE:
            continue
        if ch.isascii():
            out.append(ch)
        elif ch in _SPECIAL:
            out.append(_SPECIAL[ch])
        else:
            base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            out.append(base if base.isascii() and base.isalnum() else ch)
    s = "".join(out)
    # Collapse repeated letters, but never touch an escape such as "\bb" or "\ss".
    return re.sub(r"(?<!\\)([a-z])\1+", r"\1", s)
