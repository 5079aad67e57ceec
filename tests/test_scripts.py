"""Catalogs, overlays and `rapport scripts check`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

from bot.config import parse_config
from bot.engine import load_dialogues
from bot.langs import SCRIPT_LANGS
from bot.scripts import Scripts
from bot.scripts_check import check, segments


def write_catalog(root: Path, lang: str, messages: dict[str, str], domain: str = "messages") -> None:
    cat = Catalog(locale=lang, domain=domain)
    for k, v in messages.items():
        cat.add(k, v)
    p = root / lang / "LC_MESSAGES" / f"{domain}.po"
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("wb") as f:
        write_po(f, cat)


def test_shipped_scripts_pass_the_check() -> None:
    cfg = parse_config({})
    findings = check(cfg, None)
    assert [f.line() for f in findings if f.level == "error"] == []


def test_every_dialogue_message_exists_in_every_shipped_language() -> None:
    s = Scripts()
    ids = {m for d in load_dialogues().values() for m in d.message_ids() if not m.startswith("crisis.")}
    for lang in SCRIPT_LANGS:
        assert ids <= set(s.texts[lang]), (lang, ids - set(s.texts[lang]))


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("en", "Thursday, Dec 3 at 3:00 PM"),
        ("pt_BR", "quinta-feira, 3 de dezembro às 15:00"),
        ("es", "jueves 3 de diciembre a las 15:00"),
    ],
)
def test_times_in_the_clients_locale_and_zone_without_narrow_spaces(lang: str, expected: str) -> None:
    when = datetime(2026, 12, 3, 18, 0, tzinfo=ZoneInfo("UTC"))
    got = Scripts().format_when(lang, when, "America/Sao_Paulo")
    assert got == expected
    assert "\u202f" not in got and "\xa0" not in got


def test_a_practice_overlay_wins_id_by_id_without_touching_ours(tmp_path: Path) -> None:
    write_catalog(tmp_path, "pt_BR", {"reminder.confirmed": "Fechado, {name}! Te esperamos {when}."})
    write_catalog(tmp_path, "it", {"help.text": "Ciao! Sono l'assistente di {practice}."})
    s = Scripts([tmp_path])
    when = datetime(2026, 12, 3, 18, 0, tzinfo=ZoneInfo("UTC"))
    assert s.render("pt_BR", "reminder.confirmed", {"name": "Ana", "when": when}, "America/Sao_Paulo").startswith(
        "Fechado, Ana! Te esperamos quinta-feira"
    )
    assert s.text("pt_BR", "reminder.ask") == Scripts().text("pt_BR", "reminder.ask")
    assert "it" in s.languages()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("Reply CANCEL to cancel your session on {when}.", "carriers treat it as opt-out"),
        ("Oi {name}, como vai a terapia para a sua depressão?", "clinical word"),
        ("Hi {name}! {practice} {when} " + "x" * 600, "SMS segments"),
        ("Hi {nome}, see you {when}.", "placeholders differ"),
    ],
)
def test_check_flags_bad_texts(tmp_path: Path, text: str, needle: str) -> None:
    write_catalog(tmp_path, "en", {"reminder.confirmed": text})
    cfg = parse_config({"locales_dir": str(tmp_path)})
    lines = [f.line() for f in check(cfg, None)]
    assert any("en:reminder.confirmed" in line and needle in line for line in lines), lines


def test_check_reports_a_missing_language(tmp_path: Path) -> None:
    cfg = parse_config({"languages": ["en", "it"]})
    lines = [f.line() for f in check(cfg, None)]
    assert any(line.startswith("error: it:") for line in lines)


@pytest.mark.parametrize(
    ("text", "encoding", "count"),
    [
        ("Hello", "GSM-7", 1),
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("{" * 80, "GSM-7", 1),  # extension characters cost two
        ("{" * 81, "GSM-7", 2),
        ("Olá, sessão às 15h", "UCS-2", 1),  # ã and õ are not GSM-7
        ("ã" * 71, "UCS-2", 2),
        ("🙂" * 35, "UCS-2", 1),  # surrogate pairs: two units each
        ("🙂" * 36, "UCS-2", 2),
    ],
)
def test_segments(text: str, encoding: str, count: int) -> None:
    assert segments(text) == (encoding, count)


def test_the_dialogue_diagrams_are_current() -> None:
    from bot.scripts_diagram import document

    doc = Path(__file__).parents[1] / "docs" / "dialogues.md"
    assert doc.read_text(encoding="utf-8") == document(), "run: rapport scripts diagram > docs/dialogues.md"
