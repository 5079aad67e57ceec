"""The Rasa backend: a Rasa server's ``/model/parse`` decides the intent; our resolver still reads
dates and ratings. On an error or a slow answer the builtin backend answers instead, and Rasa is
not tried again for a short cool-down so a dead server does not add its timeout to every message.

``export_project`` writes a Rasa 3.x NLU project from the same ``locales/*/understanding.yaml``
examples the builtin backend uses.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from bot.langs import normalize_lang
from bot.understanding import builtin
from bot.understanding import rating as ratings
from bot.understanding.lexicon import LANGS, load
from bot.understanding.types import INTENTS, Parse

COOL_DOWN_S = 5.0


class RasaError(RuntimeError):
    pass


def rasa_intent(url: str, text: str, timeout_s: float) -> tuple[str, float]:
    """``POST {url}/model/parse`` -> (intent, confidence); raises RasaError on any failure."""
    body = json.dumps({"text": text}).encode("utf-8")
    req = urllib.request.Request(
        url.rstrip("/") + "/model/parse", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            payload = json.loads(resp.read().decode("utf-8"))
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        raise RasaError(f"rasa parse failed: {exc}") from exc
    intent = (payload or {}).get("intent") or {}
    name = intent.get("name")
    conf = intent.get("confidence")
    if not isinstance(name, str):
        raise RasaError("rasa answer has no intent")
    if name not in INTENTS:
        name = "other"  # nlu_fallback and anything we did not train
    return name, float(conf) if isinstance(conf, (int, float)) else 0.0


class RasaParser:
    """A parser callable backed by a Rasa server, falling back to builtin."""

    def __init__(self, url: str, timeout_s: float = 0.3) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._down_until = 0.0
        self._lock = threading.Lock()
        self.fallbacks = 0

    def __call__(self, text: str, lang: str, context: str, now: datetime, tz: str) -> Parse:
        builtin.check_context(context)
        builtin.local_now(now, tz)  # validates now and tz before any network call
        if time.monotonic() < self._down_until or not text.strip():
            return self._fallback(text, lang, context, now, tz)
        try:
            intent, conf = rasa_intent(self.url, text[:2000], self.timeout_s)
        except RasaError:
            with self._lock:
                self._down_until = time.monotonic() + COOL_DOWN_S
            return self._fallback(text, lang, context, now, tz)
        # Rasa decides the intent; dates and ratings are read by our own resolver.
        ours = builtin.parse(text, lang, context, now, tz)
        rating = None
        if intent == "rating":
            code = normalize_lang(lang)
            lex = load(code if code in LANGS else "en")
            a = builtin.analyse(text, lex.lang)
            rating = ratings.extract(a.norm.text, a.norm.stars, lex, asked=True)
        return Parse(intent, round(conf, 3), ours.when, rating)

    def _fallback(self, text: str, lang: str, context: str, now: datetime, tz: str) -> Parse:
        with self._lock:
            self.fallbacks += 1
        return builtin.parse(text, lang, context, now, tz)


def make_rasa_parser(url: str, timeout_s: float = 0.3) -> Callable[[str, str, str, datetime, str], Parse]:
    return RasaParser(url, timeout_s)


_CONFIG: dict[str, Any] = {
    "recipe": "default.v1",
    "language": "xx",
    "assistant_id": "rapport-nlu",
    "pipeline": [
        {"name": "WhitespaceTokenizer"},
        {"name": "RegexFeaturizer"},
        {"name": "LexicalSyntacticFeaturizer"},
        {"name": "CountVectorsFeaturizer"},
        {"name": "CountVectorsFeaturizer", "analyzer": "char_wb", "min_ngram": 1, "max_ngram": 4},
        # Seeded so that the same examples train the same model: a practice can reproduce a verdict.
        {
            "name": "DIETClassifier",
            "epochs": 100,
            "constrain_similarities": True,
            "entity_recognition": False,
            "random_seed": 7,
        },
        {"name": "FallbackClassifier", "threshold": 0.3},
    ],
    "policies": [],
}


def _literal(text: str) -> str:
    return text.replace("\n", " ").strip()


def export_project(dest: Path, *, epochs: int = 100) -> None:
    """Write ``config.yml``, ``domain.yml`` and ``data/nlu.yml`` for Rasa 3.x into ``dest``."""
    dest = Path(dest)
    (dest / "data").mkdir(parents=True, exist_ok=True)
    by_intent: dict[str, list[str]] = {i: [] for i in INTENTS}
    for lang in LANGS:
        for intent, examples in load(lang).examples.items():
            if intent not in by_intent:
                raise ValueError(f"locales/{lang}/understanding.yaml: unknown intent {intent!r} in examples")
            for ex in examples:
                ex = _literal(ex)
                if ex and ex not in by_intent[intent]:
                    by_intent[intent].append(ex)
    nlu_lines = ['version: "3.1"', "nlu:"]
    for intent in INTENTS:
        if not by_intent[intent]:
            continue
        nlu_lines.append(f"- intent: {intent}")
        nlu_lines.append("  examples: |")
        nlu_lines.extend(f"    - {ex}" for ex in by_intent[intent])
    (dest / "data" / "nlu.yml").write_text("\n".join(nlu_lines) + "\n", encoding="utf-8")
    domain = {"version": "3.1", "intents": [i for i in INTENTS if by_intent[i]]}
    (dest / "domain.yml").write_text(yaml.safe_dump(domain, sort_keys=False, allow_unicode=True), encoding="utf-8")
    config = dict(_CONFIG)
    config["pipeline"] = [
        dict(step, epochs=epochs) if step["name"] == "DIETClassifier" else dict(step) for step in _CONFIG["pipeline"]
    ]
    (dest / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
