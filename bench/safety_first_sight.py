"""One labelled set through the detector as it is: the first-sight measurement of a new blind set.

    .venv/bin/python bench/safety_first_sight.py tests/safety/blindset9.jsonl

Prints recall and precision overall and per language (with the false alerts), caught/total per
category (with the `sub` of indirect ideation), the false alerts by category, and recall when no
language is given. Scan a new set with this once, before anything is changed for it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.safety import scan


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("set", type=Path)
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.set.read_text(encoding="utf-8").splitlines() if line.strip()]
    tp = fn = fp = 0
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    cat: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        hit = scan(r["text"], r["lang"]).crisis
        lang = per[r["lang"]]
        key = r["category"] + ("/" + r["sub"] if r.get("sub") else "")
        if r["crisis"]:
            lang[1] += 1
            cat[key][1] += 1
            if hit:
                tp += 1
                lang[0] += 1
                cat[key][0] += 1
            else:
                fn += 1
        elif hit:
            fp += 1
            lang[2] += 1
            cat["false alert: " + key][0] += 1
    print(f"{args.set.name}: {len(rows)} messages, {tp + fn} crisis")
    recall, precision = tp / max(1, tp + fn), tp / max(1, tp + fp)
    print(f"recall {recall:.3f}  precision {precision:.3f}  ({tp} caught, {fn} missed, {fp} false alerts)")
    for k, (c, t, f) in sorted(per.items()):
        print(f"  {k:6} recall {c / max(1, t):.3f} ({c}/{t}), false alerts {f}")
    for k, (c, t) in sorted(cat.items()):
        print(f"  {k:34} {c}/{t}" if t else f"  {k:34} {c}")
    crisis = [r for r in rows if r["crisis"]]
    caught = sum(1 for r in crisis if scan(r["text"], None).crisis)
    print(f"without a language: recall {caught / max(1, len(crisis)):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
