"""Synthetic appointment files for the import tests and for timing a large import by hand:

.venv/bin/python -m tests.imports.gen 50000 > /tmp/50k.csv
time .venv/bin/rapport import appointments /tmp/50k.csv    # once bot/cli.py has the command
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

HEADER = "appointment_id,client_id,client_name,phone,lang,tz,start,minutes,status\n"


def csv_rows(n: int, *, clients: int | None = None, start: datetime | None = None) -> str:
    """``n`` appointments for ``clients`` clients (default n // 10), one per client per week."""
    clients = clients or max(1, n // 10)
    base = start or datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
    out = [HEADER]
    for i in range(n):
        c = i % clients
        week, slot = divmod(i, clients)
        when = base + timedelta(weeks=week, minutes=60 * (slot % 9))
        out.append(f"E{i:06d},c{c:05d},Client {c},+1555{c:07d},en,America/New_York,{when.isoformat()},50,\n")
    return "".join(out)


if __name__ == "__main__":
    sys.stdout.write(csv_rows(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000))
