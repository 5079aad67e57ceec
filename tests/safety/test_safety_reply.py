"""The crisis reply: language, lines, emergency number, honesty, catalogs and overlays."""

from __future__ import annotations

import string
import unicodedata
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from bot.safety import crisis_reply
from bot.safety.phrases import LOCALES_DIR
from bot.safety.reply import messages_for

LANGS = ("en", "pt_BR", "es", "fr", "de")
COUNTRIES = ("US", "CA", "GB", "IE", "BR", "PT", "ES", "MX", "AR", "CO", "CL", "FR", "DE", "AU")

# Country -> numbers every reply there must carry (priority lines, emergency).
MUST = {
    "US": ["988", "911"], "CA": ["988", "1-800-668-6868", "686868", "911"], "GB": ["116 123", "999"],
    "IE": ["116 123", "112"], "BR": ["188", "192"], "PT": ["1411", "112"], "ES": ["024", "112"],
    "MX": ["800 911 2000", "911"], "AR": ["0800-999-0091", "911"], "CO": ["106", "123"],
    "CL": ["*4141", "131"], "FR": ["3114", "112"], "DE": ["0800 111 0 111", "112"], "AU": ["13 11 14", "000"],
}  # fmt: skip

# A language's own words, to check the reply is in it.
MARKERS = {
    "en": "you",
    "pt_BR": "você",
    "es": "llama",
    "fr": "appelez",
    "de": "Sie",
}


def _has_emoji(text: str) -> bool:
    return any(unicodedata.category(ch) == "So" or 0x1F000 <= ord(ch) <= 0x1FAFF for ch in text)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("country", COUNTRIES)
@pytest.mark.parametrize("about", ["self", "other"])
@pytest.mark.parametrize("staff_told", [True, False])
def test_reply_matrix(lang: str, country: str, about: str, staff_told: bool) -> None:
    text = crisis_reply(lang, country, about=about, staff_told=staff_told)
    msgs = messages_for(lang)
    for number in MUST[country]:
        assert number in text, (country, number, text)
    assert MARKERS[lang].lower() in text.lower()
    assert not _has_emoji(text)
    assert "{" not in text and "}" not in text
    staff = msgs["crisis.reply.staff_told"]
    automated = msgs["crisis.reply.automated"]
    if staff_told:
        assert staff in text and automated not in text
    else:
        assert staff not in text and automated in text
    opener = msgs["crisis.reply.other" if about == "other" else "crisis.reply.self"]
    assert text.startswith(opener)


# The language a country's clients mostly text in: these replies stay within two SMS segments.
HOME = [
    ("en", "US"), ("es", "US"), ("en", "GB"), ("en", "IE"), ("en", "AU"), ("pt_BR", "BR"), ("pt_BR", "PT"),
    ("es", "ES"), ("es", "MX"), ("es", "AR"), ("es", "CO"), ("es", "CL"), ("fr", "FR"), ("de", "DE"),
]  # fmt: skip


@pytest.mark.parametrize(("lang", "country"), HOME)
@pytest.mark.parametrize("about", ["self", "other"])
@pytest.mark.parametrize("staff_told", [True, False])
def test_reply_length(lang: str, country: str, about: str, staff_told: bool) -> None:
    assert len(crisis_reply(lang, country, about=about, staff_told=staff_told)) <= 320


@pytest.mark.parametrize(
    ("lang", "expect"),
    [("pt", "pt_BR"), ("pt-BR", "pt_BR"), ("PT_br", "pt_BR"), ("es-MX", "es"), ("en_US", "en"),
     ("it", "en"), (None, "en"), ("", "en"), ("fr-CA", "fr"), ("de_AT", "de")],
)  # fmt: skip
def test_language_choice_and_fallback(lang: str | None, expect: str) -> None:
    text = crisis_reply(lang, "US", about="self", staff_told=True)
    assert text.startswith(messages_for(expect)["crisis.reply.self"])


def test_spanish_keyword_for_988() -> None:
    assert "AYUDA" in crisis_reply("es", "US", about="self", staff_told=True)
    assert "AYUDA" not in crisis_reply("en", "US", about="self", staff_told=True)


def test_not_around_the_clock_is_said() -> None:
    over = {"BR": {"services": [{"name": "Linha X", "call": "0800 000", "hours": "08:00-20:00", "priority": True}]}}
    text = crisis_reply("pt_BR", "BR", about="self", staff_told=True, overrides=over)
    assert "0800 000" in text and "08:00-20:00" in text and "não é 24h" in text
    text_en = crisis_reply("en", "BR", about="self", staff_told=True, overrides=over)
    assert "(open 08:00-20:00, not 24/7)" in text_en


def test_unconfirmed_hours_are_said() -> None:
    over = {"AR": {"services": [{"name": "CAS", "call": "135", "hours": "unknown", "priority": True}]}}
    assert "(horario sin confirmar)" in crisis_reply("es", "AR", about="self", staff_told=False, overrides=over)


def test_unknown_country_still_gets_an_emergency_number() -> None:
    text = crisis_reply("en", "IT", about="self", staff_told=False)
    assert "112" in text and "local emergency number" in text


def test_broken_override_falls_back_to_shipped_lines() -> None:
    text = crisis_reply("pt_BR", "BR", about="self", staff_told=True, overrides={"BR": {"services": "nope"}})
    assert "188" in text and "192" in text


def test_with_no_priority_line_the_first_24h_line_is_used() -> None:
    over = {
        "BR": {
            "services": [
                {"name": "Dia", "call": "111", "hours": "09:00-17:00"},
                {"name": "Noite e dia", "call": "222", "hours": "24/7"},
            ]
        }
    }
    text = crisis_reply("pt_BR", "BR", about="self", staff_told=True, overrides=over)
    assert "222" in text and "111" not in text


def _placeholders(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_catalogs_are_complete_and_placeholders_match() -> None:
    en = messages_for("en")
    assert {"crisis.reply.self", "crisis.reply.other", "crisis.reply.staff_told", "crisis.reply.not_24h"} <= set(en)
    for lang in LANGS:
        path = LOCALES_DIR / lang / "LC_MESSAGES" / "crisis.po"
        with path.open("rb") as fh:
            cat = read_po(fh)
        assert not cat.fuzzy
        msgs = messages_for(lang)
        assert set(msgs) == set(en), lang
        for mid, text in msgs.items():
            assert _placeholders(text) == _placeholders(en[mid]), (lang, mid)
            assert not _has_emoji(text)


def _write_po(base: Path, lang: str, messages: dict[str, str]) -> None:
    cat = Catalog(locale=lang, domain="crisis")
    for mid, text in messages.items():
        cat.add(mid, text)
    path = base / lang / "LC_MESSAGES" / "crisis.po"
    path.parent.mkdir(parents=True)
    with path.open("wb") as fh:
        write_po(fh, cat)


def test_practice_overlay_later_dirs_win(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _write_po(
        a, "en", {"crisis.reply.self": "Thanks for telling us, Sam.", "crisis.reply.staff_told": "Dr Lee is on call."}
    )
    _write_po(b, "en", {"crisis.reply.self": "We hear you."})
    text = crisis_reply("en", "US", about="self", staff_told=True, catalog_dirs=[a, b])
    assert text.startswith("We hear you.")  # b wins over a
    assert "Dr Lee is on call." in text  # a still supplies what b lacks
    assert "988" in text  # the rest comes from the shipped catalog


def test_overlay_adds_a_language(tmp_path: Path) -> None:
    _write_po(
        tmp_path,
        "it",
        {"crisis.reply.self": "Grazie di avermelo detto.", "crisis.reply.emergency": "Chiama il {emergency}."},
    )
    text = crisis_reply("it", "IT", about="self", staff_told=False, catalog_dirs=[tmp_path])
    assert text.startswith("Grazie di avermelo detto.")
    assert "112" in text  # messages it lacks come from English


def test_overlay_with_broken_placeholder_falls_back(tmp_path: Path) -> None:
    _write_po(tmp_path, "en", {"crisis.reply.emergency": "Call {emergncy_number} now."})
    text = crisis_reply("en", "US", about="self", staff_told=True, catalog_dirs=[tmp_path])
    assert "call 911" in text


def test_unreadable_overlay_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "en" / "LC_MESSAGES" / "crisis.po"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'msgid "crisis.reply.self"\nmsgstr "unterminated\n\x00\xff')
    text = crisis_reply("en", "US", about="self", staff_told=True, catalog_dirs=[tmp_path, tmp_path / "missing"])
    assert "988" in text and "911" in text
