"""Train the crisis detector's learned layer, and measure how it generalises.

Usage (from the repository root; needs the ``dev`` extra, for scikit-learn)::

    .venv/bin/python bench/train_safety_model.py --cv      # leave-one-set-out numbers
    .venv/bin/python bench/train_safety_model.py --write   # train on every set, write the model

Training reads an explicit list of files (``TRAIN_SETS`` below), never a glob: a new blind set
dropped into tests/safety is not trained on until someone adds it here on purpose.

Each message goes through the phrase and concept layers first (``bot.safety.detector.floor``);
the model sees their matching text (normalised, corrected, idioms and negations blanked) and is
trained on every labelled message, plus the ordinary client replies of tests/understanding as
non-crisis. A message is flagged when the floor flags it or the model's logit reaches the
threshold; "past and well now" messages stay silent either way.

``--grams N`` adds letter n-gram features per word (measured in round 3 and not kept; README).

``--cv``: for each held-out set (blindset2 .. blindset8, blindset, checkset, the understanding
replies), train on all the other sets and score the held-out one: recall and precision overall,
per language and per category, the model's own share, false alerts on ordinary replies, for a
few thresholds. The phrase/concept floor has been tuned on every set but blindset6 (and on
blindset7 in round 2 and blindset8 in round 3), so the blindset6 fold is the one clean for both layers; the other folds
are clean for the model only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.safety.detector import compiled, floor, settled  # noqa: E402
from bot.safety.model import MODEL_PATH, Linear, Model, features, to_dict  # noqa: E402

SAFETY = ROOT / "tests" / "safety"
UNDERSTANDING = ROOT / "tests" / "understanding"
# Explicit on purpose (module doc). The numbered blind sets, trained on and each held out in turn
# by --cv; the newest is measured at first sight before it is added here
# (tests/safety/test_safety_model.py keeps the next one out).
BLIND_SETS = (
    "blindset2.jsonl",
    "blindset3.jsonl",
    "blindset4.jsonl",
    "blindset5.jsonl",
    "blindset6.jsonl",
    "blindset7.jsonl",
    "blindset8.jsonl",
    "blindset9.jsonl",
    "blindset10.jsonl",
    "blindset11.jsonl",
    "blindset12.jsonl",
    "blindset13.jsonl",
    "blindset14.jsonl",
    "blindset15.jsonl",
    "blindset16.jsonl",
    "blindset17.jsonl",
    "blindset18.jsonl",
    "blindset19.jsonl",
    "blindset20.jsonl",
    "blindset21.jsonl",
    "blindset22.jsonl",
    "blindset23.jsonl",
    "blindset24.jsonl",
    "blindset25.jsonl",
    "blindset26.jsonl",
    "blindset27.jsonl",
    "blindset28.jsonl",
    "blindset29.jsonl",
    "blindset30.jsonl",
    "blindset31.jsonl",
    "blindset32.jsonl",
    "blindset33.jsonl",
    "blindset34.jsonl",
    "blindset35.jsonl",
    "blindset36.jsonl",
    "blindset37.jsonl",
    "blindset38.jsonl",
    "blindset39.jsonl",
    "blindset40.jsonl",
    "blindset41.jsonl",
    "blindset42.jsonl",
    "blindset43.jsonl",
    "blindset44.jsonl",
    "blindset45.jsonl",
    "blindset46.jsonl",
    "blindset47.jsonl",
    "blindset48.jsonl",
    "blindset49.jsonl",
    "blindset50.jsonl",
    "blindset51.jsonl",
    "blindset52.jsonl",
    "blindset53.jsonl",
    "blindset54.jsonl",
    "blindset55.jsonl",
    "blindset56.jsonl",
    "blindset57.jsonl",
    "blindset58.jsonl",
    "blindset59.jsonl",
    "blindset60.jsonl",
    "blindset61.jsonl",
    "blindset62.jsonl",
    "blindset63.jsonl",
    "blindset64.jsonl",
    "blindset65.jsonl",
    "blindset66.jsonl",
    "blindset67.jsonl",
    "blindset68.jsonl",
    "blindset69.jsonl",
    "blindset70.jsonl",
    "blindset71.jsonl",
    "blindset72.jsonl",
    "blindset73.jsonl",
    "blindset74.jsonl",
    "blindset75.jsonl",
    "blindset76.jsonl",
    "blindset77.jsonl",
    "blindset78.jsonl",
    "blindset79.jsonl",
    "blindset80.jsonl",
    "blindset81.jsonl",
    "blindset82.jsonl",
    "blindset83.jsonl",
    "blindset84.jsonl",
    "blindset85.jsonl",
    "blindset86.jsonl",
    "blindset87.jsonl",
    "blindset88.jsonl",
    "blindset89.jsonl",
    "blindset90.jsonl",
    "blindset91.jsonl",
    "blindset92.jsonl",
    "blindset93.jsonl",
    "blindset94.jsonl",
    "blindset95.jsonl",
    "blindset96.jsonl",
    "blindset97.jsonl",
    "blindset98.jsonl",
    "blindset99.jsonl",
    "blindset100.jsonl",
    "blindset101.jsonl",
    "blindset102.jsonl",
    "blindset103.jsonl",
    "blindset104.jsonl",
    "blindset105.jsonl",
    "blindset106.jsonl",
    "blindset107.jsonl",
    "blindset108.jsonl",
    "blindset109.jsonl",
    "blindset110.jsonl",
)
TRAIN_SETS = (
    "devset.jsonl",
    "checkset.jsonl",
    "blindset.jsonl",
    *BLIND_SETS,
    "trainset.jsonl",
    "trainset2.jsonl",
    "trainset3.jsonl",
    "trainset4.jsonl",
    "trainset5.jsonl",
    "trainset6.jsonl",
    "trainset7.jsonl",
)
ORDINARY_SETS = ("devset.jsonl", "checkset.jsonl")  # in tests/understanding: all non-crisis
CV_FOLDS = (*BLIND_SETS, "blindset.jsonl", "checkset.jsonl", "understanding")
CRISIS_CATS = ("direct", "indirect", "plan", "means", "self_harm", "imminent", "other")
DEFAULT_C = 4.0
DEFAULT_GRAMS = 0
# Weights smaller than this are dropped: half the features go, the --cv numbers do not move
# (README), and a smaller table keeps the per-message look-ups in the CPU cache.
PRUNE = 0.1
DEFAULT_THRESHOLD = 0.75  # logit: probability 0.68; chosen on the --cv table and set 7 (tests/safety/README.md)


@dataclass
class Row:
    source: str
    lang: str
    text: str
    crisis: bool
    category: str
    about: str | None
    floor_hit: bool
    floor_about: str | None
    silenced: bool
    tokens: list[str]


def _load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_rows(exclude: Sequence[str] = ()) -> list[Row]:
    c = compiled()
    raw: list[tuple[str, dict[str, Any]]] = []
    for name in TRAIN_SETS:
        if name in exclude or not (SAFETY / name).exists():
            continue
        raw.extend((name, r) for r in _load(SAFETY / name))
    if "understanding" not in exclude:
        for name in ORDINARY_SETS:
            for r in _load(UNDERSTANDING / name):
                if isinstance(r.get("text"), str):
                    raw.append(("understanding", {**r, "crisis": False, "category": "ordinary", "about": None}))
    rows: list[Row] = []
    for source, r in raw:
        text = r["text"]
        fl = floor(c, text) if text else None
        floor_hit = bool(fl and fl.found)
        rows.append(
            Row(
                source=source,
                lang=str(r.get("lang") or "?"),
                text=text,
                crisis=bool(r["crisis"]),
                category=str(r["category"]),
                about=r.get("about"),
                floor_hit=floor_hit,
                floor_about=("self" if fl.own or not fl.reported else "other") if fl and floor_hit else None,
                silenced=bool(fl and settled(c, fl)),
                tokens=fl.model_text.split() if fl else [],
            )
        )
    return rows


def fit(rows: Sequence[Row], c_value: float, prune: float = PRUNE, grams: int = 0) -> tuple[Linear, Linear]:
    """Logistic regressions for crisis (all rows) and about-someone-else (crisis rows)."""
    from scipy.sparse import csr_matrix  # dev-only
    from sklearn.linear_model import LogisticRegression  # dev-only

    def train(sample: Sequence[Row], labels: Sequence[int], c_val: float) -> Linear:
        vocab: dict[str, int] = {}
        data: list[float] = []
        cols: list[int] = []
        ptr = [0]
        for r in sample:
            counts: dict[int, float] = defaultdict(float)
            for f in features(r.tokens, grams):
                counts[vocab.setdefault(f, len(vocab))] += 1.0
            cols.extend(counts)
            data.extend(counts.values())
            ptr.append(len(cols))
        x = csr_matrix((data, cols, ptr), shape=(len(sample), len(vocab)))
        lr = LogisticRegression(C=c_val, max_iter=5000, class_weight="balanced", solver="liblinear")
        lr.fit(x, list(labels))
        coef = lr.coef_[0]
        names = list(vocab)
        weights = {names[i]: float(coef[i]) for i in range(len(names)) if abs(coef[i]) >= prune}
        return Linear(float(lr.intercept_[0]), weights, grams)

    crisis = train(rows, [int(r.crisis) for r in rows], c_value)
    pos = [r for r in rows if r.crisis]
    other = train(pos, [int(r.about == "other") for r in pos], c_value)
    return crisis, other


def verdicts(rows: Sequence[Row], crisis: Linear, other: Linear, threshold: float) -> list[tuple[bool, bool]]:
    """(flagged, flagged by the model alone) per row."""
    model = Model(crisis=crisis, other=other, threshold=threshold, high=math.inf, meta={})
    out = []
    for r in rows:
        if r.silenced:
            out.append((False, False))
        elif r.floor_hit:
            out.append((True, False))
        else:
            hit = any(t != "#" for t in r.tokens) and model.score(r.tokens) >= threshold
            out.append((hit, hit))
    return out


def model_alone(rows: Sequence[Row], crisis: Linear, other: Linear, threshold: float) -> tuple[float, float]:
    """Recall and precision of the model on its own (no phrase/concept floor): on the sets the
    floor was tuned on, this is what says whether the model generalises."""
    model = Model(crisis=crisis, other=other, threshold=threshold, high=math.inf, meta={})
    tp = fn = fp = 0
    for r in rows:
        hit = not r.silenced and any(t != "#" for t in r.tokens) and model.score(r.tokens) >= threshold
        tp += int(r.crisis and hit)
        fn += int(r.crisis and not hit)
        fp += int(hit and not r.crisis)
    return _pr(tp, fn, fp)


def _pr(tp: int, fn: int, fp: int) -> tuple[float, float]:
    return (tp / (tp + fn) if tp + fn else math.nan, tp / (tp + fp) if tp + fp else math.nan)


def summarise(rows: Sequence[Row], got: Sequence[tuple[bool, bool]]) -> dict[str, Any]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    cats: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    model_tp = floor_tp = 0
    for r, (hit, by_model) in zip(rows, got, strict=True):
        for key in ("all", r.lang):
            if r.crisis and hit:
                counts[key][0] += 1
            elif r.crisis:
                counts[key][1] += 1
            elif hit:
                counts[key][2] += 1
        cats[r.category][1] += 1
        cats[r.category][0] += int(hit)
        if r.crisis and r.floor_hit and not r.silenced:
            floor_tp += 1
        if r.crisis and by_model:
            model_tp += 1
    return {"counts": counts, "cats": cats, "floor_tp": floor_tp, "model_tp": model_tp}


def cross_validate(
    rows: Sequence[Row],
    c_value: float,
    thresholds: Sequence[float],
    show_misses: bool,
    prune: float = PRUNE,
    grams: int = 0,
) -> None:
    pooled: dict[float, list[int]] = defaultdict(lambda: [0, 0, 0])
    print(
        f"leave-one-set-out, C={c_value}, prune {prune}, letter grams {grams};"
        " floor = phrase + concept layers; flagged = floor or model"
    )
    for fold in CV_FOLDS:
        test = [r for r in rows if r.source == fold]
        train = [r for r in rows if r.source != fold]
        if not test:
            continue
        crisis, other = fit(train, c_value, prune, grams)
        n_pos = sum(r.crisis for r in test)
        print(f"== held out: {fold} ({len(test)} messages, {n_pos} crisis)")
        for t in thresholds:
            got = verdicts(test, crisis, other, t)
            s = summarise(test, got)
            tp, fn, fp = s["counts"]["all"]
            rec, prec = _pr(tp, fn, fp)
            pooled[t][0] += tp
            pooled[t][1] += fn
            pooled[t][2] += fp if fold != "understanding" else 0
            langs = "  ".join(
                f"{lang} {_pr(*s['counts'][lang])[0]:.3f}"
                for lang in ("en", "es", "pt_BR", "fr", "de")
                if sum(s["counts"][lang][:2])
            )
            floor_rec = s["floor_tp"] / n_pos if n_pos else math.nan
            m_rec, m_prec = model_alone(test, crisis, other, t)
            print(
                f"  t={t:+.1f} recall {rec:.3f} precision {prec:.3f} (tp {tp} fn {fn} fp {fp})"
                f"  floor alone {floor_rec:.3f}  model alone {m_rec:.3f}/{m_prec:.3f}  | {langs}"
            )
            if t == thresholds[len(thresholds) // 2]:
                cells = "  ".join(f"{k} {s['cats'][k][0]}/{s['cats'][k][1]}" for k in CRISIS_CATS if s["cats"][k][1])
                print(f"    crisis categories: {cells}")
                cells = "  ".join(
                    f"{k} {v[0]}/{v[1]}" for k, v in sorted(s["cats"].items()) if k not in CRISIS_CATS and v[0]
                )
                print(f"    false alerts by category: {cells or 'none'}")
                if show_misses:
                    for r, (hit, _) in zip(test, got, strict=True):
                        if r.crisis != hit:
                            kind = "missed" if r.crisis else "false "
                            print(f"      {kind} [{r.lang} {r.category}] {r.text!r}")
    print("== pooled over the labelled folds (false alerts of the understanding fold not counted here)")
    for t, (tp, fn, fp) in sorted(pooled.items()):
        rec, prec = _pr(tp, fn, fp)
        print(f"  t={t:+.1f} recall {rec:.3f} precision {prec:.3f} (tp {tp} fn {fn} fp {fp})")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cv", action="store_true", help="print leave-one-set-out numbers")
    ap.add_argument("--write", action="store_true", help=f"train on every set and write {MODEL_PATH.name}")
    ap.add_argument("--c", type=float, default=DEFAULT_C, help="inverse L2 strength")
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="logit threshold for --write")
    ap.add_argument("--prune", type=float, default=PRUNE, help="drop weights smaller than this")
    ap.add_argument("--grams", type=int, default=DEFAULT_GRAMS, help="letter n-gram features per word (0: none)")
    ap.add_argument("--misses", action="store_true", help="with --cv: list the wrong messages")
    ap.add_argument("--without", action="append", default=[], help="leave a training file out (repeatable)")
    args = ap.parse_args(argv)
    rows = load_rows(exclude=args.without)
    by_source: dict[str, int] = defaultdict(int)
    for r in rows:
        by_source[r.source] += 1
    print("training rows:", dict(by_source))
    if args.cv:
        ts = [args.threshold + d for d in (-1.0, -0.5, 0.0, 0.5, 1.0)]
        cross_validate(rows, args.c, ts, args.misses, args.prune, args.grams)
    if args.write:
        crisis, other = fit(rows, args.c, args.prune, args.grams)
        model = Model(
            crisis=crisis,
            other=other,
            threshold=args.threshold,
            high=math.inf,
            meta={
                "C": args.c,
                "prune": args.prune,
                "grams": args.grams,
                "trained_on": [*TRAIN_SETS, "tests/understanding"],
                "rows": len(rows),
            },
        )
        MODEL_PATH.write_text(json.dumps(to_dict(model), ensure_ascii=True, separators=(",", ":")) + "\n", "utf-8")
        print(f"wrote {MODEL_PATH.relative_to(ROOT)}: {len(crisis.weights)} + {len(other.weights)} weights")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
