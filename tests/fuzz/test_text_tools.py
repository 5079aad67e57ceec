"""The understanding and safety entry points, and the `rapport nlu parse` / `safety scan` lines.

Any text at all gets an answer of the documented shape; any line at all gets one JSON output line
(an error line when it is bad), written as UTF-8 to a strict stream, as a real stdout is.
"""

from __future__ import annotations

import io
import json
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.safety.cli import run_scan_cli
from bot.safety.detector import scan
from bot.understanding import CONTEXTS, INTENTS, make_parser, parse
from bot.understanding.cli import run as run_nlu
from tests.fuzz import strategies as S

WHEN = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2})?$")
contexts = st.one_of(st.sampled_from(sorted(CONTEXTS)), S.small_text)
nows = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1))
zones = st.sampled_from(["UTC", "America/Sao_Paulo", "America/New_York", "Asia/Kathmandu", "Pacific/Kiritimati"])


def check_parse(text: str, lang: str, context: str, now: datetime, tz: str) -> None:
    ctx = context if context in CONTEXTS else "none"
    p = parse(text, lang, ctx, now.replace(tzinfo=ZoneInfo(tz)), tz)
    assert p.intent in INTENTS, p
    assert 0.0 <= float(p.confidence) <= 1.0, p
    assert p.when is None or WHEN.match(p.when), p
    assert p.rating is None or (isinstance(p.rating, int) and not isinstance(p.rating, bool)), p


def strict_stream() -> io.TextIOWrapper:
    """A stdout as the CLI gets it: UTF-8, strict (a lone surrogate cannot be written)."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", newline="\n")


def output_lines(out: io.TextIOWrapper) -> list[dict[str, Any]]:
    out.flush()
    raw = out.buffer.getvalue()  # type: ignore[attr-defined]
    # Split on "\n" only: U+2028 and NEL may stand unescaped inside a JSON string.
    return [json.loads(ln) for ln in raw.decode("utf-8").split("\n") if ln]


nlu_objects = st.fixed_dictionaries(
    {},
    optional={
        "id": S.json_values,
        "text": S.maybe(S.text),
        "lang": S.maybe(S.lang_like),
        "context": S.maybe(contexts),
        "now": S.maybe(S.iso_like),
        "tz": S.maybe(S.tz_like),
    },
)
scan_objects = st.fixed_dictionaries(
    {}, optional={"id": S.json_values, "text": S.maybe(S.text), "lang": S.maybe(S.lang_like)}
)


def as_line(draw: Any, objects: st.SearchStrategy[dict[str, Any]]) -> str:
    shape = draw(st.sampled_from(["object"] * 5 + ["escaped", "json", "garbage", "deep"]))
    if shape == "object":
        return json.dumps(draw(objects), ensure_ascii=False)
    if shape == "escaped":
        # JSON may spell a lone surrogate as an escape; json.loads accepts it.
        obj = draw(objects)
        return (
            json.dumps(obj).replace("a", "\\ud800", 1) if "a" in json.dumps(obj) else '{"id": "\\udfff", "text": "x"}'
        )
    if shape == "json":
        return json.dumps(draw(S.json_values))
    if shape == "deep":
        n = draw(st.integers(1, 100_000))
        return "[" * n + "]" * draw(st.integers(0, n))
    return draw(S.small_text).replace("\n", " ")


@st.composite
def nlu_lines(draw: Any) -> str:
    return as_line(draw, nlu_objects)


@st.composite
def scan_lines(draw: Any) -> str:
    return as_line(draw, scan_objects)


def check_nlu_lines(lines: list[str]) -> None:
    out = strict_stream()
    run_nlu(io.StringIO("".join(ln.replace("\n", " ") + "\n" for ln in lines)), out, PARSER)
    got = output_lines(out)
    assert len(got) == sum(1 for ln in lines if ln.replace("\n", " ").strip()), (lines, got)
    for o in got:
        assert "id" in o and (("error" in o) != ("intent" in o)), o
        if "intent" in o:
            assert o["intent"] in INTENTS


def check_scan_lines(lines: list[str]) -> None:
    out = strict_stream()
    run_scan_cli(io.StringIO("".join(ln.replace("\n", " ") + "\n" for ln in lines)), out)
    got = output_lines(out)
    assert len(got) == sum(1 for ln in lines if ln.replace("\n", " ").strip()), (lines, got)
    for o in got:
        if "error" not in o:
            assert o["crisis"] == (o["level"] is not None), o
            assert o["level"] in ("high", "moderate", None) and o["about"] in ("self", "other", None), o
            assert isinstance(o["matched"], list), o


def check_scan(text: str, lang: str | None) -> None:
    r = scan(text, lang)
    assert r.crisis == (r.level is not None), r
    assert r.level in ("high", "moderate", None)
    assert r.about in ("self", "other", None)
    assert all(isinstance(m, str) for m in r.matched)


PARSER = make_parser("builtin")


@settings(S.FUZZ, max_examples=50)
@given(text=S.text, lang=S.lang_like, context=contexts, now=nows, tz=zones)
def test_parse_answers_any_text(text: str, lang: str, context: str, now: datetime, tz: str) -> None:
    check_parse(text, lang, context, now, tz)


@settings(S.FUZZ, max_examples=50)
@given(text=S.text, lang=st.one_of(st.none(), S.lang_like))
def test_scan_answers_any_text(text: str, lang: str | None) -> None:
    check_scan(text, lang)


@settings(S.FUZZ, max_examples=40)
@given(lines=st.lists(nlu_lines(), min_size=1, max_size=4))
def test_nlu_parse_lines_one_json_answer_each(lines: list[str]) -> None:
    check_nlu_lines(lines)


@settings(S.FUZZ, max_examples=40)
@given(lines=st.lists(scan_lines(), min_size=1, max_size=4))
def test_safety_scan_lines_one_json_answer_each(lines: list[str]) -> None:
    check_scan_lines(lines)
