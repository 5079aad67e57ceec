"""Accuracy on the labelled sets: the targets the held-out set is measured against."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.understanding import CONTEXTS, INTENTS, parse

HERE = Path(__file__).parent
SETS = ["devset.jsonl", "checkset.jsonl"]


def load(name: str) -> list[dict[str, object]]:
    return [json.loads(x) for x in (HERE / name).read_text(encoding="utf-8").splitlines() if x.strip()]


def test_devset_is_big_and_varied() -> None:
    rows = load("devset.jsonl")
    assert len(rows) >= 600
    assert {r["context"] for r in rows} == set(CONTEXTS)
    langs = {str(r["lang"]).replace("-", "_").split("_")[0] for r in rows}
    assert {"en", "pt", "es"} <= langs
    assert {r["expect"]["intent"] for r in rows} == set(INTENTS)  # type: ignore[index]
    assert len({r["id"] for r in rows}) == len(rows)


@pytest.mark.parametrize("name", SETS)
def test_accuracy_targets(name: str) -> None:
    rows = load(name)
    intent_ok = when_ok = rating_ok = 0
    misses = []
    for r in rows:
        exp = r["expect"]
        assert isinstance(exp, dict)
        now = datetime.fromisoformat(str(r["now"])).replace(tzinfo=ZoneInfo(str(r["tz"])))
        got = parse(str(r["text"]), str(r["lang"]), str(r["context"]), now, str(r["tz"]))
        intent_ok += got.intent == exp["intent"]
        when_ok += got.when == exp["when"]
        rating_ok += got.rating == exp["rating"]
        if (got.intent, got.when, got.rating) != (exp["intent"], exp["when"], exp["rating"]):
            misses.append(f"{r['id']} {r['text']!r}: {got}")
    n = len(rows)
    detail = "\n".join(misses)
    assert intent_ok / n >= 0.95, detail
    assert when_ok / n >= 0.90, detail
    assert rating_ok / n >= 0.95, detail
