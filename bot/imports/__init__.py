"""`rapport import appointments FILE`: load a practice's schedule from CSV or iCalendar.

Formats and columns: docs/records.md. ``import_file`` is the library entry point (the admin
pages call it); ``run_import`` is the command line around it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from sqlmodel import Session, select

from bot.config import Config
from bot.imports.apply import ImportReport, Plan, Progress, apply, count_plan, plan
from bot.imports.csvfile import FileError, read_csv
from bot.imports.icsfile import Lookup, read_ics
from bot.imports.recurrence import HORIZON, Window
from bot.imports.rows import Problem, RawRow, e164
from bot.service import Service
from storage.tables import Client

__all__ = ["FileError", "ImportReport", "Problem", "detect_format", "import_bytes", "import_file", "run_import"]

MAX_BYTES = 200 * 1024 * 1024


def detect_format(name: str, data: bytes) -> str:
    low = name.lower()
    if low.endswith((".ics", ".ical", ".ifb", ".icalendar")):
        return "ics"
    if low.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    head = data[:64].lstrip(b"\xef\xbb\xbf \r\n\t").upper()
    return "ics" if head.startswith(b"BEGIN:VCALENDAR") else "csv"


def _lookup(svc: Service) -> Lookup:
    def find(phone: str | None, telegram: str | None) -> str | None:
        with Session(svc.db) as s:
            normalized = e164(phone) if phone else None
            if normalized:
                c = s.exec(select(Client).where(Client.phone == normalized)).first()
                if c is not None:
                    return c.id
            if telegram:
                c = s.exec(select(Client).where(Client.telegram == telegram)).first()
                if c is not None:
                    return c.id
        return None

    return find


def import_bytes(
    svc: Service,
    data: bytes,
    *,
    name: str,
    source: str | None = None,
    skip_bad: bool = False,
    dry_run: bool = False,
    prune: bool = False,
    now: datetime | None = None,
    progress: Progress | None = None,
    horizon: timedelta = HORIZON,
) -> ImportReport:
    """Import one file's bytes. Raises FileError when the file as a whole is unusable.

    ``horizon``: how far ahead recurring iCalendar events are expanded into sessions."""
    now = now or datetime.now(UTC)
    fmt = detect_format(name, data)
    src = source or f"{fmt}:{Path(name).name}"
    report = ImportReport(source=src, format=fmt, dry_run=dry_run)
    started = time.monotonic()
    raws: list[RawRow]
    series: set[str] = set()
    window = Window.around(now, horizon)
    if fmt == "ics":
        ics = read_ics(data, _lookup(svc), window)
        raws, pre, report.ignored, report.total = ics.rows, ics.problems, ics.ignored, ics.total
        series = ics.series
    else:
        csvf = read_csv(data)
        raws, pre, report.total = csvf.rows, csvf.problems, csvf.total
        if csvf.ignored_columns:
            report.notes.append(f"ignored column(s): {', '.join(csvf.ignored_columns)}")
    p: Plan = plan(svc, raws, src, now, prune=prune, progress=progress, problems=pre, series=series, window=window)
    report.problems = p.problems
    if p.prune_blocked:
        report.notes.append(f"--prune: {p.prune_blocked}")
    if report.problems and not skip_bad:
        report.aborted = True
        report.seconds = time.monotonic() - started
        return report
    if dry_run:
        count_plan(p, report)
    else:
        apply(svc, p, src, now, report, progress)
        report.applied = True
    report.seconds = time.monotonic() - started
    return report


def import_file(
    svc: Service,
    path: Path,
    *,
    source: str | None = None,
    skip_bad: bool = False,
    dry_run: bool = False,
    prune: bool = False,
    now: datetime | None = None,
    progress: Progress | None = None,
    horizon: timedelta = HORIZON,
) -> ImportReport:
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise FileError(1, f"the file is {size // 2**20} MB; split it (the limit is {MAX_BYTES // 2**20} MB)")
    return import_bytes(
        svc,
        path.read_bytes(),
        name=path.name,
        source=source,
        skip_bad=skip_bad,
        dry_run=dry_run,
        prune=prune,
        now=now,
        progress=progress,
        horizon=horizon,
    )


class ProgressBar:
    """A one-line progress bar on a terminal; silent when the stream is not a TTY."""

    def __init__(self, stream: TextIO, width: int = 30):
        self.stream = stream
        self.width = width
        self.active = bool(getattr(stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self.drawn = False

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.active or total <= 0:
            return
        frac = min(1.0, done / total)
        filled = int(self.width * frac)
        rate = done / max(1e-6, time.monotonic() - self.started)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{phase:<10} [{bar}] {done}/{total} {rate:,.0f} rows/s")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def run_import(
    cfg: Config,
    config_path: Path | None,
    file: str,
    skip_bad: bool,
    dry_run: bool,
    prune: bool,
    out: TextIO,
    err: TextIO,
    source: str | None = None,
    horizon: timedelta = HORIZON,
) -> int:
    """Exit status: 0 imported (or dry run clean), 1 bad rows and nothing imported, 2 unusable file."""
    from storage.db import make_engine, resolve_url
    from storage.migrate import upgrade_url

    path = Path(file)
    if not path.is_file():
        print(f"rapport import: no such file: {file}", file=err)
        return 2
    url = resolve_url(cfg.database_url, config_path)
    upgrade_url(url)
    db = make_engine(url)
    try:
        svc = Service(cfg, db, config_dir=config_path.parent if config_path else None)
        bar = ProgressBar(err)
        try:
            report = import_file(
                svc,
                path,
                source=source,
                skip_bad=skip_bad,
                dry_run=dry_run,
                prune=prune,
                progress=bar,
                horizon=horizon,
            )
        except FileError as e:
            bar.close()
            print(f"{path.name}: {e}; nothing imported", file=err)
            return 2
        bar.close()
    finally:
        db.dispose()
    for pr in report.problems:
        print(f"{path.name}: {pr}", file=err)
    for pr in report.ignored:
        print(f"{path.name}: line {pr.line}: ignored: {pr.message}", file=err)
    for note in report.notes:
        print(f"{path.name}: {note}", file=err)
    print(summary(report), file=out)
    if report.problems and not skip_bad:
        return 1
    return 0


def summary(r: ImportReport) -> str:
    if r.aborted:
        n = len(r.problems)
        what = "nothing would be imported" if r.dry_run else "nothing imported"
        return f"{r.source}: {n} bad row{'s' if n != 1 else ''} of {r.total}: {what} (fix them, or use --skip-bad)"
    verb = "would import" if r.dry_run else "imported"
    parts = [f"{v} {k}" for k, v in r.counts().items() if v]
    clients = []
    if r.clients_created:
        clients.append(f"{r.clients_created} new client{'s' if r.clients_created != 1 else ''}")
    if r.clients_updated:
        clients.append(f"{r.clients_updated} client{'s' if r.clients_updated != 1 else ''} updated")
    line = f"{r.source}: {verb} {r.total} row{'s' if r.total != 1 else ''}: " + (", ".join(parts) or "nothing to do")
    if clients:
        line += "; " + ", ".join(clients)
    if r.problems:
        line += f"; {len(r.problems)} bad row{'s' if len(r.problems) != 1 else ''} skipped"
    if r.ignored:
        line += f"; {len(r.ignored)} event{'s' if len(r.ignored) != 1 else ''} ignored"
    if not r.dry_run and r.seconds > 0:
        line += f" ({r.total / r.seconds:,.0f} rows/s)"
    return line
