"""Recorded conversations: each tests/transcripts/<name>.in.jsonl through `rapport simulate` must give
exactly <name>.out.jsonl. Set RAPPORT_UPDATE_GOLDEN=1 to rewrite the recordings after a deliberate change
(then read the diff: it is the review)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.simulate import Simulator

HERE = Path(__file__).parent / "transcripts"
CASES = sorted(p.name.removesuffix(".in.jsonl") for p in HERE.glob("*.in.jsonl"))


def simulate(inp: Path, config: Path, db_url: str | None = None) -> str:
    out = io.StringIO()
    with inp.open(encoding="utf-8") as f:
        Simulator(out, str(config), db_url=db_url).run(f)
    return out.getvalue()


@pytest.fixture(scope="module")
def empty_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("cfg") / "config.yaml"
    p.write_text("{}\n")
    return p


@pytest.mark.parametrize("case", CASES)
def test_transcript(case: str, empty_config: Path) -> None:
    got = simulate(HERE / f"{case}.in.jsonl", empty_config)
    golden = HERE / f"{case}.out.jsonl"
    if os.environ.get("RAPPORT_UPDATE_GOLDEN") or not golden.exists():
        golden.write_text(got, encoding="utf-8")
    assert got == golden.read_text(encoding="utf-8")


def test_every_output_line_keeps_the_contract(empty_config: Path) -> None:
    required = {
        "message": {"at", "type", "to", "channel", "text", "dialogue", "step"},
        "appointment": {"at", "type", "id", "status", "start"},
        "held": {"at", "type", "to", "reason", "dialogue"},
        "alert": {"at", "type", "id", "client", "level", "to"},
        "alert_acked": {"at", "type", "id", "by"},
        "alert_resolved": {"at", "type", "id", "by"},
        "error": {"at", "type", "line", "message"},
    }
    seen = set()
    for case in CASES:
        for raw in (HERE / f"{case}.out.jsonl").read_text(encoding="utf-8").splitlines():
            line = json.loads(raw)
            kind = line["type"]
            seen.add(kind)
            assert set(line) - {"until"} == required[kind], (case, line)
            if kind == "held":
                assert line["reason"] in {"quiet_hours", "opted_out", "crisis_pause", "past_start", "cap", "no_consent"}
            if kind == "appointment":
                assert line["status"] in {
                    "scheduled",
                    "confirmed",
                    "cancelled",
                    "reschedule_requested",
                    "rescheduled",
                    "attended",
                    "missed",
                }
    assert seen == set(required), set(required) - seen


def test_transcripts_are_in_time_order(empty_config: Path) -> None:
    from datetime import datetime

    for case in CASES:
        times = [
            datetime.fromisoformat(json.loads(r)["at"])
            for r in (HERE / f"{case}.out.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        assert times == sorted(times), case


def test_same_scenario_on_postgres(pg_url: str, empty_config: Path) -> None:
    from tests.conftest import fresh_pg_database

    case = "crisis_mid_feedback.pt_BR"
    got = simulate(HERE / f"{case}.in.jsonl", empty_config, db_url=fresh_pg_database(pg_url))
    assert got == (HERE / f"{case}.out.jsonl").read_text(encoding="utf-8")


def test_cli_contract(tmp_path: Path, empty_config: Path) -> None:
    """The installed command, as hidden scenarios will run it."""
    lines = (HERE / "human_and_help.pt_BR.in.jsonl").read_text(encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "-m", "bot.cli", "simulate", "--config", str(empty_config)],
        input=lines,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == (HERE / "human_and_help.pt_BR.out.jsonl").read_text(encoding="utf-8")


def test_invalid_config_file_stops_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("quiet_hours:\n  start: '9pm'\n")
    r = subprocess.run(
        [sys.executable, "-m", "bot.cli", "simulate", "--config", str(bad)],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "line 2" in r.stderr and "quiet_hours.start" in r.stderr and "9pm" in r.stderr
