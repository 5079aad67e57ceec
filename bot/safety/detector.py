"""The crisis detector: normalise once, pick the patterns a message can match, run those regexes.

Every shipped language is checked on every message, whatever ``lang`` says: clients switch
languages, records are wrong, and a missed crisis costs far more than a few microseconds. The
``lang`` hint only orders the reported phrase ids (the message's language first).

Steps for one message:

1. :func:`normalize` the text, then correct known misspellings and run-together words word by
   word (``typos``/``fuzzy`` in the phrase files). Both work on each whitespace-separated piece
   alone, so each distinct piece ("yes", "3pm", "não") is normalised, corrected and looked up
   once per process and remembered with its anchors (``prepared``); only letters spaced out
   across pieces ("k i l l") send the message through the whole-text path.
2. Anchors: every pattern carries word beginnings read off its regex (see :mod:`.phrases`); only
   the patterns and idioms whose anchors start some word of the message run. Ordinary replies
   ("yes", "can we do 3pm") usually run none.
3. Blank idioms and negations of every language ("this traffic is killing me",
   "me muero de hambre", "not suicidal") so the words they share with real statements cannot
   match; an idiom's gaps never pass over a word that starts a statement (phrases._GAP_STOPS).
   Threats to the sender's life ("he said he'd kill me", ``threats``) are blanked first, the
   same way; with a ``danger`` word anywhere in the message (a weapon, drunk, locked in) they
   raise ``<lang>.imminent.threatened``.
4. Find reported speech ("my friend said ...", ``frames``).
5. Match the concern-for-someone-else phrases and blank what they matched, so "she wants to kill
   herself" cannot also read as the sender's own statement.
6. Match the sender's own phrases, high-level ones first. One that matches inside reported
   speech without a first-person word ("my client said she has pills saved to overdose") counts
   as concern for someone else.
7. Language-independent signals (knife or razor next to a blood drop) are matched on the raw
   text.
8. Unless the sender's own phrase already matched, the concept layer (below): families of word
   stems per language combined by the rules of ``phrases.CONCEPT_RULES`` ("a wish" + "dying"
   within four words, "took" + "pills" + "a quantity", ...), typo-tolerant, on the same blanked
   text. A message that puts the statement at a distance and says the person is well now
   ("há anos ..., hoje tô bem") raises nothing, if nothing after the "now" reads as a crisis or
   says it is back (``relapse``); see :func:`_told_as_past` for plans, means and someone else.
9. Unless a phrase or rule matched (they are the floor: what they flag stays flagged), the
   learned model (:mod:`.model`) scores the same text before concern-for-someone-else was
   blanked; at its threshold it raises a ``moderate`` alert with ``matched`` ``<lang>.model``
   and its own reading of ``about``. A text that is nothing but blanked idioms and negations
   is not scored.

``level`` is ``high`` when any matched phrase is high; ``about`` is ``self`` when any of the
sender's own phrases matched (outside reported speech), else ``other``. ``matched`` lists the phrases that decided this:
every concern-for-someone-else phrase found, and the sender's own phrases up to the first
high-level one (the sender's high-level phrases are tried first; once one matches the verdict
cannot change, so the rest are skipped).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from bot.langs import CRISIS_LANGS, normalize_lang

from .model import Model
from .model import load as load_model
from .normalize import finish, fold, normalize
from .phrases import (
    COMMON,
    CONCEPT_NEGATABLE,
    CONCEPT_RULES,
    LOCALES_DIR,
    ConceptToken,
    LangData,
    Phrase,
    anchor_sets,
    anchors_of,
    load_all,
)
from .types import Scan

_BLANK = " # "
_BLANK_WORD = "#"
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
    relapse: re.Pattern[str]  # every language's "relapse" patterns, one regex
    n_threats: int  # idioms 0 .. n_threats-1 are threats (phrases.LangData.threats)
    threat_phrases: tuple[Phrase, ...]  # the alert of threat idiom i, at i
    danger: re.Pattern[str]  # every language's "danger" patterns, one regex
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
    # the second anchor sets, as bit masks over the numbers (bit i: number i); a number in
    # ``need2`` runs only when some word also begins with one of its second anchors
    by3b: dict[str, tuple[tuple[str, int], ...]]
    by2b: dict[str, int]
    need2: int
    phrases: dict[str, Phrase]
    regexes: tuple[re.Pattern[str], ...]  # by number: idioms, frames, then patterns
    owners: tuple[Phrase, ...]  # the phrase of pattern number n_idioms + n_frames + i, at i
    # word -> (numbers its anchors start, as bits; concept family bits; second-anchor bits)
    word_cache: dict[str, tuple[int, int, int]]
    # whitespace-separated piece of a raw message -> what it contributes (see _piece)
    piece_cache: dict[str, _Piece]
    always_bits: int
    concepts: _Concepts


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
    threat_srcs: list[tuple[str, Phrase]] = []
    first_person: set[str] = set()
    others: list[_Pattern] = []
    selfs: list[_Pattern] = []
    phrases: dict[str, Phrase] = dict(_EMOJI_PHRASES)

    def concept_words(ld: LangData) -> set[str]:
        return {alt[1] for seqs in ld.concepts.values() for seq in seqs for tok in seq for alt in tok if alt[0] == "w"}

    lang_words = [ld.words | concept_words(ld) for ld in data]
    vocabulary = frozenset().union(*(ld.vocabulary for ld in data))
    for n, ld in enumerate(data):
        langs.append(ld.lang)
        # Every language's corrections apply to every message, so a correction whose word is a
        # real word of another language is dropped: English "dei" -> "die" would turn
        # Portuguese "dei" (I gave) into "die".
        elsewhere = frozenset().union(*(w for m, w in enumerate(lang_words) if m != n))
        for k, v in ld.typos.items():
            if k in elsewhere and not any(other.typos.get(k) == v for other in data if other is not ld):
                continue
            typos.setdefault(k, v)
        for k, v in ld.fuzzy.items():
            if k not in all_words and k not in vocabulary:
                typos.setdefault(k, v)
        idiom_srcs.extend(ld.idioms)
        frame_srcs.extend(ld.frames)
        if ld.threats:
            threatened = _threat_phrase(ld.lang)
            phrases[threatened.id] = threatened
            threat_srcs.extend((src, threatened) for src in ld.threats)
        first_person |= ld.first_person
        for ph in ld.phrases:
            if ph.id in phrases:
                raise ValueError(f"crisis phrase id {ph.id} is defined twice")
            phrases[ph.id] = ph
            for src in ld.pattern_srcs[ph.id]:
                pat = _Pattern(ph, _edged(src), anchors_of(src))
                (others if ph.about == "other" else selfs).append(pat)
        for ph in ld.concept_phrases:
            phrases[ph.id] = ph
    known = frozenset(
        all_words
        | COMMON
        | vocabulary
        | {
            alt[1]
            for ld in data
            for seqs in ld.concepts.values()
            for seq in seqs
            for tok in seq
            for alt in tok
            if alt[0] == "w"
        }
    )
    # High-level phrases first: the first high match about the sender settles the verdict.
    selfs.sort(key=lambda p: p.phrase.level != "high")
    patterns = (*others, *selfs)
    # threats are blanked with the idioms, first: the idioms would blank their "kill me"
    idiom_srcs[:0] = [src for src, _ in threat_srcs]
    idioms = tuple(_edged(src) for src in idiom_srcs)
    frames = tuple(_edged(src) for src in frame_srcs)
    srcs = [*idiom_srcs, *frame_srcs, *(p.rx.pattern for p in patterns)]
    sets = [anchor_sets(src) for src in srcs]
    by3, by2, always = _index([st[0] if st else None for st in sets])
    second = [st[1] if len(st) > 1 else None for st in sets]
    by3s, by2s, _ = _index(second)
    by3b = {k: tuple((a, _bits(ids)) for a, ids in group) for k, group in by3s.items()}
    by2b = {k: _bits(ids) for k, ids in by2s.items()}
    words = "|".join(sorted(first_person, key=len, reverse=True)) or "(?!)"
    first_person_re = re.compile(f"(?<![a-z0-9])(?:{words})(?![a-z0-9])")
    return _Compiled(
        langs=tuple(langs),
        typos=typos,
        typo_keys=frozenset(typos),
        idioms=idioms,
        first_person=first_person_re,
        n_threats=len(threat_srcs),
        threat_phrases=tuple(ph for _, ph in threat_srcs),
        danger=_edged("|".join(src for ld in data for src in ld.danger) or "(?!)"),
        relapse=_edged("|".join(src for ld in data for src in ld.relapse) or "(?!)"),
        patterns=patterns,
        n_other=len(others),
        n_idioms=len(idioms),
        n_frames=len(frames),
        by3=by3,
        by2=by2,
        always=always,
        by3b=by3b,
        by2b=by2b,
        need2=_bits(i for i, st in enumerate(second) if st is not None),
        always_bits=_bits(always),
        phrases=phrases,
        regexes=(*idioms, *frames, *(p.rx for p in patterns)),
        owners=tuple(p.phrase for p in patterns),
        word_cache={},
        piece_cache={},
        concepts=build_concepts(data, known),
    )


def _edged(src: str) -> re.Pattern[str]:
    """A pattern source compiled to match whole words of the padded matching text."""
    return re.compile(_EDGE_L + "(?:" + src + ")" + _EDGE_R)


def _threat_phrase(lang: str) -> Phrase:
    """The alert for someone threatening the sender's life, with danger at hand."""
    prefix = lang.split("_")[0].lower()
    return Phrase(
        id=f"{prefix}.imminent.threatened",
        lang=lang,
        level="high",
        category="imminent",
        about="self",
        patterns=(),
        examples=(),
    )


def _bits(ids: Iterable[int]) -> int:
    out = 0
    for i in ids:
        out |= 1 << i
    return out


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


def _word_bits2(c: _Compiled, w: str) -> int:
    """The numbers (as bits) one of whose second anchors ``w`` begins with."""
    out = c.by2b.get(w[:2], 0)
    group = c.by3b.get(w[:3])
    if group is not None:
        for anchor, bits in group:
            if w.startswith(anchor):
                out |= bits
    return out


_WORD_CACHE_MAX = 100_000


class _Piece(NamedTuple):
    """One whitespace-separated piece of a raw message, normalised and corrected, with what its
    words start (the union of their ``word_cache`` entries), and its single letters: spaced-out
    letters ("k i l l") join across pieces, which a piece alone cannot see."""

    words: tuple[str, ...]
    # (patterns its words start, concept families, second anchors) as bits; None: nothing
    # (most pieces: OR-ing bit sets thousands of bits wide is the costly step)
    bits: tuple[int, int, int] | None
    singles: int  # single-letter words among the folded words (before the join)
    n: int  # folded words
    lead: int  # single-letter words at its start
    trail: int  # and at its end


def _piece(c: _Compiled, raw: str) -> _Piece:
    folded = fold(raw).split()
    words = finish(" ".join(folded)).split()
    if words and not c.typo_keys.isdisjoint(words):
        words = " ".join([c.typos.get(w, w) for w in words]).split()
    hits, concepts, second = _union(c, words)
    single = [len(w) == 1 and w.isalpha() for w in folded]
    lead = next((i for i, x in enumerate(single) if not x), len(single))
    trail = next((i for i, x in enumerate(reversed(single)) if not x), len(single))
    bits = (hits, concepts, second) if hits or concepts or second else None
    entry = _Piece(tuple(words), bits, sum(single), len(single), lead, trail)
    cache = c.piece_cache
    if len(cache) >= _WORD_CACHE_MAX:
        cache.clear()
    cache[raw] = entry
    return entry


def _spaced_across(pieces: list[_Piece]) -> bool:
    """Do four or more single letters run across two or more pieces ("k i l l", "k. i. l. l")?
    Then the pieces' own normal forms are not the text's, and the text is normalised whole."""
    run = parts = 0
    for p in pieces:
        if p.lead == p.n:  # nothing but single letters (or nothing at all, "!!!")
            if p.n:
                run += p.n
                parts += 1
            continue
        if run and p.lead:
            if run + p.lead >= 4:
                return True
        elif run >= 4 and parts >= 2:
            return True
        run = p.trail
        parts = 1 if run else 0
    return run >= 4 and parts >= 2


def _word_entry(c: _Compiled, w: str) -> tuple[int, int, int]:
    cache = c.word_cache
    cached = cache.get(w)
    if cached is None:
        cached = (_bits(_word_hits(c, w)), _concept_word(c.concepts, w)[1], _word_bits2(c, w))
        if len(cache) >= _WORD_CACHE_MAX:
            cache.clear()
        cache[w] = cached
    return cached


def _ordered(c: _Compiled, hit: int, second: int) -> list[int]:
    """The numbers of ``hit`` (bits) in order, without those whose second condition is absent."""
    # a number whose second condition is not in the message cannot match: its search is skipped
    hit = (hit | c.always_bits) & ~(c.need2 & ~second)
    order: list[int] = []
    while hit:
        low = hit & -hit
        order.append(low.bit_length() - 1)
        hit ^= low
    return order


def prepared(c: _Compiled, text: str) -> tuple[str, list[str], list[int], int]:
    """:func:`prepare`, and what :func:`_active` returns for its words, piece by piece: a
    message's pieces ("yes", "3pm", "não", "tô") recur across messages, so each is normalised,
    corrected and looked up once per process."""
    cache = c.piece_cache
    words: list[str] = []
    hit = mask = second = singles = 0
    raws = text.split()
    for raw in raws:
        p = cache.get(raw)
        if p is None:
            p = _piece(c, raw)
        # indexes, not names: this loop runs for every piece of every message
        words += p[0]
        bits = p[1]
        if bits is not None:
            hit |= bits[0]
            mask |= bits[1]
            second |= bits[2]
        singles += p[2]
    if singles >= 4 and _spaced_across([cache.get(raw) or _piece(c, raw) for raw in raws]):
        norm, words = _prepare_whole(c, text)
        order, mask = _active(c, words) if words else ([], 0)
        return norm, words, order, mask
    if not words:
        return "", words, [], 0
    return " ".join(words), words, _ordered(c, hit, second), mask


def _active(c: _Compiled, words: list[str]) -> tuple[list[int], int]:
    """Numbers of the idioms and patterns whose anchors begin some word of the message (both
    sets, for the ones with two), in order, and the concept families (bits) whose anchor words
    are in it."""
    hit, mask, second = _union(c, words)
    return _ordered(c, hit, second), mask


def _union(c: _Compiled, words: Iterable[str]) -> tuple[int, int, int]:
    """The words' ``word_cache`` entries OR-ed together: the numbers their anchors start, the
    concept families, the second anchors. Sets of numbers as int bit masks: OR-ing a few hundred
    bits is cheaper than set updates and a sort, and reading the bits back from the low end gives
    the numbers in order (_ordered)."""
    hit = mask = second = 0
    for w in words:
        ids, bits, bits2 = _word_entry(c, w)
        hit |= ids
        mask |= bits
        second |= bits2
    return hit, mask, second


def prepare(c: _Compiled, text: str) -> tuple[str, list[str]]:
    """The normalised text with known misspellings corrected, and its words."""
    norm, words, _, _ = prepared(c, text)
    return norm, words


def _prepare_whole(c: _Compiled, text: str) -> tuple[str, list[str]]:
    """:func:`prepare` on the whole text at once: the reference the piecewise path must equal."""
    norm = normalize(text)
    words = norm.split()
    if words and not c.typo_keys.isdisjoint(words):
        norm = " ".join([c.typos.get(w, w) for w in words])
        words = norm.split()
    return norm, words


_NO_CRISIS = Scan()
_ACUTE = frozenset({"plan", "means", "imminent", "other"})


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


class Floor(NamedTuple):
    """What the phrase and concept layers found in one message, and the text they matched on."""

    found: list[Phrase]
    own: bool  # a phrase of the sender's own matched
    reported: bool  # a phrase about someone else matched
    text: str  # the padded matching text: normalised, corrected, idioms and negations blanked
    model_text: str  # the same before concern-for-someone-else was blanked: what the model reads
    frame_at: int  # where reported speech starts in ``text`` (len(text): none)
    frame_end: int
    silenced: bool  # past and well now: no alert, and the model is not asked either
    # ``model_text.split()`` when nothing was blanked: the cached word objects, whose hashes
    # are already known, so the model's look-ups skip hashing (None: split model_text)
    model_words: list[str] | None = None
    # The families of a "recovered" check left for later (0: none; see :func:`settled`)
    recovered_needed: int = 0


def floor(c: _Compiled, text: str) -> Floor:
    """The phrase and concept layers on ``text`` (a non-empty string)."""
    found: list[Phrase] = []
    own = False
    reported = False
    if not text.isascii():
        for pid, rx in _EMOJI_SIGNALS:
            if rx.search(text):
                found.append(c.phrases[pid])
                own = True
    norm, words, active, mask = prepared(c, text)
    s = s0 = f" {norm} "
    frame_at = frame_end = len(s)
    if active:
        # The numbers are ordered idioms < frames < other-concern patterns < the sender's own,
        # so one sorted pass runs the stages in turn without a per-item dispatch.
        order = active
        n = len(order)
        regexes = c.regexes
        k = 0
        lim = c.n_idioms
        threat: Phrase | None = None
        while k < n and order[k] < lim:
            i = order[k]
            blanked = regexes[i].sub(_BLANK, s)
            if i < c.n_threats and blanked is not s:
                threat = c.threat_phrases[i]
            s = blanked
            k += 1
        if threat is not None and c.danger.search(s0):
            # someone threatens the sender's life and a weapon, drink or hiding is in the message
            found.append(threat)
            own = True
        lim += c.n_frames
        while k < n and order[k] < lim:
            m = regexes[order[k]].search(s)
            if m is not None and m.start() < frame_at:
                frame_at, frame_end = m.span()
            k += 1
        n_pre = lim
        owners = c.owners
        lim += c.n_other
        spans: list[tuple[int, int]] = []
        while k < n and order[k] < lim:
            i = order[k]
            rx = regexes[i]
            # Every concern-for-someone-else pattern reads the same text; what they matched is
            # blanked together before the sender's own phrases are tried.
            if rx.search(s) is not None:
                found.append(owners[i - n_pre])
                reported = True
                spans.extend(m.span() for m in rx.finditer(s))
            k += 1
        model_text = s
        if spans:
            s = _blank_spans(s, spans)
        seen: set[str] = set()
        search_first_person = c.first_person.search
        for i in order[k:]:
            ph = owners[i - n_pre]
            if ph.id in seen:
                # one pattern is enough to report a phrase; its other patterns are skipped
                continue
            m = regexes[i].search(s)
            if m is None:
                continue
            found.append(ph)
            seen.add(ph.id)
            if m.start() >= frame_at and not search_first_person(s, frame_end, m.end()):
                # inside reported speech ("my friend said she ...") and no "I" / "eu" / "yo"
                # since the reporting verb: about someone else
                reported = True
                continue
            own = True
            if ph.level == "high":
                # The verdict is settled (high, about the sender): stop looking.
                break
    else:
        model_text = s
    cc = c.concepts
    # once the sender's own phrase matched, only "recovered" can change the verdict
    if mask & (cc.recovered_bits if own else cc.gate_bits):
        gate, needed = _gate(cc, mask, own)
        if gate:
            # the second look, only for the messages the first let through
            mask = _refined(cc, words) & mask
            gate, needed = _gate(cc, mask, own) if mask else (0, 0)
    else:
        gate = needed = 0
    pending = 0
    if gate == 2 and not found:
        # Only the "recovered" rule could match and nothing was found: all it could do is keep
        # the model from being asked, so it is looked for only if the model would alert (half of
        # the ordinary replies have a "past" and a "now" anchor word: "last", "good")
        pending, gate = needed, 0
    if gate:
        hits, recovered = concept_matches(cc, s, needed, words if s is s0 else None)
        hits = hits if gate & 1 else []
        # spans of the concern-for-someone-else rules: a rule about the sender that overlaps
        # one, or follows it with no first-person word since, reads the same third person
        # ("minha prima ta no alto do predio ameacando pular": pro-drop, no "ela")
        others = [(a, b) for ph, a, b in hits if ph.about == "other"]
        for ph, a, b in hits:
            found.append(ph)
            if (
                ph.about == "other"
                or (a >= frame_at and not c.first_person.search(s, frame_end, b))
                or any((a < ob and b > oa) or (a >= ob and not c.first_person.search(s, ob, b)) for oa, ob in others)
            ):
                reported = True
            else:
                own = True
        if recovered and _told_as_past(c, s, found, recovered):
            # "I thought about killing myself years ago, I'm fine now": the message itself puts
            # it at a distance and says how the person is now (tests/safety/README.md).
            return Floor([], False, False, s, model_text, frame_at, frame_end, True)
    return Floor(
        found, own, reported, s, model_text, frame_at, frame_end, False, words if model_text is s0 else None, pending
    )


def _told_as_past(c: _Compiled, s: str, found: list[Phrase], pairs: list[tuple[int, int, int, int]]) -> bool:
    """Does the message tell its crisis statements as the past, with how the person is now?

    ``pairs``: where a "recovered" rule's two parts are in ``s``, as (past start, past end,
    now start, now end). In the usual order, the past before the now ("I tried to kill myself
    when I was 19 … I'm 34 now and doing well"), nothing after the "now" may read as a crisis
    on its own ("years ago I wanted to die, I'm fine now, but lately I want to die again" is
    one), and a plan, means or imminent danger counts as told only from the past marker on ("a
    year ago today I took an overdose … this morning I ran my first 10k"). Told the other way
    round ("I'm fine now; years ago …") the statement follows the past marker and may run to
    the end, so a plan, means, imminent danger or someone else at risk still counts. Either way,
    words that say it is back ("came back", "de novo": ``relapse`` in the phrase files) after
    the past keep the alert.
    """
    acute = any(p.category in _ACUTE for p in found)
    for p0, p1, n0, n1 in pairs:
        if p1 <= n0:
            tail = s[n1:]  # starts with the space after the "now": patterns begin at a space
            if c.relapse.search(tail) or not _calm(c, tail):
                continue
            if not acute or not any(p.category in _ACUTE for p in _found(c, s[:p0])):
                return True
        elif not acute and not c.relapse.search(s, p1):
            return True
    return False


def settled(c: _Compiled, fl: Floor) -> bool:
    """``fl.silenced``, with a "recovered" check :func:`floor` left for later done now."""
    if not fl.recovered_needed:
        return fl.silenced
    _, recovered = concept_matches(c.concepts, fl.text, fl.recovered_needed, fl.model_words)
    return bool(recovered) and _told_as_past(c, fl.text, [], recovered)


def _found(c: _Compiled, text: str) -> list[Phrase]:
    """The phrases and concept rules found in ``text`` (a part of the matching text)."""
    return floor(c, text).found if text.strip(" #") else []


def _calm(c: _Compiled, text: str) -> bool:
    """Nothing in ``text`` (a part of the matching text) reads as a crisis on its own."""
    return not _found(c, text)


def scan_with(c: _Compiled, text: str, lang: str | None = None, model: Model | None = None) -> Scan:
    """The phrase and concept layers, then (when they found nothing) the learned model."""
    if not isinstance(text, str) or not text:
        return _NO_CRISIS
    fl = floor(c, text)
    found = fl.found
    if not found:
        if fl.silenced or model is None:
            return _NO_CRISIS
        toks = fl.model_words if fl.model_words is not None else fl.model_text.split()
        if toks.count(_BLANK_WORD) == len(toks):
            # nothing but idioms and negations ("me muero de hambre", "not suicidal")
            return _NO_CRISIS
        z = model.score(toks)
        if z < model.threshold or settled(c, fl):
            return _NO_CRISIS
        hint = _hint(lang)
        level = "high" if z >= model.high else "moderate"
        # reported speech with no first-person word after it, or the model's own reading
        reported = (
            fl.frame_at < len(fl.text) and not c.first_person.search(fl.text, fl.frame_end)
        ) or model.about_other(toks)
        return Scan(level=level, about="other" if reported else "self", matched=(_model_id(hint),))
    hint = _hint(lang)
    ids: list[str] = []
    for p in sorted(found, key=lambda p: p.lang != hint):
        if p.id not in ids:
            ids.append(p.id)
    level = "high" if any(p.level == "high" for p in found) else "moderate"
    about = "self" if fl.own or not fl.reported else "other"
    return Scan(level=level, about=about, matched=tuple(ids))


def _model_id(lang: str | None) -> str:
    """The id the model's verdict is reported under: the hint's language, else ``any``."""
    if lang is None:
        return "any.model"
    return f"{lang.split('_')[0].lower()}.model"


_shipped_model: Model | None = None


def scan(text: str, lang: str | None = None) -> Scan:
    """Crisis language in ``text``? See the module doc for what is checked and how."""
    global _shipped_model
    c = _compiled if _compiled is not None else compiled()
    m = _shipped_model
    if m is None:
        m = _shipped_model = load_model()
    return scan_with(c, text, lang, m)


_HINTS: dict[str | None, str | None] = {}


def _hint(lang: str | None) -> str | None:
    """``normalize_lang``, remembered: the same few tags arrive on every message."""
    try:
        return _HINTS[lang]
    except KeyError:
        pass
    except TypeError:  # an unhashable "lang" from a caller's JSON
        return None
    hint = normalize_lang(lang) if isinstance(lang, str) else None
    if len(_HINTS) < 1000:
        _HINTS[lang] = hint
    return hint


# ---------------------------------------------------------------------------- concept layer
#
# Beside the phrase patterns: per-language families of stems (DIE, KILL, VANISH, METHOD, MEANS,
# SELF_HARM, ... and first-person WANT, GOT, AT ...) combined by the rules of
# phrases.CONCEPT_RULES when they occur within a few words of each other, on the text the phrase
# matcher saw (idioms, negations and concern-for-someone-else already blanked). Stems and words
# of five letters or more also match with one typo. Only messages in which every family of some
# rule has a word that can anchor one of its entries (the "gate"), and then, for some entry of
# each, a word for its second token too (the gate's second look, _refined), run it.

_KEYBOARD = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_KEY_POS = {ch: (r, c + 0.5 * r) for r, row in enumerate(_KEYBOARD) for c, ch in enumerate(row)}
_NEIGHBOURS = {
    a: "".join(b for b, (r2, c2) in _KEY_POS.items() if b != a and abs(r2 - r) <= 1 and abs(c2 - c) <= 1.0)
    for a, (r, c) in _KEY_POS.items()
}
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_TOKEN = re.compile(r"\S+")
_FUZZY_MIN = 5
_REPEAT_ANY = re.compile(r"([a-z])\1+")


def typo_variants(word: str, stem: bool) -> frozenset[str]:
    """Spellings of ``word`` one typo away, the first letter kept, collapsed like the text.

    Nothing is added after the last letter ("ledge" is not "ledger"), and a stem's last letter
    is never dropped (that would only make the stem shorter).
    """
    n = len(word)
    out: set[str] = set()
    for i in range(1, n):
        if not (stem and i == n - 1):
            out.add(word[:i] + word[i + 1 :])  # dropped
        if i + 1 < n:
            out.add(word[:i] + word[i + 1] + word[i] + word[i + 2 :])  # swapped
        for ch in _NEIGHBOURS.get(word[i], ""):
            out.add(word[:i] + ch + word[i + 1 :])  # a neighbouring key
    for i in range(1, n):
        for ch in _LETTERS:
            out.add(word[:i] + ch + word[i:])  # added
    collapsed = {_REPEAT_ANY.sub(r"\1", v) for v in out}
    collapsed.discard(word)
    return frozenset(v for v in collapsed if len(v) >= 4)


@dataclass(frozen=True)
class _CEntry:
    lang: int  # index into _Concepts.langs
    family: str
    tokens: tuple[tuple[ConceptToken, ...], ...]
    anchor: int  # the position the index finds
    bit: int  # the bit of (language, family) in a message's family mask
    key: tuple[int, str]  # (lang, family)
    single: bool  # one plain token: matched once the index finds it
    negatable: bool  # family in CONCEPT_NEGATABLE
    # The entry's own bit for the gate's second look (0: none, its anchor alone counts): set in a
    # message's masks when the anchor is there and when a word for its "second" token is
    second_bit: int = 0


@dataclass(frozen=True)
class _CRule:
    phrase: Phrase
    first: str
    others: tuple[tuple[str, bool], ...]  # (family, must come before the first)
    window: int


@dataclass(frozen=True)
class _CLang:
    lang: str
    rules: dict[str, tuple[_CRule, ...]]  # by first family
    neg: frozenset[str]
    neg_bridge: frozenset[str]
    fillers: frozenset[str]
    adverbs: frozenset[str]
    recovered: _CRule | None


@dataclass
class _Concepts:
    langs: tuple[_CLang, ...]
    entries: tuple[_CEntry, ...]
    exact: dict[str, tuple[int, ...]]
    prefix: dict[str, tuple[int, ...]]
    prefix_lens: tuple[int, ...]
    fuzzy_exact: dict[str, tuple[int, ...]]
    fuzzy_prefix: dict[str, tuple[int, ...]]
    fuzzy_prefix_lens: tuple[int, ...]
    numbers: tuple[int, ...]  # entries anchored on a number
    variants: dict[tuple[str, bool], frozenset[str]]
    # the gate: a rule can only fire when every one of its families has its anchor word in the
    # message; rule masks are grouped by the bit of their first family
    first_bits: int
    gate_bits: int  # first_bits | recovered_bits
    rule_masks: dict[int, tuple[int, ...]]
    recovered_masks: tuple[int, ...]
    recovered_bits: int  # the first families of the recovered masks
    # The gate's second look (:func:`_refined`): words that can stand for an entry's second token
    # (exactly, by prefix, with a typo, as a number), as masks of entry bits; an entry bit's family
    second_exact: dict[str, int] = field(default_factory=dict)
    second_prefix: dict[str, int] = field(default_factory=dict)
    second_prefix_lens: tuple[int, ...] = ()
    second_numbers: int = 0
    second_family: tuple[int, ...] = ()
    cache: dict[str, tuple[tuple[_CEntry, ...], int]] = field(default_factory=dict)  # word -> (entries, mask)
    gate_cache: dict[int, tuple[int, int]] = field(default_factory=dict)  # family mask -> concept_gate()
    refine_cache: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # word -> _refine_word()


def _anchor_rank(tok: tuple[ConceptToken, ...]) -> tuple[int, int]:
    if tok[0][0] in "#$":
        return (2, 0)
    common = any(w in COMMON or len(w) < 3 for _, w in tok)
    return (1 if common else 0, -min(len(w) for _, w in tok))


def build_concepts(data: Sequence[LangData], known: frozenset[str]) -> _Concepts:
    langs: list[_CLang] = []
    entries: list[_CEntry] = []
    bits: dict[tuple[int, str], int] = {}
    rule_masks: dict[int, list[int]] = {}
    recovered_masks: list[int] = []
    second_family: list[int] = []  # entry bit (by position) -> its family's bit
    seconds: list[tuple[tuple[ConceptToken, ...], int]] = []  # (second token, entry bit)
    for li, ld in enumerate(data):
        fams = ld.concepts
        by_id = {p.id: p for p in ld.concept_phrases}
        prefix = ld.lang.split("_")[0].lower()
        rules: list[_CRule] = []
        recovered: _CRule | None = None
        for name, names, window, _level, _category, _about in CONCEPT_RULES:
            if not all(f.rstrip("<") in fams for f in names):
                continue
            others = tuple((f.rstrip("<"), f.endswith("<")) for f in names[1:])
            if name == "recovered":
                recovered = _CRule(Phrase("", ld.lang, "", "", "", (), ()), names[0], others, window)
                continue
            rules.append(_CRule(by_id[f"{prefix}.concept.{name}"], names[0], others, window))
        used = {r.first for r in rules} | {f for r in rules for f, _ in r.others}
        if recovered is not None:
            used |= {recovered.first} | {f for f, _ in recovered.others}

        def words(fam: str, fams: Mapping[str, Any] = fams) -> frozenset[str]:
            return frozenset(alt[1] for seq in fams.get(fam, ()) if len(seq) == 1 for alt in seq[0] if alt[0] == "w")

        by_first: dict[str, list[_CRule]] = {}
        for r in rules:
            by_first.setdefault(r.first, []).append(r)
        langs.append(
            _CLang(
                ld.lang,
                {k: tuple(v) for k, v in by_first.items()},
                words("NEG"),
                words("NEG_BRIDGE"),
                words("FILLER"),
                words("ADV"),
                recovered,
            )
        )
        for fam, seqs in fams.items():
            if fam not in used:
                continue
            for seq in seqs:
                anchor = min(range(len(seq)), key=lambda j, seq=seq: _anchor_rank(seq[j]))  # type: ignore[misc]
                bit = bits.setdefault((li, fam), 1 << len(bits))
                single = len(seq) == 1 and seq[0][0][0] != "$"
                # the rarest other token ("$" stands for no word) is the gate's second look
                rest = [j for j in range(len(seq)) if j != anchor and seq[j][0][0] != "$"]
                second = min(rest, key=lambda j, seq=seq: _anchor_rank(seq[j])) if rest else -1  # type: ignore[misc]
                sbit = 0
                if second >= 0:
                    sbit = 1 << len(second_family)
                    second_family.append(bit)
                    seconds.append((seq[second], sbit))
                entries.append(
                    _CEntry(li, fam, seq, anchor, bit, (li, fam), single, fam in CONCEPT_NEGATABLE, sbit)
                )
        for r in rules:
            m = bits[li, r.first]
            for f, _ in r.others:
                m |= bits[li, f]
            rule_masks.setdefault(bits[li, r.first], []).append(m)
        if recovered is not None:
            recovered_masks.append(bits[li, recovered.first] | bits[li, recovered.others[0][0]])
    exact: dict[str, list[int]] = {}
    pref: dict[str, list[int]] = {}
    fexact: dict[str, list[int]] = {}
    fpref: dict[str, list[int]] = {}
    numbers: list[int] = []
    variants: dict[tuple[str, bool], frozenset[str]] = {}
    for ei, e in enumerate(entries):
        for kind, w in e.tokens[e.anchor]:
            if kind == "#":
                numbers.append(ei)
                continue
            (pref if kind == "p" else exact).setdefault(w, []).append(ei)
            if len(w) >= _FUZZY_MIN:
                vs = variants.setdefault((w, kind == "p"), typo_variants(w, kind == "p") - known)
                for v in vs:
                    (fpref if kind == "p" else fexact).setdefault(v, []).append(ei)
    # every stem and word of five letters or more, not only anchors, can carry a typo
    for e in entries:
        for tok in e.tokens:
            for kind, w in tok:
                if kind in "wp" and len(w) >= _FUZZY_MIN and (w, kind == "p") not in variants:
                    variants[w, kind == "p"] = typo_variants(w, kind == "p") - known

    def frozen(d: dict[str, list[int]]) -> dict[str, tuple[int, ...]]:
        return {k: tuple(dict.fromkeys(v)) for k, v in d.items()}

    # what _token_ok accepts for each second token, indexed by word and by prefix
    sexact: dict[str, int] = {}
    sprefix: dict[str, int] = {}
    snumbers = 0
    for tok, sbit in seconds:
        for kind, w in tok:
            if kind == "#":
                snumbers |= sbit
                continue
            target = sprefix if kind == "p" else sexact
            target[w] = target.get(w, 0) | sbit
            if len(w) >= _FUZZY_MIN:
                for v in variants[w, kind == "p"]:
                    target[v] = target.get(v, 0) | sbit

    return _Concepts(
        langs=tuple(langs),
        entries=tuple(entries),
        exact=frozen(exact),
        prefix=frozen(pref),
        prefix_lens=tuple(sorted({len(k) for k in pref})),
        fuzzy_exact=frozen(fexact),
        fuzzy_prefix=frozen(fpref),
        fuzzy_prefix_lens=tuple(sorted({len(k) for k in fpref})),
        numbers=tuple(numbers),
        variants=variants,
        first_bits=sum(rule_masks),
        gate_bits=sum(rule_masks) | _first_bits(data, bits),
        rule_masks={k: tuple(v) for k, v in rule_masks.items()},
        recovered_masks=tuple(recovered_masks),
        recovered_bits=_first_bits(data, bits),
        second_exact=sexact,
        second_prefix=sprefix,
        second_prefix_lens=tuple(sorted({len(k) for k in sprefix})),
        second_numbers=snumbers,
        second_family=tuple(second_family),
    )


def _first_bits(data: Sequence[LangData], bits: dict[tuple[int, str], int]) -> int:
    """The bits of the first family of every language's "recovered" rule."""
    first = next(names[0] for name, names, *_ in CONCEPT_RULES if name == "recovered")
    return sum(bits.get((li, first), 0) for li in range(len(data)))


def _concept_word(cc: _Concepts, w: str) -> tuple[tuple[_CEntry, ...], int]:
    """The entries whose anchor token ``w`` can be, and their families' bits (cached)."""
    cached = cc.cache.get(w)
    if cached is not None:
        return cached
    out: list[int] = []
    out.extend(cc.exact.get(w, ()))
    out.extend(cc.fuzzy_exact.get(w, ()))
    n = len(w)
    for k in cc.prefix_lens:
        if k > n:
            break
        out.extend(cc.prefix.get(w[:k], ()))
    for k in cc.fuzzy_prefix_lens:
        if k > n:
            break
        out.extend(cc.fuzzy_prefix.get(w[:k], ()))
    if w.isdigit():
        out.extend(cc.numbers)
    hit = tuple(cc.entries[ei] for ei in dict.fromkeys(out))
    mask = 0
    for e in hit:
        mask |= e.bit
    if len(cc.cache) >= _WORD_CACHE_MAX:
        cc.cache.clear()
    cc.cache[w] = (hit, mask)
    return hit, mask


def _token_ok(cc: _Concepts, alts: tuple[ConceptToken, ...], w: str) -> bool:
    for kind, x in alts:
        if kind == "w":
            if w == x or (len(x) >= _FUZZY_MIN and w in cc.variants[x, False]):
                return True
        elif kind == "p":
            if w.startswith(x):
                return True
            if len(x) >= _FUZZY_MIN:
                vs = cc.variants[x, True]
                n = len(x)
                if w[: n - 1] in vs or w[:n] in vs or w[: n + 1] in vs:
                    return True
        elif kind == "#" and w.isdigit():
            return True
    return False


def _entry_at(cc: _Concepts, e: _CEntry, toks: list[str], at: int, cl: _CLang) -> tuple[int, int]:
    """Span (start, end exclusive) of entry ``e`` whose anchor is token ``at``, or (-1, -1).

    Up to two words of the language's ``ADV`` family may stand between two tokens of the
    entry ("pensei *muito* em", "thinking *a lot* about").
    """
    n = len(toks)
    tokens = e.tokens
    adv = cl.adverbs
    pos = at + 1
    for j in range(e.anchor + 1, len(tokens)):
        alts = tokens[j]
        if alts[0][0] == "$":
            if any(t not in cl.fillers for t in toks[pos:]):
                return -1, -1
            break
        k = pos
        while True:
            if k >= n:
                return -1, -1
            if _token_ok(cc, alts, toks[k]):
                break
            if toks[k] in adv and k - pos < 2:
                k += 1
                continue
            return -1, -1
        pos = k + 1
    end = pos
    pos = at - 1
    for j in range(e.anchor - 1, -1, -1):
        alts = tokens[j]
        k = pos
        while True:
            if k < 0:
                return -1, -1
            if _token_ok(cc, alts, toks[k]):
                break
            if toks[k] in adv and pos - k < 2:
                k -= 1
                continue
            return -1, -1
        pos = k - 1
    return pos + 1, end


def _refine_word(cc: _Concepts, w: str) -> tuple[int, int, int]:
    """For the gate's second look: the families ``w`` anchors by itself (entries without a second
    token), the entries it anchors that have one, and the entries whose second token it can be."""
    direct = anchored = 0
    for e in _concept_word(cc, w)[0]:
        if e.second_bit:
            anchored |= e.second_bit
        else:
            direct |= e.bit
    seconds = cc.second_exact.get(w, 0)
    n = len(w)
    for k in cc.second_prefix_lens:
        if k > n:
            break
        seconds |= cc.second_prefix.get(w[:k], 0)
    if w.isdigit():
        seconds |= cc.second_numbers
    out = (direct, anchored, seconds)
    if len(cc.refine_cache) >= _WORD_CACHE_MAX:
        cc.refine_cache.clear()
    cc.refine_cache[w] = out
    return out


def _refined(cc: _Concepts, words: Iterable[str]) -> int:
    """The families some entry of which has both its anchor and a word for its second token in the
    message (or, without a second token, its anchor): the gate's second look.

    The first look (a family's anchor words) lets about half of all ordinary replies through,
    because many entries anchor on a common word ("last" in "last time you'll hear from me", "aqui"
    in "por que sigo aqui"); asking for a second word of the entry as well stops most of them
    before the matcher. It can only narrow the first look: every entry that can match has both."""
    direct = anchored = seconds = 0
    cache = cc.refine_cache
    # the masks are thousands of bits wide: OR only those that are not empty
    for w in words:
        r = cache.get(w)
        if r is None:
            r = _refine_word(cc, w)
        if r[0]:
            direct |= r[0]
        if r[1]:
            anchored |= r[1]
        if r[2]:
            seconds |= r[2]
    both = anchored & seconds
    fams = cc.second_family
    while both:
        low = both & -both
        direct |= fams[low.bit_length() - 1]
        both ^= low
    return direct


def _gate(cc: _Concepts, mask: int, own: bool) -> tuple[int, int]:
    """:func:`concept_gate` through its cache (after the sender's own phrase: "recovered" only)."""
    key = mask if not own else -mask
    cached = cc.gate_cache.get(key)
    if cached is None:
        cached = concept_gate(cc, mask, not own)
        if len(cc.gate_cache) >= _WORD_CACHE_MAX:
            cc.gate_cache.clear()
        cc.gate_cache[key] = cached
    return cached


def concept_gate(cc: _Concepts, mask: int, rules: bool = True) -> tuple[int, int]:
    """Could a rule fire (1), could the "recovered" rule (2), both (3): has every family of one
    a word of the message that can anchor it? And the families of those rules (a mask).

    ``mask``: the families whose anchors are in the message; ``rules``: False to look at the
    "recovered" rule only.
    """
    gate = 0
    needed = 0
    firsts = mask & cc.first_bits if rules else 0
    while firsts:
        low = firsts & -firsts
        firsts ^= low
        for m in cc.rule_masks[low]:
            if mask & m == m:
                gate = 1
                needed |= m
    if mask & cc.recovered_bits:
        for m in cc.recovered_masks:
            if mask & m == m:
                gate |= 2
                needed |= m
    return gate, needed


def concept_matches(
    cc: _Concepts, text: str, needed: int = -1, toks: list[str] | None = None
) -> tuple[list[tuple[Phrase, int, int]], list[tuple[int, int, int, int]]]:
    """The concept rules that fire on ``text`` (the padded, blanked matching text): each with
    the character span it covers; and where some language's "recovered" rule fired (both
    parts' character spans, see :func:`_told_as_past`; empty: nowhere). Only
    the families in ``needed`` (a mask, see :func:`concept_gate`) are looked for. ``toks``:
    ``text.split()``, when the caller has it."""
    if toks is None:
        toks = text.split()
    if not toks:
        return [], []
    langs = cc.langs
    cache = cc.cache
    occ: dict[tuple[int, str], list[tuple[int, int]]] = {}
    for i, w in enumerate(toks):
        cached = cache.get(w)
        if cached is None:
            cached = _concept_word(cc, w)
        if not cached[1] & needed:
            # none of the word's entries belongs to a family a possible rule needs
            continue
        for e in cached[0]:
            if not e.bit & needed:
                continue
            if e.single:
                st, end = i, i + 1
            else:
                st, end = _entry_at(cc, e, toks, i, langs[e.lang])
                if st < 0:
                    continue
            if e.negatable and st:
                cl = langs[e.lang]
                before = toks[st - 1]
                if before in cl.neg or (st >= 2 and toks[st - 2] in cl.neg and before in cl.neg_bridge):
                    continue
            spans = occ.get(e.key)
            if spans is None:
                occ[e.key] = [(st, end)]
            else:
                spans.append((st, end))
    if not occ:
        return [], []
    fired: list[tuple[Phrase, int, int]] = []
    recovered: list[tuple[int, int, int, int]] = []
    for li, fam in occ:
        cl = langs[li]
        if cl.recovered is not None and fam == cl.recovered.first:
            recovered.extend(_pairs(cl.recovered, li, occ))
        for rule in cl.rules.get(fam, ()):
            span = _rule_span(rule, li, occ)
            if span is not None:
                fired.append((rule.phrase, span[0], span[1]))
    if not fired and not recovered:
        return [], []
    # token spans to character offsets in ``text`` (blanks may have left double spaces)
    pos = [m.span() for m in _TOKEN.finditer(text)]
    return (
        [(ph, pos[a][0], pos[b - 1][1]) for ph, a, b in fired],
        [(pos[a0][0], pos[a1 - 1][1], pos[b0][0], pos[b1 - 1][1]) for a0, a1, b0, b1 in recovered],
    )


def _pairs(
    rule: _CRule, li: int, occ: dict[tuple[int, str], list[tuple[int, int]]]
) -> list[tuple[int, int, int, int]]:
    """Every pair of a two-family rule's parts within its window, as token spans (first part's
    start and end, second part's start and end)."""
    fam, _ = rule.others[0]
    out = []
    for a0, a1 in occ.get((li, rule.first), ()):
        for b0, b1 in occ.get((li, fam), ()):
            gap = b0 - a1 if b0 >= a1 else a0 - b1 if b1 <= a0 else -1
            if 0 <= gap <= rule.window:
                out.append((a0, a1, b0, b1))
    return out


def _rule_span(rule: _CRule, li: int, occ: dict[tuple[int, str], list[tuple[int, int]]]) -> tuple[int, int] | None:
    firsts = occ.get((li, rule.first))
    if not firsts:
        return None
    for a0, a1 in firsts:
        lo, hi = a0, a1
        ok = True
        for fam, before in rule.others:
            best: tuple[int, int] | None = None
            for b0, b1 in occ.get((li, fam), ()):
                if b0 >= a1:
                    gap = b0 - a1
                elif b1 <= a0:
                    gap = a0 - b1
                else:
                    continue  # overlapping: the same words cannot count twice
                if gap > rule.window or (before and b0 >= a0):
                    continue
                best = (b0, b1)
                break
            if best is None:
                ok = False
                break
            lo, hi = min(lo, best[0]), max(hi, best[1])
        if ok:
            return lo, hi
    return None
