"""The learned layer: a linear model over the words of the text the phrase matcher saw.

The phrase and concept layers only know the wordings someone wrote down; this layer scores the
rest. It reads the detector's matching text (normalised, misspellings corrected, idioms,
negations and concern-for-someone-else already blanked to ``#``) and adds up one weight per
feature:

- ``w:<word>`` every word;
- ``p:<first five letters>`` of every word longer than five letters (``matarme``, ``matando``
  share ``p:matar``), so an unseen inflection still counts;
- ``b:<previous word> <word>`` every pair of neighbours, ``^`` at the start and ``$`` at the end,
  ``#`` where something was blanked (a pair never spans a blank);
- optionally (``grams`` > 0, stored with the weights) ``g:<n letters>`` for every run of ``grams``
  letters of ``<word>`` (the word between edge marks), so a misspelling the correction table does
  not know still shares most of its features with the word it misspells.

Two models share that shape: ``crisis`` (its logit against a threshold decides) and ``other``
(on a crisis message: positive when it is about someone else). The weights are trained offline
by ``bench/train_safety_model.py`` (scikit-learn logistic regression; a dev dependency) and
shipped as ``model.json`` beside this file; scoring here is plain dict look-ups, no numpy.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL_PATH = Path(__file__).with_name("model.json")
PREFIX = 5
_START = "^"
_END = "$"
_BLANK = "#"
_CACHE_MAX = 100_000
# Messages longer than LONG tokens are read in windows (Model.score). Every labelled message is
# shorter (the longest has 23 words), so training and the measurements never window.
LONG = 40
WINDOW = 16
STEP = 4


def char_grams(word: str, n: int) -> list[str]:
    """The ``g:`` features of one word: every run of ``n`` letters of ``<word>``."""
    if n <= 0:
        return []
    padded = f"<{word}>"
    return ["g:" + padded[i : i + n] for i in range(len(padded) - n + 1)]


def features(tokens: Iterable[str], grams: int = 0) -> list[str]:
    """The features of a token list, as the training script sees them (with repeats).

    :meth:`Linear.logit` adds up exactly these features' weights; a test holds the two equal.
    """
    out: list[str] = []
    prev = _START
    for t in tokens:
        if t == _BLANK:
            if prev != _BLANK:
                out.append(f"b:{prev} {_BLANK}")
            prev = _BLANK
            continue
        out.append("w:" + t)
        if len(t) > PREFIX:
            out.append("p:" + t[:PREFIX])
        if grams:
            out.extend(char_grams(t, grams))
        out.append(f"b:{prev} {t}")
        prev = t
    out.append(f"b:{prev} {_END}")
    return out


@dataclass
class Linear:
    """A linear score over :func:`features`; weights absent from the maps count zero."""

    bias: float
    weights: Mapping[str, float]
    grams: int = 0  # letter n-gram length of the g: features (0: none)
    # per word (cached; bounded): its own weight plus its prefix's, and the weights of the pairs
    # it starts (None: it starts none), so one look-up per word serves both
    _words: dict[str, tuple[float, dict[str, float] | None]] = field(default_factory=dict, repr=False)
    _pairs: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for k, v in self.weights.items():
            if k.startswith("b:"):
                a, _, b = k[2:].partition(" ")
                self._pairs.setdefault(a, {})[b] = v

    def _word(self, t: str) -> tuple[float, dict[str, float] | None]:
        v = self.weights.get("w:" + t, 0.0)
        if len(t) > PREFIX:
            v += self.weights.get("p:" + t[:PREFIX], 0.0)
        if self.grams:
            # summed once per distinct word (cached below), so the hot path is unchanged
            v += sum(self.weights.get(g, 0.0) for g in char_grams(t, self.grams))
        entry = (v, self._pairs.get(t))
        if len(self._words) >= _CACHE_MAX:
            self._words.clear()
        self._words[t] = entry
        return entry

    def logit(self, tokens: Iterable[str]) -> float:
        # The hot path of every message the phrase layers pass: one look-up per word.
        words = self._words
        after_blank = self._pairs.get(_BLANK)
        nxt = self._pairs.get(_START)
        total = self.bias
        for t in tokens:
            if nxt is not None:
                # after a blank, a second blank finds nothing: features() never makes "# #"
                total += nxt.get(t, 0.0)
            if t == _BLANK:
                nxt = after_blank
                continue
            entry = words.get(t)
            if entry is None:
                entry = self._word(t)
            total += entry[0]
            nxt = entry[1]
        if nxt is not None:
            total += nxt.get(_END, 0.0)
        return total


@dataclass
class Model:
    crisis: Linear
    other: Linear
    threshold: float  # on the crisis logit
    high: float  # a crisis logit at or above this is level "high"
    meta: dict[str, Any]

    def score(self, tokens: list[str]) -> float:
        """The crisis logit; a long message is read in overlapping windows and its most
        worrying one counts, so a crisis sentence is not averaged away by pages of chatter."""
        n = len(tokens)
        if n <= LONG:
            return self.crisis.logit(tokens)
        # every span of up to WINDOW - STEP words lies whole inside one window
        starts = range(0, n - WINDOW + STEP, STEP)
        return max(self.crisis.logit(tokens[i : i + WINDOW]) for i in starts)

    def about_other(self, tokens: list[str]) -> bool:
        return self.other.logit(tokens) > 0.0


def probability(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def from_dict(data: Mapping[str, Any]) -> Model:
    def linear(d: Mapping[str, Any]) -> Linear:
        return Linear(float(d["bias"]), {str(k): float(v) for k, v in d["weights"].items()}, int(d.get("grams", 0)))

    return Model(
        crisis=linear(data["crisis"]),
        other=linear(data["other"]),
        threshold=float(data["threshold"]),
        high=float(data.get("high", math.inf)),
        meta=dict(data.get("meta", {})),
    )


def to_dict(model: Model) -> dict[str, Any]:
    def linear(m: Linear) -> dict[str, Any]:
        out: dict[str, Any] = {"bias": round(m.bias, 4)}
        if m.grams:
            out["grams"] = m.grams
        out["weights"] = {k: round(v, 4) for k, v in sorted(m.weights.items())}
        return out

    return {
        "threshold": round(model.threshold, 4),
        "high": model.high if math.isfinite(model.high) else None,
        "meta": model.meta,
        "crisis": linear(model.crisis),
        "other": linear(model.other),
    }


_lock = threading.Lock()
_loaded: Model | None = None


def load(path: Path = MODEL_PATH) -> Model:
    """The shipped model, loaded once per process.

    Raises when the file is missing rather than scanning with the floor alone: a quietly weaker
    detector is the failure this package exists to prevent.
    """
    global _loaded
    if path != MODEL_PATH:
        return _read(path)
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = _read(path)
    return _loaded


def _read(path: Path) -> Model:
    if not path.exists():
        raise RuntimeError(f"crisis model missing: {path} (bench/train_safety_model.py writes it)")
    with path.open(encoding="utf-8") as fh:
        data = json.load(fh)
    if data.get("high") is None:
        data["high"] = math.inf
    return from_dict(data)
