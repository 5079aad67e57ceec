from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import ConfigError, load_config, merge


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_shipped_config_is_valid() -> None:
    cfg, path = load_config(Path(__file__).parents[1] / "config.yaml")
    assert path is not None
    assert cfg.reminders.offsets == [timedelta(hours=24), timedelta(hours=2)]
    assert cfg.languages == ["en", "pt_BR", "es"]


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAPPORT_CONFIG", raising=False)
    cfg, path = load_config(None)
    assert path is None
    assert cfg.quiet_hours.start == "21:00"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("reminders:\n  offsets: [24h, 2hours]\n", ["line 2", "reminders.offsets.1", "2hours"]),
        ("quiet_hours:\n  start: '25:00'\n", ["line 2", "quiet_hours.start", "25:00", "HH:MM"]),
        ("practice_name: X\nreminderz:\n  offsets: [1h]\n", ["line 2", "unknown key", "reminderz"]),
        ("limits:\n  per_day: -1\n", ["line 2", "limits.per_day", "-1"]),
        ("crisis:\n  oncall:\n    - {name: a}\n    - {name: a}\n", ["crisis.oncall", "unique"]),
        ("clinicians:\n  - id: x\n    tz: Mars/Base\n", ["line 3", "clinicians.0.tz", "Mars/Base"]),
        ("clinicians:\n  - id: x\n    availability: {mon: ['12:00-09:00']}\n", ["clinicians.0.availability"]),
        ("database_url: postgresql://u:secret@h/db\n", ["database_url", "RAPPORT_DATABASE_URL"]),
        ("nlu: {backend: gpt}\n", ["nlu.backend", "gpt"]),
        ("default_country: Brazil\n", ["default_country", "Brazil"]),
        ("reminders: [1, 2\n", ["line", "not valid YAML"]),
        ("- just\n- a list\n", ["mapping"]),
    ],
)
def test_invalid_config_names_key_value_and_line(tmp_path: Path, text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    msg = str(e.value)
    assert "\n" not in msg
    for part in expected:
        assert part in msg, (part, msg)


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")


def test_env_var_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write(tmp_path, "practice_name: From Env\n")
    monkeypatch.setenv("RAPPORT_CONFIG", str(p))
    cfg, _ = load_config(None)
    assert cfg.practice_name == "From Env"


def test_overlay_merges_mappings_and_replaces_lists(tmp_path: Path) -> None:
    p = write(tmp_path, "reminders: {offsets: [48h, 2h], answer_timeout: 6h}\nlanguages: [en, es]\n")
    cfg, _ = load_config(p, {"reminders": {"offsets": ["1h"]}, "languages": ["pt"]})
    assert cfg.reminders.offsets == [timedelta(hours=1)]
    assert cfg.reminders.answer_timeout == timedelta(hours=6)
    assert cfg.languages == ["pt_BR"]


def test_merge_is_pure() -> None:
    base = {"a": {"b": 1, "c": [1]}}
    out = merge(base, {"a": {"c": [2]}})
    assert out == {"a": {"b": 1, "c": [2]}} and base == {"a": {"b": 1, "c": [1]}}
