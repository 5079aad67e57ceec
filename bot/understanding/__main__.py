"""``python -m bot.understanding`` runs ``rapport nlu parse`` (stdin -> stdout JSON lines)."""

from __future__ import annotations

import sys

from bot.understanding import run_parse_cli, warm_up

if __name__ == "__main__":
    warm_up()
    sys.exit(run_parse_cli(sys.stdin, sys.stdout))
