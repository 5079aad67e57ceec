"""Words that are honoured in any state, before any script: carrier opt-out/opt-in and help.

US carriers (and Twilio's Advanced Opt-Out) treat these single-word messages as commands, so a
client who sends CANCEL by SMS has opted out whether we like it or not: we record it the same way.
"""

from __future__ import annotations

import unicodedata

SMS_OPT_OUT = frozenset(
    {
        "STOP",
        "STOPALL",
        "STOP ALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "OPTOUT",
        "OPT OUT",
        "REVOKE",
        "PARAR",
        "PARE",
        "SAIR",
        "DESCADASTRAR",
        "BAJA",
        "DETENER",
        "CANCELAR SUSCRIPCION",
    }
)
OPT_IN = frozenset({"START", "UNSTOP", "INICIAR", "VOLTAR", "ALTA", "COMENZAR", "REANUDAR", "OPT IN"})
# "Yes" re-subscribes only someone who has opted out; otherwise it confirms an appointment.
OPT_IN_WHEN_OUT = frozenset({"YES", "Y", "SIM", "SI"})
HELP = frozenset({"HELP", "INFO", "AJUDA", "AYUDA"})
TELEGRAM = {"/stop": "opt_out", "/start": "opt_in", "/help": "help"}


def _norm(text: str) -> str:
    t = unicodedata.normalize("NFKD", text.strip())
    t = "".join(c for c in t if not unicodedata.combining(c))
    t = t.strip(" \t\r\n.!?¡¿,;:'\"()").upper()
    return " ".join(t.split())


def keyword(text: str, channel: str, opted_out: bool) -> str | None:
    """``opt_out`` | ``opt_in`` | ``help`` when the whole message is one of the command words."""
    if channel == "telegram":
        cmd = text.strip().split(maxsplit=1)[0].lower() if text.strip() else ""
        cmd = cmd.split("@", 1)[0]
        if cmd in TELEGRAM:
            return TELEGRAM[cmd]
    w = _norm(text)
    if not w or len(w) > 24:
        return None
    if w in SMS_OPT_OUT and (channel != "telegram" or w in ("STOP", "UNSUBSCRIBE", "PARAR", "BAJA")):
        return "opt_out"
    if w in OPT_IN or (opted_out and w in OPT_IN_WHEN_OUT):
        return "opt_in"
    if w in HELP:
        return "help"
    return None
