"""The concept layer (bot/safety/detector.py, "concepts:" in the phrase files): word families
combined within a few words, typo-tolerant, after idioms and negations are blanked."""

from __future__ import annotations

import pytest

from bot.safety import Scan, scan
from bot.safety import detector as det
from bot.safety.phrases import CONCEPT_RULES, PhraseError, load_all, parse_concept_entry, parse_lang_file

# ---------------------------------------------------------------------- entry syntax


def test_entry_syntax() -> None:
    seqs = parse_concept_entry("quero|queria morr* de? #", "t")
    assert (("w", "quero"), ("w", "queria")) in seqs[0]
    assert len(seqs) == 2  # with and without the optional "de"
    assert [len(s) for s in seqs] == [4, 3]
    assert seqs[0][1] == (("p", "mor"),)  # stems are normalised like the text: "rr" -> "r"
    assert seqs[0][3] == (("#", ""),)
    assert parse_concept_entry("nao aguento mais $", "t")[0][-1] == (("$", ""),)
    with pytest.raises(PhraseError, match="last"):
        parse_concept_entry("nao $ mais", "t")


@pytest.mark.parametrize("bad", [{"WISH": [False]}, {"wish": ["quero"]}, {"WISH": "quero"}])
def test_bad_concept_data_is_named(bad: dict[str, object]) -> None:
    with pytest.raises(PhraseError, match="concept"):
        parse_lang_file({"lang": "xx", "concepts": bad}, "xx.yaml")


def test_typo_variants() -> None:
    v = det.typo_variants("morer", stem=False)
    assert "moer" in v  # a letter dropped
    assert "mroer" in v  # two neighbours swapped
    assert "moxrer" in v  # a letter added
    assert "mprer" in v  # o -> p: neighbours on the keyboard
    assert "mxrer" not in v  # o -> x: not neighbours
    assert "norer" not in v  # the first letter is never changed
    assert "morers" not in v  # nothing is added after the last letter ("ledge" is not "ledger")
    stem = det.typo_variants("suicid", stem=True)
    assert "sucid" in stem and "suici" not in stem  # a stem keeps its last letter


# ---------------------------------------------------------------------- a language of its own

IT = {
    "lang": "it",
    "concepts": {
        "WISH": ["voglio", "vorrei", "penso a"],
        "DIE": ["morire", "essere mort*"],
        "NEG": ["non", "mai"],
        "NEG_BRIDGE": ["lo", "ci"],
        "FILLER": ["davvero", "ok"],
        "ADV": ["tanto", "proprio"],
        "CANT_GO_ON": ["non ce la faccio piu $"],
        "PAST_FAR": ["anni fa"],
        "NOW_OK": ["sto bene"],
    },
}


@pytest.fixture(scope="module")
def it() -> object:
    return det.build([parse_lang_file(IT, "it.yaml")])


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("voglio morire", ("it.concept.want_die",)),
        ("VOGLIO MORIIIRE!!", ("it.concept.want_die",)),
        ("vogio morire", ("it.concept.want_die",)),  # a letter dropped from a word of 5+
        ("voglio mroire", ("it.concept.want_die",)),  # two letters swapped
        ("voglio tanto morire", ("it.concept.want_die",)),  # an adverb in between
        ("ieri sera penso a essere morta", ("it.concept.want_die",)),  # a stem
        ("vorrei, sai, io, morire", ("it.concept.want_die",)),  # within four words
        ("non ce la faccio piu", ("it.concept.cant_go_on",)),
        ("non ce la faccio piu davvero ok", ("it.concept.cant_go_on",)),  # fillers after "$"
        ("non ce la faccio piu con questo caldo", ()),  # "$": the message must end there
        ("morire voglio", ()),  # WISH< : the wish comes first
        ("voglio una pizza, non so, domani si vedra, poi morire", ()),  # too far apart
        ("non voglio morire", ()),  # negated
        ("non lo voglio morire", ()),  # negated, one bridge word
        ("voglio mangiare", ()),
        ("anni fa volevo morire, voglio morire, ora sto bene", ()),  # "recovered"
    ],
)
def test_concepts_in_a_new_language(it: object, text: str, ids: tuple[str, ...]) -> None:
    assert isinstance(it, det._Compiled)
    res = det.scan_with(it, text)
    assert res.matched == ids, (text, res)
    assert res.crisis is bool(ids)


def test_rules_apply_where_their_families_are_defined() -> None:
    ld = parse_lang_file(IT, "it.yaml")
    names = {p.id.split(".")[-1] for p in ld.concept_phrases}
    assert names == {"want_die", "cant_go_on"}  # "recovered" is not a phrase
    rules = {name for name, *_ in CONCEPT_RULES}
    assert names <= rules


# ---------------------------------------------------------------------- the shipped data

LANG_DATA = load_all()


def test_shipped_concept_families() -> None:
    by_lang = {ld.lang: ld for ld in LANG_DATA}
    for lang in ("en", "pt_BR", "es"):
        cats = {p.category for p in by_lang[lang].concept_phrases}
        assert cats == {"direct", "indirect", "plan", "means", "self_harm", "imminent", "other"}, lang
        assert len(by_lang[lang].concept_phrases) >= 50, lang


def test_concept_ids_are_known_phrases() -> None:
    c = det.compiled()
    for ld in LANG_DATA:
        for p in ld.concept_phrases:
            assert c.phrases[p.id] == p


# Messages written for these tests (not taken from the labelled sets).
CASES: list[tuple[str, str, bool, str | None]] = [
    # direct, with typos the phrase patterns do not list
    ("qeuro morrer", "pt_BR", True, "self"),
    ("quiero morirrme ya", "es", True, "self"),
    ("i really wnat to die", "en", True, "self"),
    # indirect
    ("as vezes queria nem ter nascido", "pt_BR", True, "self"),
    ("no le veo sentido a seguir viviendo", "es", True, "self"),
    ("everyone would be better off if i was gone", "en", True, "self"),
    # plan, means, self-harm, imminent
    ("ja escolhi qual ponte", "pt_BR", True, "self"),
    ("tengo las pastillas guardadas en el cajon", "es", True, "self"),
    ("razor blades are right here next to me", "en", True, "self"),
    ("me corte el brazo otra vez", "es", True, "self"),
    ("engoli uma cartela inteira", "pt_BR", True, "self"),
    ("im standing on the ledge", "en", True, "self"),
    # someone else
    ("mi hermana dice que quiere desaparecer para siempre", "es", True, "other"),
    ("my roommate took a bunch of pills", "en", True, "other"),
    # not a crisis: idioms, negations, ordinary uses of the same words, past and well now
    ("me muero de risa con vos", "es", False, None),
    ("nao quero morrer nunca, amo minha vida", "pt_BR", False, None),
    ("goodbye for now, see you next week", "en", False, None),
    ("comprei uma faca nova pra cozinha", "pt_BR", False, None),
    ("i want to disappear for a few days, holiday!", "en", False, None),
    ("hace años pensé en matarme, hoy estoy bien", "es", False, None),
    ("i cut myself years ago, im in a good place now", "en", False, None),
    # ... but a past statement is not "recovered" without a word on how the person is now,
    # and "recovered" never hides a plan, means or imminent danger
    ("hace años pensé en matarme y volvió", "es", True, "self"),
    ("years ago i tried, im fine now but i have the pills right here", "en", True, "self"),
    # told as the past: what follows the "now" must be calm on its own, and not say it is back
    ("years ago I wanted to die. I'm fine now. but lately I want to die again", "en", True, "self"),
    ("years ago I wanted to die. I'm fine now. but it came back", "en", True, "self"),
    ("há dois anos eu pensava em me matar. hoje estou bem. mas voltou tudo essa semana", "pt_BR", True, "self"),
    ("hace un año planeaba matarme. hoy estoy bien. pero estoy planeando otra vez", "es", True, "self"),
    ("years ago I took an overdose. I'm doing well now. last night I took all my pills again", "en", True, "self"),
    # ... and a plan or an overdose told from the past marker on is the past
    ("A year ago today I took an overdose and ended up in A&E. This morning I ran my first 10k", "en", False, None),
    ("hace dos años estaba planeando cómo matarme. hoy me gradué. quería que supieran: sí mejora", "es", False, None),
    ("years ago I wanted to die. I'm fine now and I ran again today", "en", False, None),
    ("hace años intenté matarme. hoy estoy bien. mañana empiezo otra vez la facultad", "es", False, None),
    # someone threatening the sender's life, with danger at hand; not the threat alone or in jest
    ("ME DIJO QUE HOY ME MATA, ESTÁ BORRACHO Y TIENE EL MACHETE, ESTOY ENCERRADA EN EL BAÑO", "es", True, "self"),
    ("he's drunk and threatening to kill me, I'm locked in the bathroom", "en", True, "self"),
    ("ele tá bêbado e disse que vai me matar, tô trancada no banheiro", "pt_BR", True, "self"),
    ("my ex said he would kill me if I left. I have a protective order now and I'm safe", "en", False, None),
    ("he said he'd bring a knife for the cake", "en", False, None),
    ("mi mamá me va a matar, dejé el cuchillo del pan en casa de mi tía jaja", "es", False, None),
    # an idiom's gap does not pass over a statement written inside it
    ("otra reunión hoy y me muero", "es", False, None),
    ("otra reunión hoy, quiero matarme, me muero", "es", True, "self"),
    ("curso de primeiros socorros em saúde mental e prevenção do suicídio", "pt_BR", False, None),
    ("the character in the show kills himself", "en", False, None),
    ("the character, honestly I want to kill myself, kills himself", "en", True, "self"),
    ("my psychiatrist asked if i wanted to kill myself and i said no", "en", False, None),
    # round 23: collecting from several pharmacies, taken from work "not used yet", a drug from
    # the clinic thought about, up the hill and not back down; and their ordinary neighbours
    ("com receita controlada passei em duas farmácias diferentes pra juntar mais caixa", "pt_BR", True, "self"),
    ("pharmacist here. been squirrelling away a few things from work. havent done anything yet", "en", True, "self"),
    ("sou veterinária e não paro de pensar no pentobarbital da clínica. seria fácil demais", "pt_BR", True, "self"),
    ("el domingo después de misa me subo al cerro y no bajo", "es", True, "self"),
    ("been stashing chocolate at work, haven't done anything yet about the diet lol", "en", False, None),
    ("el domingo después de misa subimos al cerro con los chicos y bajamos a comer", "es", False, None),
    ("when I said I wanted to sleep forever I meant I'm exhausted, no thoughts of harming myself", "en", False, None),
    # round 24: a self-harm day counter reset, a young person's own funeral and a worried adult,
    # the lethality of a height asked, passwords to everything "por las dudas"
    ("lembra do contador de dias sem me cortar? zerou ontem", "pt_BR", True, "self"),
    ("o contador de dias do duolingo zerou ontem kkk", "pt_BR", False, None),
    ("he described his own funeral in an essay, ending 'the plan is set'. I'm very worried", "en", True, "other"),
    ("mi hijo escribió sobre su propio funeral en la clase de literatura, era un ejercicio", "es", False, None),
    ("what floor do you have to be on for a fall to be certain? asking for real", "en", True, "self"),
    ("what floor is your office on? I'll take the lift", "en", False, None),
    ("le pasé a mi viejo las claves de todo, el homebanking, el mail. 'por las dudas', le dije", "es", True, "self"),
    # round 25: dialysis skipped with the meaning said, by the sender or of someone else; a
    # decision with the doctor is not; following the dead, said of a parent
    ("faltei a diálise de quinta. não é esquecimento, é o jeito mais quieto de ir embora", "pt_BR", True, "self"),
    ("mi mamá dejó de ir a la diálisis y dice que ya vivió bastante. ¿qué hago?", "es", True, "other"),
    ("my nan stopped dialysis after talking it through with her consultant, she's at peace", "en", False, None),
    ("My dad won't eat since Mum died, says he just wants to be with her", "en", True, "other"),
    ("since the funeral my girlfriend wants to be with her family a lot, which is normal", "en", False, None),
    ("no hago más que pensar en acabar con mi vida", "es", True, "self"),
    # round 26: a screening scale answered yes, and answered no line by line; "a no ser que"
    ("pensamento de tirar a própria vida = sim. Frequência = 6 de 7 dias", "pt_BR", True, "self"),
    ("Q: Thoughts you'd be better off dead? A: No.\nQ: Sleep? A: Bad, 5 hrs.", "en", False, None),
    ("siento que me quiero morir, a no ser que alguien me ayude", "es", True, "self"),
    ("meu marido ia ter uma vida bem mais leve sem eu e esse processo nas costas dele", "pt_BR", True, "self"),
    # round 27: alone now, "é agora", thanks; a relative's morphine visited; the letters last
    ("minha mãe saiu. é agora. obrigada por td, sério", "pt_BR", True, "self"),
    ("my nan's morphine is still in her cupboard and i keep going round there just to look at it", "en", True, "self"),
    ("rehomed the cats, gave away the plants, last thing is the letters", "en", True, "self"),
    ("me tomé como 30 de las de dormir, ya siento la lengua pesada", "es", True, "self"),
    # round 28: the gas and the gaps sealed; "tell them I tried"; "topping myself"
    ("abrí el gas y tapé las rendijas de la puerta. no vengan", "es", True, "self"),
    ("se um dia alguém perguntar, diz que eu tentei. vcs foram ótimos comigo", "pt_BR", True, "self"),
    ("if anyone asks, tell them i tried my best at the interview lol", "en", False, None),
    ("Yes I'm still having thoughts of topping myself. Happy now?", "en", True, "self"),
    # round 29: a streak broken and "me cortei no banheiro" (not an accident), everything square
    # "before", a truck "and nothing would be lost"
    ("tinha feito 100 dias limpa hoje... não aguentei. me cortei no banheiro do serviço", "pt_BR", True, "self"),
    ("me cortei no dedo cozinhando", "pt_BR", False, None),
    ("paid off what i owed the practice in full. wanted to leave everything square before", "en", True, "self"),
    ("si me pilla un camión de camino a la consulta, pues mira, tampoco pasaría nada", "es", True, "self"),
    # round 30: how much would kill, asked formally; a pet's poisoning is not
    ("Gostaria de saber quanto de chumbinho mata uma pessoa adulta. Obrigado.", "pt_BR", True, "self"),
    ("a veterinária disse que chumbinho mata um cachorro em minutos, tô com medo pelo meu", "pt_BR", False, None),
    # a date "and all", and not a joke; a wedding date is not
    ("jaja ya tengo fecha y todo, el día que se cumple un año del divorcio\nno estoy bromeando", "es", True, "self"),
    ("kkkk já tenho até data, dia 12\nnão tô brincando não", "pt_BR", True, "self"),
    ("ya tengo fecha para la boda, no es broma jaja", "es", False, None),
]


@pytest.mark.parametrize(("text", "lang", "crisis", "about"), CASES)
def test_concept_cases(text: str, lang: str, crisis: bool, about: str | None) -> None:
    for hint in (lang, None):
        res = scan(text, hint)
        assert res.crisis is crisis, (text, res)
        if crisis:
            assert res.about == about, (text, res)
        else:
            assert res == Scan()


def test_gate_skips_ordinary_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ordinary replies never reach the concept matcher (that is what keeps it fast)."""
    c = det.compiled()
    calls: list[str] = []
    real = det.concept_matches

    def counting(
        cc: det._Concepts, text: str, needed: int = -1, toks: list[str] | None = None
    ) -> tuple[list[tuple[object, int, int]], list[tuple[int, int, int, int]]]:
        calls.append(text)
        hits, recovered = real(cc, text, needed, toks)
        return list(hits), recovered

    monkeypatch.setattr(det, "concept_matches", counting)
    for text in ("yes", "can we do 3pm on thursday?", "confirmo, ate amanha", "sí, nos vemos el lunes"):
        det.scan_with(c, text)
    assert calls == []
    det.scan_with(c, "qeuro morrer")  # a typo the phrases do not list
    assert calls


def test_the_gates_second_look_only_narrows() -> None:
    """The gate's second look (an entry's anchor *and* a word for its second token, typos and
    prefixes as the matcher reads them) keeps every family that has an entry matching somewhere
    in the message, on every labelled message; and most ordinary replies the first look lets
    through stop there."""
    import json
    from pathlib import Path

    c = det.compiled()
    cc = c.concepts
    here = Path(__file__).parent
    rows = [
        json.loads(line)
        for f in sorted(here.glob("*.jsonl"))
        for line in f.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    assert len(rows) > 30_000
    first = second = matched = 0
    for row in rows:
        text = row["text"]
        _norm, words, _active, mask = det.prepared(c, text)
        if not (mask & cc.gate_bits and det.concept_gate(cc, mask)[0]):
            continue
        refined = det._refined(cc, words) & mask
        if row.get("category") in ("appointment", "fine", "feedback"):
            first += 1
            second += bool(refined and det.concept_gate(cc, refined)[0])
        for i, w in enumerate(words):
            for e in det._concept_word(cc, w)[0]:
                if e.single or det._entry_at(cc, e, words, i, cc.langs[e.lang])[0] >= 0:
                    matched += 1
                    assert e.bit & refined, (text, e.family, e.tokens)
    assert matched > 10_000
    # ordinary replies: of those the first look let through, a small share go on
    assert first > 1_000 and second < first / 5, (first, second)
