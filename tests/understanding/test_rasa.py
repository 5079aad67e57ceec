"""The Rasa backend: export, a real trained model served on 127.0.0.1, timeouts and fallback.

The integration part needs the Rasa venv (``bot/understanding/rasa_env.sh``); without it those
tests skip with the reason. Training is capped at 40 epochs (about 1 min): at 25, "unsubscribe"
against "subscribe" was close enough that one CI machine's unseeded run flipped it.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from bot.understanding import INTENTS, export_rasa_project, make_parser, parse
from bot.understanding.lexicon import LANGS, load
from bot.understanding.rasa import RasaParser
from bot.understanding.rasa_runtime import RasaServer, rasa_executable, rasa_venv, train

SP = "America/Sao_Paulo"
NOW = datetime(2026, 3, 9, 14, 20, tzinfo=ZoneInfo(SP))  # a Monday


def test_export_writes_a_rasa_project_from_the_locale_examples(tmp_path: Path) -> None:
    export_rasa_project(tmp_path)
    config = yaml.safe_load((tmp_path / "config.yml").read_text(encoding="utf-8"))
    domain = yaml.safe_load((tmp_path / "domain.yml").read_text(encoding="utf-8"))
    nlu = yaml.safe_load((tmp_path / "data" / "nlu.yml").read_text(encoding="utf-8"))
    assert any(step["name"] == "DIETClassifier" for step in config["pipeline"])
    assert domain["intents"] == list(INTENTS)
    exported = {
        block["intent"]: [ln[2:] for ln in block["examples"].splitlines() if ln.startswith("- ")]
        for block in nlu["nlu"]
    }
    assert set(exported) == set(INTENTS)
    for lang in LANGS:  # one source of truth: every locale example is in the training data
        for intent, examples in load(lang).examples.items():
            for ex in examples:
                assert ex.strip() in exported[intent], (lang, intent, ex)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_rasa_down_falls_back_to_builtin_quickly() -> None:
    parser = RasaParser(f"http://127.0.0.1:{_closed_port()}", timeout_s=0.3)
    t0 = time.monotonic()
    got = parser("quinta às 15h", "pt", "reschedule_time", NOW, SP)
    assert time.monotonic() - t0 < 1.0
    assert got == parse("quinta às 15h", "pt", "reschedule_time", NOW, SP)
    assert parser.fallbacks == 1


class _Slow(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        time.sleep(1.0)
        try:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"intent": {"name": "cancel", "confidence": 0.99}}')
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture()
def slow_server() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_slow_rasa_times_out_and_cools_down(slow_server: str) -> None:
    parser = RasaParser(slow_server, timeout_s=0.2)
    t0 = time.monotonic()
    assert parser("yes", "en", "reminder", NOW, SP).intent == "confirm"  # builtin, not the slow "cancel"
    assert time.monotonic() - t0 < 0.9
    t1 = time.monotonic()
    parser("no", "en", "reminder", NOW, SP)  # within the cool-down: no second wait
    assert time.monotonic() - t1 < 0.1
    assert parser.fallbacks == 2


@pytest.fixture(scope="module")
def rasa_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if rasa_executable() is None:
        pytest.skip(f"Rasa not installed at {rasa_venv()} (run bot/understanding/rasa_env.sh to enable)")
    project = tmp_path_factory.mktemp("rasa")
    model = train(project, epochs=40, timeout_s=300)
    with RasaServer(model) as server:
        yield server.url


@pytest.mark.slow
def test_real_rasa_decides_intent_and_our_resolver_reads_dates(rasa_url: str) -> None:
    parser = make_parser("rasa", rasa_url=rasa_url, timeout_s=5.0)
    assert isinstance(parser, RasaParser)
    # Texts taken from the training examples: a trained DIET model gets these right.
    assert parser("unsubscribe", "en", "none", NOW, SP).intent == "opt_out"
    assert parser("quero remarcar", "pt", "reminder", NOW, SP).intent == "reschedule"
    assert parser("quiero hablar con alguien", "es", "missed", NOW, SP).intent == "human"
    # Dates come from our resolver whatever Rasa says about the intent.
    got = parser("podemos mudar para quinta às 15h?", "pt", "reminder", NOW, SP)
    assert got.when == "2026-03-12T15:00"
    rated = parser("nota 4", "pt", "rating", NOW, SP)
    assert rated.rating == (4 if rated.intent == "rating" else None)
    assert parser.fallbacks == 0  # every answer above came from the server
