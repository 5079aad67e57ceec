"""The crisis resource directory: shipped data, country lookup, practice overrides."""

from __future__ import annotations

from typing import Any

import pytest

from bot.safety import country_for, emergency_number, resources_for
from bot.safety.resources import (
    FALLBACK_EMERGENCY,
    ResourceError,
    priority_resources,
    shipped_table,
)

REQUIRED = ("US", "CA", "GB", "IE", "BR", "PT", "ES", "MX", "AR", "CO", "CL", "FR", "DE", "AU")

# From the research notes (/work/shared/crisis_resources.md).
EXPECTED_EMERGENCY = {
    "US": "911", "CA": "911", "GB": "999", "IE": "112", "BR": "192", "PT": "112", "ES": "112",
    "MX": "911", "AR": "911", "CO": "123", "CL": "131", "FR": "112", "DE": "112", "AU": "000",
}  # fmt: skip
EXPECTED_PRIORITY_CALL = {
    "US": ["988"], "CA": ["988", "1-800-668-6868"], "GB": ["116 123"], "IE": ["116 123"], "BR": ["188"],
    "PT": ["1411"], "ES": ["024"], "MX": ["800 911 2000"], "AR": ["0800-999-0091"], "CO": ["106"],
    "CL": ["*4141"], "FR": ["3114"], "DE": ["0800 111 0 111"], "AU": ["13 11 14"],
}  # fmt: skip


@pytest.mark.parametrize("country", REQUIRED)
def test_every_required_country_is_complete(country: str) -> None:
    entry = shipped_table()[country]
    assert entry["emergency_verified"] in ("V", "V2", "U")
    assert entry["emergency_source"]
    assert emergency_number(country) == EXPECTED_EMERGENCY[country]
    lines = resources_for(country)
    assert lines
    for r in lines:
        assert r.name and (r.call or r.text_number)
        assert r.verified in ("V", "V2", "U")
        assert r.source and all(s.startswith(("http://", "https://")) for s in r.source)
        assert r.languages
        assert r.hours
    assert [r.call for r in priority_resources(lines)] == EXPECTED_PRIORITY_CALL[country]


def test_unverified_entries_are_marked() -> None:
    co = {r.id: r for r in resources_for("CO")}
    assert co["co_192"].verified == "U"
    ar = {r.id: r for r in resources_for("AR")}
    assert not ar["ar_cas"].hours_known  # hours not confirmed in the notes
    pt = {r.id: r for r in resources_for("PT")}
    assert not pt["pt_sos_voz_amiga"].always_open and pt["pt_sos_voz_amiga"].hours_known


def test_two_priority_services_are_shown_together() -> None:
    ca = priority_resources(resources_for("CA"))
    assert {r.audience for r in ca} == {"all", "youth"}


@pytest.mark.parametrize(
    ("client_country", "phone", "default", "expected"),
    [
        ("BR", "+14155550123", "US", "BR"),  # the client record wins
        ("br", None, "US", "BR"),
        (" uk ", None, "US", "GB"),
        (None, "+5511987654321", "US", "BR"),
        (None, "+351912345678", "US", "PT"),
        (None, "+14165550123", "US", "CA"),  # +1 Toronto number
        (None, "+12125550123", "CA", "US"),
        (None, "+442079460000", "US", "GB"),
        ("", "not a number", "es", "ES"),
        ("Brazil", "12345", "MX", "MX"),  # neither is usable
        (None, "+80012345678", "AU", "AU"),  # non-geographic (001) falls through
        (None, "", "fr", "FR"),
    ],
)
def test_country_for(client_country: str | None, phone: str | None, default: str, expected: str) -> None:
    assert country_for(client_country, phone, default) == expected


def test_country_for_needs_a_valid_default() -> None:
    with pytest.raises(ValueError, match="default_country"):
        country_for(None, None, "Narnia")


def test_unknown_country() -> None:
    assert resources_for("IT") == []
    assert emergency_number("IT") == FALLBACK_EMERGENCY
    assert resources_for("??") == []


OVERRIDE_BR: dict[str, Any] = {
    "BR": {
        "services": [
            {
                "name": "Linha da Clínica",
                "call": "+55 11 4000-0000",
                "hours": "08:00-20:00",
                "languages": ["pt"],
                "priority": True,
                "verified": "V",
                "source": "https://example.org",
            }
        ]
    }
}


def test_override_replaces_services_and_keeps_the_rest() -> None:
    lines = resources_for("BR", OVERRIDE_BR)
    assert [r.name for r in lines] == ["Linha da Clínica"]
    assert not lines[0].always_open and lines[0].hours_known
    assert emergency_number("BR", OVERRIDE_BR) == "192"  # not overridden: shipped value stays
    assert [r.call for r in resources_for("BR")] == ["188"]  # shipped data untouched


def test_override_adds_a_country_and_keys_are_case_insensitive() -> None:
    over = {
        "it": {
            "emergency": "112",
            "services": [{"name": "Telefono Amico", "call": "02 2327 2327", "hours": "10:00-24:00"}],
        }
    }
    lines = resources_for("IT", over)
    assert [r.call for r in lines] == ["02 2327 2327"]
    assert lines[0].verified == "U"  # nothing said: unverified
    assert emergency_number("IT", over) == "112"


def test_override_emergency_only() -> None:
    assert emergency_number("US", {"US": {"emergency": "911 (or campus 555-0100)"}}) == "911 (or campus 555-0100)"
    assert resources_for("US", {"US": {"emergency": "911"}})[0].call == "988"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"BR": {"services": [{"call": "188"}]}}, "name"),
        ({"BR": {"services": [{"name": "X"}]}}, "call or a text"),
        ({"BR": {"services": [{"name": "X", "call": "1", "verified": "maybe"}]}}, "verified"),
        ({"BR": {"services": [{"name": "X", "call": "1", "audience": "cats"}]}}, "audience"),
        ({"BR": {"services": [{"name": "X", "call": "1", "priority": "yes"}]}}, "priority"),
        ({"BR": {"services": [{"name": "X", "text": {"keyword": "HI"}}]}}, "text.number"),
        ({"BR": {"services": "188"}}, "services"),
        ({"BR": ["188"]}, "crisis.resources.BR"),
    ],
)
def test_bad_override_names_the_key(override: dict[str, Any], message: str) -> None:
    with pytest.raises(ResourceError, match=message):
        resources_for("BR", override)


def test_keyword_by_language() -> None:
    us = resources_for("US")[0]
    assert us.keyword_for("es") == "AYUDA"
    assert us.keyword_for("es_MX") == "AYUDA"
    assert us.keyword_for("en") is None
    ctl = {r.id: r for r in resources_for("US")}["us_crisis_text_line"]
    assert ctl.keyword_for("en") == "HOME" and ctl.keyword_for("es") == "HOLA"
