"""The crisis detector: normalise once, pick the patterns a message can match, run those regexes.

Every shipped language is checked on every message, whatever ``lang`` says: clients switch
languages, records are wrong, and a missed crisis costs far more than a few microseconds. The
``lang`` hint only orders the reported phrase ids (the message's language first).

Steps for one message:

1. :func:`normalize` the text, then correct known misspellings and run-together words word by
   word (``typos``/``fuzzy`` in the phrase files).
2. Anchors: every pattern carries word beginnings read off its regex (see :mod:`.phrases`); only
   the patterns and idioms whose anchors start some word of the message run. Ordinary replies
   ("yes", "can we do 3pm") usually run none.
3. Blank idioms and negations of every language ("this traffic is killing me",
   "me muero de hambre", "not suicidal") so the words they share with real statements cannot
   match.
4. Find reported speech ("my friend said ...", ``frames``).
5. Match the concern-for-someone-else phrases and blank what they matched, so "she wants to kill
   herself" cannot also read as the sender's own statement.
6. Match the sender's own phrases, high-level ones first. One that matches inside reported
   speech without a first-person word ("my client said she has pills saved to overdose") counts
   as concern for someone else.
7. Language-independent signals (knife or razor next to a blood drop) are matched on the raw
   text.

``level`` is ``high`` when any matched phrase is high; ``about`` is ``self`` when any of the
sender's own phrases matched (outside reported speech), else ``other``. ``matched`` lists the phrases that decided this:
every concern-for-someone-else phrase found, and the sender's own phrases up to the first
high-level one (the sender's high-level phrases are tried first; once one matches the verdict
cannot change, so the rest are skipped).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.langs import CRISIS_LANGS, normalize_lang

from .normalize import normalize
from .phrases import LOCALES_DIR, LangData, Phrase, anchors_of, load_all
from .types import Scan

_BLANK = " # "
# The text is matched with a space on each side, and every pattern starts with that space: the
# regex engine then only tries word starts (it scans for the literal space first).
_EDGE_L = " "
_EDGE_R = "(?![a-z0-9])"

# Language-independent signals, matched on the raw text (emoji do not survive normalisation).
_EMOJI_SIGNALS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # knife or razor next to a drop of blood: self-harm
    (
        "any.self_harm.knife_blood_emoji",
        re.compile("(?:\U0001f52a|\U0001fa92)\ufe0f?\\s*\U0001fa78|\U0001fa78\\s*(?:\U0001f52a|\U0001fa92)"),
    ),
)
_EMOJI_PHRASES = {
    "any.self_harm.knife_blood_emoji": Phrase(
        id="any.self_harm.knife_blood_emoji",
        lang="any",
        level="moderate",
        category="self_harm",
        about="self",
        patterns=(),
        examples=("\U0001f52a\U0001fa78",),
    ),
}


@dataclass(frozen=True)
class _Pattern:
    phrase: Phrase
    rx: re.Pattern[str]
    anchors: frozenset[str] | None  # None: runs on every message that reaches the matcher


@dataclass(frozen=True)
class _Compiled:
    langs: tuple[str, ...]
    typos: dict[str, str]
    typo_keys: frozenset[str]
    idioms: tuple[re.Pattern[str], ...]
    first_person: re.Pattern[str]
    patterns: tuple[_Pattern, ...]  # the "other" patterns first, then the sender's own
    n_other: int
    # Numbers: idioms (0 .. n_idioms-1), then reported-speech frames (n_frames), then the
    # patterns: pattern i is number n_idioms + n_frames + i.
    n_idioms: int
    n_frames: int
    # anchor index: first three letters -> [(anchor, numbers)], two-letter anchors apart
    by3: dict[str, tuple[tuple[str, tuple[int, ...]], ...]]
    by2: dict[str, tuple[int, ...]]
    always: tuple[int, ...]
    phrases: dict[str, Phrase]
    regexes: tuple[re.Pattern[str], ...]  # by number: idioms, frames, then patterns
    owners: tuple[Phrase, ...]  # the phrase of pattern number n_idioms + n_frames + i, at i
    word_cache: dict[str, tuple[int, ...]]  # word -> _word_hits(word); bounded


def _index(
    anchored: Sequence[frozenset[str] | None],
) -> tuple[dict[str, tuple[tuple[str, tuple[int, ...]], ...]], dict[str, tuple[int, ...]], tuple[int, ...]]:
    by_anchor: dict[str, list[int]] = {}
    always: list[int] = []
    for i, anchors in enumerate(anchored):
        if anchors is None:
            always.append(i)
            continue
        for a in anchors:
            by_anchor.setdefault(a, []).append(i)
    by3: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    by2: dict[str, tuple[int, ...]] = {}
    for a, ids in by_anchor.items():
        if len(a) >= 3:
            by3.setdefault(a[:3], []).append((a, tuple(ids)))
        else:
            by2[a] = tuple(ids)
    return {k: tuple(v) for k, v in by3.items()}, by2, tuple(always)


def build(data: Iterable[LangData]) -> _Compiled:
    data = list(data)
    all_words: frozenset[str] = frozenset().union(*(ld.words for ld in data)) if data else frozenset()
    langs: list[str] = []
    typos: dict[str, str] = {}
    idiom_srcs: list[str] = []
    frame_srcs: list[str] = []
    first_person: set[str] = set()
    others: list[_Pattern] = []
    selfs: list[_Pattern] = []
    phrases: dict[str, Phrase] = dict(_EMOJI_PHRASES)
    for ld in data:
        langs.append(ld.lang)
        for k, v in ld.typos.items():
            typos.setdefault(k, v)
        for k, v in ld.fuzzy.items():
            if k not in all_words:
                typos.setdefault(k, v)
        idiom_srcs.extend(ld.idioms)
        frame_srcs.extend(ld.frames)
        first_person |= ld.first_person
        for ph in ld.phrases:
            if ph.id in phrases:
                raise ValueError(f"crisis phrase id {ph.id} is defined twice")
            phrases[ph.id] = ph
            for src in ld.pattern_srcs[ph.id]:
                pat = _Pattern(ph, re.compile(_EDGE_L + "(?:" + src + ")" + _EDGE_R), anchors_of(src))
                (others if ph.about == "other" else selfs).append(pat)
    # High-level phrases first: the first high match about the sender settles the verdict.
    selfs.sort(key=lambda p: p.phrase.level != "high")
    patterns = (*others, *selfs)
    idioms = tuple(re.compile(_EDGE_L + "(?:" + src + ")" + _EDGE_R) for src in idiom_srcs)
    frames = tuple(re.compile(_EDGE_L + "(?:" + src + ")" + _EDGE_R) for src in frame_srcs)
    by3, by2, always = _index([anchors_of(src) for src in (*idiom_srcs, *frame_srcs)] + [p.anchors for p in patterns])
    words = "|".join(sorted(first_person, key=len, reverse=True)) or "(?!)"
    first_person_re = re.compile(f"(?<![a-z0-9])(?:{words})(?![a-z0-9])")
    return _Compiled(
        langs=tuple(langs),
        typos=typos,
        typo_keys=frozenset(typos),
        idioms=idioms,
        first_person=first_person_re,
        patterns=patterns,
        n_other=len(others),
        n_idioms=len(idioms),
        n_frames=len(frames),
        by3=by3,
        by2=by2,
        always=always,
        phrases=phrases,
        regexes=(*idioms, *frames, *(p.rx for p in patterns)),
        owners=tuple(p.phrase for p in patterns),
        word_cache={},
    )


_lock = threading.Lock()
_compiled: _Compiled | None = None


def compiled() -> _Compiled:
    """The shipped phrase data, loaded and compiled once per process.

    Raises instead of scanning with nothing when a shipped language's phrase file is missing:
    a detector that silently finds no crisis is the failure this module exists to prevent.
    """
    global _compiled
    if _compiled is None:
        with _lock:
            if _compiled is None:
                data = load_all()
                missing = set(CRISIS_LANGS) - {ld.lang for ld in data}
                if missing:
                    raise RuntimeError(
                        f"crisis phrase files missing for {', '.join(sorted(missing))} under {LOCALES_DIR}"
                    )
                _compiled = build(data)
    return _compiled


def _word_hits(c: _Compiled, w: str) -> tuple[int, ...]:
    hit: list[int] = []
    group = c.by3.get(w[:3])
    if group is not None:
        for anchor, ids in group:
            if w.startswith(anchor):
                hit.extend(ids)
    ids2 = c.by2.get(w[:2])
    if ids2 is not None:
        hit.extend(ids2)
    return tuple(hit)


_WORD_CACHE_MAX = 100_000


def _active(c: _Compiled, words: list[str]) -> set[int]:
    """Numbers of the idioms and patterns whose anchors begin some word of the message."""
    hit: set[int] = set(c.always)
    cache = c.word_cache
    for w in words:
        ids = cache.get(w)
        if ids is None:
            ids = _word_hits(c, w)
            if len(cache) >= _WORD_CACHE_MAX:
                cache.clear()
            cache[w] = ids
        if ids:
            hit.update(ids)
    return hit


def prepare(c: _Compiled, text: str) -> tuple[str, list[str]]:
    """The normalised text with known misspellings corrected, and its words."""
    norm = normalize(text)
    words = norm.split()
    if words and not c.typo_keys.isdisjoint(words):
        norm = " ".join([c.typos.get(w, w) for w in words])
        words = norm.split()
    return norm, words


_NO_CRISIS = Scan()


def _blank_spans(s: str, spans: list[tuple[int, int]]) -> str:
    """``s`` with every span (they may overlap) replaced by a word break."""
    if not spans:
        return s
    spans.sort()
    out: list[str] = []
    pos = 0
    end = -1
    for a, b in spans:
        if a > end:
            if end >= 0:
                out.append(_BLANK)
            out.append(s[pos:a])
            end = b
        else:
            end = max(end, b)
        pos = end
    out.append(_BLANK)
    out.append(s[end:])
    return "".join(out)


def scan_with(c: _Compiled, text: str, lang: str | None = None) -> Scan:
    if not isinstance(text, str) or not text:
        return _NO_CRISIS
    found: list[Phrase] = []
    own = False  # a phrase of the sender's own matched
    reported = False  # a phrase about someone else matched
    if not text.isascii():
        for pid, rx in _EMOJI_SIGNALS:
            if rx.search(text):
                found.append(c.phrases[pid])
                own = True
    norm, words = prepare(c, text)
    active = _active(c, words) if words else None
    if active:
        s = f" {norm} "
        n_idioms = c.n_idioms
        n_pre = n_idioms + c.n_frames
        n_other = n_pre + c.n_other
        regexes = c.regexes
        owners = c.owners
        seen: set[str] = set()
        spans: list[tuple[int, int]] = []
        blanked = False
        frame_at = frame_end = len(s)
        for i in sorted(active):
            rx = regexes[i]
            if i < n_idioms:
                s = rx.sub(_BLANK, s)
                continue
            if i < n_pre:
                m = rx.search(s)
                if m is not None and m.start() < frame_at:
                    frame_at, frame_end = m.span()
                continue
            ph = owners[i - n_pre]
            if i < n_other:
                # Every concern-for-someone-else pattern reads the same text; what they matched
                # is blanked together before the sender's own phrases are tried.
                if rx.search(s) is not None:
                    found.append(ph)
                    reported = True
                    spans.extend(m.span() for m in rx.finditer(s))
                continue
            if not blanked:
                s = _blank_spans(s, spans)
                blanked = True
            if ph.id in seen:
                # one pattern is enough to report a phrase; its other patterns are skipped
                continue
            m = rx.search(s)
            if m is None:
                continue
            found.append(ph)
            seen.add(ph.id)
            if m.start() >= frame_at and not c.first_person.search(s, frame_end, m.end()):
                # inside reported speech ("my friend said she ...") and no "I" / "eu" / "yo"
                # since the reporting verb: about someone else
                reported = True
                continue
            own = True
            if ph.level == "high":
                # The verdict is settled (high, about the sender): stop looking.
                break
    if not found:
        return _NO_CRISIS
    hint = normalize_lang(lang)
    ids: list[str] = []
    for p in sorted(found, key=lambda p: p.lang != hint):
        if p.id not in ids:
            ids.append(p.id)
    level = "high" if any(p.level == "high" for p in found) else "moderate"
    about = "self" if own or not reported else "other"
    return Scan(level=level, about=about, matched=tuple(ids))


def scan(text: str, lang: str | None = None) -> Scan:
    """Crisis language in ``text``? See the module doc for what is checked and how."""
    return scan_with(compiled(), text, lang)
