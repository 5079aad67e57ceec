"""Language tags: one spelling inside Rapport (``en``, ``pt_BR``, ``es``, ``fr``, ``de``)."""

from __future__ import annotations

# Scripts ship in these; crisis replies also in fr and de.
SCRIPT_LANGS = ("en", "pt_BR", "es")
CRISIS_LANGS = ("en", "pt_BR", "es", "fr", "de")

_ALIASES = {
    "pt": "pt_BR",
    "pt_br": "pt_BR",
    "pt_pt": "pt_BR",  # closest shipped catalog; a practice can overlay its own pt_PT
}


def normalize_lang(tag: str | None) -> str | None:
    """``pt``, ``pt-BR``, ``PT_br`` -> ``pt_BR``; ``es-MX`` -> ``es``; ``en_US`` -> ``en``.

    Returns None for an empty tag. Unknown languages come back as their lower-case primary
    subtag so a practice-supplied catalog for them can still be found.
    """
    if not tag:
        return None
    t = tag.strip().replace("-", "_")
    if not t:
        return None
    low = t.lower()
    if low in _ALIASES:
        return _ALIASES[low]
    primary = low.split("_", 1)[0]
    if primary == "pt":
        return "pt_BR"
    return primary


def primary(lang: str) -> str:
    """The ISO 639-1 part: ``pt_BR`` -> ``pt``."""
    return lang.split("_", 1)[0].lower()
