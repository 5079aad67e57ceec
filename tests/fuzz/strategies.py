"""Hostile text, bytes and JSON for the fuzz tests and bench/fuzz_bench.py.

Text reaches Rapport from SMS, Telegram, the practice API, files and JSONL tools, so the strategies
lean on what real clients and broken senders produce: bidi controls, zero-width characters, emoji
ZWJ sequences, combining marks, NUL bytes, and texts up to 100 kB (built by repetition, because
drawing 100,000 independent characters makes every example slow).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

MAX_TEXT = 100_000

# The default pytest run stays quick; bench/fuzz_bench.py is the big one.
FUZZ = settings(
    max_examples=40,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)

# Characters that break naive text handling: bidi marks and isolates, zero-width joiners and
# spaces, BOM, line/paragraph separators, C0/C1 controls, NUL.
SPECIALS = [
    "\u200e",
    "\u200f",
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u2028",
    "\u2029",
    "\u0085",
    "\x00",
    "\x1b",
    "\x7f",
    "\r",
    "\n",
    "\t",
    "\x0b",
    "\x0c",
    "\ufffd",
    "\uffff",
    "\U0010ffff",
]
EMOJI_ZWJ = [
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",  # family
    "\U0001f3f3\ufe0f\u200d\U0001f308",  # rainbow flag
    "\U0001f9d1\U0001f3fd\u200d\u2695\ufe0f",  # health worker, skin tone
    "\U0001f1e7\U0001f1f7",  # flag BR (regional indicators)
    "\u2764\ufe0f\u200d\U0001fa79",  # mending heart
    "\U0001f52a",
    "\U0001f48a",
    "\U0001faa2",
    "\u2620\ufe0f",  # knife, pill, knot, skull
]
COMBINING = ["\u0301", "\u0303", "\u0327", "\u0308", "\u20dd", "\u0489", "\u036f"]
# Words the parsers look for, so generated text also reaches the deeper branches.
WORDS = [
    "sim",
    "não",
    "yes",
    "no",
    "cancel",
    "cancelar",
    "STOP",
    "start",
    "help",
    "ajuda",
    "confirmo",
    "quinta às 15h",
    "el lunes a las 10",
    "tomorrow afternoon",
    "5",
    "10/10",
    "kill myself",
    "quero morrer",
    "me quiero matar",
    "suicide",
    "je veux mourir",
    "ich will sterben",
    "OK 1",
    "RESOLVED 1",
    "/start",
    "2026-12-03",
    "15:00",
    "+15551230001",
]

_any_char = st.characters(exclude_categories=["Cs"])  # any code point except surrogates
_piece = st.one_of(
    st.text(_any_char, max_size=40),
    st.sampled_from(SPECIALS),
    st.sampled_from(EMOJI_ZWJ),
    st.sampled_from(WORDS),
    st.builds(
        lambda base, marks: base + "".join(marks),
        st.sampled_from("aeoncAEZ"),
        st.lists(st.sampled_from(COMBINING), min_size=1, max_size=30),
    ),
)


def _repeat(t: tuple[str, int]) -> str:
    unit, size = t
    return (unit * (size // max(len(unit), 1) + 1))[:size] if unit else ""


small_text = st.lists(_piece, max_size=12).map("".join)
big_text = st.tuples(small_text.filter(bool), st.integers(1_000, MAX_TEXT)).map(_repeat)
# Mostly small (fast, and where the logic is), sometimes up to 100 kB.
text = st.one_of(small_text, small_text, small_text, small_text, big_text)

invalid_utf8 = st.sampled_from(
    [b"\xff", b"\xfe\xff", b"\xc3", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80"]
)


@st.composite
def hostile_bytes(draw: Any, inner: st.SearchStrategy[bytes] | None = None) -> bytes:
    """Valid bytes (from ``inner`` or text) with invalid UTF-8 and NULs spliced in."""
    base = draw(inner) if inner is not None else draw(text).encode("utf-8")
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(base)))
        base = base[:at] + draw(st.one_of(invalid_utf8, st.just(b"\x00"), st.binary(max_size=8))) + base[at:]
    return base


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    small_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(small_text, inner, max_size=4)),
    max_leaves=12,
)

# Strings that look like the values a field expects, and the usual ways they go wrong.
iso_like = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+05:00",
            "9999-12-31T23:59:59-05:00",
            "0001-01-01T00:00:00+00:00",
            "9999-12-31T23:59:59+00:00",
            "2026-02-30T10:00:00Z",
            "2026-12-03T25:00:00Z",
            "2026-12-03",
            "2026-12-03T15:00:00+24:00",
            "2026-12-03T15:00:00-03:00",
            "2026-12-03T15:00:00.123456789Z",
        ]
    ),
    small_text,
)
tz_like = st.one_of(
    st.sampled_from(["UTC", "America/New_York", "America/Sao_Paulo", "Europe/Lisbon", "Asia/Kolkata"]),
    st.sampled_from(["Mars/Base", "", "/etc/passwd", "../x", "America/../UTC", "a\x00b", "x" * 300, "UTC "]),
    small_text,
)
phone_like = st.one_of(
    st.sampled_from(["+15551230001", "+5511987654321", "+34600111222", "+1", "+" + "9" * 40, "tel:+1555"]),
    st.from_regex(r"\A\+?[0-9 ()-]{0,20}\Z"),
    small_text,
)
lang_like = st.one_of(st.sampled_from(["en", "pt", "pt_BR", "pt-BR", "es", "fr", "de", "", "xx", "EN_us"]), small_text)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The field's plausible value, or any JSON value instead."""
    return st.one_of(strategy, strategy, json_values)
