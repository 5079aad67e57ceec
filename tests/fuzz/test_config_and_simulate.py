"""config.yaml and `rapport simulate` input: any file and any line give a config, one clear
error line naming the key, or (simulate) a JSON error line, and the run goes on.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import Config, ConfigError, load_config
from bot.simulate import Simulator
from tests.fuzz import strategies as S
from tests.fuzz.test_text_tools import output_lines, strict_stream

# Key paths a practice writes, with a value that is valid there.
VALID: dict[tuple[str, ...], Any] = {
    ("practice_name",): "Clinica",
    ("languages",): ["en", "pt_BR"],
    ("default_country",): "BR",
    ("default_tz",): "America/Sao_Paulo",
    ("reminders", "offsets"): ["24h", "2h"],
    ("reminders", "answer_timeout"): "12h",
    ("quiet_hours", "start"): "21:00",
    ("quiet_hours", "end"): "08:00",
    ("missed_session", "delay"): "2h",
    ("feedback", "delay"): "3h",
    ("limits", "per_day"): 3,
    ("crisis", "oncall"): [{"name": "dr_a", "phone": "+15555550101"}],
    ("crisis", "ack_timeout"): "10m",
    ("clinicians",): [{"id": "x", "tz": "UTC", "session_minutes": 50, "availability": {"mon": ["09:00-12:00"]}}],
    ("nlu", "backend"): "builtin",
    ("conversation", "slot_horizon"): "4w",
}
bad_values = st.one_of(
    S.json_values,
    st.sampled_from(["99999999999w", "0s", "-1h", "1y", "25:00", "24:00", "x" * 300, "Mars/Base", "a\x00b"]),
    S.small_text,
    st.lists(S.small_text, max_size=3),
)


def set_path(d: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for k in path[:-1]:
        d = d.setdefault(k, {})
    d[path[-1]] = value


@st.composite
def config_text(draw: Any) -> str:
    shape = draw(st.sampled_from(["mutated"] * 6 + ["unknown_key", "garbage", "deep", "anchors"]))
    data: dict[str, Any] = {}
    for path in draw(st.lists(st.sampled_from(sorted(VALID)), max_size=6, unique=True)):
        set_path(data, path, VALID[path])
    if shape == "mutated":
        set_path(data, draw(st.sampled_from(sorted(VALID))), draw(bad_values))
    elif shape == "unknown_key":
        set_path(data, (draw(st.sampled_from(["", "reminders", "crisis"])) or "x", draw(S.small_text) or "?"), 1)
    elif shape == "garbage":
        return draw(S.text)
    elif shape == "deep":
        n = draw(st.integers(1, 5000))
        return "a: " + "[" * n + "]" * n
    else:
        return "x: &a [*a]\nb: &c {d: *c}\n" + draw(S.small_text)
    return yaml.safe_dump(data, allow_unicode=draw(st.booleans()))


def check_config_file(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "config.yaml"
        p.write_bytes(raw)
        try:
            cfg, _ = load_config(p)
        except ConfigError as e:
            msg = str(e)
            assert msg and "\n" not in msg and "\r" not in msg, msg
            assert msg.startswith(str(p)), msg
            return
        assert isinstance(cfg, Config)


@settings(S.FUZZ, max_examples=80)
@given(text=config_text(), hostile=st.booleans(), data=st.data())
def test_config_any_file_loads_or_one_line_error(text: str, hostile: bool, data: st.DataObject) -> None:
    raw = text.encode("utf-8", "surrogatepass")
    check_config_file(data.draw(S.hostile_bytes(st.just(raw))) if hostile else raw)


# -- rapport simulate ------------------------------------------------------------------------------

ats = st.one_of(
    st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(lambda d: d.isoformat()),
    st.sampled_from(["2026-12-01T09:00:00+00:00", "2026-12-02T09:00:00-03:00", "9999-12-31T23:59:59+00:00"]),
    S.iso_like,
)
events = st.one_of(
    st.fixed_dictionaries(
        {
            "client": st.fixed_dictionaries(
                {"id": st.one_of(st.just("c1"), S.small_text)},
                optional={
                    "name": S.maybe(S.text),
                    "phone": S.maybe(S.phone_like),
                    "lang": S.maybe(S.lang_like),
                    "tz": S.maybe(S.tz_like),
                    "channel": S.maybe(st.sampled_from(["sms", "telegram"])),
                    "country": S.maybe(S.small_text),
                    "telegram": S.json_values,
                    "consent": S.json_values,
                },
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "appointment": st.fixed_dictionaries(
                {
                    "id": st.one_of(st.just("a1"), S.json_values),
                    "client": st.one_of(st.just("c1"), S.json_values),
                    "start": S.maybe(S.iso_like),
                },
                optional={"minutes": S.json_values, "clinician": S.json_values},
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "inbound": st.fixed_dictionaries(
                {"text": S.maybe(S.text)},
                optional={"client": S.maybe(st.just("c1")), "from": S.json_values, "channel": S.json_values},
            )
        }
    ),
    st.fixed_dictionaries(
        {"attendance": st.fixed_dictionaries({"appointment": S.json_values, "status": S.json_values})}
    ),
    st.fixed_dictionaries({"cancel_appointment": st.fixed_dictionaries({"id": S.json_values})}),
    st.tuples(
        st.sampled_from(["ack", "resolve"]),
        st.fixed_dictionaries({"by": S.json_values}, optional={"alert": S.json_values}),
    ).map(lambda kv: {kv[0]: kv[1]}),
    st.dictionaries(S.small_text, S.json_values, max_size=2),
    st.just({}),
)


@st.composite
def sim_line(draw: Any) -> str:
    shape = draw(st.sampled_from(["event"] * 6 + ["json", "garbage"]))
    if shape == "event":
        obj = draw(events)
        if draw(st.integers(0, 6)):
            obj["at"] = draw(ats)
        return json.dumps(obj, ensure_ascii=False)
    if shape == "json":
        return json.dumps(draw(S.json_values))
    return draw(S.small_text)


def check_simulate(lines: list[str]) -> None:
    out = strict_stream()
    flat = [
        ln.replace("\n", " ").replace("\r", " ").replace("\u2028", " ").replace("\u2029", " ").replace("\x85", " ")
        for ln in lines
    ]
    Simulator(out).run(io.StringIO("".join(ln + "\n" for ln in flat)))
    for o in output_lines(out):
        assert isinstance(o, dict) and "type" in o, o
        if o["type"] == "error":
            assert isinstance(o["line"], int) and 1 <= o["line"] <= len(flat), o


@settings(S.FUZZ, max_examples=15)
@given(lines=st.lists(sim_line(), min_size=1, max_size=6))
def test_simulate_any_lines_one_error_each(lines: list[str]) -> None:
    check_simulate(lines)
