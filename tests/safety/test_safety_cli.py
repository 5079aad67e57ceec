"""``rapport safety scan``: the JSONL contract of DESIGN.md §5."""

from __future__ import annotations

import io
import json

import pytest

from bot.safety import run_scan_cli


class _FlushCounter(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0
        self.lines_at_flush: list[int] = []

    def flush(self) -> None:
        self.flushes += 1
        self.lines_at_flush.append(self.getvalue().count("\n"))
        super().flush()


def _run(text: str) -> tuple[list[dict[str, object]], _FlushCounter]:
    out = _FlushCounter()
    assert run_scan_cli(io.StringIO(text), out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()], out


def test_contract_and_flush_per_line() -> None:
    lines = [
        {"id": "a", "text": "I want to die", "lang": "en"},
        {"id": "b", "text": "yes see you thursday"},
        {"id": 3, "text": "minha amiga quer se matar", "lang": "pt-BR"},
        {"id": "d", "text": "me muero de hambre", "lang": "es"},
    ]
    rows, out = _run("".join(json.dumps(x) + "\n" for x in lines))
    assert [r["id"] for r in rows] == ["a", "b", 3, "d"]
    for r in rows:
        assert set(r) == {"id", "crisis", "level", "about", "matched"}
        assert r["crisis"] is (r["level"] is not None)
        assert (r["about"] is None) is (r["level"] is None)
        assert isinstance(r["matched"], list)
    assert rows[0]["crisis"] and rows[0]["level"] == "high" and rows[0]["about"] == "self"
    assert rows[1] == {"id": "b", "crisis": False, "level": None, "about": None, "matched": []}
    assert rows[2]["about"] == "other"
    assert not rows[3]["crisis"]
    assert out.lines_at_flush == [1, 2, 3, 4]


BAD = [
    ("{not json", {"id": None}),
    ('["a", "list"]', {"id": None}),
    ('"just a string"', {"id": None}),
    ('{"id": "x"}', {"id": "x"}),
    ('{"id": "y", "text": 42}', {"id": "y"}),
    ('{"id": "z", "text": "hi", "lang": 5}', {"id": "z"}),
    ('{"id": {"nested": 1}, "text": "hi"}', {"id": None}),
    ('{"id": "n", "text": null}', {"id": "n"}),
    ("\x00\x01", {"id": None}),
]


@pytest.mark.parametrize(("line", "expect"), BAD)
def test_bad_lines_give_errors_and_the_run_goes_on(line: str, expect: dict[str, object]) -> None:
    rows, _ = _run(line + "\n" + json.dumps({"id": "after", "text": "quero morrer"}) + "\n")
    assert len(rows) == 2
    assert rows[0]["id"] == expect["id"]
    assert isinstance(rows[0]["error"], str) and rows[0]["error"]
    assert set(rows[0]) == {"id", "error"}
    assert rows[1]["id"] == "after" and rows[1]["crisis"] is True


def test_blank_lines_unicode_and_big_input() -> None:
    big = "ok " * 40_000 + "i want to kill myself"
    text = "\n   \n" + json.dumps({"id": "u", "text": "ich will sterben 😢\u202e"}, ensure_ascii=False) + "\n"
    text += json.dumps({"id": "big", "text": big}) + "\n"
    text += json.dumps({"id": "e", "text": ""})  # last line without a newline
    rows, _ = _run(text)
    assert [r["id"] for r in rows] == ["u", "big", "e"]
    assert rows[0]["crisis"] and rows[1]["crisis"] and not rows[2]["crisis"]


def test_output_is_utf8_json_lines() -> None:
    out = io.StringIO()
    run_scan_cli(io.StringIO(json.dumps({"id": "ç", "text": "não"}, ensure_ascii=False) + "\n"), out)
    assert out.getvalue().endswith("\n")
    assert json.loads(out.getvalue())["id"] == "ç"


@pytest.mark.parametrize(
    "line",
    [
        '{"id": "\\udfff", "text": "quero morrer"}',  # a lone surrogate: valid JSON, not UTF-8
        '{"id": "x", "text": "\\ud800 i want to die \\udfff"}',
        '{"id": "\\ud83d", "text": 5}',  # and on the error path
    ],
)
def test_lone_surrogates_still_give_one_utf8_line(line: str) -> None:
    out = io.StringIO()
    assert run_scan_cli(io.StringIO(line + "\n"), out) == 0
    text = out.getvalue()
    text.encode("utf-8")  # raises if a surrogate got through unescaped
    [row] = [json.loads(x) for x in text.splitlines()]
    assert row["id"] == json.loads(line)["id"]
    if "error" not in row:
        assert row["crisis"] is True
