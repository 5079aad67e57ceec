"""`rapport scripts check`: dialogues valid, every message in every language, placeholders that
match, no carrier opt-out words as menu answers, SMS cost, and no clinical words by SMS."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bot.config import Config
from bot.engine.dialogue import DialogueError, load_dialogues
from bot.langs import CRISIS_LANGS
from bot.scripts import PLACEHOLDER, Scripts

GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXT = set("^{}\\[~]|€")
# Twilio and US carriers treat these as opt-out: a menu that asks for one unsubscribes the client.
CARRIER_OPT_OUT = ("CANCEL", "END", "QUIT", "STOPALL", "UNSUBSCRIBE", "REVOKE", "OPTOUT")
_MENU = re.compile(
    r"\b(reply|text|send|type|answer|responde|responda|envie|envia|escribe|escreva|manda|env[ií]a)\b\W+(\w+)",
    re.IGNORECASE,
)
CLINICAL = (
    "diagnos",
    "depress",
    "ansiedad",
    "ansiedade",
    "anxiety",
    "bipolar",
    "schizo",
    "esquizo",
    "ptsd",
    "tept",
    "medication",
    "medicação",
    "medicacao",
    "medicamento",
    "psychiatr",
    "psiquiatr",
    "psychotherap",
    "psicoterap",
    "therapy",
    "terapia",
    "disorder",
    "transtorno",
    "trastorno",
    "treatment",
    "tratamento",
    "tratamiento",
    "symptom",
    "sintoma",
    "síntoma",
)
SAMPLE_NOW = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)


@dataclass
class Finding:
    level: str  # error | warning
    where: str
    message: str

    def line(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


def segments(text: str) -> tuple[str, int]:
    """SMS encoding and segment count: GSM-7 160/153 a segment, anything else UCS-2 70/67."""
    if all(c in GSM7 or c in GSM7_EXT for c in text):
        units = sum(2 if c in GSM7_EXT else 1 for c in text)
        return "GSM-7", 1 if units <= 160 else -(-units // 153)
    units = sum(2 if ord(c) > 0xFFFF else 1 for c in text)
    return "UCS-2", 1 if units <= 70 else -(-units // 67)


def check(cfg: Config, config_dir: Path | None) -> list[Finding]:
    out: list[Finding] = []
    try:
        dialogues = load_dialogues()
    except DialogueError as e:
        return [Finding("error", "dialogues", str(e))]
    overlay = []
    if cfg.locales_dir:
        p = Path(cfg.locales_dir)
        overlay.append(p if p.is_absolute() or config_dir is None else config_dir / p)
        if not overlay[0].is_dir():
            out.append(Finding("error", "locales_dir", f"{overlay[0]} is not a folder"))
    scripts = Scripts(overlay)
    crisis = Scripts(overlay, domain="crisis")
    ids = sorted({m for d in dialogues.values() for m in d.message_ids() if not m.startswith("crisis.")})
    extra = sorted(
        m for m in scripts.texts.get("en", {}) if m.split(".")[0] in ("button", "fmt", "staff", "practice", "telegram")
    )
    wanted = sorted(set(ids) | set(extra))
    # Placeholders are checked against our shipped English, so an overlay cannot redefine them.
    reference = Scripts().texts.get("en", {})
    for lang in cfg.languages:
        texts = scripts.texts.get(lang)
        if texts is None:
            out.append(Finding("error", lang, "no messages.po catalog for this enabled language"))
            continue
        for mid in wanted:
            if mid not in texts:
                out.append(Finding("error", f"{lang}:{mid}", "missing"))
                continue
            _check_text(out, lang, mid, texts[mid], reference.get(mid), cfg)
        for mid in sorted(set(texts) - set(reference)):
            out.append(Finding("warning", f"{lang}:{mid}", "unknown message id: no dialogue uses it"))
    crisis_ref = crisis.texts.get("en", {})
    for lang in CRISIS_LANGS:
        texts = crisis.texts.get(lang)
        if texts is None:
            out.append(Finding("error", f"{lang}:crisis", "no crisis.po catalog"))
            continue
        for mid, ref in crisis_ref.items():
            if mid not in texts:
                out.append(Finding("error", f"{lang}:{mid}", "missing from crisis.po"))
            elif set(PLACEHOLDER.findall(texts[mid])) != set(PLACEHOLDER.findall(ref)):
                out.append(Finding("error", f"{lang}:{mid}", _placeholder_msg(texts[mid], ref)))
    return out


def _placeholder_msg(text: str, ref: str) -> str:
    have, want = set(PLACEHOLDER.findall(text)), set(PLACEHOLDER.findall(ref))
    parts = []
    if want - have:
        parts.append("missing {" + "}, {".join(sorted(want - have)) + "}")
    if have - want:
        parts.append("unexpected {" + "}, {".join(sorted(have - want)) + "}")
    return "placeholders differ from en: " + "; ".join(parts)


def _check_text(out: list[Finding], lang: str, mid: str, text: str, ref: str | None, cfg: Config) -> None:
    where = f"{lang}:{mid}"
    if ref is not None and set(PLACEHOLDER.findall(text)) != set(PLACEHOLDER.findall(ref)):
        out.append(Finding("error", where, _placeholder_msg(text, ref)))
    if mid.startswith("fmt."):
        return
    for m in _MENU.finditer(text):
        word = m.group(2)
        if word.upper() in CARRIER_OPT_OUT and word.isupper():
            out.append(Finding("warning", where, f"asks the client to send {word}: carriers treat it as opt-out"))
    low = text.lower()
    for w in CLINICAL:
        if re.search(rf"\b{re.escape(w)}", low):
            out.append(Finding("warning", where, f"clinical word {w!r}: keep health details out of texts"))
    if mid.startswith("button."):
        return
    sample = _sample(text, cfg)
    enc, n = segments(sample)
    if n > 3:
        out.append(Finding("warning", where, f"{n} SMS segments ({enc}, {len(sample)} chars with sample values)"))


def _sample(text: str, cfg: Config) -> str:
    when = "Wednesday, December 30 at 10:30 AM"
    slots = "\n".join(f"{i}) Wed, Dec 30, 10:30 AM" for i in (1, 2, 3))
    values = {
        "name": "Alexandra",
        "practice": cfg.practice_name,
        "when": when,
        "slots": slots,
        "id": "1234",
        "level": "moderate",
        "who": "Alexandra (client-0001)",
        "link": "https://example.org/api/alerts/1234",
        "by": "on-call",
        "text": "",
    }
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def run_check(cfg: Config, config_path: Path | None, out: TextIO) -> int:
    findings = check(cfg, config_path.parent if config_path else None)
    for f in findings:
        out.write(f.line() + "\n")
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    out.write(f"{errors} errors, {warnings} warnings\n")
    return 1 if errors else 0
