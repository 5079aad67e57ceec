"""Crisis phrase data: loading ``locales/<lang>/crisis_phrases.yaml`` and compiling it.

File shape (one per language)::

    lang: en
    macros: {SUBJ: "(he|she|my friend)"}   # {SUBJ} in patterns; macros may use macros
    typos: {myslef: myself}                 # whole-word corrections before matching
    fuzzy: [myself, suicide]                # also correct one dropped or swapped letter
    idioms: ["dying to (see|meet)"]         # spans blanked before matching (idioms, negations)
    frames: ["{SUBJ} ~ (said|told me)"]     # reported speech: a phrase of the sender's found after
                                            # it is about someone else...
    first_person: [i, me, my]               # ...unless one of these comes between the two
    relapse: ["(came|come|coming) back"]    # after "I'm fine now": the past is not over
    threats: ["{SUBJ} ~ said ~ (hed|he will) kill me"]  # blanked like idioms (not the sender's
    danger: [knife, "locked in the bathroom"]   # own wish); with one of these, danger now
    phrases:
      - id: en.direct.kill_myself           # stable id, reported in Scan.matched
        level: high                         # high | moderate
        category: direct                    # direct indirect plan means self_harm imminent other
        about: self                         # self (default) | other
        patterns: ["{I} ~ (want|going) to kill myself"]
        examples: ["i want to kill myself"] # checked by the tests

Patterns are regular expressions over the normalised text (see :mod:`.normalize`): lower-case
ASCII words separated by single spaces, each run of a repeated letter collapsed to one. The
pattern source goes through the same accent stripping and letter collapse, so write words as
they are spelt ("kill", "morrer"). Words run together in a message ("killmyself") are split by
the ``typos`` table before matching. ``~`` stands for up to three words, ``~~`` for up to
six and ``~~~`` for up to nine; in an idiom these gaps do not pass over a word that starts a
crisis statement ("kill", "matar", "morir"...), so an idiom cannot blank a statement written
inside it; ``~*``, ``~~*``, ``~~~*`` are gaps that do (a screening question quoted and answered
"no"). A bare group ``(...)`` does not capture; ``$`` means "at the end of the message". A
pattern matches whole words only.

Concepts (``concepts:``), a second layer beside the phrases: families of word stems per
language, one family a list of entries, one entry a few tokens::

    concepts:
      WANT: ["quero", "queria", "vou", "pens*", "tenho vontade|ganas", "nao aguento mais$"]
      DIE:  ["morr*", "morte", "estar mort*"]

A token is a word (``quero``), a stem (``pens*``: any word beginning so), alternatives
(``vontade|ganas``), an optional token (``de?``), ``#`` (a number) or, last, ``$`` (the message
ends there, but for words of the ``FILLER`` family). Alternatives stand for one word each: ``had a
heart attack|stroke`` reads "had a heart stroke", never "had a stroke", and ``knot is|s`` never
reads "knots" (the normaliser drops the apostrophe); phrases of different lengths are separate
entries. Stems and words of five letters or more also match with one typo (not on the first
letter): a letter dropped, doubled or added, two neighbours swapped, one letter replaced by a
neighbour on the keyboard. The rules that combine families (``WANT`` and ``DIE`` within four words
of each other: a direct statement, high) are the same for every language and are listed in
:data:`CONCEPT_RULES`; a rule applies to a language that defines all of its families. See
:mod:`.detector` for how they are matched.

Speed: each pattern is read (with Python's own regex parser) for its *anchors*, a set of word
beginnings one of which every match must contain, preferring rare words ("suicid", "pills") over
common ones ("i", "want"). A pattern only runs on a message in which some word starts with one of
its anchors, so ordinary messages skip almost all of them; a pattern with a second, independent
set of anchors (another word every match contains) waits for both. Write words in full
(``(killing|ending) myself``, not ``(kill|end)ing myself``) so they can serve as anchors.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from .normalize import normalize, normalize_pattern_letters

LOCALES_DIR = Path(__file__).resolve().parents[2] / "locales"

LEVELS = ("high", "moderate")
CATEGORIES = ("direct", "indirect", "plan", "means", "self_harm", "imminent", "other")
ABOUTS = ("self", "other")

_MACRO = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")
_BARE_GROUP = re.compile(r"(?<!\\)\((?!\?)")
_WORD = "[a-z0-9]+"
# What the gaps (~, ~~, ~~~) of an idiom may not pass over: a word that begins a crisis
# statement in any shipped language, normalised. Idioms are blanked before anything else is
# matched, so a gap that crossed "quero me matar" would blank the statement with the idiom
# ("otra reunión hoy, quiero matarme, me muero" is not the meeting idiom). Phrases and frames
# keep plain gaps: what they match is reported, not hidden.
_GAP_STOPS = (
    "kil[a-z]*|suicid[a-z]*|die|died|dies|dying|dead|overdos[a-z]*|selfharm[a-z]*"
    "|mat(ar|o|a|arme|arse|ei|ou)|morer[a-z]*|morir[a-z]*|mor(i|io|ia)|muer[a-z]*|mort[oae]s?|muero"
    "|tuer|mourir|umbring[a-z]*|sterb[a-z]*"
)
_GUARDED_WORD = f"(?!(?:{_GAP_STOPS})(?![a-z0-9])){_WORD}"
# A literal word in a compiled pattern: three letters or more, starting a word (not after "\\");
# the typo tables never rewrite such a word.
_LITERAL_WORD = re.compile(r"(?<![\\a-z])[a-z]{3,}")


class PhraseError(ValueError):
    """A crisis phrase file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Phrase:
    id: str
    lang: str
    level: str
    category: str
    about: str
    patterns: tuple[str, ...]
    examples: tuple[str, ...]


# Concept rules: (name, families, window, level, category, about). Every family of a rule must
# occur, each within ``window`` words of the first one named (0: next to each other); a family
# named with a trailing "<" must come before the first family. One family alone: it suffices.
# The first family is the rule's gate (a message without one of its words skips the rule), so
# it is the one with the rarer words.
# The phrase id reported is "<lang prefix>.concept.<name>".
CONCEPT_RULES: tuple[tuple[str, tuple[str, ...], int, str, str, str], ...] = (
    # direct: a first-person wish or intent next to dying, killing oneself, suicide
    ("want_die", ("DIE", "WISH<"), 4, "high", "direct", "self"),
    ("want_kill", ("KILL", "WANT<"), 4, "high", "direct", "self"),
    ("kill_strong", ("KILL_STRONG",), 0, "high", "direct", "self"),
    ("not_live", ("LIVE", "NOWANT<"), 3, "high", "direct", "self"),
    # wanting to follow someone who died ("se matou faz 3 anos ... penso em ir junto com ele")
    ("follow_dead", ("FOLLOW", "WANT<", "DEAD_OTHER<"), 20, "high", "direct", "self"),
    ("follow_anniv", ("FOLLOW", "WANT<", "ANNIV"), 12, "high", "direct", "self"),
    # indirect: disappearing, not waking up, everything ending, a wish to be hit, being a burden
    ("want_vanish", ("VANISH", "WISH"), 4, "moderate", "indirect", "self"),
    ("no_wake", ("NOWAKE",), 0, "moderate", "indirect", "self"),
    ("no_wake_wish", ("NOWAKE_W", "WISH<"), 4, "moderate", "indirect", "self"),
    ("want_end_all", ("ENDALL", "WISH<"), 4, "moderate", "indirect", "self"),
    ("want_accident", ("ACCIDENT", "WISH<"), 5, "moderate", "indirect", "self"),
    # somewhere far, "don't worry for me" ("I go now, not to Mexico, somewhere more far. Dont worry
    # for me. Adios amigos")
    ("go_far", ("FAR_AWAY", "DONT_WORRY"), 10, "moderate", "indirect", "self"),
    # a goodbye to a group, "it was lovely knowing you" ("adiós a los del grupo de los martes. fue
    # bonito conoceros")
    ("group_goodbye", ("MET_YOU", "FAREWELL<"), 10, "moderate", "indirect", "self"),
    # a life insurance, and the family "would come out ahead"
    ("insurance_better", ("FAMILY_AHEAD", "LIFE_INS<"), 16, "moderate", "indirect", "self"),
    # goodbyes said, and the practice the last ones left ("Borré mis redes y ya me despedí de mis
    # amigos. Ustedes eran los que me faltaban")
    ("deleted_bye", ("LAST_ONES", "SAID_BYE<"), 14, "moderate", "indirect", "self"),
    # sorry for being so much work, and a goodbye to end ("sorry for being so much work. take care
    # of urself ok. bye")
    ("sorry_bye", ("BYE_END", "SORRY_BURDEN<", "TAKE_CARE"), 14, "moderate", "indirect", "self"),
    # "I tried, I swear", and someone to be looked after "for me" ("eu tentei, juro que tentei.
    # cuidem da minha mãe por mim")
    ("tried_care", ("CARE_FOR_ME", "TRIED<"), 16, "moderate", "indirect", "self"),
    # where I'm going I won't need anything, everything sold
    ("sold_no_need", ("NO_LONGER", "GIVEAWAY<"), 20, "moderate", "indirect", "self"),
    # never again, with thanks and a blessing ("no voy a ir el martes ni nunca más. Le agradezco la
    # paciencia… Que Dios lo bendiga")
    ("never_bless", ("BLESS_THANKS", "NEVER_AGAIN<"), 20, "moderate", "indirect", "self"),
    # a near accident, and sorry that nothing happened ("o ônibus derrapou e eu torci pra ele virar")
    ("accident_sorry", ("NOTHING_SORRY", "NEAR_MISS<"), 16, "moderate", "indirect", "self"),
    ("accident_shrug", ("SHRUG", "ACCIDENT<", "IFF<"), 14, "moderate", "indirect", "self"),
    ("wake_shrug", ("SHRUG", "NOWAKE_W<", "IFF<"), 10, "moderate", "indirect", "self"),
    ("want_illness", ("SICK_GRAVE", "WISH<"), 5, "moderate", "indirect", "self"),
    ("cant_go_on", ("CANT_GO_ON",), 0, "moderate", "indirect", "self"),
    ("no_point", ("LIVE", "NOPOINT"), 6, "moderate", "indirect", "self"),
    ("burden", ("BURDEN", "IAM<"), 3, "moderate", "indirect", "self"),
    ("burden_self", ("BURDEN_SELF",), 0, "moderate", "indirect", "self"),
    ("better_without_me", ("WITHOUT_ME", "BETTER"), 5, "moderate", "indirect", "self"),
    ("nobody_miss", ("MISS", "NOBODY<"), 4, "moderate", "indirect", "self"),
    ("goodbye", ("FAREWELL", "FINAL"), 8, "high", "indirect", "self"),
    ("goodbye_strong", ("FAREWELL_STRONG",), 0, "high", "indirect", "self"),
    ("thanks_final", ("THANKS_ALL", "FINAL"), 12, "high", "indirect", "self"),
    ("goodbye_note", ("GOODBYE_NOTE",), 0, "moderate", "indirect", "self"),
    ("gone_soon", ("GONE_SOON",), 0, "moderate", "indirect", "self"),
    ("not_born", ("NOT_BORN",), 0, "moderate", "indirect", "self"),
    ("why_alive", ("WHY_ALIVE",), 0, "moderate", "indirect", "self"),
    ("death_relief", ("RELIEF", "DIE"), 4, "moderate", "indirect", "self"),
    ("relief_no_wake", ("RELIEF", "NOWAKE_W"), 5, "moderate", "indirect", "self"),
    ("own_funeral", ("FUNERAL_SELF",), 0, "moderate", "indirect", "self"),
    ("giving_away", ("NO_LONGER", "GIVEAWAY"), 14, "moderate", "indirect", "self"),
    # plans
    ("end_it", ("ENDIT", "WANT"), 4, "high", "plan", "self"),
    ("end_it_when", ("ENDIT", "WHEN"), 4, "high", "plan", "self"),
    ("decided", ("DECIDED", "DOIT"), 6, "high", "plan", "self"),
    ("do_it_when", ("WHEN_ALONE", "DOIT"), 6, "high", "plan", "self"),
    ("decided_alone", ("DECIDED", "WHEN_ALONE"), 10, "high", "plan", "self"),
    ("decided_place", ("DECIDED", "HIGH_PLACE<"), 14, "high", "plan", "self"),
    ("painless_do", ("PAINLESS", "DOIT<"), 4, "high", "plan", "self"),
    ("scouting", ("HIGH_PLACE", "SCOUT"), 12, "moderate", "plan", "self"),
    ("settling", ("SETTLE", "HANDOVER"), 20, "moderate", "indirect", "self"),
    # passwords to everything handed over "just in case"
    ("handover_in_case", ("HANDOVER", "JUST_IN_CASE"), 14, "moderate", "indirect", "self"),
    ("cancel_giveaway", ("CANCEL_ALL", "GAVE_THINGS"), 24, "moderate", "indirect", "self"),
    # things given away, "tying up loose ends" ("Cancelei plano do celular, academia, doei as roupas.
    # Só fechando as pontas soltas")
    ("loose_ends", ("LOOSE_ENDS", "GIVEAWAY<"), 20, "moderate", "indirect", "self"),
    # things given away, and "ready" to end the message ("repartí mis libros y mi ropa… me siento
    # más ligera, lista")
    ("gave_ready", ("READY_END", "GAVE_THINGS<"), 16, "moderate", "indirect", "self"),
    # affairs put in order, and something "won't be used" any more ("transferring my session credit
    # to my sister? Getting my affairs in order and won't be using it")
    ("affairs_no_longer", ("AFFAIRS", "NO_LONGER", "TRANSFER"), 20, "moderate", "indirect", "self"),
    ("no_return", ("NOT_BACK", "PLACE_GO<"), 12, "moderate", "plan", "self"),
    ("scout_station", ("FEW_PEOPLE", "TRAIN_TIME"), 12, "moderate", "plan", "self"),
    ("letter_date", ("DATE_SET", "LETTER"), 12, "moderate", "plan", "self"),
    # things given away, and the letters ("rehomed the cats, gave away the plants, last thing is
    # the letters")
    ("giveaway_letters", ("GAVE_THINGS", "LETTER"), 16, "moderate", "indirect", "self"),
    ("date_follow", ("SAME_DAY", "DATE_SET<"), 10, "high", "plan", "self"),
    # a death's anniversary, and everything thought through after it ("el día del aniversario de la
    # muerte de mi viejo. ese día. ya lo pensé todo")
    ("anniv_planned", ("PLANNED_ALL", "SAME_DAY<"), 14, "high", "plan", "self"),
    # the anniversary of a death, and going with them that day ("el 3 de marzo se cumplen 5 años de
    # que murió mi esposo. ese día me voy con él")
    ("anniv_follow", ("FOLLOW", "SAME_DAY<"), 14, "high", "plan", "self"),
    # after a loved one's occasion, sparing them the day ("my plan is after my sons birthday on the
    # 14th. wanted him to have that day at least")
    ("spared_day", ("SPARED_DAY", "AFTER_OCCASION<"), 14, "moderate", "plan", "self"),
    # a life insurance's waiting period passed ("Contraté el seguro de vida hace un año… Ya pasó el
    # plazo de carencia")
    ("insurance_wait", ("WAIT_PASSED", "LIFE_INS<"), 20, "high", "plan", "self"),
    # somewhere alone, where nobody will find one in time
    ("not_in_time", ("NOT_IN_TIME",), 0, "high", "plan", "self"),
    # at peace with a decision, and "don't try to call me"
    ("decided_peace", ("DECIDED_PEACE", "DONT_CALL"), 14, "high", "indirect", "self"),
    # settled for someone, then a date or "I'm going" ("le dejo hecha la declaración de la renta a mi
    # mujer y a final de mes me voy"; "marquei pra sexta, depois que… pagar o aluguel da minha mãe")
    ("settle_then_go", ("SETTLE_FOR", "GO_DATE"), 16, "moderate", "plan", "self"),
    # a date set "and all", and "I'm not joking" ("jaja ya tengo fecha y todo… no estoy bromeando")
    ("date_serious", ("DATE_EVEN", "NOT_JOKING"), 24, "moderate", "plan", "self"),
    ("research", ("RESEARCH", "MEDS"), 5, "moderate", "plan", "self"),
    # the highest bridge or building looked up ("estuve buscando cuál es el puente más alto")
    ("research_height", ("RESEARCH", "HIGHEST"), 8, "moderate", "plan", "self"),
    # treatment stopped or skipped, and what it means said ("não é esquecimento, é o jeito mais
    # quieto que achei de ir embora"); a decision made with a doctor says neither
    ("stopped_treatment", ("STOP_TREATMENT", "DONE_LIVING"), 20, "moderate", "plan", "self"),
    ("painless", ("PAINLESS", "RESEARCH<"), 6, "high", "plan", "self"),
    ("plan_bare", ("PLAN_BARE",), 0, "moderate", "plan", "self"),
    ("ready_when", ("READY_ALL", "WHEN"), 6, "moderate", "plan", "self"),
    ("chosen_place", ("CHOSEN", "PLACE"), 3, "high", "plan", "self"),
    ("chosen_means", ("CHOSEN", "MEANS"), 3, "high", "plan", "self"),
    ("chosen_meds", ("CHOSEN", "MEDS"), 3, "high", "plan", "self"),
    # means: a method with intent, a jump with a place, the means at hand, bought, saved up,
    # ready, stared at
    ("want_method", ("METHOD", "WANT"), 4, "high", "means", "self"),
    ("jump_place", ("JUMP", "PLACE"), 5, "high", "means", "self"),
    ("method_bare", ("METHOD_BARE",), 0, "high", "means", "self"),
    ("means_at_hand", ("MEANS", "AT_HAND"), 4, "high", "means", "self"),
    ("meds_at_hand", ("MEDS", "AT_HAND"), 4, "moderate", "means", "self"),
    ("means_got", ("MEANS", "GOT<"), 4, "moderate", "means", "self"),
    ("meds_got", ("MEDS", "GOT<", "QUANT"), 5, "moderate", "means", "self"),
    ("meds_hoard", ("MEDS", "HOARD"), 8, "moderate", "means", "self"),
    # taken from work and hidden, "not used yet" ("been squirrelling away a few things from work.
    # havent done anything yet")
    ("stashed_yet", ("STASHED", "NOT_YET"), 12, "moderate", "means", "self"),
    # taken from work and hidden ("trouxe umas ampolas do hospital pra casa. Tão escondidas no armário")
    ("stashed_hidden", ("HIDDEN", "STASHED<"), 12, "moderate", "means", "self"),
    # access to a medicine at work, "and I've thought about it a lot"
    ("meds_access", ("THOUGHT_LOT", "ACCESS<", "MEDS<"), 12, "moderate", "means", "self"),
    # the means bought with a cover story, then "there is no move" ("fui a la ferretería a comprar una
    # cuerda 'para la mudanza'. no hay mudanza")
    ("cover_story", ("NO_REAL", "MEANS<"), 16, "high", "means", "self"),
    # the knot made, and thanks ("ya está el nudo hecho. solo quería dar las gracias")
    ("knot_thanks", ("KNOT_DONE", "SAY_THANKS"), 12, "high", "imminent", "self"),
    # a date set on the anniversary of an accident ("marquei a data. dia 12, quando faz um ano do acidente")
    ("date_anniv", ("ANNIV_DAY", "DATE_SET<"), 10, "moderate", "plan", "self"),
    # sessions passed on while one's affairs are put in order ("¿puedo pasarle mis sesiones pagadas a mi
    # novia? estoy dejando todo en orden")
    ("transfer_affairs", ("AFFAIRS", "TRANSFER<"), 16, "moderate", "indirect", "self"),
    # everything taken while someone is away ("se eu tomar tudo na segunda meu marido só volta de viagem na quarta")
    ("take_all_away", ("AWAY_UNTIL", "TAKE_ALL<"), 16, "high", "plan", "self"),
    # a place, and "I promised the psychologist I'd tell" ("vou na linha do trem amanhã cedo. to avisando pq prometi")
    ("place_promise", ("TOLD_PROMISE", "HIGH_PLACE<"), 16, "high", "imminent", "self"),
    # a relapse, and the blade used ("ontem tive recaída. usei o apontador da minha irmã")
    ("relapse_blade", ("BLADE_USED", "RELAPSED<"), 10, "high", "self_harm", "self"),
    # "it's today", and "don't wait for me at tomorrow's session" ("é hoje. não me espera na sessão de amanhã")
    ("today_dont_wait", ("DONT_WAIT", "TODAY_IS<"), 0, "high", "imminent", "self"),
    # no reminder for the next session "or any after that", and thanks for everything
    ("no_remind_thanks", ("THANKS_ALL", "NO_MORE_REMIND<"), 20, "moderate", "indirect", "self"),
    # blades found, "yes, I went back" ("minha mãe achou as lâminas na minha mochila. sim, eu voltei")
    ("found_back", ("BACK_AGAIN", "FOUND_BLADES<"), 14, "moderate", "self_harm", "self"),
    # a room booked, "not for a holiday" ("reservé un hotel en la costa… no es para vacacionar")
    ("room_not_holiday", ("NOT_HOLIDAY", "BOOKED_ROOM<"), 14, "moderate", "plan", "self"),
    # a supply asked for with a reason given, "that's not really why"
    ("supply_not_why", ("NOT_REALLY_WHY", "DOCTOR_SHOP<"), 16, "moderate", "means", "self"),
    # a second doctor for a second prescription "so I'd have enough"
    ("doctor_shop", ("DOCTOR_SHOP", "MEDS<"), 16, "moderate", "means", "self"),
    ("doctor_shop_told", ("DOCTOR_SHOP", "UNTOLD"), 12, "moderate", "means", "self"),
    # the family away, and "that will be the day" to end the message ("el sábado que mi esposa se
    # lleve a los niños con su mamá va a ser el día")
    ("alone_the_day", ("THE_DAY", "WHEN_ALONE<"), 16, "high", "plan", "self"),
    # "it happened again", with the razor ("aconteceu de novo aquilo q a gente conversou. com a gilete")
    ("again_blade", ("BLADE_WITH", "HAPPENED_AGAIN<"), 10, "high", "self_harm", "self"),
    # things given away with a cover story ("comecei a dar minhas plantas… falei q tô me mudando mas não tô")
    ("giveaway_cover", ("NOT_MOVING", "GIVEAWAY<"), 16, "moderate", "indirect", "self"),
    # set aside at work, "nobody keeps count" ("trabajo en una farmacia y ya separé lo que necesito,
    # nadie lleva la cuenta")
    ("set_aside_uncounted", ("NO_COUNT", "SET_ASIDE<"), 12, "moderate", "means", "self"),
    # a pet rehomed and its papers left "for whoever finds it"
    ("rehomed_finder", ("FOR_FINDER", "REHOMED<"), 20, "moderate", "indirect", "self"),
    # a date marked with an X, "I won't change my mind"
    ("date_firm", ("NO_CHANGE_MIND", "DATE_X<"), 14, "moderate", "plan", "self"),
    # a weapon in the house that nobody remembers, "I do"
    ("means_remember", ("REMEMBER_ONLY", "MEANS<"), 16, "moderate", "means", "self"),
    # "that's when", and one person told ("My wife is at her mother's Sunday. That's when. I wanted
    # one person to know.")
    ("one_person_when", ("ONE_PERSON", "THATS_WHEN<"), 3, "high", "plan", "self"),
    # thanks for the years, and absolving the therapist ahead of something ("só queria agradecer
    # pelos 3 anos. a senhora fez o que pôde, não se culpe por nada")
    ("absolve", ("ABSOLVE", "THANKS_YEARS<"), 20, "moderate", "indirect", "self"),
    # going alone somewhere "and it ends there"; the letters, then going alone ("tô escrevendo as
    # cartas hoje. domingo vou sozinho pro apartamento de Ubatuba e acaba lá")
    ("alone_ends", ("ENDS_THERE", "GO_ALONE<"), 10, "moderate", "plan", "self"),
    ("letters_alone", ("GO_ALONE", "LETTER<"), 16, "moderate", "plan", "self"),
    # train times and the exact place looked up, and when ("el sitio exacto. Será el jueves")
    ("train_spot", ("EXACT_WHEN", "TRAIN_TIME<"), 16, "high", "plan", "self"),
    # a medicine kept, "and I know why" ("me quedé con la morfina… sé por qué me la quedé")
    ("meds_knowing", ("KEPT_KNOWING", "MEDS<"), 14, "moderate", "means", "self"),
    # a box from every prescription, hidden ("tá tudo numa caixa de sapato embaixo da cama")
    ("hoard_hidden", ("HIDDEN", "HOARD_STRONG<"), 20, "moderate", "means", "self"),
    # needles into one's own skin, for relief ("espeto agulha no dedo no trabalho pra aliviar a ansiedade")
    ("needle_relief", ("TO_RELIEVE", "NEEDLE_SELF<"), 10, "moderate", "self_harm", "self"),
    # a run of clean days, then a relapse ("llevaba 100 días limpia y anoche recaí")
    ("clean_relapse", ("RELAPSED", "CLEAN_RUN<"), 10, "moderate", "self_harm", "self"),
    # at the water at night, going in ("im at the river. its so dark. im going in")
    ("water_going_in", ("GOING_IN", "AT_WATER<"), 10, "high", "imminent", "self"),
    # at the tracks, the train heard ("at the tracks. i can hear it coming")
    ("tracks_coming", ("HEAR_COMING", "AT_TRACKS<"), 5, "high", "imminent", "self"),
    # pills taking effect, feeling strange, and thanks ("ya están haciendo efecto las pastillas, me
    # siento rara. quería decir gracias"); a new medicine's side effect asked about has no thanks
    ("effect_thanks", ("EFFECT", "FEEL_ODD", "SAY_THANKS"), 14, "high", "imminent", "self"),
    # new marks, confessed ("new marks on my thighs. wasn't gonna tell you but you said be honest")
    ("marks_confessed", ("NEW_MARKS", "CONFESS"), 10, "moderate", "self_harm", "self"),
    # "went too deep", and stitches ("fui fundo demais ontem, acho que precisava de ponto")
    ("deep_stitches", ("STITCHES", "DEEP_WENT<"), 12, "high", "self_harm", "self"),
    # won't make the session, "doing it now" to end the message
    ("doing_now", ("DOING_NOW", "WONT_MAKE<"), 12, "high", "imminent", "self"),
    # no more reminders, and "you did what you could" ("vcs fizeram o possível. não precisa mais me
    # mandar lembrete de consulta, tá? fiquem com Deus")
    ("no_more_reminders", ("NO_MORE_REMIND", "DID_WHAT_COULD"), 20, "moderate", "indirect", "self"),
    # scars to cover, and still doing it ("tips for covering scars?? summer's coming and im still
    # doing it")
    ("scars_still", ("STILL_DOING", "COVER_SCARS<"), 14, "moderate", "self_harm", "self"),
    # long sleeves in the heat, with a knowing remark ("back to long sleeves in july. you know what
    # that means"); sleeves in summer alone are ordinary
    ("sleeves_knowing", ("SLEEVES", "KNOWING"), 14, "moderate", "self_harm", "self"),
    ("meds_enough", ("MEDS", "ENOUGH_Q"), 12, "high", "means", "self"),
    # which medicine kills painlessly ("lendo sobre qual remédio mata sem dor")
    ("meds_kill", ("KILLS_HOW", "MEDS<"), 4, "high", "means", "self"),
    # charcoal and tape to seal a car ("got charcoal and duct tape in the trunk")
    ("exhaust_kit", ("SEAL_KIT", "EXHAUST", "IN_CAR"), 10, "moderate", "means", "self"),
    # the height a fall needs to be fatal, asked
    ("fall_fatal", ("FALL_FATAL",), 0, "moderate", "means", "self"),
    # money left to someone, then "and then yes" ("le dejo el dinero a mi mamá y ahí sí")
    ("money_then", ("THEN_THAT", "LEAVE_MONEY<"), 12, "moderate", "plan", "self"),
    ("means_ready", ("MEANS", "READY"), 3, "high", "means", "self"),
    ("want_poison", ("POISON", "WANT"), 6, "high", "means", "self"),
    ("poison_got", ("POISON", "GOT<"), 4, "high", "means", "self"),
    # how much of a poison would kill ("quanto de chumbinho mata uma pessoa adulta")
    ("poison_enough", ("POISON", "ENOUGH_Q"), 12, "high", "means", "self"),
    ("means_access", ("MEANS", "KNOW_WHERE"), 8, "moderate", "means", "self"),
    ("means_thought", ("MEANS", "THOUGHT_IT"), 16, "moderate", "means", "self"),
    ("fire", ("FUEL", "LIGHTER"), 4, "moderate", "means", "self"),
    ("means_stare", ("MEANS", "STARE<"), 3, "moderate", "means", "self"),
    # bought with a story for the shop ("el señor me preguntó si era para mudanza y le dije que sí")
    ("means_cover", ("COVER", "MEANS<"), 8, "moderate", "means", "self"),
    ("meds_stare", ("MEDS", "STARE<"), 3, "moderate", "means", "self"),
    # a relative's medicine visited "just to look at it" ("my nan's morphine is still in her
    # cupboard … i keep going round there just to look at it")
    ("meds_visit", ("MEDS", "VISIT_LOOK"), 16, "moderate", "means", "self"),
    # self-harm
    ("self_harm", ("SELF_HARM", "SH_CONTEXT"), 5, "high", "self_harm", "self"),
    ("want_self_harm", ("SELF_HARM", "WANT<"), 4, "high", "self_harm", "self"),
    ("self_harm_strong", ("SH_STRONG",), 0, "high", "self_harm", "self"),
    ("harm_body", ("HARM_VERB", "BODY"), 3, "high", "self_harm", "self"),
    ("harm_deep", ("DEEP", "HARM_VERB<"), 2, "high", "self_harm", "self"),
    ("cuts_on_body", ("CUT_N", "BODY"), 4, "high", "self_harm", "self"),
    # the count of days without self-harm back to zero ("lembra do contador de dias sem me cortar? zerou")
    ("counter_reset", ("COUNTER_RESET", "CLEAN_DAYS"), 10, "moderate", "self_harm", "self"),
    # imminent
    ("took_meds", ("MEDS", "TOOK<", "QUANT"), 5, "high", "imminent", "self"),
    ("swallowed", ("SWALLOWED", "QUANT"), 4, "high", "imminent", "self"),
    ("took_poison", ("POISON", "TOOK<"), 4, "high", "imminent", "self"),
    ("mixed", ("MEDS", "MIXED<"), 5, "high", "imminent", "self"),
    ("at_place", ("HIGH_PLACE", "AT<"), 6, "high", "imminent", "self"),
    ("car_exhaust", ("EXHAUST", "GARAGE"), 8, "high", "imminent", "self"),
    ("no_way_back", ("NO_WAY_BACK",), 0, "high", "imminent", "self"),
    ("neck", ("NECK",), 0, "high", "imminent", "self"),
    ("now_goodbye", ("FAREWELL", "NOW<"), 3, "high", "imminent", "self"),
    # alone now, "é agora", thanks for everything ("minha mãe saiu. é agora. obrigada por td")
    ("alone_now_thanks", ("WHEN_ALONE", "NOW_IT", "THANKS_ALL"), 12, "high", "imminent", "self"),
    # concern for someone else: a person named, then what they said, did or have
    ("other_want", ("OTHER_ACT", "SUBJ<", "WANT3"), 12, "high", "other", "other"),
    ("other_did", ("OTHER_DID", "SUBJ<"), 12, "high", "other", "other"),
    # someone else wanting to follow a person who died ("since Mum died, says he just wants to be
    # with her")
    ("other_follow", ("FOLLOW", "WANTS_3P<", "DEAD_OTHER<"), 20, "high", "other", "other"),
    # someone else stopping treatment, "says she has lived long enough"
    ("other_stopped", ("STOP_TREATMENT", "SUBJ<", "DONE_LIVING"), 20, "moderate", "other", "other"),
    # a young person's own funeral written or drawn, and the adult worried ("he described his own
    # funeral in detail … I'm very worried"); a class exercise without the worry is not
    ("other_funeral", ("OWN_FUNERAL", "WORRIED"), 24, "moderate", "other", "other"),
    # a goodbye someone sent, and a plea to check on them ("sent a really weird goodbye text to our
    # whole work chat. Can someone check on him??")
    ("other_goodbye_check", ("CHECK_ON", "GOODBYE_SENT<"), 16, "high", "other", "other"),
    # a goodbye posted, and they cannot be reached ("posted 'see you never' on his story… we cant
    # reach him")
    ("other_unreachable", ("CANT_REACH", "GOODBYE_POST<"), 24, "high", "other", "other"),
    # things given away, "take care of mom", and the writer worried ("mi hermano regaló su guitarra
    # y su compu y me dijo 'cuidá a mamá'... estoy re preocupada")
    ("other_giveaway", ("CARE_FOR", "GAVE_3P<", "WORRIED"), 24, "moderate", "other", "other"),
    # a clinician or relative relaying "the decision is made", and no answer since
    ("other_decided", ("DECIDED_GONE",), 0, "high", "other", "other"),
    # a past statement at a distance and how the person is now: not a crisis (see detector)
    ("recovered", ("PAST_FAR", "NOW_OK"), 30, "none", "recovered", "self"),
    # self-harm cuts getting worse, or dressed alone ("preciso falar dos cortes, tá piorando e tive q
    # fazer curativo sozinha"); a budget's or a haircut's cuts are blanked as idioms
    ("cuts_worse", ("CUTS_WORSE", "CUTS<"), 8, "moderate", "self_harm", "self"),
)
# Families whose words do not count right after a negation ("nao quero", "I don't want"): NEG
# just before, or NEG and one NEG_BRIDGE word ("nao to pensando", "I don't really want").
CONCEPT_NEGATABLE = frozenset(
    {"WISH", "WANT", "WANT3", "GOT", "HOARD", "TOOK", "AT", "SELF_HARM", "HARM_VERB", "DECIDED", "IAM", "NOW_OK"}
)
_FAMILY = re.compile(r"[A-Z][A-Z0-9_]*")

# One token of a concept entry: ("w", word) | ("p", stem) | ("#", "") a number | ("$", "") the end.
ConceptToken = tuple[str, str]


@dataclass(frozen=True)
class LangData:
    lang: str
    typos: Mapping[str, str]  # explicit corrections
    fuzzy: Mapping[str, str]  # generated one-letter variants; a real pattern word always wins
    words: frozenset[str]  # every literal word in this language's patterns and idioms
    idioms: tuple[str, ...]  # compiled sources
    frames: tuple[str, ...]  # compiled sources
    first_person: frozenset[str]
    phrases: tuple[Phrase, ...]
    compiled: Mapping[str, str]  # phrase id -> compiled regex source (all its patterns)
    pattern_srcs: Mapping[str, tuple[str, ...]]  # phrase id -> each pattern's compiled source
    # family -> its entries, each a tuple of alternatives per token position, already expanded
    # (no optional tokens left)
    concepts: Mapping[str, tuple[tuple[tuple[ConceptToken, ...], ...], ...]] = field(default_factory=dict)
    concept_phrases: tuple[Phrase, ...] = ()  # the rules of CONCEPT_RULES this language can run
    # the language's frequent words (vocabulary.txt beside the phrase file): a typo variant of a
    # crisis word that is one of them is not a typo ("missed" reads "mised", one key from "mixed")
    vocabulary: frozenset[str] = frozenset()
    # patterns that say a past crisis is back ("it came back", "de novo"): after the "now" of a
    # message told as the past they keep the alert (detector._told_as_past)
    relapse: tuple[str, ...] = ()
    # someone threatening the sender's life: blanked like the idioms, and with a ``danger``
    # pattern anywhere in the message (a weapon, drunk, the sender hiding) an imminent alert
    threats: tuple[str, ...] = ()
    danger: tuple[str, ...] = ()


def _expand_macros(src: str, macros: Mapping[str, str], where: str) -> str:
    for _ in range(10):
        new = _MACRO.sub(lambda m: _macro(m.group(1), macros, where), src)
        if new == src:
            return new
        src = new
    raise PhraseError(f"{where}: macros nest too deep (a macro refers to itself?)")


def _macro(name: str, macros: Mapping[str, str], where: str) -> str:
    if name not in macros:
        raise PhraseError(f"{where}: unknown macro {{{name}}}")
    return "(?:" + macros[name] + ")"


def compile_pattern(src: str, macros: Mapping[str, str], where: str = "pattern", guarded: bool = False) -> str:
    """Turn a phrase pattern into a regex source over normalised text (see module doc).

    ``guarded``: an idiom's gaps do not pass over the start of a crisis statement (_GAP_STOPS),
    but for open gaps (``~*``, ``~~*``, ``~~~*``): a question quoted and answered "no" ("asked
    if I wanted to kill myself ~~* and I said no") holds the statement by design.
    """
    gap = _GUARDED_WORD if guarded else _WORD
    s = _expand_macros(src.strip(), macros, where)
    s = normalize_pattern_letters(s)
    s = re.sub(r"\s+", " ", s)
    s = _BARE_GROUP.sub("(?:", s)
    s = s.replace(" ~~~* ", "\x06").replace(" ~~* ", "\x04").replace(" ~* ", "\x05")
    s = s.replace(" ~~~ ", "\x03").replace(" ~~ ", "\x01").replace(" ~ ", "\x02")
    if "~" in s:
        raise PhraseError(f"{where}: '~' must stand alone between two words: {src!r}")
    # The matcher pads the text with a space at each end: "$" means "at the last word".
    s = re.sub(r"(?<!\\)\$", "(?= ?$)", s)
    s = (
        s.replace("\x06", f"(?: {_WORD}){{0,9}} ")
        .replace("\x04", f"(?: {_WORD}){{0,6}} ")
        .replace("\x05", f"(?: {_WORD}){{0,3}} ")
        .replace("\x03", f"(?: {gap}){{0,9}} ")
        .replace("\x01", f"(?: {gap}){{0,6}} ")
        .replace("\x02", f"(?: {gap}){{0,3}} ")
    )
    try:
        re.compile(s)
    except re.error as exc:
        raise PhraseError(f"{where}: bad pattern {src!r}: {exc}") from exc
    return s


_sre_parser: Any = importlib.import_module("re._parser")
_sre: Any = importlib.import_module("re._constants")
_ZERO_WIDTH = {_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT}
_REPEATS = {_sre.MAX_REPEAT, _sre.MIN_REPEAT, getattr(_sre, "POSSESSIVE_REPEAT", _sre.MAX_REPEAT)}

# Word beginnings too common in ordinary messages to be good anchors (any language).
_COMMON_WORDS = """
i im id ive ill me my mine myself a an the to too of in on at for and or but so just really very
you your u it its is be was were am are been being do does did dont not no never can cant could
would will wont should want wanna going gonna go get got have has had feel feeling think know
all this that there here what how when who with without about from up out off now today tonight
like more any some one every everyone anymore again still even only
eu e o os as um uma de da do das dos em no na nos nas que q n nao nem mais muito so ja to tou
estou esta ta vou vai quero queria ser ter tenho meu minha me se para pra com sem por hoje agora
yo y el la los las un una en que no ya mas muy mi mis me se te para por con sin hoy ahora quiero
voy va estoy soy tengo
je j ne n pas plus me ma mon mes le la les un une de du des et en au a il elle vais veux suis
ich du er sie es mich mir mein meine nicht nie kein will mochte bin habe hab und oder der die das
den dem ein eine zu mit von auf
"""
COMMON = frozenset(_COMMON_WORDS.split())


def _anchor_cost(a: str) -> int:
    """Roughly how often a word beginning shows up in ordinary messages (lower is rarer)."""
    if len(a) < 2:
        return 10_000
    if len(a) == 2:
        return 400  # a two-letter beginning matches a great many words
    if a in COMMON:
        return 300
    if len(a) == 3:
        return 60
    if len(a) == 4:
        return 8
    return 2


def _anchor_score(cand: frozenset[str]) -> tuple[int, int]:
    costs = [_anchor_cost(a) for a in cand]
    return (max(costs) if max(costs) >= 10_000 else sum(costs)), len(cand)


def _best(cands: list[frozenset[str]]) -> frozenset[str] | None:
    return min(cands, key=_anchor_score) if cands else None


def _lead(items: Any) -> str:
    out = ""
    for op, av in items:
        if op == _sre.LITERAL and ("a" <= chr(av) <= "z" or "0" <= chr(av) <= "9"):
            out += chr(av)
        else:
            break
    return out


def _branches(node: Any) -> list[Any] | None:
    """The alternatives of a BRANCH's list, or of a group that holds just one BRANCH."""
    if isinstance(node, list) and node and not isinstance(node[0], tuple):
        return node
    seq = node.data if hasattr(node, "data") else node
    if isinstance(seq, list) and len(seq) == 1 and seq[0][0] == _sre.BRANCH:
        return list(seq[0][1][1])
    return None


def _walk(items: Any, ws: bool) -> tuple[list[frozenset[str]], bool]:
    """Candidate anchor sets of a parsed regex sequence, and whether it ends at a word start.

    ``ws`` says whether the sequence starts at the start of a word. A candidate is a set of
    strings one of which begins some word of every match.
    """
    cands: list[frozenset[str]] = []
    run: str | None = None
    for op, av in items:
        if op == _sre.LITERAL:
            ch = chr(av)
            if "a" <= ch <= "z" or "0" <= ch <= "9":
                if run is not None:
                    run += ch
                elif ws:
                    run = ch
                ws = False
            else:
                if run:
                    cands.append(frozenset([run]))
                run = None
                ws = ch == " "
            continue
        if op == _sre.ASSERT and av[0] == 1:
            # What a positive look-ahead requires is in the message too.
            cands.extend(_walk(av[1], False)[0])
            continue
        if op in _ZERO_WIDTH:
            continue
        if run and op in (_sre.BRANCH, _sre.SUBPATTERN):
            # The parser factors shared beginnings out of alternatives ("hang|hung" -> "h" then
            # "ang|ung"); glue them back so the anchor is a whole word beginning, or take a
            # rarer word further along that alternative.
            branches = _branches(av[1] if op == _sre.BRANCH else av[-1])
            if branches is not None:
                picks = [_best([frozenset([run + _lead(b)]), *_walk(b, False)[0]]) for b in branches]
                cands.append(frozenset().union(*(p for p in picks if p is not None)))
                run = None
        if run:
            cands.append(frozenset([run]))
        run = None
        if op == _sre.SUBPATTERN:
            sub_c, ws = _walk(av[-1], ws)
            cands.extend(sub_c)
        elif op == _sre.BRANCH:
            results = [_walk(b, ws) for b in av[1]]
            picks = [_best(c) for c, _ in results]
            if picks and all(p is not None for p in picks):
                cands.append(frozenset().union(*(p for p in picks if p is not None)))
            ws = all(w for _, w in results)
        elif op in _REPEATS:
            lo, _hi, sub = av
            sub_c, w = _walk(sub, ws)
            if lo >= 1:
                cands.extend(sub_c)
                ws = w
            else:
                ws = ws and w
        else:
            ws = False
    if run:
        cands.append(frozenset([run]))
    return cands, ws


def anchors_of(src: str) -> frozenset[str] | None:
    """Word beginnings one of which every match of ``src`` contains; None if none can be found."""
    sets = anchor_sets(src, 1)
    return sets[0] if sets else None


def anchor_sets(src: str, k: int = 2) -> tuple[frozenset[str], ...]:
    """Up to ``k`` independent anchor sets of ``src``, the rarest first: every match contains a
    word beginning from *each* of them. Empty when no usable set can be found.

    A second set lets a pattern wait until both of its conditions are in the message: one rare
    word alone ("matar") still starts many regex searches that a second word ("me", "quiero")
    rules out, and each search costs about as much as the rest of the message's work.
    """
    parsed = _sre_parser.parse(src)
    cands, _ = _walk(parsed.data, True)
    usable = {c for c in cands if c and max(_anchor_cost(a) for a in c) < 10_000}
    ranked = sorted(usable, key=lambda c: (_anchor_score(c), sorted(c)))
    best = _best(cands)
    if best is None or best not in usable:
        return ()
    # the first set is the one anchors_of always chose; the others follow by rarity
    return (best, *[c for c in ranked if c != best][: k - 1])


def _fuzzy_variants(word: str) -> set[str]:
    """One dropped letter or one swap of neighbours, collapsed like the text."""
    out: set[str] = set()
    for i in range(len(word)):
        out.add(word[:i] + word[i + 1 :])
        if i + 1 < len(word):
            out.add(word[:i] + word[i + 1] + word[i] + word[i + 2 :])
    collapsed = {re.sub(r"([a-z])\1+", r"\1", v) for v in out}
    collapsed.discard(word)
    return collapsed


def _concept_token(raw: str, where: str) -> tuple[tuple[ConceptToken, ...], bool]:
    """One written token: its alternatives and whether it is optional."""
    optional = raw.endswith("?") and len(raw) > 1
    if optional:
        raw = raw[:-1]
    if raw == "#":
        return (("#", ""),), optional
    if raw == "$":
        return (("$", ""),), optional
    alts: list[ConceptToken] = []
    for alt in raw.split("|"):
        stem = alt.endswith("*")
        word = normalize(alt[:-1] if stem else alt)
        if not word or " " in word:
            raise PhraseError(f"{where}: bad token {raw!r}")
        alts.append(("p" if stem else "w", word))
    return tuple(alts), optional


def parse_concept_entry(src: str, where: str) -> list[tuple[tuple[ConceptToken, ...], ...]]:
    """An entry's token sequences, one per choice of its optional tokens."""
    seqs: list[list[tuple[ConceptToken, ...]]] = [[]]
    parts = src.split()
    if not parts:
        raise PhraseError(f"{where}: empty entry")
    for i, raw in enumerate(parts):
        alts, optional = _concept_token(raw, where)
        if alts[0][0] == "$" and i != len(parts) - 1:
            raise PhraseError(f"{where}: '$' must come last: {src!r}")
        seqs = [*([*seq, alts] for seq in seqs), *(seqs if optional else [])]
    out = [tuple(seq) for seq in seqs if seq and seq[0][0][0] not in "$"]
    if not out:
        raise PhraseError(f"{where}: an entry needs a word: {src!r}")
    return out


def _parse_concepts(raw: Any, where: str) -> dict[str, tuple[tuple[tuple[ConceptToken, ...], ...], ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise PhraseError(f"{where}: 'concepts' must be a mapping of family names to lists")
    out: dict[str, tuple[tuple[tuple[ConceptToken, ...], ...], ...]] = {}
    for name, entries in raw.items():
        if not isinstance(name, str) or not _FAMILY.fullmatch(name):
            raise PhraseError(f"{where}: concept family {name!r} must be upper case")
        seqs: list[tuple[tuple[ConceptToken, ...], ...]] = []
        for i, e in enumerate(_as_list(entries, f"{where}: concepts.{name}")):
            if not isinstance(e, str):
                # YAML reads a bare no / on / yes as a boolean: quote it
                raise PhraseError(f"{where}: concepts.{name}[{i}]: {e!r} is not a string (quote it)")
            seqs.extend(parse_concept_entry(e, f"{where}: concepts.{name}[{i}]"))
        out[name] = tuple(dict.fromkeys(seqs))
    return out


def concept_phrases(lang: str, families: Mapping[str, object]) -> tuple[Phrase, ...]:
    """The rules of :data:`CONCEPT_RULES` whose families ``lang`` defines, as phrases."""
    prefix = lang.split("_")[0].lower()
    out = []
    for name, fams, _window, level, category, about in CONCEPT_RULES:
        if level not in LEVELS:
            continue
        if all(f.rstrip("<") in families for f in fams):
            out.append(Phrase(f"{prefix}.concept.{name}", lang, level, category, about, (), ()))
    return tuple(out)


def _as_list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PhraseError(f"{where}: expected a list")
    return value


def parse_lang_file(data: Mapping[str, Any], where: str) -> LangData:
    if not isinstance(data, Mapping):
        raise PhraseError(f"{where}: expected a mapping at the top")
    lang = data.get("lang")
    if not isinstance(lang, str) or not lang:
        raise PhraseError(f"{where}: 'lang' is required")
    macros_raw = data.get("macros") or {}
    if not isinstance(macros_raw, Mapping):
        raise PhraseError(f"{where}: 'macros' must be a mapping")
    macros: dict[str, str] = {}
    for k, v in macros_raw.items():
        if not isinstance(k, str) or not re.fullmatch(r"[A-Z][A-Z0-9_]*", k):
            raise PhraseError(f"{where}: macro name {k!r} must be upper case (and not YES/NO/ON/OFF)")
        # A folded YAML line break after "|" is not part of the next alternative.
        macros[k] = re.sub(r"\|\s+", "|", " ".join(str(v).split()))

    fuzzy: dict[str, str] = {}
    for raw in _as_list(data.get("fuzzy"), f"{where}: fuzzy"):
        word = normalize(str(raw))
        if len(word) >= 6:
            for v in _fuzzy_variants(word):
                fuzzy.setdefault(v, word)
    typos: dict[str, str] = {}
    typos_raw = data.get("typos") or {}
    if not isinstance(typos_raw, Mapping):
        raise PhraseError(f"{where}: 'typos' must be a mapping")
    for k, v in typos_raw.items():
        typos[normalize(str(k))] = normalize(str(v))

    idioms = tuple(
        compile_pattern(str(p), macros, f"{where}: idioms[{i}]", guarded=True)
        for i, p in enumerate(_as_list(data.get("idioms"), f"{where}: idioms"))
    )

    frames = tuple(
        compile_pattern(str(p), macros, f"{where}: frames[{i}]")
        for i, p in enumerate(_as_list(data.get("frames"), f"{where}: frames"))
    )
    relapse, threats, danger = (
        tuple(
            compile_pattern(str(p), macros, f"{where}: {key}[{i}]", guarded=key == "threats")
            for i, p in enumerate(_as_list(data.get(key), f"{where}: {key}"))
        )
        for key in ("relapse", "threats", "danger")
    )
    if threats and not danger:
        raise PhraseError(f"{where}: 'threats' without 'danger' would never alert")
    first_person = frozenset(normalize(str(w)) for w in _as_list(data.get("first_person"), f"{where}: first_person"))
    if any(not w or " " in w for w in first_person):
        raise PhraseError(f"{where}: first_person words must be single words")

    phrases: list[Phrase] = []
    compiled: dict[str, str] = {}
    pattern_srcs: dict[str, tuple[str, ...]] = {}
    for i, entry in enumerate(_as_list(data.get("phrases"), f"{where}: phrases")):
        at = f"{where}: phrases[{i}]"
        if not isinstance(entry, Mapping):
            raise PhraseError(f"{at}: expected a mapping")
        pid = entry.get("id")
        if not isinstance(pid, str) or not re.fullmatch(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+", pid):
            raise PhraseError(f"{at}: 'id' must look like 'en.direct.kill_myself'")
        if pid in compiled:
            raise PhraseError(f"{at}: duplicate id {pid}")
        level = entry.get("level")
        category = entry.get("category")
        about = entry.get("about", "self")
        if level not in LEVELS:
            raise PhraseError(f"{at} ({pid}): level must be one of {LEVELS}")
        if category not in CATEGORIES:
            raise PhraseError(f"{at} ({pid}): category must be one of {CATEGORIES}")
        if about not in ABOUTS:
            raise PhraseError(f"{at} ({pid}): about must be one of {ABOUTS}")
        pats = [str(p) for p in _as_list(entry.get("patterns"), f"{at}: patterns")]
        if not pats:
            raise PhraseError(f"{at} ({pid}): at least one pattern")
        srcs = [compile_pattern(p, macros, f"{at} ({pid})") for p in pats]
        compiled[pid] = "|".join(srcs)
        pattern_srcs[pid] = tuple(srcs)
        phrases.append(
            Phrase(
                id=pid,
                lang=lang,
                level=str(level),
                category=str(category),
                about=str(about),
                patterns=tuple(pats),
                examples=tuple(str(e) for e in _as_list(entry.get("examples"), f"{at}: examples")),
            )
        )
    words = frozenset(
        w for src in (*compiled.values(), *idioms, *frames, *threats) for w in _LITERAL_WORD.findall(src)
    )
    concepts = _parse_concepts(data.get("concepts"), where)
    return LangData(
        lang,
        typos,
        fuzzy,
        words,
        idioms,
        frames,
        first_person,
        tuple(phrases),
        compiled,
        pattern_srcs,
        concepts,
        concept_phrases(lang, concepts),
        relapse=relapse,
        threats=threats,
        danger=danger,
    )


def load_lang_file(path: Path) -> LangData:
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    ld = parse_lang_file(data, str(path))
    vocab = path.with_name("vocabulary.txt")
    if vocab.exists():
        lines = vocab.read_text(encoding="utf-8").splitlines()
        ld = replace(ld, vocabulary=frozenset(w for w in lines if w and not w.startswith("#")))
    return ld


def phrase_files(locales_dir: Path = LOCALES_DIR) -> list[Path]:
    return sorted(locales_dir.glob("*/crisis_phrases.yaml"))


def load_all(paths: Iterable[Path] | None = None) -> list[LangData]:
    return [load_lang_file(p) for p in (phrase_files() if paths is None else paths)]
