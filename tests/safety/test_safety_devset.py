"""The labelled sets: the targets of issue 3 hold on both (bench/safety_bench.py prints the numbers).

``devset.jsonl`` was written with the phrase files; ``checkset.jsonl`` was written afterwards in
rounds, each first measured untouched (README.md in this folder has those first-seen numbers).
"""

from __future__ import annotations

import json
import sys
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


# ---------------------------------------------------------------------- the blind sets
#
# Written after the phrase files, each measured once before anything was changed for it
# (README.md in this folder has those first-seen numbers). All hundred and ten were then used: blindset ..
# blindset5 and blindset7 .. blindset110 to improve the phrase and concept layers, all hundred and ten to train
# the learned layer (bench/train_safety_model.py), so they are held to the targets like
# the dev and check sets. The honest measure of unseen wording is leave-one-set-out (the last
# test here, and `bench/train_safety_model.py --cv`), and the next blind set (blindset111),
# which nothing here reads.

BLIND_NAMES = (
    "blindset",
    "blindset2",
    "blindset3",
    "blindset4",
    "blindset5",
    "blindset6",
    "blindset7",
    "blindset8",
    "blindset9",
    "blindset10",
    "blindset11",
    "blindset12",
    "blindset13",
    "blindset14",
    "blindset15",
    "blindset16",
    "blindset17",
    "blindset18",
    "blindset19",
    "blindset20",
    "blindset21",
    "blindset22",
    "blindset23",
    "blindset24",
    "blindset25",
    "blindset26",
    "blindset27",
    "blindset28",
    "blindset29",
    "blindset30",
    "blindset31",
    "blindset32",
    "blindset33",
    "blindset34",
    "blindset35",
    "blindset36",
    "blindset37",
    "blindset38",
    "blindset39",
    "blindset40",
    "blindset41",
    "blindset42",
    "blindset43",
    "blindset44",
    "blindset45",
    "blindset46",
    "blindset47",
    "blindset48",
    "blindset49",
    "blindset50",
    "blindset51",
    "blindset52",
    "blindset53",
    "blindset54",
    "blindset55",
    "blindset56",
    "blindset57",
    "blindset58",
    "blindset59",
    "blindset60",
    "blindset61",
    "blindset62",
    "blindset63",
    "blindset64",
    "blindset65",
    "blindset66",
    "blindset67",
    "blindset68",
    "blindset69",
    "blindset70",
    "blindset71",
    "blindset72",
    "blindset73",
    "blindset74",
    "blindset75",
    "blindset76",
    "blindset77",
    "blindset78",
    "blindset79",
    "blindset80",
    "blindset81",
    "blindset82",
    "blindset83",
    "blindset84",
    "blindset85",
    "blindset86",
    "blindset87",
    "blindset88",
    "blindset89",
    "blindset90",
    "blindset91",
    "blindset92",
    "blindset93",
    "blindset94",
    "blindset95",
    "blindset96",
    "blindset97",
    "blindset98",
    "blindset99",
    "blindset100",
    "blindset101",
    "blindset102",
    "blindset103",
    "blindset104",
    "blindset105",
    "blindset106",
    "blindset107",
    "blindset108",
    "blindset109",
    "blindset110",
)
BLIND = {name: _rows(HERE / f"{name}.jsonl") for name in BLIND_NAMES}
SUBS = {"passive", "burden", "goodbye", "giving_away", "past", "negated", "shared_words"}


def test_blind_set_shapes() -> None:
    ids = [r["id"] for rows in BLIND.values() for r in rows]
    assert len(ids) == len(set(ids))
    first = BLIND["blindset"]
    by_lang: dict[str, int] = defaultdict(int)
    for r in first:
        by_lang[r["lang"]] += 1
    assert by_lang["pt_BR"] >= 300 and by_lang["es"] >= 300 and by_lang["en"] >= 150
    assert sum(1 for r in first if not r["crisis"]) >= sum(1 for r in first if r["crisis"])
    for name, rows in BLIND.items():
        assert len(rows) >= 150, name
        for r in rows:
            assert r["crisis"] is (r["category"] in CATEGORIES), r["id"]
            assert r["category"] in CATEGORIES | NEGATIVE | {"hard_negative"}, r["id"]
            assert r["about"] == ("other" if r["category"] == "other" else "self" if r["crisis"] else None), r["id"]
            assert r.get("sub") in SUBS | {None}, r["id"]
        for lang in ("en", "pt_BR", "es"):
            assert {r["category"] for r in rows if r["lang"] == lang and r["crisis"]} == CATEGORIES, (name, lang)


@pytest.mark.parametrize("name", BLIND_NAMES)
@pytest.mark.parametrize("use_lang", [True, False])
def test_tuned_blind_sets_meet_the_targets(name: str, use_lang: bool) -> None:
    counts = _score(BLIND[name], use_lang)
    tp, fn, fp = counts["all"]
    assert tp / (tp + fn) >= 0.98
    assert tp / (tp + fp) >= 0.90
    for lang in ("en", "pt_BR", "es"):
        tp, fn, _ = counts[lang]
        assert tp / (tp + fn) >= 0.95, lang


# (held-out set, recall floor, precision floor). blindset6: the one set the phrase and concept
# layers were never tuned on either, measured 0.978 / 0.968 left out (README). blindset7: the
# floor was tuned on it and trainset2 was written after reading its misses, so its fold is a
# regression guard only (measured 0.975 / 0.995 left out, README). blindset8 likewise since round 3
# (floor tuned on it, trainset3 written from its misses; measured 0.971 / 1.000 left out, 0.941 /
# 0.990 without trainset3). The floors leave a little room.
LEFT_OUT = [("blindset6", 0.95, 0.93), ("blindset7", 0.95, 0.95), ("blindset8", 0.95, 0.95)]


@pytest.mark.parametrize(("name", "min_recall", "min_precision"), LEFT_OUT)
def test_blind_set_left_out_of_training(name: str, min_recall: float, min_precision: float) -> None:
    """Generalisation, not memory: the model trained without the set still meets floors on it."""
    pytest.importorskip("sklearn")  # the dev extra
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "train_safety_model", HERE.parents[1] / "bench" / "train_safety_model.py"
    )
    assert spec is not None and spec.loader is not None
    train = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = train  # its dataclasses look their module up there
    spec.loader.exec_module(train)
    rows = train.load_rows()
    held = [r for r in rows if r.source == f"{name}.jsonl"]
    assert held
    crisis, other = train.fit([r for r in rows if r.source != f"{name}.jsonl"], train.DEFAULT_C)
    got = train.verdicts(held, crisis, other, train.DEFAULT_THRESHOLD)
    tp = sum(1 for r, (hit, _) in zip(held, got, strict=True) if r.crisis and hit)
    fn = sum(1 for r, (hit, _) in zip(held, got, strict=True) if r.crisis and not hit)
    fp = sum(1 for r, (hit, _) in zip(held, got, strict=True) if not r.crisis and hit)
    assert tp / (tp + fn) >= min_recall
    assert tp / (tp + fp) >= min_precision
