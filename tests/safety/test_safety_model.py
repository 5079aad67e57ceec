"""The learned layer (bot/safety/model.py): its arithmetic, its place behind the phrase floor,
its verdicts on wording written after it was trained, and bad input."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any

import pytest

from bot.safety import model as mdl
from bot.safety import scan
from bot.safety.detector import compiled, floor, scan_with

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
MODEL = mdl.load()


# ------------------------------------------------------------------ arithmetic and the file

TOKENS: list[list[str]] = [
    [],
    ["#"],
    ["#", "#"],
    ["quero", "#", "#", "morrer", "#"],  # a run of blanks counts once
    ["yes"],
    ["i", "want", "to", "disappear"],
    ["quero", "#", "sumir", "#"],
    ["everyone", "would", "be", "better", "without", "me"],
    ["matarme", "matando", "matar"],  # share the prefix feature
    ["zzzzzzunseen", "qqqq"],
    ["i", "i", "i", "i"],  # repeats count each time, as in training
]


@pytest.mark.parametrize("tokens", TOKENS)
def test_logit_is_the_sum_of_the_feature_weights(tokens: list[str]) -> None:
    for lin in (MODEL.crisis, MODEL.other):
        want = lin.bias + sum(lin.weights.get(f, 0.0) for f in mdl.features(tokens))
        assert math.isclose(lin.logit(tokens), want, abs_tol=1e-9)
        assert math.isclose(lin.logit(tokens), want, abs_tol=1e-9)  # again, from the word cache


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (["a"], ["w:a", "b:^ a", "b:a $"]),
        (["a", "#", "b"], ["w:a", "b:^ a", "b:a #", "w:b", "b:# b", "b:b $"]),
        (["#", "#"], ["b:^ #", "b:# $"]),
        (["matando"], ["w:matando", "p:matan", "b:^ matando", "b:matando $"]),
    ],
)
def test_features(tokens: list[str], expected: list[str]) -> None:
    assert mdl.features(tokens) == expected


@pytest.mark.parametrize(
    ("tokens", "grams", "expected"),
    [
        (["ab"], 3, ["w:ab", "g:<ab", "g:ab>", "b:^ ab", "b:ab $"]),
        (["a"], 4, ["w:a", "b:^ a", "b:a $"]),  # shorter than a gram with its edges: none
        (["#", "xy"], 2, ["b:^ #", "w:xy", "g:<x", "g:xy", "g:y>", "b:# xy", "b:xy $"]),
    ],
)
def test_letter_gram_features(tokens: list[str], grams: int, expected: list[str]) -> None:
    assert mdl.features(tokens, grams) == expected


@pytest.mark.parametrize("tokens", TOKENS)
def test_logit_with_letter_grams_is_the_sum_of_the_feature_weights(tokens: list[str]) -> None:
    # a made-up table: the g: weights must be added once per occurrence of the word, like the rest
    lin = mdl.Linear(-0.5, {"g:<qu": 0.3, "g:ero": 0.7, "g:sum": -1.1, "w:i": 0.2, "p:matar": 0.4, "b:# sumir": 0.9}, 3)
    want = lin.bias + sum(lin.weights.get(f, 0.0) for f in mdl.features(tokens, 3))
    assert math.isclose(lin.logit(tokens), want, abs_tol=1e-9)
    assert math.isclose(lin.logit(tokens), want, abs_tol=1e-9)
    again = mdl.from_dict(
        {
            "threshold": 0.0,
            "crisis": mdl.to_dict(mdl.Model(lin, lin, 0.0, math.inf, {}))["crisis"],
            "other": {"bias": 0.0, "weights": {}},
        }
    )
    assert math.isclose(again.crisis.logit(tokens), want, abs_tol=1e-3)


def test_round_trip_keeps_every_score(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps(mdl.to_dict(MODEL)), encoding="utf-8")
    again = mdl.load(path)
    assert again.threshold == pytest.approx(MODEL.threshold)
    for tokens in TOKENS:
        assert again.crisis.logit(tokens) == pytest.approx(MODEL.crisis.logit(tokens), abs=1e-3)
        assert again.other.logit(tokens) == pytest.approx(MODEL.other.logit(tokens), abs=1e-3)


def test_missing_model_file_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="crisis model missing"):
        mdl.load(tmp_path / "nope.json")


def test_shipped_model_is_declared_package_data() -> None:
    assert mdl.MODEL_PATH.exists()
    assert '"bot.safety" = ["model.json"]' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def test_training_reads_an_explicit_list_that_leaves_the_newest_blind_set_out() -> None:
    tree = ast.parse((ROOT / "bench" / "train_safety_model.py").read_text(encoding="utf-8"))
    # BLIND_SETS is a literal; TRAIN_SETS and CV_FOLDS are literals around it, evaluated with
    # nothing else in scope (no glob, no call can build them)
    scope: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "BLIND_SETS":
                scope[name] = ast.literal_eval(node.value)
            elif name in {"TRAIN_SETS", "CV_FOLDS"}:
                code = compile(ast.Expression(node.value), "train_safety_model.py", "eval")
                scope[name] = eval(code, {"__builtins__": {}}, dict(scope))
    lists = {k: v for k, v in scope.items() if k in {"TRAIN_SETS", "CV_FOLDS"}}
    assert set(lists) == {"TRAIN_SETS", "CV_FOLDS"}
    for names in lists.values():
        # blindset111 is the next first-sight measurement (round 60); a new set is added by name
        assert all("*" not in n and "blindset111" not in n for n in names)
    # every listed file exists, so a typo cannot silently shrink the training data
    assert all((HERE / n).exists() for n in lists["TRAIN_SETS"])


def test_training_paraphrases_repeat_no_measured_message() -> None:
    """The hand-written training files hold no message of a measured set, word for word after
    normalising, so a held-out fold never meets its own message through them."""
    from bot.safety.normalize import normalize

    def texts(*names: str) -> set[str]:
        return {normalize(r["text"]) for name in names for r in _rows(name)}

    before7 = texts("devset.jsonl", "checkset.jsonl", *(f"blindset{n}.jsonl" for n in ("", 2, 3, 4, 5, 6)))
    # trainset was written before set 7, whose independent author happened to write one of its
    # sentences too ("todo mundo ia ficar melhor sem mim"; README); trainset2 came after set 7
    # trainset3 came after set 8 and repeats nothing of it or of the earlier training files
    after8 = before7 | texts("blindset7.jsonl", "blindset8.jsonl", "trainset.jsonl", "trainset2.jsonl")
    for name, measured, shared in (
        ("trainset.jsonl", before7 | texts("blindset7.jsonl"), 1),
        ("trainset2.jsonl", before7 | texts("blindset7.jsonl"), 0),
        ("trainset3.jsonl", after8, 0),
    ):
        rows = _rows(name)
        assert rows
        assert not [r["text"] for r in rows if normalize(r["text"]) in before7], name
        assert len([r for r in rows if normalize(r["text"]) in measured]) == shared, name


# --------------------------------------------------------------------- behind the floor


def _rows(name: str) -> list[dict[str, Any]]:
    with (HERE / name).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.mark.parametrize("name", ["devset.jsonl", "checkset.jsonl", "blindset6.jsonl", "blindset7.jsonl"])
def test_the_floor_keeps_every_alert(name: str) -> None:
    c = compiled()
    for r in _rows(name):
        alone = scan_with(c, r["text"], r["lang"], None)
        both = scan_with(c, r["text"], r["lang"], MODEL)
        if alone.crisis:
            assert both == alone, r["id"]  # the model never runs once a phrase or rule matched


# Written after the model was trained and scanned once, before anything was changed (the
# two goodbyes were missed at first sight and are kept, not tuned away: tests/safety/README.md;
# the Spanish one is caught since round 2, the Portuguese one since round 3).
FRESH: list[Any] = [
    ("i honestly think my kids would be fine without me around", "en", True, "self"),
    ("im so tired of being alive", "en", True, "self"),
    ("i set everything up for friday night, nobody will stop me this time", "en", True, "self"),
    ("i keep staring at the bottle of pills in my drawer", "en", True, "self"),
    ("sorry for everything. take care of mom for me", "en", True, "self"),
    ("my sister keeps saying shes a burden and wants to disappear", "en", True, "other"),
    ("i'll be 10 minutes late, traffic is insane", "en", False, None),
    ("we watched that movie where the guy jumps off the building", "en", False, None),
    ("can you send me the address again?", "en", False, None),
    ("acho que meus filhos ficariam melhor sem mim", "pt_BR", True, "self"),
    ("to cansado de estar vivo", "pt_BR", True, "self"),
    ("ja deixei tudo arrumado pra sexta a noite", "pt_BR", True, "self"),
    ("fico olhando pro vidro de remedio na gaveta", "pt_BR", True, "self"),
    # missed at first sight; caught since round 3 (trainset3's goodbyes that hand over a pet or a
    # person: "cuida bem do meu cachorro por mim"), so no longer a first-sight result
    ("desculpa por tudo, cuida da mae por mim", "pt_BR", True, "self"),
    ("minha irma vive dizendo que e um peso e quer sumir", "pt_BR", True, "other"),
    ("vou chegar 10 min atrasada, transito horrivel", "pt_BR", False, None),
    ("me manda o endereco de novo?", "pt_BR", False, None),
    ("creo que mis hijos estarian bien sin mi", "es", True, "self"),
    ("estoy cansado de estar vivo", "es", True, "self"),
    ("ya deje todo listo para el viernes en la noche", "es", True, "self"),
    ("me quedo mirando el frasco de pastillas del cajon", "es", True, "self"),
    # missed at first sight too; caught since round 2 added goodbyes without a goodbye word to
    # the training text (trainset2.jsonl), so no longer a first-sight result
    ("perdon por todo, cuida a mama por mi", "es", True, "self"),
    ("mi hermana dice que es una carga y que quiere desaparecer", "es", True, "other"),
    ("llego 10 min tarde, el trafico esta horrible", "es", False, None),
    ("me mandas la direccion otra vez?", "es", False, None),
]


@pytest.mark.parametrize(("text", "lang", "crisis", "about"), FRESH)
def test_fresh_wording(text: str, lang: str, crisis: bool, about: str | None) -> None:
    res = scan(text, lang)
    assert res.crisis is crisis
    assert res.about == about


@pytest.mark.parametrize(
    ("text", "lang", "matched"),
    [
        # the phrase and concept layers miss these; the model's id says why the alert went out
        ("i honestly think my kids would be fine without me around", "en", ("en.model",)),
        ("ja deixei tudo arrumado pra sexta a noite", "pt-BR", ("pt.model",)),
        ("creo que mis hijos estarian bien sin mi", "es_MX", ("es.model",)),
        ("creo que mis hijos estarian bien sin mi", None, ("any.model",)),
    ],
)
def test_model_verdicts_name_the_model(text: str, lang: str | None, matched: tuple[str, ...]) -> None:
    assert not scan_with(compiled(), text, lang, None).crisis
    res = scan(text, lang)
    assert res.matched == matched
    assert res.level == "moderate"
    assert res.crisis


@pytest.mark.parametrize(
    "text",
    [
        "me muero de hambre",  # an idiom only: blanked, the model is not asked
        "não tenho pensamentos suicidas",  # a negation only
        "morri de rir",
        "dead tired",
        "years ago i wanted to die but i'm in a really good place now",  # past and well now
        "há anos pensei em me matar, hoje to bem",
        # round 3 (set 8's false alerts, as classes; each of these alerted before it)
        "my cousin took her own life 6 years ago, i miss her but i'm doing well",  # grief at a distance
        "meu tio se matou faz 10 anos, hoje é o aniversario dele",
        "faz uns 4 anos eu pensava em morrer, hoje to bem",  # "uns": past and well now
        "hace unos 3 años quería morirme, hoy estoy feliz",
        "the gp asked if i'd been having dark thoughts and i said no",  # "if I'd": a denial
        "to pra baixo mas nao é nada de me matar, relaxa",
        "terminé de leer el escuadrón suicida, buenísimo",  # a title
        "a true crime podcast about a murder suicide in ohio",
        "vou doar minhas coisas porque vou me mudar pra curitiba",  # giving away before a move
        "voy a regalar todas mis cosas porque me mudo a madrid",
        "giving away all my stuff because we're moving abroad",
        "mi despedida del trabajo fue hoy, regalé mis cosas del escritorio",  # a farewell at work
        "today was my farewell at the office, said goodbye to everyone and cried",
        "if i get one more email about this i'll die",  # one more X and I'll die
        "se eu tiver que ir em mais uma reuniao eu morro",
        "vou me jogar na promoção de natal",
    ],
)
def test_idioms_negations_and_past_stay_quiet(text: str) -> None:
    assert not scan(text).crisis


def test_pro_drop_third_person_is_about_someone_else() -> None:
    # "minha prima" then a rule about jumping: no "ela", no first-person word in between
    res = scan("minha prima tá no alto do prédio ameaçando pular", "pt_BR")
    assert (res.crisis, res.about) == (True, "other")
    res = scan("minha prima tentou se matar e eu to pensando em pular da ponte", "pt_BR")
    assert (res.crisis, res.about) == (True, "self")


# ---------------------------------------------------------------------------- bad input

_BIG = ("I can make it thursday at 3pm, thanks! " * 3000)[:100_000]

BAD: list[tuple[str, bool]] = [
    ("", False),
    (" ", False),
    ("\x00\x01\x02\x07\x1b[0m\x7f", False),
    ("\u202e\u200f\u202b\u2066\u2069", False),  # bidi marks only
    ("\u202eeveryone would be better off without me\u202c", True),
    ("😀😀😀🙏🏽👨‍👩‍👧‍👦", False),
    ("😭😭😭", False),
    ("#####", False),  # the blank marker itself, typed
    ("$ ^ # $", False),
    (_BIG, False),
    (_BIG + " sorry for everything. take care of mom for me", True),
]


@pytest.mark.parametrize(("text", "crisis"), BAD, ids=range(len(BAD)))
def test_bad_input(text: str, crisis: bool) -> None:
    for lang in (None, "en", "xx", ""):
        res = scan(text, lang)
        assert res.crisis is crisis
        assert (res.level is None) is (not crisis)


def test_floor_text_never_contains_the_padding_only() -> None:
    fl = floor(compiled(), "me muero de hambre")
    assert set(fl.model_text.split()) == {"#"}


def test_many_ordinary_replies_in_one_long_message_stay_quiet() -> None:
    # a long message is read in windows (model.Model.score); ordinary replies, however many,
    # must not add up to an alert
    texts: list[str] = []
    for name in ("devset.jsonl", "checkset.jsonl"):
        with (ROOT / "tests" / "understanding" / name).open(encoding="utf-8") as fh:
            texts.extend(json.loads(line)["text"] for line in fh if line.strip())
    assert len(texts) > 500
    assert not scan(". ".join(texts)).crisis


@pytest.mark.parametrize(
    ("text", "matched"),
    [
        # round 3: classes set 8 showed the floor lacked (new sentences, not set 8's)
        ("texting this from the roof of my building", "en.concept.at_place"),
        ("please cancel my sessions, i won't be needing them. it was good knowing you", "en.indirect.goodbye_more"),
        ("ya no la voy a necesitar, fue un placer conocerte", "es.indirect.despedida"),
        ("nao vou precisar mais das consultas, foi muito bom te conhecer", "pt.indirect.despedida"),
        ("i've been hoarding my quetiapine", "en.concept.meds_hoard"),
        ("estoy guardando la sertralina desde hace semanas", "es.concept.meds_hoard"),
        ("busquei quanto tempo leva o monoxido do carro na garagem fechada", "pt.concept.car_exhaust"),
    ],
)
def test_floor_classes_of_round_3(text: str, matched: str) -> None:
    res = scan_with(compiled(), text, None, None)
    assert res.crisis
    assert matched in res.matched
