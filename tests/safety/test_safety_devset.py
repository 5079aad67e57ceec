"""The labelled sets: the targets of issue 3 hold on both (bench/safety_bench.py prints the numbers).

``devset.jsonl`` was written with the phrase files; ``checkset.jsonl`` was written afterwards in
rounds, each first measured untouched (README.md in this folder has those first-seen numbers).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from bot.safety import scan

HERE = Path(__file__).parent
DEVSET = HERE / "devset.jsonl"
CHECKSET = HERE / "checkset.jsonl"
CATEGORIES = {"direct", "indirect", "plan", "means", "self_harm", "imminent", "other"}
NEGATIVE = {"idiom", "appointment", "fine", "feedback", "sad"}


def _rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


ROWS = _rows(DEVSET)
CHECK = _rows(CHECKSET)


def test_devset_shape() -> None:
    assert len(ROWS) >= 500
    ids = [r["id"] for r in ROWS]
    assert len(ids) == len(set(ids))
    for r in ROWS:
        assert r["crisis"] is (r["category"] in CATEGORIES)
        assert r["category"] in CATEGORIES | NEGATIVE
        assert r["about"] == ("other" if r["category"] == "other" else "self" if r["crisis"] else None)
    for lang in ("en", "pt_BR", "es"):
        cats = {r["category"] for r in ROWS if r["lang"] == lang}
        assert cats == CATEGORIES | NEGATIVE, lang
    assert sum(1 for r in ROWS if not r["crisis"]) >= 250  # many hard negatives


def _score(rows: list[dict[str, Any]], use_lang: bool) -> dict[str, list[int]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # tp fn fp
    for r in rows:
        got = scan(r["text"], r["lang"] if use_lang else None).crisis
        for key in ("all", r["lang"]):
            if r["crisis"] and got:
                counts[key][0] += 1
            elif r["crisis"]:
                counts[key][1] += 1
            elif got:
                counts[key][2] += 1
    return counts


def test_checkset_shape() -> None:
    assert len(CHECK) >= 500
    assert len({r["id"] for r in CHECK}) == len(CHECK)
    assert not {r["text"].lower() for r in CHECK} & {r["text"].lower() for r in ROWS}
    for r in CHECK:
        assert r["crisis"] is (r["category"] in CATEGORIES)
        assert r["category"] in CATEGORIES | NEGATIVE | {"hard_negative"}


@pytest.mark.parametrize("name", ["devset", "checkset"])
@pytest.mark.parametrize("use_lang", [True, False])
def test_targets(name: str, use_lang: bool) -> None:
    counts = _score(ROWS if name == "devset" else CHECK, use_lang)
    tp, fn, fp = counts["all"]
    assert tp / (tp + fn) >= 0.98
    assert tp / (tp + fp) >= 0.90
    for lang in ("en", "pt_BR", "es", "fr", "de"):
        tp, fn, _ = counts[lang]
        assert tp / (tp + fn) >= 0.95, lang


@pytest.mark.parametrize("name", ["devset", "checkset"])
def test_about_on_detected(name: str) -> None:
    rows = ROWS if name == "devset" else CHECK
    wrong = [r["id"] for r in rows if r["crisis"] and scan(r["text"], r["lang"]).about not in (r["about"], None)]
    assert len(wrong) <= 0.02 * sum(1 for r in rows if r["crisis"]), wrong
