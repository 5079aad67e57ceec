"""The big fuzz run: >= 100,000 generated hostile inputs across every parser that takes outside input.

    .venv/bin/python bench/fuzz_bench.py [--scale 1.0] [--family NAME[,NAME...]] [--seed N]

Each family drives the same check as its test in tests/fuzz/ (no crash, no 500, refusals write
nothing, one-line errors, round trips), with generation only (no shrinking), and counts instead of
stopping: for each family it prints the inputs, the failures, the distinct failure signatures
(exception type, message and the innermost frame in our code) with one sample input each, and the
time. Exit status 1 when anything failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bot import outbox  # noqa: E402
from tests.fuzz import strategies as S  # noqa: E402
from tests.fuzz import test_api, test_config_and_simulate, test_imports, test_telegram, test_text_tools, test_twilio  # noqa: E402
from tests.fuzz.harness import App, live_app  # noqa: E402

outbox.set_testing(True)


@dataclass
class Family:
    name: str
    inputs: int  # at --scale 1
    strategy: st.SearchStrategy[Any]
    check: Callable[..., None]  # called with the drawn tuple, plus the app for web families
    web: bool = False


@dataclass
class Result:
    name: str
    inputs: int = 0
    failures: int = 0
    seconds: float = 0.0
    signatures: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)


def signature(e: BaseException) -> str:
    """Type, first line of the message, and the innermost frame in Rapport's own code."""
    frames = [
        f for f in traceback.extract_tb(e.__traceback__) if str(ROOT) in f.filename and "/.venv/" not in f.filename
    ]
    ours = [f for f in frames if "/tests/" not in f.filename] or frames
    where = f"{Path(ours[-1].filename).relative_to(ROOT)}:{ours[-1].lineno}" if ours else "?"
    msg = (str(e).splitlines() or [""])[0][:120]
    return f"{type(e).__name__} at {where}: {msg}"


def families() -> list[Family]:
    tt, cs, im = test_text_tools, test_config_and_simulate, test_imports
    svc_holder: dict[str, Any] = {}

    def csv_check(data: bytes, skip: bool) -> None:
        im.check_import(svc_holder.setdefault("csv", im.new_service()), data, "schedule.csv", skip)

    def ics_check(data: bytes, skip: bool) -> None:
        im.check_import(svc_holder.setdefault("ics", im.new_service()), data, "feed.ics", skip)

    hostile_raw = st.tuples(cs.config_text(), st.booleans()).flatmap(
        lambda t: (
            S.hostile_bytes(st.just(t[0].encode("utf-8", "surrogatepass")))
            if t[1]
            else st.just(t[0].encode("utf-8", "surrogatepass"))
        )
    )
    return [
        Family(
            "understanding.parse",
            30_000,
            st.tuples(S.text, S.lang_like, tt.contexts, tt.nows, tt.zones),
            tt.check_parse,
        ),
        Family("safety.scan", 25_000, st.tuples(S.text, st.one_of(st.none(), S.lang_like)), tt.check_scan),
        Family(
            "nlu parse lines", 6_000, st.tuples(st.lists(tt.nlu_lines(), min_size=1, max_size=4)), tt.check_nlu_lines
        ),
        Family(
            "safety scan lines",
            6_000,
            st.tuples(st.lists(tt.scan_lines(), min_size=1, max_size=4)),
            tt.check_scan_lines,
        ),
        Family("config.yaml", 8_000, st.tuples(hostile_raw), cs.check_config_file),
        Family("csv import", 2_000, st.tuples(im.csv_file(), st.booleans()), csv_check),
        Family(
            "ics import",
            2_000,
            st.tuples(st.one_of(im.ics_file(), im.ics_file(), S.hostile_bytes()), st.booleans()),
            ics_check,
        ),
        Family("simulate lines", 1_500, st.tuples(st.lists(cs.sim_line(), min_size=1, max_size=6)), cs.check_simulate),
        Family(
            "twilio webhooks",
            8_000,
            st.tuples(
                st.sampled_from(test_twilio.PATHS), test_twilio.twilio_form(), test_twilio.SIGNING, S.hostile_bytes()
            ),
            test_twilio.check_twilio,
            web=True,
        ),
        Family(
            "telegram webhook",
            7_000,
            st.tuples(test_telegram.bodies, test_telegram.SECRET),
            test_telegram.check_telegram,
            web=True,
        ),
        Family("practice API", 5_000, st.tuples(test_api.api_call()).map(lambda t: t[0]), test_api.check_api, web=True),
    ]


@contextmanager
def maybe_app(web: bool) -> Iterator[App | None]:
    if not web:
        yield None
        return
    with tempfile.TemporaryDirectory() as d, live_app(Path(d)) as app:
        yield app


def run(fam: Family, n: int, seed_value: int) -> Result:
    res = Result(fam.name)
    with maybe_app(fam.web) as app:

        @seed(seed_value)
        @settings(
            max_examples=n,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(fam.strategy)
        def body(args: Any) -> None:
            res.inputs += 1
            try:
                if app is not None:
                    fam.check(app, *args)
                else:
                    fam.check(*args)
            except Exception as e:  # count it and go on: the bench reports, the tests stop
                res.failures += 1
                sig = signature(e)
                res.signatures[sig] += 1
                res.samples.setdefault(sig, repr(args)[:400])

        t0 = time.perf_counter()
        body()
        res.seconds = time.perf_counter() - t0
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every family's input count")
    ap.add_argument("--family", default="", help="comma-separated family names (default: all)")
    ap.add_argument("--seed", type=int, default=20261126)
    ap.add_argument("--show", type=int, default=8, help="signatures to print per family")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)  # the app logs every refusal; the counts are the output here
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    wanted = {w.strip() for w in args.family.split(",") if w.strip()}
    results = []
    for fam in families():
        if wanted and fam.name not in wanted:
            continue
        r = run(fam, max(1, int(fam.inputs * args.scale)), args.seed)
        results.append(r)
        print(f"{r.name:<22} inputs {r.inputs:>7}  failures {r.failures:>6}  {r.seconds:8.1f} s", flush=True)
        for sig, count in r.signatures.most_common(args.show):
            print(f"    {count:>6} x {sig}\n           e.g. {r.samples[sig]}", flush=True)
    total = sum(r.inputs for r in results)
    failed = sum(r.failures for r in results)
    secs = sum(r.seconds for r in results)
    print(f"{'TOTAL':<22} inputs {total:>7}  failures {failed:>6}  {secs:8.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
