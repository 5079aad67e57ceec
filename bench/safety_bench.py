"""Crisis detector benchmark: accuracy on the labelled dev set and throughput.

Usage (from the repository root)::

    .venv/bin/python bench/safety_bench.py [--set FILE ...] [--seconds 2]

For each labelled set (default: every set in ``tests/safety``: ``devset.jsonl``,
``checkset.jsonl`` and the blind sets of ``bench/train_safety_model.py``'s training list, each reported
on its own) prints recall and precision overall, per language and per category, the categories
also per language (recall for the crisis categories, share flagged for the others), per
``sub``-category where a set has them, whether ``about`` (self/other) was right on the detected
crisis messages, false alerts per 1,000 ordinary replies (appointment, fine and feedback
messages) and the messages it got wrong. For a set other than the dev and check sets it also
prints the numbers without the messages that repeat a dev/check-set text word for word. Then
false alerts on the ordinary replies of ``tests/understanding`` (written by another engineer),
and scans per second over all the sets, with and without a language, and on ordinary replies
alone. ``--against DIR`` also times another source tree (e.g. ``git archive <commit> bot locales``
unpacked in DIR) against this one, in child processes taking turns.

``checkset.jsonl`` and the blind sets were written *after* the phrase files, each measured
before anything was changed for it; tests/safety/README.md has those first-seen numbers (the
honest estimate) -- the numbers printed here are after tuning, except for the newest blind set.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from train_safety_model import TRAIN_SETS  # noqa: E402  (bench/, this script's own folder)

from bot.safety import scan  # noqa: E402
from bot.safety.detector import compiled, scan_with  # noqa: E402
from bot.safety.normalize import normalize  # noqa: E402
from bot.safety.types import Scan  # noqa: E402

# The sets the phrase files were tuned on (a message of another set that repeats one of their
# texts word for word is reported apart: it is not new to the detector).
TUNED_SETS = ("devset.jsonl", "checkset.jsonl")
# Written afterwards, each measured first without tuning (tests/safety/README.md), then tuned and
# trained on: the blind sets of the training list, the one explicit list (never a glob: a new blind
# set is measured by naming it, --set, before anyone adds it there).
BLIND_SETS = tuple(n for n in TRAIN_SETS if n.startswith("blindset"))

# Dev-set categories of messages that must not raise an alert.
ORDINARY = ("appointment", "fine", "feedback")


def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _ratio(num: int, den: int) -> str:
    return f"{num / den:.3f}" if den else "  -  "


def report(
    rows: Sequence[dict[str, Any]], results: Sequence[Scan], out: Callable[[str], None], details: bool = True
) -> dict[str, float]:
    by_lang: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # tp fn fp tn
    by_cat: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # flagged, total
    by_cat_lang: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # flagged, total
    tp = fn = fp = tn = about_ok = 0
    misses: list[str] = []
    for row, res in zip(rows, results, strict=True):
        want = bool(row["crisis"])
        got = res.crisis
        c = by_lang[row["lang"]]
        by_cat[row["category"]][1] += 1
        by_cat_lang[row["category"], row["lang"]][1] += 1
        if got:
            by_cat[row["category"]][0] += 1
            by_cat_lang[row["category"], row["lang"]][0] += 1
        if want and got:
            tp += 1
            c[0] += 1
            if res.about == row.get("about"):
                about_ok += 1
            else:
                misses.append(f"  about {res.about!s:5} want {row.get('about')}: {row['id']} {row['text']!r}")
        elif want:
            fn += 1
            c[1] += 1
            misses.append(f"  missed           : {row['id']} [{row['category']}] {row['text']!r}")
        elif got:
            fp += 1
            c[2] += 1
            misses.append(f"  false alert      : {row['id']} [{row['category']}] {row['text']!r} {list(res.matched)}")
        else:
            tn += 1
            c[3] += 1
    recall = tp / (tp + fn) if tp + fn else 1.0
    precision = tp / (tp + fp) if tp + fp else 1.0
    ordinary = [r for r, s in zip(rows, results, strict=True) if r["category"] in ORDINARY]
    ordinary_fp = sum(1 for r, s in zip(rows, results, strict=True) if r["category"] in ORDINARY and s.crisis)
    per_1000 = 1000 * ordinary_fp / len(ordinary) if ordinary else 0.0

    out(f"messages {len(rows)}: {tp + fn} crisis, {fp + tn} not")
    out(f"overall   recall {recall:.3f}  precision {precision:.3f}  (tp {tp} fn {fn} fp {fp} tn {tn})")
    out(f"about (self/other) right on {about_ok}/{tp} detected crisis messages")
    by_model = [(r, s) for r, s in zip(rows, results, strict=True) if any(m.endswith(".model") for m in s.matched)]
    out(
        f"alerts from the learned layer alone: {len(by_model)}"
        f" ({sum(1 for r, _ in by_model if r['crisis'])} crisis, {sum(1 for r, _ in by_model if not r['crisis'])} not)"
    )
    out(f"false alerts per 1,000 ordinary replies ({', '.join(ORDINARY)}; n={len(ordinary)}): {per_1000:.1f}")
    out("per language:")
    for lang in sorted(by_lang):
        a, b, f, _ = by_lang[lang]
        out(f"  {lang:6} recall {_ratio(a, a + b)}  precision {_ratio(a, a + f)}  (n={sum(by_lang[lang])})")
    if not details:
        return {"recall": recall, "precision": precision, "per_1000": per_1000}
    out("per category (crisis categories: recall; others: share flagged = false alerts):")
    langs = sorted(by_lang)
    out(f"  {'':22}{'all':>13}" + "".join(f"{lang:>13}" for lang in langs))
    for cat in sorted(by_cat, key=lambda k: (k in ("idiom", *ORDINARY, "sad", "hard_negative"), k)):
        flagged, total = by_cat[cat]
        is_pos = any(r["category"] == cat and r["crisis"] for r in rows)
        label = "recall" if is_pos else "flagged"
        cells = ""
        for lang in langs:
            f2, t2 = by_cat_lang[cat, lang]
            cells += f"{_ratio(f2, t2):>6} {f'{f2}/{t2}':>6}" if t2 else f"{'':>13}"
        out(f"  {cat:14}{label:8}{_ratio(flagged, total):>6} {f'{flagged}/{total}':>6}{cells}")
    subs = sorted({str(r["sub"]) for r in rows if r.get("sub")})
    if subs:
        out("per sub-category (the 'sub' field; crisis: recall, otherwise: share flagged):")
        for sub in subs:
            picked = [(r, s) for r, s in zip(rows, results, strict=True) if r.get("sub") == sub]
            flagged = sum(1 for _, s in picked if s.crisis)
            kind = "recall" if picked[0][0]["crisis"] else "flagged"
            out(f"  {sub:14}{kind:8}{_ratio(flagged, len(picked)):>6} {f'{flagged}/{len(picked)}':>6}")
    if misses:
        out("wrong:")
        for m in misses:
            out(m)
    return {"recall": recall, "precision": precision, "per_1000": per_1000}


def throughput(
    texts: Sequence[tuple[str, str | None]], seconds: float, fn: Callable[[str, str | None], Scan] = scan
) -> tuple[float, float]:
    """Scans per second of wall-clock time and per second of this process's CPU time.

    On a machine shared with other work the wall-clock figure drops while the CPU-time one
    stays put; on an idle machine the two agree.
    """
    n = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    deadline = wall0 + seconds
    while True:
        for text, lang in texts:
            fn(text, lang)
        n += len(texts)
        wall = time.perf_counter()
        if wall >= deadline:
            cpu = time.process_time()
            return n / (wall - wall0), n / max(cpu - cpu0, 1e-9)


# One timing child: imports the detector from the tree given as argv[1], scans the messages of
# the JSON file argv[2] best-of-argv[3] times, prints CPU-time scans/s.
_CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from bot.safety import scan
msgs = json.load(open(sys.argv[2], encoding="utf-8"))
for t, lang in msgs:
    scan(t, lang)
best = float("inf")
for _ in range(int(sys.argv[3])):
    t0 = time.process_time()
    for t, lang in msgs:
        scan(t, lang)
    best = min(best, time.process_time() - t0)
print(len(msgs) / best)
"""


def compare(trees: Sequence[Path], sample: Sequence[tuple[str, str | None]], rounds: int) -> dict[Path, list[float]]:
    """Scans/s of each source tree's detector on ``sample``, in child processes taking turns
    (tree 1, tree 2, tree 1, ...), so a change in the machine's load hits every tree alike."""
    out: dict[Path, list[float]] = {t: [] for t in trees}
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8", delete=False) as fh:
        json.dump(list(sample), fh)
        path = fh.name
    try:
        for _ in range(rounds):
            for tree in trees:
                res = subprocess.run(
                    [sys.executable, "-c", _CHILD, str(tree), path, "3"], capture_output=True, text=True, check=True
                )
                out[tree].append(float(res.stdout.strip()))
    finally:
        Path(path).unlink()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--set",
        dest="sets",
        type=Path,
        action="append",
        help="a labelled JSONL set (repeatable; default: the dev set and the check set)",
    )
    ap.add_argument(
        "--ordinary",
        type=Path,
        action="append",
        help="JSONL of ordinary client replies (only 'text' and 'lang' are read; repeatable; default: the"
        " understanding test sets, written by another engineer) to count false alerts on",
    )
    ap.add_argument("--seconds", type=float, default=2.0, help="time per throughput run")
    ap.add_argument(
        "--interleave",
        type=int,
        default=0,
        metavar="N",
        help="also time the detector with and without the model in turns, best of N passes over all"
        " sets (CPU time; steadier than the timed runs on a shared machine)",
    )
    ap.add_argument(
        "--against",
        type=Path,
        metavar="DIR",
        help="also time another source tree's detector (a checkout or `git archive` of bot/ and locales/)"
        " against this one, in child processes taking turns; see --rounds",
    )
    ap.add_argument("--rounds", type=int, default=5, help="turns per tree with --against")
    args = ap.parse_args(argv)

    here = ROOT / "tests" / "safety"
    sets = args.sets or [p for p in (here / n for n in (*TUNED_SETS, *BLIND_SETS)) if p.exists()]
    scan("warm up")
    tuned = {normalize(r["text"]) for n in TUNED_SETS if (here / n).exists() for r in load(here / n)}
    rows: list[dict[str, Any]] = []
    for path in sets:
        part = load(path)
        print(f"== {path.name}")
        results = [scan(r["text"], r.get("lang")) for r in part]
        report(part, results, print)
        if path.name not in TUNED_SETS:
            fresh = [(r, s) for r, s in zip(part, results, strict=True) if normalize(r["text"]) not in tuned]
            if len(fresh) < len(part):
                where = " nor ".join(TUNED_SETS)
                print(f"-- the {len(fresh)} messages of {path.name} whose text is in neither {where}:")
                report([r for r, _ in fresh], [s for _, s in fresh], print, details=False)
        print()
        rows.extend(part)

    ordinary_files = args.ordinary or [
        p for p in (ROOT / "tests" / "understanding" / n for n in ("devset.jsonl", "checkset.jsonl")) if p.exists()
    ]
    if ordinary_files:
        texts = [r for path in ordinary_files for r in load(path) if isinstance(r.get("text"), str)]
        alerts = [r["text"] for r in texts if scan(r["text"], r.get("lang")).crisis]
        names = ", ".join(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in ordinary_files)
        print(f"== ordinary replies from {names} ({len(texts)} messages)")
        print(f"false alerts per 1,000: {1000 * len(alerts) / max(len(texts), 1):.1f} ({len(alerts)})")
        for text in alerts:
            print(f"  false alert: {text!r}")
        print()

    with_lang = [(r["text"], r.get("lang")) for r in rows]
    no_lang: list[tuple[str, str | None]] = [(r["text"], None) for r in rows]
    ordinary = [(r["text"], r.get("lang")) for r in rows if r["category"] in ORDINARY]
    print(f"throughput over {len(rows)} messages (one process, one thread), scans/s:")
    print(f"  {'':26}{'wall clock':>12}{'CPU time':>12}")
    c = compiled()

    def floor_only(text: str, lang: str | None) -> Scan:
        return scan_with(c, text, lang, None)

    for label, sample, fn in (
        ("all, with lang", with_lang, scan),
        ("all, without lang", no_lang, scan),
        ("ordinary replies only", ordinary, scan),
        ("all, with lang, no model", with_lang, floor_only),
    ):
        wall, cpu = throughput(sample, args.seconds, fn)
        print(f"  {label:26}{wall:>12,.0f}{cpu:>12,.0f}")
    if args.interleave:
        best = {"with the model": float("inf"), "without the model": float("inf")}
        for _ in range(args.interleave):
            for label, fn in (("with the model", scan), ("without the model", floor_only)):
                t0 = time.process_time()
                for text, lang in with_lang:
                    fn(text, lang)
                best[label] = min(best[label], time.process_time() - t0)
        print(f"interleaved, best of {args.interleave} passes (CPU time), all sets with lang, scans/s:")
        for label, secs in best.items():
            print(f"  {label:26}{len(with_lang) / max(secs, 1e-9):>12,.0f}")
    if args.against:
        for label, sample in (("all sets with lang", with_lang), ("ordinary replies", ordinary)):
            rates = compare([args.against.resolve(), ROOT], sample, args.rounds)
            print(f"side by side, {label} ({len(sample)} messages), {args.rounds} turns each, CPU-time scans/s:")
            for tree, rs in rates.items():
                name = "this tree" if tree == ROOT else str(tree)
                cells = " ".join(f"{r:,.0f}" for r in rs)
                print(f"  {name:40} best {max(rs):>9,.0f}  median {sorted(rs)[len(rs) // 2]:>9,.0f}  ({cells})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
