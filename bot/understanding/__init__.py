"""Understanding client replies: ``parse(text, lang, context, now, tz) -> Parse``.

Intents: confirm, cancel, reschedule, opt_out, opt_in, help, human, rating, other. Contexts (what
the bot is waiting for): reminder, missed, rating, feedback_text, reschedule_time, none.

- ``now`` is timezone-aware; dates resolve in ``tz`` relative to it. ``when`` is
  ``"YYYY-MM-DDTHH:MM"`` (a day and a time), ``"YYYY-MM-DD"`` (a day, also "friday morning"), or
  None (a time alone, "next week", two candidate days).
- ``lang`` is any tag ``bot.langs.normalize_lang`` understands; an unknown one tries en, pt_BR, es.
- Backends: ``builtin`` (default) and ``rasa`` (``make_parser("rasa", url)``), which falls back
  to builtin when the server errs or is slow.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TextIO

from bot.understanding import builtin
from bot.understanding.cli import run as _run_cli
from bot.understanding.lexicon import LANGS, load
from bot.understanding.rasa import export_project, make_rasa_parser
from bot.understanding.types import CONTEXTS, INTENTS, Parse

__all__ = [
    "CONTEXTS",
    "INTENTS",
    "Parse",
    "export_rasa_project",
    "make_parser",
    "parse",
    "run_parse_cli",
    "warm_up",
]

ParserFn = Callable[[str, str, str, datetime, str], Parse]


def parse(text: str, lang: str, context: str, now: datetime, tz: str) -> Parse:
    """Understand one client reply with the builtin backend."""
    return builtin.parse(text, lang, context, now, tz)


def warm_up(*, freeze_gc: bool = True) -> None:
    """Load every language's data and dateparser now, so the first real parse is fast.

    With ``freeze_gc`` (the default) the objects alive at this point (compiled patterns, dateparser's
    language tables, everything loaded at start-up) move to the garbage collector's permanent
    generation: full collections then stop re-walking them, which removes millisecond pauses from
    the parse latency tail. Call it once at start-up, after configuration is loaded.
    """
    import gc
    from datetime import UTC

    from bot.understanding.when import warm_dateparser

    for lang in LANGS:
        load(lang)
    warm_dateparser()
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    for text, lang in (("yes, see you tomorrow at 3pm", "en"), ("quinta às 15h", "pt_BR"), ("el jueves", "es")):
        builtin.parse(text, lang, "reminder", now, "UTC")
    if freeze_gc:
        gc.collect()
        gc.freeze()


def make_parser(backend: str = "builtin", rasa_url: str | None = None, timeout_s: float = 0.3) -> ParserFn:
    """A parse function for the configured backend (``nlu.backend``: ``builtin`` or ``rasa``)."""
    if backend == "builtin":
        return parse
    if backend == "rasa":
        if not rasa_url:
            raise ValueError("nlu.backend rasa needs nlu.rasa_url")
        return make_rasa_parser(rasa_url, timeout_s)
    raise ValueError(f"unknown nlu backend {backend!r} (expected 'builtin' or 'rasa')")


def run_parse_cli(stdin: TextIO, stdout: TextIO, parser: ParserFn | None = None) -> int:
    """``rapport nlu parse``: JSON lines on stdin -> JSON lines on stdout (DESIGN §5)."""
    return _run_cli(stdin, stdout, parser or parse)


def export_rasa_project(dest: Path) -> None:
    """Write a Rasa project (config.yml, domain.yml, data/nlu.yml) from the locale examples."""
    export_project(dest)
