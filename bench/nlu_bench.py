"""Understanding benchmark: accuracy on a labelled set and speed, builtin and Rasa side by side.

    .venv/bin/python bench/nlu_bench.py                      # builtin; Rasa too if .rasa-venv exists
    .venv/bin/python bench/nlu_bench.py --rasa-url http://127.0.0.1:5005   # an already running server
    .venv/bin/python bench/nlu_bench.py --no-rasa --errors   # builtin only, list the misses

Prints intent accuracy (overall, per language, per expected intent, per context), ``when``
exact-match accuracy, rating exact-match, parses per second and p50/p99 latency. Speed for the
builtin backend is measured with its per-text caches cleared before every pass (cold), so
repeated texts in the set do not flatter it. "parses/s (wall)" and the latencies include time
the process spends preempted on a busy machine; "parses/CPU-s" is the same work divided by this
process's CPU time (for Rasa it excludes the server's CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.langs import normalize_lang  # noqa: E402
from bot.understanding import make_parser, warm_up  # noqa: E402
from bot.understanding.types import Parse  # noqa: E402

DEFAULT_SET = REPO / "tests" / "understanding" / "devset.jsonl"
CHECK_SET = REPO / "tests" / "understanding" / "checkset.jsonl"
Parser = Callable[[str, str, str, datetime, str], Parse]


@dataclass
class Item:
    id: str
    text: str
    lang: str
    context: str
    now: datetime
    tz: str
    intent: str
    when: str | None
    rating: int | None


@dataclass
class Result:
    name: str
    n: int = 0
    intent_ok: int = 0
    when_ok: int = 0
    rating_ok: int = 0
    by_lang: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    by_intent: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    by_context: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    errors: list[str] = field(default_factory=list)
    per_s: float = 0.0
    per_cpu_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    note: str = ""


def load_set(path: Path) -> list[Item]:
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row: dict[str, Any] = json.loads(line)
        exp = row["expect"]
        now = datetime.fromisoformat(row["now"]).replace(tzinfo=ZoneInfo(row["tz"]))
        items.append(
            Item(
                row["id"],
                row["text"],
                row["lang"],
                row["context"],
                now,
                row["tz"],
                exp["intent"],
                exp.get("when"),
                exp.get("rating"),
            )
        )
    return items


def lang_group(tag: str) -> str:
    code = normalize_lang(tag) or "?"
    return code if code in ("en", "pt_BR", "es") else "unknown-lang"


def score(name: str, parser: Parser, items: list[Item]) -> Result:
    res = Result(name)
    for it in items:
        got = parser(it.text, it.lang, it.context, it.now, it.tz)
        ok_i = got.intent == it.intent
        ok_w = got.when == it.when
        ok_r = got.rating == it.rating
        res.n += 1
        res.intent_ok += ok_i
        res.when_ok += ok_w
        res.rating_ok += ok_r
        keyed = ((res.by_lang, lang_group(it.lang)), (res.by_intent, it.intent), (res.by_context, it.context))
        for table, key in keyed:
            table[key][0] += ok_i
            table[key][1] += 1
        if not (ok_i and ok_w and ok_r):
            res.errors.append(
                f"{it.id} [{it.lang}/{it.context}] {it.text!r}: want {it.intent} {it.when} {it.rating}"
                f" got {got.intent} {got.when} {got.rating} ({got.confidence})"
            )
    return res


def clear_caches() -> None:
    from bot.understanding import builtin, text

    builtin.analyse.cache_clear()
    text._correct.cache_clear()


def speed(
    parser: Parser, items: list[Item], *, passes: int, cold: bool, budget_s: float
) -> tuple[float, float, float, float]:
    """(parses per wall second, parses per CPU second, p50 ms, p99 ms) over up to ``passes`` passes."""
    lat: list[float] = []
    start = time.perf_counter()
    cpu0 = time.process_time()
    for _ in range(passes):
        if cold:
            clear_caches()
        for it in items:
            t0 = time.perf_counter()
            parser(it.text, it.lang, it.context, it.now, it.tz)
            lat.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s:
            break
    cpu = time.process_time() - cpu0
    total = sum(lat)
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
    return len(lat) / total, len(lat) / cpu if cpu > 0 else 0.0, p(0.50), p(0.99)


def pct(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "  -  "


def table(results: list[Result]) -> str:
    names = [r.name for r in results]
    w = max(14, *(len(n) + 2 for n in names))
    lw = 30
    rows: list[tuple[str, list[str]]] = []
    rows.append(("items", [str(r.n) for r in results]))
    rows.append(("intent accuracy", [pct(r.intent_ok, r.n) for r in results]))
    rows.append(("when exact-match", [pct(r.when_ok, r.n) for r in results]))
    rows.append(("rating exact-match", [pct(r.rating_ok, r.n) for r in results]))
    keys_lang = sorted({k for r in results for k in r.by_lang})
    for k in keys_lang:
        rows.append((f"  intent [{k}]", [pct(*r.by_lang[k]) if k in r.by_lang else "-" for r in results]))
    for k in sorted({k for r in results for k in r.by_intent}):
        rows.append((f"  intent={k}", [pct(*r.by_intent[k]) if k in r.by_intent else "-" for r in results]))
    for k in sorted({k for r in results for k in r.by_context}):
        rows.append((f"  context={k}", [pct(*r.by_context[k]) if k in r.by_context else "-" for r in results]))
    rows.append(("parses/s (wall)", [f"{r.per_s:,.0f}" for r in results]))
    rows.append(("parses/CPU-s (this process)", [f"{r.per_cpu_s:,.0f}" for r in results]))
    rows.append(("p50 latency ms", [f"{r.p50_ms:.3f}" for r in results]))
    rows.append(("p99 latency ms", [f"{r.p99_ms:.3f}" for r in results]))
    out = [f"{'':<{lw}}" + "".join(f"{n:>{w}}" for n in names)]
    out += [f"{label:<{lw}}" + "".join(f"{v:>{w}}" for v in vals) for label, vals in rows]
    for r in results:
        if r.note:
            out.append(f"note [{r.name}]: {r.note}")
    return "\n".join(out)


def run_builtin(items: list[Item], passes: int) -> Result:
    parser = make_parser("builtin")
    res = score("builtin", parser, items)
    res.per_s, res.per_cpu_s, res.p50_ms, res.p99_ms = speed(parser, items, passes=passes, cold=True, budget_s=30)
    res.note = f"speed over {passes} cold passes of {len(items)} texts (caches cleared each pass)"
    return res


def run_rasa(items: list[Item], url: str) -> Result:
    from bot.understanding.rasa import RasaParser

    parser = RasaParser(url, timeout_s=5.0)
    res = score("rasa", parser, items)
    res.name = "rasa (DIET, exported examples)"
    res.per_s, res.per_cpu_s, res.p50_ms, res.p99_ms = speed(parser, items, passes=1, cold=False, budget_s=60)
    res.note = f"via {url}/model/parse over HTTP; builtin fallbacks during the run: {parser.fallbacks}"
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--set",
        type=Path,
        nargs="+",
        default=[DEFAULT_SET, CHECK_SET],
        help="labelled JSONL sets (default: the dev set and the check set)",
    )
    ap.add_argument("--passes", type=int, default=20, help="timing passes for builtin")
    ap.add_argument("--rasa-url", help="use a running Rasa server instead of training one")
    ap.add_argument("--no-rasa", action="store_true", help="builtin only")
    ap.add_argument("--errors", action="store_true", help="list the items each backend got wrong")
    ap.add_argument("--json", action="store_true", help="also print the summary as JSON")
    args = ap.parse_args(argv)

    sets = {path: load_set(path) for path in args.set}
    t0 = time.perf_counter()
    warm_up()
    print(f"warm_up: {time.perf_counter() - t0:.2f}s")
    results: dict[Path, list[Result]] = {path: [run_builtin(items, args.passes)] for path, items in sets.items()}

    if args.rasa_url:
        for path, items in sets.items():
            results[path].append(run_rasa(items, args.rasa_url))
    elif not args.no_rasa:
        from bot.understanding.rasa_runtime import RasaServer, rasa_executable, train

        if rasa_executable() is None:
            print("rasa: skipped (no .rasa-venv; run bot/understanding/rasa_env.sh)")
        else:
            with tempfile.TemporaryDirectory(prefix="rapport-rasa-") as tmp:
                t1 = time.perf_counter()
                model = train(Path(tmp))
                print(f"rasa: trained on the exported locale examples in {time.perf_counter() - t1:.0f}s")
                with RasaServer(model) as server:
                    for path, items in sets.items():
                        results[path].append(run_rasa(items, server.url))

    summary = []
    for path, res in results.items():
        print(f"\n=== {path.relative_to(REPO) if path.is_relative_to(REPO) else path} ({len(sets[path])} items)")
        print(table(res))
        if args.errors:
            for r in res:
                print(f"\n--- {r.name}: {len(r.errors)} items with any mismatch")
                print("\n".join(r.errors))
        summary += [
            {
                "set": str(path.name),
                "backend": r.name,
                "n": r.n,
                "intent": r.intent_ok / r.n,
                "when": r.when_ok / r.n,
                "rating": r.rating_ok / r.n,
                "per_s": r.per_s,
                "per_cpu_s": r.per_cpu_s,
                "p99_ms": r.p99_ms,
            }
            for r in res
        ]
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
