"""Import throughput: a first import of a large CSV and a re-import with 5% of the rows changed.

    .venv/bin/python bench/import_bench.py                       # 10,000 and 50,000 rows, SQLite
    .venv/bin/python bench/import_bench.py --pg URL              # the same on PostgreSQL too
    .venv/bin/python bench/import_bench.py --rows 10000 --per-row   # the row-by-row path, to compare

Each run starts from an empty, migrated database (a fresh SQLite file; on PostgreSQL, a fresh
schema dropped afterwards). Prints one line per run: rows, database, phase, wall seconds,
rows/s, this process's CPU seconds (on a shared machine wall time includes waiting for a core;
with SQLite, CPU time is the work itself) and what the import did. The files come from
tests/imports/gen.py (one client per ten rows).
"""

from __future__ import annotations

import argparse
import importlib
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import parse_config
from bot.imports import import_bytes
from bot.service import Service
from storage.db import make_engine
from storage.migrate import upgrade_url
from tests.imports.gen import csv_rows

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CONFIG = {"default_tz": "America/New_York", "reminders": {"offsets": ["48h", "2h"]}}


def changed(csv: str, share: float = 0.05) -> str:
    """Every 1/share-th row moved by an hour: a nightly feed where 5% of the sessions moved."""
    lines = csv.splitlines(keepends=True)
    step = round(1 / share)
    out = [lines[0]]
    for i, line in enumerate(lines[1:]):
        if i % step == 0:
            f = line.split(",")
            f[6] = (datetime.fromisoformat(f[6]) + timedelta(hours=1)).isoformat()
            line = ",".join(f)
        out.append(line)
    return "".join(out)


def run(url: str, label: str, n: int) -> None:
    upgrade_url(url)
    db = make_engine(url)
    svc = Service(parse_config(CONFIG), db)
    first = csv_rows(n).encode()
    for phase, data in (("first", first), ("re-import 5%", changed(first.decode()).encode())):
        t0, c0 = time.perf_counter(), time.process_time()
        r = import_bytes(svc, data, name="bench.csv", now=NOW)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert not r.problems, r.problems[:3]
        did = ", ".join(f"{k} {v}" for k, v in r.counts().items() if v)
        print(
            f"{n:>7,} rows  {label:<10} {phase:<13} {dt:8.2f} s  {n / dt:9,.0f} rows/s"
            f"  (this process's CPU {cpu:.2f} s; {did})",
            flush=True,
        )
    db.dispose()


def pg_schema_url(base: str) -> tuple[str, str]:
    schema = f"bench_{secrets.token_hex(4)}"
    eng = make_engine(base)
    with eng.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng.dispose()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}", schema


def drop_schema(base: str, schema: str) -> None:
    eng = make_engine(base)
    with eng.begin() as c:
        c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    eng.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, action="append", help="rows per file (repeatable; default 10000 and 50000)")
    ap.add_argument("--pg", default=None, help="a PostgreSQL URL to run on as well")
    ap.add_argument("--per-row", action="store_true", help="the row-by-row path (one transaction per row)")
    args = ap.parse_args()
    if args.per_row:
        # ``bot.imports.apply`` the module (the package exports a function of the same name).
        setattr(importlib.import_module("bot.imports.apply"), "BATCH", False)  # noqa: B010
    sizes = args.rows or [10_000, 50_000]
    path = "per-row" if args.per_row else "batch"
    print(f"import bench ({path} path), reminders at 48h and 2h before each session")
    for n in sizes:
        with tempfile.TemporaryDirectory() as d:
            run(f"sqlite:///{Path(d) / 'bench.db'}", "sqlite", n)
        if args.pg:
            url, schema = pg_schema_url(args.pg)
            try:
                run(url, "postgresql", n)
            finally:
                drop_schema(args.pg, schema)


if __name__ == "__main__":
    main()
