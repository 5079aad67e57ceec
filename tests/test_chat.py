"""`rapport chat` driven through its stdin, as a person at a terminal would."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

from bot.chat import Chat

CFG = """
practice_name: Clínica Sol
default_tz: America/Sao_Paulo
reminders: {offsets: ["24h", "2h"]}
quiet_hours: {start: "22:00", end: "07:00"}
feedback: {delay: 3h}
clinicians:
  - {id: lima, tz: America/Sao_Paulo, session_minutes: 50, availability: {thu: ["14:00-18:00"], fri: ["09:00-12:00"]}}
"""


def run(tmp_path: Path, lines: list[str], lang: str | None = None) -> str:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CFG)
    out = io.StringIO()
    chat = Chat(out, str(cfg), lang, now=datetime(2026, 12, 1, 12, 0, tzinfo=UTC))  # a Tuesday, 09:00 local
    chat.begin()
    for line in lines:
        if not chat.handle(line):
            break
    return out.getvalue()


def test_a_whole_conversation_in_portuguese(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        [
            "oi",
            "/lang pt_BR",
            "dá pra passar pra quinta às 15h?",
            "1",
            "/advance 2d",
            "/advance 6h",
            "/attended",
            "/advance 4h",
            "5",
            "aprendi a respirar",
            "a pressa",
            "/quit",
            "never read",
        ],
        lang="en",
    )
    assert "Sorry, I'm just an assistant" in out  # in English until the language changes
    assert "Olha os horários livres" in out
    assert "Pronto! Sua sessão ficou pra quinta-feira, 3 de dezembro às 14:50" in out
    assert "como foi pra você a última sessão?" in out
    assert "Obrigado por compartilhar" in out
    assert "never read" not in out


def test_bad_input_says_what_is_wrong_and_goes_on(tmp_path: Path) -> None:
    out = run(tmp_path, ["/advance soon", "/bogus", "/lang", "", "yes"])
    assert "not a duration" in out
    assert "unknown command /bogus" in out
    assert "usage: /lang es" in out
    assert "you're confirmed" in out
