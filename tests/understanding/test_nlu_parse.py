"""Table-driven tests of ``bot.understanding.parse``: intents, contexts, negation, dates, ratings."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.understanding import CONTEXTS, INTENTS, Parse, make_parser, parse

SP = "America/Sao_Paulo"
NY = "America/New_York"
MX = "America/Mexico_City"
# Monday 2026-03-09 14:20 in São Paulo.
NOW_SP = datetime(2026, 3, 9, 14, 20, tzinfo=ZoneInfo(SP))
# Thursday 2026-05-14 09:30 in New York.
NOW_NY = datetime(2026, 5, 14, 9, 30, tzinfo=ZoneInfo(NY))
# Wednesday 2026-07-22 18:05 in Mexico City.
NOW_MX = datetime(2026, 7, 22, 18, 5, tzinfo=ZoneInfo(MX))


INTENT_CASES = [
    # text, lang, context, intent
    ("claro, estarei lá 👍", "pt", "reminder", "confirm"),
    ("nao vou conseguir amanha", "pt-BR", "reminder", "cancel"),
    ("no, I'm coming", "en", "reminder", "confirm"),
    ("yes, I need to cancel", "en", "reminder", "cancel"),
    ("Yes I'll be there", "en", "reminder", "confirm"),
    ("sí, ahí estaré", "es", "reminder", "confirm"),
    ("no cancelen, sí voy", "es-MX", "reminder", "confirm"),
    ("don't cancel, I'll be there", "en", "reminder", "confirm"),
    ("não precisa cancelar, eu vou", "pt_BR", "reminder", "confirm"),
    ("I won't be there", "en", "reminder", "cancel"),
    ("STOP", "pt", "reminder", "opt_out"),
    ("Stop", "en", "rating", "opt_out"),
    ("please stop texting me", "en", "none", "opt_out"),
    ("não quero mais receber mensagens", "pt", "none", "opt_out"),
    ("ya no quiero recibir mensajes", "es", "feedback_text", "opt_out"),
    ("START", "en", "none", "opt_in"),
    ("UNSTOP", "es", "none", "opt_in"),
    ("voltar a receber", "pt", "none", "opt_in"),
    ("HELP", "en", "none", "help"),
    ("AJUDA", "pt", "reminder", "help"),
    ("AYUDA", "es", "reminder", "help"),
    ("what is this?", "en", "none", "help"),
    ("quero falar com alguém", "pt", "missed", "human"),
    ("can I talk to a person", "en", "reminder", "human"),
    ("quiero hablar con una persona", "es", "none", "human"),
    ("sim", "pt", "missed", "confirm"),
    ("yes", "en", "missed", "confirm"),
    ("no", "en", "missed", "cancel"),
    ("não", "pt", "missed", "cancel"),
    ("I'd like to reschedule", "en", "missed", "reschedule"),
    ("the session was lovely, thank you", "en", "feedback_text", "other"),
    ("ok", "en", "feedback_text", "other"),
    ("can we reschedule?", "en", "reminder", "reschedule"),
    ("¿lo podemos pasar al jueves a las 3 de la tarde?", "es", "reminder", "reschedule"),
    ("nao vou conseguir amanha, pode ser sexta?", "pt", "reminder", "reschedule"),
    # SMS shorthand, missing accents, caps, repeats, emoji
    ("vc pode cancelar pq n vou", "pt", "reminder", "cancel"),
    ("blz", "pt", "reminder", "confirm"),
    ("siiiim", "pt", "reminder", "confirm"),
    ("SIM", "pt", "reminder", "confirm"),
    ("dale", "es", "reminder", "confirm"),
    ("sip", "es", "reminder", "confirm"),
    ("yep", "en", "reminder", "confirm"),
    ("k", "en", "reminder", "confirm"),
    ("👍", "en", "reminder", "confirm"),
    ("ok", "pt", "reminder", "confirm"),
    ("tb vou", "pt", "reminder", "confirm"),
    ("q tal sexta?", "pt", "reminder", "reschedule"),
    ("cancelr", "pt", "reminder", "cancel"),
    ("cnfirmed", "en", "reminder", "confirm"),
    ("resheduel please", "en", "reminder", "reschedule"),
    ("hello", "en", "reminder", "other"),
    ("where do I park?", "en", "reminder", "other"),
]


@pytest.mark.parametrize(("text", "lang", "context", "intent"), INTENT_CASES)
def test_intent(text: str, lang: str, context: str, intent: str) -> None:
    got = parse(text, lang, context, NOW_SP, SP)
    assert got.intent == intent, got


RATING_CASES = [
    # text, lang, context, intent, rating
    ("4", "en", "rating", "rating", 4),
    ("four", "en", "rating", "rating", 4),
    ("nota 4", "pt", "rating", "rating", 4),
    ("⭐⭐⭐⭐", "es", "rating", "rating", 4),
    ("4/5", "en", "rating", "rating", 4),
    ("cinco", "pt", "rating", "rating", 5),
    ("le doy un 3", "es", "rating", "rating", 3),
    ("3 stars", "en", "rating", "rating", 3),
    ("10/10", "en", "rating", "rating", 5),
    ("4 ⭐", "pt", "rating", "rating", 4),
    ("7", "en", "rating", "other", None),
    ("great session", "en", "rating", "other", None),
    # outside the rating context a bare number is no rating
    ("4", "en", "reminder", "other", None),
    ("four", "en", "none", "other", None),
    ("2", "en", "reschedule_time", "other", None),
    ("2", "pt", "reschedule_time", "other", None),
]


@pytest.mark.parametrize(("text", "lang", "context", "intent", "rating"), RATING_CASES)
def test_rating(text: str, lang: str, context: str, intent: str, rating: int | None) -> None:
    got = parse(text, lang, context, NOW_NY, NY)
    assert (got.intent, got.rating) == (intent, rating), got


WHEN_CASES = [
    # text, lang, now, tz, expected when (Monday 2026-03-09 in SP; Thursday 2026-05-14 in NY)
    ("quinta às 15h", "pt", NOW_SP, SP, "2026-03-12T15:00"),  # Thursday at 15:00, not the 15th
    ("amanhã de manhã", "pt", NOW_SP, SP, "2026-03-10"),
    ("dia 5 às 14h", "pt", NOW_SP, SP, "2026-04-05T14:00"),  # the next 5th
    ("dia 20", "pt", NOW_SP, SP, "2026-03-20"),
    ("semana que vem", "pt", NOW_SP, SP, None),
    ("segunda", "pt", NOW_SP, SP, "2026-03-16"),  # a bare weekday is the next one after today
    ("segunda da semana que vem", "pt", NOW_SP, SP, "2026-03-16"),
    ("terça ou quarta", "pt", NOW_SP, SP, None),  # two candidate days
    ("às 10", "pt", NOW_SP, SP, None),  # a time alone
    ("sexta de tarde", "pt", NOW_SP, SP, "2026-03-13"),
    ("hoje às 18h", "pt", NOW_SP, SP, "2026-03-09T18:00"),
    ("depois de amanhã às 8", "pt", NOW_SP, SP, "2026-03-11T08:00"),
    ("qui 14:30", "pt", NOW_SP, SP, "2026-03-12T14:30"),
    ("10 de abril às 9h30", "pt", NOW_SP, SP, "2026-04-10T09:30"),
    ("el jueves a las 3 de la tarde", "es", NOW_SP, SP, "2026-03-12T15:00"),
    ("mañana en la mañana", "es", NOW_SP, SP, "2026-03-10"),
    ("mañana a las 9 y media", "es", NOW_SP, SP, "2026-03-10T09:30"),
    ("friday morning", "en", NOW_NY, NY, "2026-05-15"),
    ("tomorrow afternoon", "en", NOW_NY, NY, "2026-05-15"),
    ("tmrw 3pm", "en", NOW_NY, NY, "2026-05-15T15:00"),
    ("thursday", "en", NOW_NY, NY, "2026-05-21"),  # today is Thursday: the next one
    ("next week", "en", NOW_NY, NY, None),
    ("at 3", "en", NOW_NY, NY, None),
    ("Monday next week at 10", "en", NOW_NY, NY, "2026-05-18T10:00"),
    ("next friday at 4pm", "en", NOW_SP, SP, "2026-03-13T16:00"),  # the coming Friday, as dateparser reads it
    ("friday next week", "en", NOW_SP, SP, "2026-03-20"),
    ("the 20th at noon", "en", NOW_NY, NY, "2026-05-20T12:00"),
    ("5/19 at 1pm", "en", NOW_NY, NY, "2026-05-19T13:00"),  # en: month/day
    ("june 3rd", "en", NOW_NY, NY, "2026-06-03"),
    ("jan 3", "en", NOW_NY, NY, "2027-01-03"),  # already past this year: next year
    ("thrusday at 4pm", "en", NOW_NY, NY, "2026-05-21T16:00"),  # typo
    ("can't do tomorrow, how about Tuesday at 10?", "en", NOW_NY, NY, "2026-05-19T10:00"),
    ("can we do Wednesday instead of Tuesday?", "en", NOW_NY, NY, "2026-05-20"),
    ("monday at half past 4", "en", NOW_NY, NY, "2026-05-18T16:30"),
    ("in 2 days at 9am", "en", NOW_NY, NY, "2026-05-16T09:00"),
    ("march, 3", "en", NOW_NY, NY, "2027-03-03"),  # not a form the resolver knows: dateparser's fallback
    ("sometime in march 2027", "en", NOW_NY, NY, None),  # a month names no day
    ("03.12.2026 às 10h", "pt", NOW_SP, SP, "2026-12-03T10:00"),
    ("on 3 march 2028", "en", NOW_NY, NY, "2028-03-03"),
]


@pytest.mark.parametrize(("text", "lang", "now", "tz", "when"), WHEN_CASES)
def test_when(text: str, lang: str, now: datetime, tz: str, when: str | None) -> None:
    got = parse(text, lang, "reschedule_time", now, tz)
    assert got.when == when, got
    assert got.intent == "reschedule", got


def test_when_resolves_in_the_clients_zone_not_utc() -> None:
    # 01:30 UTC on Tuesday is still Monday evening in São Paulo: "amanhã" is Tuesday there.
    now_utc = datetime(2026, 3, 10, 1, 30, tzinfo=UTC)
    assert parse("amanhã às 10h", "pt", "reschedule_time", now_utc, SP).when == "2026-03-10T10:00"
    assert parse("tomorrow at 10am", "en", "reschedule_time", now_utc, "Asia/Tokyo").when == "2026-03-11T10:00"


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError):
        parse("yes", "en", "reminder", datetime(2026, 3, 9, 12, 0), SP)


def test_unknown_context_is_rejected() -> None:
    with pytest.raises(ValueError):
        parse("yes", "en", "whatever", NOW_SP, SP)


@pytest.mark.parametrize(
    ("text", "lang", "intent"),
    [
        ("quiero cancelar", "fr", "cancel"),
        ("STOP", "de", "opt_out"),
        ("não vou poder ir", "", "cancel"),
        ("can we reschedule?", "xx-YY", "reschedule"),
        ("STOP", "es", "opt_out"),
        ("ok", "es", "confirm"),
    ],
)
def test_unknown_or_mismatched_language(text: str, lang: str, intent: str) -> None:
    assert parse(text, lang, "reminder", NOW_SP, SP).intent == intent


@pytest.mark.parametrize(
    "text",
    ["", "   ", "🙂🙂🙂", "\x00\x01\x1b[31m", "a" * 10_000, "ok " * 4000, "\u200b\u200b", "?!?!", "📅🕒"],
)
@pytest.mark.parametrize("context", CONTEXTS)
def test_bad_input_never_raises(text: str, context: str) -> None:
    got = parse(text, "en", context, NOW_SP, SP)
    assert isinstance(got, Parse)
    assert got.intent in INTENTS
    assert 0.0 <= got.confidence <= 1.0
    assert got.rating is None or 1 <= got.rating <= 5


def test_emoji_only_is_other() -> None:
    assert parse("🙂🙂🙂", "pt", "reminder", NOW_SP, SP).intent == "other"


def test_make_parser_selects_backends() -> None:
    assert make_parser("builtin") is parse
    with pytest.raises(ValueError):
        make_parser("rasa")
    with pytest.raises(ValueError):
        make_parser("spacy")


CONTEXT_CASES = [
    # text, lang, context, intent, when  (now: Monday 2026-03-09 14:20, São Paulo)
    ("nao sei ainda, te aviso", "pt", "reminder", "other", None),  # "não" inside "não sei" is no cancel
    ("not sure yet", "en", "reminder", "other", None),
    ("I'm fine, thanks", "en", "missed", "other", None),  # wellbeing, not an answer to the offer
    ("no I'm fine", "en", "missed", "cancel", None),
    ("I completely forgot about today, sorry", "en", "missed", "other", "2026-03-09"),
    ("yes, friday at 10", "en", "missed", "reschedule", "2026-03-13T10:00"),
    ("ok, see you tomorrow at 3", "en", "reminder", "confirm", "2026-03-10T15:00"),
    ("tomorrow at 3?", "en", "reminder", "reschedule", "2026-03-10T15:00"),
    ("I can't make it tomorrow, can we do next week?", "en", "reminder", "reschedule", None),
    ("amanhã não posso, só na semana que vem", "pt", "reminder", "reschedule", None),
    ("não vou conseguir amanhã", "pt", "reminder", "cancel", "2026-03-10"),
    ("the second one", "en", "reschedule_time", "other", None),
    ("a segunda opção", "pt", "reschedule_time", "other", None),
    ("la segunda", "es", "reschedule_time", "other", None),
    ("option 2", "en", "reschedule_time", "other", None),
    ("never mind, keep my original appointment", "en", "reschedule_time", "confirm", None),
    ("actually just cancel it", "en", "reschedule_time", "cancel", None),
    ("4/5", "en", "none", "rating", None),  # an explicit scale is a rating anywhere it is not a date
    ("4/5", "en", "reschedule_time", "reschedule", "2026-04-05"),  # en dates are month/day
    ("running 10 min late", "en", "reminder", "confirm", None),  # late means coming
    ("3-4pm tomorrow", "en", "reschedule_time", "reschedule", "2026-03-10"),  # a range is no exact time
    ("amanhã das 14 às 16h", "pt", "reschedule_time", "reschedule", "2026-03-10"),
    ("tomorrow at 10 or 11", "en", "reschedule_time", "reschedule", "2026-03-10"),
]


@pytest.mark.parametrize(("text", "lang", "context", "intent", "when"), CONTEXT_CASES)
def test_context_rules(text: str, lang: str, context: str, intent: str, when: str | None) -> None:
    got = parse(text, lang, context, NOW_SP, SP)
    assert (got.intent, got.when) == (intent, when), got
