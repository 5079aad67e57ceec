"""``rapport nlu parse`` contract (DESIGN §5) through ``run_parse_cli`` and ``python -m``."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.understanding import run_parse_cli

REPO = Path(__file__).resolve().parents[2]


def run(lines: list[str]) -> list[dict[str, object]]:
    out = io.StringIO()
    assert run_parse_cli(io.StringIO("\n".join(lines) + "\n"), out) == 0
    return [json.loads(x) for x in out.getvalue().splitlines()]


def line(**kw: object) -> str:
    base: dict[str, object] = {"id": "x", "text": "yes", "lang": "en", "context": "reminder",
                               "now": "2026-03-09T14:20", "tz": "America/Sao_Paulo"}
    base.update(kw)
    return json.dumps(base, ensure_ascii=False)


def test_contract_fields_and_values() -> None:
    got = run([
        line(id="a", text="quinta às 15h", lang="pt", context="reschedule_time"),
        line(id="b", text="4", lang="pt-BR", context="rating"),
        line(id="c", text="no, I'm coming"),
    ])
    assert [set(g) for g in got] == [{"id", "intent", "confidence", "when", "rating"}] * 3
    assert got[0] == {**got[0], "id": "a", "intent": "reschedule", "when": "2026-03-12T15:00", "rating": None}
    assert got[1] == {**got[1], "id": "b", "intent": "rating", "when": None, "rating": 4}
    assert got[2]["intent"] == "confirm"
    assert all(isinstance(g["confidence"], float) for g in got)


def test_now_is_local_to_tz() -> None:
    # 23:30 on Monday in São Paulo (already Tuesday in UTC): "amanhã" is Tuesday.
    got = run([line(text="amanhã", lang="pt", context="reschedule_time", now="2026-03-09T23:30")])
    assert got[0]["when"] == "2026-03-10"


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("{not json", "malformed"),
        ("[1, 2]", "object"),
        (json.dumps({"id": 7, "lang": "en", "now": "2026-03-09T10:00", "tz": "UTC"}), "text"),
        (line(id=8, tz="Mars/Olympus"), "time zone"),
        (line(id=9, now="next tuesday"), "now"),
        (line(id=10, context="dinner"), "context"),
        (line(id=11, text=12), "text"),
    ],
)
def test_bad_line_gives_error_and_run_goes_on(bad: str, why: str) -> None:
    got = run([line(id="before"), bad, line(id="after", text="cancel")])
    assert len(got) == 3
    assert got[0]["intent"] == "confirm"
    assert set(got[1]) == {"id", "error"}
    assert why in str(got[1]["error"])
    assert got[2] == {**got[2], "id": "after", "intent": "cancel"}


def test_error_line_keeps_the_id_when_there_is_one() -> None:
    got = run([line(id="z9", tz="Nowhere/Land")])
    assert got[0]["id"] == "z9" and "error" in got[0]


def test_odd_texts_get_answers_not_errors() -> None:
    got = run([
        line(id=1, text=""),
        line(id=2, text="🙂🙂🙂"),
        line(id=3, text="x" * 10_000),
        line(id=4, text="\u0000\u0007ok\u001b"),
        line(id=5, lang="klingon", text="STOP"),
    ])
    assert [g.get("intent") for g in got] == ["other", "other", "other", "confirm", "opt_out"]


def test_blank_lines_are_skipped_and_output_is_flushed_per_line() -> None:
    class Recorder(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1
            super().flush()

    out = Recorder()
    run_parse_cli(io.StringIO(line(id=1) + "\n\n" + line(id=2) + "\n"), out)
    assert len(out.getvalue().splitlines()) == 2
    assert out.flushes >= 2


def test_module_entry_point_streams_line_by_line() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.understanding"], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, encoding="utf-8",
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line(id="s1", text="STOP") + "\n")
    proc.stdin.flush()
    first = json.loads(proc.stdout.readline())  # answered before stdin is closed
    assert first["intent"] == "opt_out"
    proc.stdin.write("oops\n")
    proc.stdin.close()
    rest = proc.stdout.read()
    assert proc.wait(timeout=30) == 0
    assert "error" in json.loads(rest.splitlines()[0])
