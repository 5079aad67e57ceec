"""The crisis detector: texting variants, idioms, someone else, languages, bad input."""

from __future__ import annotations

import re

import pytest

from bot.safety import Scan, scan
from bot.safety import detector as det
from bot.safety.normalize import normalize
from bot.safety.phrases import CATEGORIES, PhraseError, load_all, parse_lang_file

# (text, lang, crisis, about) -- about is None when crisis is False
CASES: list[tuple[str, str | None, bool, str | None]] = [
    # case, accents and their absence, repeated letters, spacing, punctuation
    ("I WANT TO DIE", "en", True, "self"),
    ("i want to dieeeee", "en", True, "self"),
    ("i.want.to.die", None, True, "self"),
    ("I   want    to   die!!!", None, True, "self"),
    ("quero morrerrrr", "pt_BR", True, "self"),
    ("QUERO MORRER", None, True, "self"),
    ("não quero mais viver", "pt", True, "self"),
    ("nao quero mais viver", "pt-BR", True, "self"),
    ("me quiero morir", "es", True, "self"),
    ("me kiero morir", "es", True, "self"),
    ("ya no quiero vivir más", None, True, "self"),
    ("ya no quiero vivir mas", None, True, "self"),
    # SMS shorthand, misspellings, leetspeak, spaced-out and run-together words
    ("vc acha q eu devia me matar", "pt_BR", True, "self"),
    ("n quero mais viver", "pt_BR", True, "self"),
    ("honestly might kms", "en", True, "self"),
    ("i want to kill myslef", "en", True, "self"),
    ("thinking about sucide", "en", True, "self"),
    ("su1c1d3", None, True, "self"),
    ("k!ll mys3lf", None, True, "self"),
    ("$uicidal", None, True, "self"),
    ("k i l l  m y s e l f", None, True, "self"),
    ("i want to k\u200bill myself", None, True, "self"),  # zero-width space inside a word
    # indirect ideation, plans and means, self-harm, imminent
    ("everyone would be better off without me", "en", True, "self"),
    ("sou um peso pra minha família", "pt_BR", True, "self"),
    ("quisiera dormir y no despertar", "es", True, "self"),
    ("thank you for everything. goodbye", "en", True, "self"),
    ("i've been giving away my things", "en", True, "self"),
    ("i have a plan to end it", "en", True, "self"),
    ("i'm going to jump off the bridge", "en", True, "self"),
    ("comprei uma corda pra me enforcar", None, True, "self"),
    ("me voy a tomar todas las pastillas", None, True, "self"),
    ("I cut myself again", "en", True, "self"),
    ("me corté otra vez", "es", True, "self"),
    ("i just took 30 pills", "en", True, "self"),
    ("to na ponte agora", "pt_BR", True, "self"),
    # someone else
    ("my friend says she wants to kill herself", "en", True, "other"),
    ("my son is suicidal", None, True, "other"),
    ("minha amiga quer se matar", "pt_BR", True, "other"),
    ("mi hermano dice que se quiere matar", "es", True, "other"),
    ("mon ami veut se suicider", "fr", True, "other"),
    ("meine Freundin will sich umbringen", "de", True, "other"),
    ("my friend wants to kill herself and honestly i want to die too", "en", True, "self"),
    # reported speech: about someone else unless the sender speaks of themself
    ("my client said she has pills saved up to overdose", "en", True, "other"),
    ("minha paciente disse que tem remédio guardado pra overdose", "pt_BR", True, "other"),
    ("my friend said I should text you because I want to kill myself", "en", True, "self"),
    ("ela me disse que eu devia procurar ajuda porque eu quero morrer", "pt_BR", True, "self"),
    # fr / de direct statements
    ("je veux mourir", "fr", True, "self"),
    ("J'ai envie de mourir", None, True, "self"),
    ("ich will sterben", "de", True, "self"),
    ("Ich möchte nicht mehr leben", None, True, "self"),
    # idioms and ordinary messages that share words with real statements
    ("this traffic is killing me", "en", False, None),
    ("I could kill for a coffee", "en", False, None),
    ("dead tired today", "en", False, None),
    ("she's killing it", "en", False, None),
    ("I nearly died laughing", "en", False, None),
    ("I want to die my hair red", "en", False, None),
    ("me mata de rir kkkk", "pt_BR", False, None),
    ("morrendo de rir", "pt_BR", False, None),
    ("to morta de cansada", "pt_BR", False, None),
    ("minha mãe vai me matar", "pt_BR", False, None),
    ("me muero de hambre", "es", False, None),
    ("me muero de risa", "es", False, None),
    ("je suis mort de rire", "fr", False, None),
    ("ich sterbe vor Hunger", "de", False, None),
    ("I'm not suicidal, just tired", "en", False, None),
    ("yes I'll be there thursday", "en", False, None),
    ("can we reschedule to 3pm", None, False, None),
    ("I'm fine", None, False, None),
    ("ich will die Sitzung verschieben", "de", False, None),
    ("quero remarcar para quinta", "pt_BR", False, None),
    # letters are collapsed before matching: "off" reads "of", "missed" reads "mised" (one key from
    # "mixed"); neither ordinary sentence may read as the crisis one
    ("I need to take better care of myself", "en", False, None),
    ("honestly proud of myself this week", "en", False, None),
    ("im gonna off myself tonight", "en", True, "self"),
    ("I missed my meds yesterday, the pharmacy was shut", "en", False, None),
    ("I mixed all my meds with vodka", "en", True, "self"),
    ("Fora isso, tudo tranquilo por aqui", "pt_BR", False, None),
    # a completed suicide of someone else is grief, not concern for someone at risk; wanting to
    # follow them is the sender's own crisis (set 19)
    ("my uncle took his life last spring, the memorial is Sunday", "en", False, None),
    ("meu pai se matou quando eu era criança, hoje to bem", "pt_BR", False, None),
    ("meu irmao se matou ano passado e eu penso em ir junto com ele", "pt_BR", True, "self"),
    ("mi papá se mató en marzo y solo pienso en hacer lo mismo", "es", True, "self"),
    ("I want to join them for dinner, my grandma died last year so we go every sunday", "en", False, None),
    ("quero ir junto com ele no medico, meu pai morreu e ele ta sozinho", "pt_BR", False, None),
    ("since dad took his own life I keep thinking I want to join him", "en", True, "self"),
    ("vou ir com ela no mercado, meu pai morreu e a casa ta vazia", "pt_BR", False, None),
    ("escolhi a data do casamento", "pt_BR", False, None),
    ("escolhi a data: mesmo dia que meu pai morreu", "pt_BR", True, "self"),
    ("my friend hanged himself, he is in the garage, what do I do", "en", True, "other"),
    ("minha amiga tentou se matar ontem", "pt_BR", True, "other"),
    # hyperbole about forms; denials; work with overdoses (set 19)
    ("if I have to fill in one more form I'll shoot myself lol", "en", False, None),
    ("se eu tiver que preencher mais uma guia eu me jogo da janela kkk", "pt_BR", False, None),
    ("I'm not having thoughts of ending it, just tired", "en", False, None),
    ("to com raiva, não com vontade de sumir", "pt_BR", False, None),
    ("hoje atendi duas tentativas de suicídio no plantão, to bem", "pt_BR", False, None),
    # danger from a partner is not a suicidal crisis; what the sender says of themselves is (set 20)
    ("He said he'd kill me if I ever left. I'm at my sister's tonight", "en", False, None),
    ("ele vive falando que vai me matar, mas já tenho medida protetiva", "pt_BR", False, None),
    ("mi ex me amenazó de muerte, ya puse la denuncia", "es", False, None),
    ("he's going to kill me one day anyway so I might as well save him the trouble", "en", True, "self"),
    ("working out how to make it look like an accident so the insurance pays out", "en", True, "self"),
    ("deitada aqui torcendo pra não ver o dia de amanhã", "pt_BR", True, "self"),
    ("Two years ago I tried to take my own life. I'm in such a different place now", "en", False, None),
    # holidays and anniversaries (set 21)
    ("queria ir junto com meu pai. faz um ano hoje", "pt_BR", True, "self"),
    ("queria ir junto com meu pai na ceia de natal", "pt_BR", False, None),
    ("kinda hoping i dont make it to my birthday", "en", True, "self"),
    ("dad's rifle is in the shed and i'm there for christmas. thought about it heaps", "en", True, "self"),
    ("a professora ligou, meu filho tava com o braço todo marcado de lâmina", "pt_BR", True, "other"),
    ("estoy escribiendo el discurso de despedida para mi jubilación", "es", False, None),
    ("se a tia perguntar de namorado de novo eu me jogo da janela kkkk", "pt_BR", False, None),
    ("se ele me bater de novo eu me mato", "pt_BR", True, "self"),
    ("cuestionario: ideas de hacerme daño en el último mes: no", "es", False, None),
    ("remember last easter when i said i didnt want to be here anymore? so different now", "en", False, None),
    # crisis inside a rating or a confirmation; screening answers; courses (set 22)
    ("2/5. I have a plan now. Like an actual plan, with a place and a time", "en", True, "self"),
    ("nota 1 pra sessão. vai ser hoje à noite. obrigado por tentarem", "pt_BR", True, "self"),
    ("YES for tues. can we talk about the cutting, it started again and it's getting deeper", "en", True, "self"),
    ("que si mañana no me despierto tampoco pasa nada", "es", True, "self"),
    ("thanks for trying to fix the video link, see you tuesday", "en", False, None),
    ("5/5. Wild to think a year ago I was planning my suicide and today we talked about my wedding", "en", False, None),
    ("Nada de vontade de me cortar, se tivesse eu falava", "pt_BR", False, None),
    ("no, no estoy pensando en quitarme la vida. Es estrés por la plata", "es", False, None),
    ("a first aid course on how to ask someone if they're thinking of killing themselves", "en", False, None),
    # screening answers in Q/A form, discharge notes, a rope with a story, things handed out (set 23)
    ("Q: any thoughts of self harm this week? A: no. none. zero.", "en", False, None),
    ("Q: any thoughts of self harm this week? A: yes, every night", "en", True, "self"),
    ("P: pensamentos de autolesão essa semana? R: não. nenhum.", "pt_BR", False, None),
    ("P: pensamentos de autolesão essa semana? R: sim, todo dia", "pt_BR", True, "self"),
    ("P: ¿pensamientos de autolesión? R: sí, muchos", "es", True, "self"),
    ("the discharge summary says no current suicidal ideation", "en", False, None),
    ("I still have suicidal thoughts every day", "en", True, "self"),
    ("em 2019 eu tentei suicídio. hoje tô formada e feliz", "pt_BR", False, None),
    ("em 2019 eu tentei suicídio e hoje penso nisso de novo", "pt_BR", True, "self"),
    ("en la secu me cortaba y volví a hacerlo ayer", "es", True, "self"),
    ("hice un curso de primeros auxilios y prevención del suicidio", "es", False, None),
    ("lo de me quiero morir era por el partido", "es", False, None),
    ("fui a la ferretería por una cuerda para el tendedero", "es", False, None),
    ("fui a la ferretería por una cuerda gruesa. me preguntó si era para mudanza y le dije que sí", "es", True, "self"),
    ("dei o recado pra secretária, pode cancelar minhas consultas da semana que vem, vou viajar", "pt_BR", False, None),
    ("dei meus livros pros primos, anotei quem fica com o quê. pode cancelar minhas consultas", "pt_BR", True, "self"),
    ("vou deixar as coisas em ordem antes de viajar", "pt_BR", False, None),
    ("tô doando meus livros. quero deixar tudo em ordem antes", "pt_BR", True, "self"),
    # a whole box taken, a parent "better off" replaced, last words, denials that say what it is not (set 24)
    ("TOOK THE WHOLE BOX. SCARED NOW", "en", True, "self"),
    ("i ate the whole box and felt sick lol", "en", False, None),
    ("la niña estaría mejor con otra mamá. yo solo la estoy arruinando", "es", True, "self"),
    ("valeu por tudo parceiro. foi bom enquanto durou", "pt_BR", True, "self"),
    ("valeu por tudo doutora, a gente se vê semana que vem", "pt_BR", False, None),
    ("minha avó parou de comer e disse que vai dar um jeito de ir logo", "pt_BR", True, "other"),
    ("minha avó quer encontrar o vô no céu um dia, ela é muito religiosa", "pt_BR", False, None),
    ("my mum wants to join dad at the bingo on friday", "en", False, None),
    ("my low mood is about the pain, not about wanting to die", "en", False, None),
    ("coming out at christmas dinner would be social suicide lol", "en", False, None),
    ("¿que si he pensado en hacerme daño? no, para nada", "es", False, None),
    ("he pensado en hacerme daño otra vez", "es", True, "self"),
    ("cancelé el gimnasio porque me mudo, el perro se lo queda mi hermano una semana", "es", False, None),
    # plain denials, titles, a bet with a laugh, recovery milestones, last words (set 25)
    ("im not thinking about hurting myself", "en", False, None),
    ("im thinking about hurting myself", "en", True, "self"),
    ("não tô pensando em me machucar, relaxa", "pt_BR", False, None),
    ("tô pensando em me machucar", "pt_BR", True, "self"),
    ("o jogo novo do esquadrão suicida é mt ruim kkk", "pt_BR", False, None),
    ("our school is doing a suicide prevention assembly friday", "en", False, None),
    ("if the ref doesnt call that penalty im jumping off my balcony lmao", "en", False, None),
    ("if we lose again im jumping off the bridge tonight", "en", True, "self"),
    ("a year ago i was planning to kill myself and today i got my 1 year chip. still here and glad", "en", False, None),
    ("le debo dinero a medio barrio. si yo faltara dejarían de sufrir todos", "es", True, "self"),
    ("si yo faltara a la cita me avisan?", "es", False, None),
    ("le agradezco de corazón estos meses. esta es la última vez que le escribo", "es", True, "self"),
    ("le agradezco de corazón, cuide mucho a su mamá", "es", False, None),
    # an adherence idiom no longer hides an overdose; answers to the bot's prompts (set 26)
    ("i took all my pills at once", "en", True, "self"),
    ("took all my meds with vodka", "en", True, "self"),
    ("took all my pills like 20 min ago", "en", True, "self"),
    ("I take my meds as prescribed", "en", False, None),
    ("took my pills like you said", "en", False, None),
    ("i take all my pills at night", "en", False, None),
    ("tomei todos os remédios como se fossem bala", "pt_BR", True, "self"),
    ("tomei meus remédios certinho hoje", "pt_BR", False, None),
    ("me tomé todas las pastillas como pude", "es", True, "self"),
    ("me tomé todas mis medicinas como me dijiste", "es", False, None),
    ("slot 2 i guess. if im still here by then", "en", True, "self"),
    ("4\n\nbut the cutting's back. 3 times this week", "en", True, "self"),
    ("cutting back on coffee helps my anxiety", "en", False, None),
    ("me bajé todo el blíster con un vodka hace un rato", "es", True, "self"),
    ("0 en ideas suicidas, 7 en ansiedad", "es", False, None),
    ("otra reunión con el jefe y me tiro por la ventana jajaja", "es", False, None),
    # idioms with an open ending no longer hide a method (session 6 audit)
    ("gonna kill myself with a rope", "en", True, "self"),
    ("i want to kill myself with my dads gun", "en", True, "self"),
    ("im going to end it with pills", "en", True, "self"),
    ("im killing myself with work lol", "en", False, None),
    ("i ended it with my boyfriend", "en", False, None),
    ("ended things with him last night", "en", False, None),
    ("I would rather die than live like this", "en", True, "self"),
    ("id rather die than go to that party", "en", False, None),
    ("prefiro morrer a continuar vivendo assim", "pt_BR", True, "self"),
    ("prefiro morrer a voltar naquele dentista kkk", "pt_BR", False, None),
    ("prefiero morir a seguir viviendo así", "es", True, "self"),
    ("prefiero morir antes que ir a esa boda", "es", False, None),
    ("i want to die for the pain to stop", "en", True, "self"),
    ("i just want to die for good", "en", True, "self"),
    ("i will die before my birthday, i promise you that", "en", True, "self"),
    ("im going to die before i finish this essay lol", "en", False, None),
    ("this cake is to die for", "en", False, None),
    ("id die for a pizza rn", "en", False, None),
    ("vou morrer se eu não conseguir ajuda hoje", "pt_BR", True, "self"),
    ("vou morrer se eu não comer agora kkk", "pt_BR", False, None),
    # someone else's blades, punches to one's own face, kept-back patches, a will at 24 (set 27)
    ("found razor blades in her room, what do I do", "en", True, "other"),
    ("me doy golpes contra la pared cuando me agobio", "es", True, "self"),
    ("le di un golpe a la mesa", "es", False, None),
    ("one more form and ill jump off a bridge lol", "en", False, None),
    ("no tengo ningún plan ni ganas de morirme. estoy bajoneada por la mudanza", "es", False, None),
    # holes found in session 8: a retracted screening answer, a denial that came back, a screening
    # question answered yes (about the sender, not someone else), "I'm not safe"
    ("the nurse asked if i had thoughts of killing myself and i said no. i lied", "en", True, "self"),
    ("a psiquiatra perguntou se eu pensava em me matar e eu disse que não. mas menti", "pt_BR", True, "self"),
    ("a psiquiatra perguntou se eu pensava em me matar e eu disse que não, e é verdade", "pt_BR", False, None),
    ("sin ideas suicidas hasta ayer, pero hoy volvieron", "es", True, "self"),
    ("no suicidal thoughts until yesterday, but today they came back", "en", True, "self"),
    ("no headaches until yesterday, but today they came back", "en", False, None),
    ("¿Ha pensado en quitarse la vida? Respuesta: Sí", "es", True, "self"),
    ("¿Ha pensado en quitarse la vida? Respuesta: No", "es", False, None),
    ("jajaja me muero de risa, sí", "es", False, None),
    ("CAN SOMEONE CALL ME NOW I'M NOT SAFE", "en", True, "self"),
    ("i'm not safe driving in the snow so i'll do the session by video", "en", False, None),
    ("não tô segura se consigo ir amanhã, te aviso mais tarde", "pt_BR", False, None),
    ("ES HOY. NO ME LLAMEN", "es", True, "self"),
    ("la mudanza es hoy, no me llamen", "es", False, None),
    # past and well now, then "they come back" in the present tense (round 46): not silenced
    ("hace 4 años intenté quitarme la vida, hoy me alegra estar aquí, pero vuelven las ideas", "es", True, "self"),
    ("hace 4 años intenté quitarme la vida y hoy me alegra estar aquí", "es", False, None),
    ("tentei me matar há 3 anos, hoje to feliz de estar aqui, mas ultimamente voltam as ideias", "pt_BR", True, "self"),
    ("If I hear one more Christmas song I'm going to shoot myself lol", "en", False, None),
    ("if i see another day like this i'll kill myself", "en", True, "self"),
    # a denial said as "ganas de morirme no", and the statement followed by "no es cuento" (round 47)
    ("nooo, ganas de morirme no jaja, lo que tengo son ganas de renunciar a la chamba", "es", False, None),
    ("asere, ando con ganas de matarme, no es cuento", "es", True, "self"),
    # a screening answer's words that say the thoughts stayed, and a relapse after a clean run (round 48)
    ("sigo con las ideas suicidas, no se me pasaron con el cambio de remedio", "es", True, "self"),
    ("ideas suicidas: no. autolesiones: no.", "es", False, None),
    ("I used to cut. Now I'm a totally different person but last night I did it again", "en", True, "self"),
    ("I used to cut. I'm a totally different person now", "en", False, None),
    ("faz 2 anos que não me corto mas ontem voltei a fazer", "pt_BR", True, "self"),
    ("hace 3 años que no me corto pero ayer volví a hacerlo", "es", True, "self"),
    # "ready" alone is no intent next to a medicine: a refill is ready (round 50)
    ("pharmacy says my sleeping pill refill is ready", "en", False, None),
    ("i have pills and im ready to take them all", "en", True, "self"),
    ("relaxa, não tô me cortando nem nada, mas ontem quase", "pt_BR", True, "self"),
    # a death by suicide told as a loss stays ordinary; wanting to follow the person does not (round 53)
    ("my dad died by suicide and lately i think about following him", "en", True, "self"),
    ("my cousin died by suicide last year and we're going to the memorial walk", "en", False, None),
    ("mi hermano murió por suicidio y yo quiero irme con él", "es", True, "self"),
    # a clean run "más de un año", then "anoche volví" (round 54)
    ("hace más de un año que no me corto pero anoche volví", "es", True, "self"),
    ("hace más de un año que no me corto y ya no tengo ganas", "es", False, None),
    ("é hoje. não me espera na sessão de amanhã", "pt_BR", True, "self"),
    ("é hoje o show! não me espera na sessão de amanhã, vou estar rouca kkk", "pt_BR", False, None),
    # "I'm not, suicide is on my mind": the denial idiom stops before what the statement says next (round 55)
    ("mum thinks im grand but im not, suicide is on my mind every single night lately", "en", True, "self"),
    ("im not suicidal, just tired", "en", False, None),
    # a denial idiom stops where the statement turns (round 58)
    ("falei que tô triste, não que quero sumir kkk pode ficar tranquila, to segura", "pt_BR", False, None),
    ("falei que tô triste, não que quero sumir... mas na verdade quero sim", "pt_BR", True, "self"),
    ("not having thoughts that id be better off dead, i KNOW i would be", "en", True, "self"),
    # round 60: a screening answer of "no" is a denial, unless the question was about living or the answer turns
    ("a ficha perguntou se eu já pensei em me matar, respondi q não e é verdade", "pt_BR", False, None),
    ("ela perguntou se eu pensava em me matar e eu disse que não, mas na verdade penso sim", "pt_BR", True, "self"),
    ("she asked if i wanted to live and i said no", "en", True, "self"),
    ("a psicóloga perguntou se eu queria viver e eu disse que não", "pt_BR", True, "self"),
    ("me preguntó si todavía tenía ganas de vivir, le dije que no", "es", True, "self"),
    ("no es que quiera matarme, pero a veces lo pienso", "es", True, "self"),
    ("no es q quiera suicidarme ni nada, solo estoy quemada del trabajo", "es", False, None),
    ("não que eu queira me matar né... mas às vezes penso", "pt_BR", True, "self"),
    # a chore "one more time" is no wish to die; living or waking up "again" is (round 60)
    ("if I have to fill out that intake form one more time I'm gonna die", "en", False, None),
    ("if i have to live one more day like this i'm gonna kill myself", "en", True, "self"),
    ("if i have to wake up again i'm gonna die", "en", True, "self"),
    # "me quiero matar jaja" over a wallet; not over a person lost, not when it turns serious (round 60)
    ("qué boluda, me olvidé la billetera en casa, me quiero matar jaja", "es", False, None),
    ("perdí a mi hijo hace un mes, me quiero matar jaja", "es", True, "self"),
    ("me olvidé la billetera, me quiero matar jaja pero en serio ya no puedo más", "es", True, "self"),
    # someone else's suicide long ago told as grief; wanting to follow them is not (round 60)
    ("mi amiga se suicidó el año pasado, hoy es su cumple y está difícil", "es", False, None),
    ("meu irmão se suicidou ano passado e eu quero ir junto com ele", "pt_BR", True, "self"),
    # past and well now; a number after "in" is a year only when it is one (round 60)
    ("When I got laid off in 2009 I took an overdose. This time I'm sad, but I'm safe", "en", False, None),
    ("in 20 minutes i'm taking all the pills. i'm safe from everyone then", "en", True, "self"),
    ("em 20 minutos vou tomar todos os comprimidos. hoje to bem com isso", "pt_BR", True, "self"),
    # cuts getting worse, dressed alone; a budget's cuts are not (round 60)
    ("preciso falar dos cortes, tá piorando e tive q fazer curativo sozinha", "pt_BR", True, "self"),
    ("os cortes de verba tão piorando tudo no hospital", "pt_BR", False, None),
    ("the budget cuts are getting worse at work", "en", False, None),
    # a place "high enough", said without a purpose (round 60)
    ("i was driving around looking for a spot high enough. found one", "en", True, "self"),
    ("we were looking for a spot high enough to see the fireworks", "en", False, None),
    # every language, whatever lang says
    ("me quiero morir", "en", True, "self"),
    ("I want to die", "pt_BR", True, "self"),
    ("quero morrer", "xx", True, "self"),
    ("quero morrer", "", True, "self"),
]


@pytest.mark.parametrize(("text", "lang", "crisis", "about"), CASES)
def test_scan_table(text: str, lang: str | None, crisis: bool, about: str | None) -> None:
    res = scan(text, lang)
    assert res.crisis is crisis, (text, res)
    assert res.about == about, (text, res)
    if crisis:
        assert res.level in ("high", "moderate")
        assert res.matched and all(isinstance(m, str) for m in res.matched)
    else:
        assert res == Scan()


def test_level_high_for_direct_moderate_for_indirect() -> None:
    assert scan("I want to kill myself").level == "high"
    assert scan("nobody would miss me").level == "moderate"
    # one high phrase makes the whole message high
    assert scan("nobody would miss me, I want to kill myself").level == "high"


def test_matched_ids_are_stable_phrase_ids() -> None:
    ids = {p.id for ld in load_all() for p in (*ld.phrases, *ld.concept_phrases)} | set(det._EMOJI_PHRASES)
    res = scan("i want to die. i'm going to take all my pills tonight")
    assert res.matched
    assert set(res.matched) <= ids
    assert "en.means.pills" in scan("i'm going to take all my pills tonight").matched
    # concern for someone else is reported alongside the sender's own words
    both = scan("my friend wants to kill herself and i want to die too")
    assert any(m.startswith("en.other.") for m in both.matched)
    assert any(m.startswith("en.direct.") for m in both.matched)


def test_lang_hint_orders_matched_ids() -> None:
    text = "suicidio"  # the same word in Portuguese and Spanish
    assert scan(text, "es").matched[0].startswith("es.")
    assert scan(text, "pt").matched[0].startswith("pt.")


BAD_INPUT: list[tuple[str, bool]] = [
    ("", False),
    ("   \n\t ", False),
    ("\x00\x01\x02\x1b[31m", False),
    ("\u202e\u200f\u202b", False),  # bidi marks alone
    ("\u202bquero morrer\u202c", True),  # wrapped in bidi embedding
    ("😀😀😀👍🏽👨‍👩‍👧‍👦", False),  # emoji, skin tone, ZWJ family
    ("🔪🩸", True),  # knife and blood: self-harm signal
    ("ok 👍", False),
    ("\ufeffI want to die", True),  # byte-order mark
    ("I\u0000want\u0000to\u0000die", True),  # NULs between words
    ("ｉ ｗａｎｔ ｔｏ ｄｉｅ", True),  # full-width letters
    ("مرحبا كيف حالك", False),  # right-to-left script
    ("我很好，谢谢", False),
    ("\ud800 broken surrogate", False),
]


@pytest.mark.parametrize(("text", "crisis"), BAD_INPUT)
def test_bad_input(text: str, crisis: bool) -> None:
    assert scan(text).crisis is crisis
    assert scan(text, "en").crisis is crisis


def test_100kb_messages() -> None:
    filler = "see you on thursday at 3pm, thanks! " * 3000
    assert len(filler) > 100_000
    assert not scan(filler).crisis
    assert scan(filler + " i want to kill myself").crisis
    assert scan("quero morrer " + filler, "pt_BR").crisis
    assert not scan("a" * 100_000).crisis
    assert not scan("k i " * 50_000).crisis


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("Quero MORRERRRR!!!", "quero morer"),
        ("NÃO aguento", "nao aguento"),
        ("I don't", "i dont"),
        ("j'ai envie", "jai envie"),
        ("su1c1d3", "suicide"),
        ("k!ll", "kil"),
        ("$uicide", "suicide"),
        ("k i l l  m y s e l f", "kilmyself"),
        ("see you at 3pm", "se you at 3pm"),
        ("took 30 pills", "tok 30 pils"),
        ("Straße", "strase"),
        ("a\u0303o", "ao"),
        ("  ", ""),
    ],
)
def test_normalize(raw: str, norm: str) -> None:
    assert normalize(raw) == norm


# -------------------------------------------------------------------- the phrase data itself

LANG_DATA = load_all()


def test_shipped_languages() -> None:
    assert {ld.lang for ld in LANG_DATA} >= {"en", "pt_BR", "es", "fr", "de"}


@pytest.mark.parametrize("ld", LANG_DATA, ids=lambda ld: ld.lang)
def test_categories_covered(ld: object) -> None:
    from bot.safety.phrases import LangData

    assert isinstance(ld, LangData)
    cats = {p.category for p in ld.phrases}
    if ld.lang in ("en", "pt_BR", "es"):
        assert cats == set(CATEGORIES)
    else:
        assert {"direct", "other"} <= cats
    for p in ld.phrases:
        assert p.id.split(".")[0] == ld.lang.split("_")[0].lower()
        assert p.examples, f"{p.id} has no examples"


EXAMPLES = [(p, e) for ld in LANG_DATA for p in ld.phrases for e in p.examples]


@pytest.mark.parametrize(("phrase", "example"), EXAMPLES, ids=lambda x: getattr(x, "id", str(x))[:40])
def test_every_example_is_caught_by_its_own_phrase(phrase: object, example: str) -> None:
    from bot.safety.phrases import Phrase

    assert isinstance(phrase, Phrase)
    res = scan(example)
    assert res.crisis and res.about == phrase.about, (example, res)
    c = det.compiled()
    text = " " + det.prepare(c, example)[0] + " "
    own = [p for p in c.patterns if p.phrase.id == phrase.id]
    assert any(p.rx.search(text) for p in own), f"{phrase.id} does not match its example {example!r}"


def _labelled_texts() -> list[tuple[str, str | None]]:
    import json
    from pathlib import Path

    here = Path(__file__).parent
    out: list[tuple[str, str | None]] = []
    names = ("devset", "checkset", "blindset7", "blindset8", "trainset2", "trainset3")
    for name in names:
        with (here / f"{name}.jsonl").open(encoding="utf-8") as fh:
            out.extend((r["text"], r["lang"]) for r in map(json.loads, fh) if r)
    return out


def test_second_anchor_sets_skip_only_searches_that_cannot_match() -> None:
    """A pattern with two anchor sets waits for both; that must never change a verdict. The
    same detector with the second condition switched off (``need2=0``) decides alike."""
    import dataclasses

    c = det.compiled()
    assert c.need2, "no pattern has a second anchor set"
    one = dataclasses.replace(c, need2=0, word_cache={})
    for text, lang in _labelled_texts():
        assert det.scan_with(c, text, lang) == det.scan_with(one, text, lang), text


# Pieces whose single letters join across whitespace, or do not: the piecewise normal form
# must fall back to the whole text exactly when they do.
SPACED_ACROSS = [
    "k i l l  m y s e l f",
    "k.i.l.l m.y.s.e.l.f",
    "i want to k i l l myself",
    "kk i l l",  # "kk" is not a single letter before the join, only after the collapse
    "a b c",  # three: no join
    "a b c d",
    "I a o e y",
    "x. y. z. w.",
    "!!! k !!! i !!! l !!! l",
    "word k.i.l word",
    "a b-c-d e",
    "quero m o r r e r",
    "é a o ê",
    "\u3000k\u3000i\u3000l\u3000l",
]


def _whole(c: det._Compiled, text: str) -> tuple[str, list[str], list[int], int]:
    norm, words = det._prepare_whole(c, text)
    order, mask = det._active(c, words) if words else ([], 0)
    return norm, words, order, mask


@pytest.mark.parametrize("text", SPACED_ACROSS)
def test_piecewise_normal_form_equals_the_whole_texts(text: str) -> None:
    c = det.compiled()
    assert det.prepared(c, text) == _whole(c, text)


def test_piecewise_normal_form_on_labelled_and_random_text() -> None:
    """Each whitespace piece is normalised once and remembered; the result must be what the
    whole text normalises to, for real messages and for random mixes of the hard parts
    (single letters, punctuation, accents, look-alikes, leetspeak, invisible characters)."""
    import random

    c = det.compiled()
    for text, _ in _labelled_texts():
        assert det.prepared(c, text) == _whole(c, text), text
    rng = random.Random(7)
    parts = [*"abcdeiklmosy", " ", " ", "  ", ".", "-", "'", "’", "1", "3", "0", "@", "$", "!", "|"]
    parts += ["é", "ã", "ñ", "ß", "\u200b", "\xa0", "\u3000", "\u0301", "\U0001f52a", "\U0001fa78", "\uff4b"]
    parts += ["kk", "ll", " i ", " k ", "\n", "kill", "myself", "morrer", "k1ll"]
    for _ in range(20_000):
        text = "".join(rng.choice(parts) for _ in range(rng.randint(1, 24)))
        assert det.prepared(c, text) == _whole(c, text), repr(text)


@pytest.mark.parametrize(
    ("src", "first", "second"),
    [
        # the rarer word first; the second set is another word every match holds
        ("(want|wanna) to kill myself", {"kill"}, {"myself"}),
        ("(pienso|pensando) en matar me", {"matar"}, {"pienso", "pensando"}),
        ("me (quiero|voy a) matar", {"matar"}, {"me"}),  # "me" is cheaper than two words
        ("suicide", {"suicide"}, None),  # one word: nothing to add
    ],
)
def test_anchor_sets(src: str, first: set[str], second: set[str] | None) -> None:
    from bot.safety.phrases import anchor_sets

    sets = anchor_sets(src)
    assert sets[0] == frozenset(first)
    if second is None:
        assert len(sets) == 1
    else:
        assert sets[1] == frozenset(second)


def test_every_pattern_has_anchors() -> None:
    """Patterns, idioms and frames without anchors would run on every message and cost throughput."""
    c = det.compiled()
    assert not c.always, [c.regexes[i].pattern[:60] for i in c.always]


def _bad(**over: object) -> dict[str, object]:
    data: dict[str, object] = {
        "lang": "xx",
        "macros": {"A": "x|y"},
        "phrases": [{"id": "xx.direct.a", "level": "high", "category": "direct", "patterns": ["{A} z"]}],
    }
    data.update(over)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_bad(phrases=[{"id": "xx.direct.a", "level": "urgent", "category": "direct", "patterns": ["a"]}]), "level"),
        (_bad(phrases=[{"id": "xx.direct.a", "level": "high", "category": "vibes", "patterns": ["a"]}]), "category"),
        (_bad(phrases=[{"id": "Bad Id", "level": "high", "category": "direct", "patterns": ["a"]}]), "id"),
        (_bad(phrases=[{"id": "xx.direct.a", "level": "high", "category": "direct", "patterns": ["{B} a"]}]), "macro"),
        (
            _bad(phrases=[{"id": "xx.direct.a", "level": "high", "category": "direct", "patterns": ["(a"]}]),
            "bad pattern",
        ),
        (_bad(phrases=[{"id": "xx.direct.a", "level": "high", "category": "direct", "patterns": []}]), "pattern"),
        (_bad(macros={False: "a|b"}), "macro name"),  # YAML reads a key NO as false
        (_bad(lang=None), "lang"),
        (_bad(threats=["he said ~ kill me"]), "danger"),  # a threat list that could never alert
        (_bad(relapse=["(back"]), "relapse"),
    ],
)
def test_bad_phrase_files_are_named(data: dict[str, object], message: str) -> None:
    with pytest.raises(PhraseError, match=re.escape(message)):
        parse_lang_file(data, "test.yaml")


def test_a_new_language_file_works_end_to_end() -> None:
    ld = parse_lang_file(
        {
            "lang": "it",
            "macros": {"VOGLIO": "voglio|vorrei"},
            "idioms": ["morto di (fame|sonno)"],
            "phrases": [
                {"id": "it.direct.morire", "level": "high", "category": "direct", "patterns": ["{VOGLIO} morire"]},
            ],
        },
        "it.yaml",
    )
    c = det.build([ld])
    assert det.scan_with(c, "Voglio moriiire").matched == ("it.direct.morire",)
    assert not det.scan_with(c, "sono morto di fame").crisis


def test_missing_phrase_file_is_an_error_not_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    only_en = [ld for ld in load_all() if ld.lang == "en"]
    monkeypatch.setattr(det, "_compiled", None)
    monkeypatch.setattr(det, "load_all", lambda: only_en)
    with pytest.raises(RuntimeError, match="pt_BR"):
        scan("quero morrer")


@pytest.mark.parametrize(
    ("text", "lang", "words", "crisis"),
    [
        ("🪢🪑", "en", "rope chair", True),
        ("💊💊💊💊 + 🍷🍷 tonight", "en", "pils pils pils pils tonight", True),
        ("otra vez lo hice 🩸🩸😞 perdón", "es", "otra vez lo hice blod blod perdon", True),
        ("took my meds 💊 thanks!", "en", "tok my meds pils thanks", False),
        ("cooking dinner 🔪🍅 yum", "en", "coking diner knife yum", False),
        ("see you thursday 😊👍", "en", "se you thursday", False),
        ("🩸🩹🩹 again. sorry", "en", "blod bandage bandage again sory", True),
        ("cut my finger 🩸🩹 all good", "en", "cut my finger blod bandage al god", False),
        ("🚉🚆 o próximo é o meu 🖤", "pt_BR", "train train o proximo e o meu blackheart", True),
        ("🚆 o próximo é o meu, tô atrasada", "pt_BR", "train o proximo e o meu to atrasada", False),
        ("🕊️🕊️ fui 🖤", "pt_BR", "dove dove fui blackheart", True),
        ("🕊️ descanse em paz vovó, tchau 🖤", "pt_BR", "dove descanse em paz vovo tchau blackheart", False),
    ],
)
def test_emoji_that_stand_for_a_means_are_read_as_words(text: str, lang: str, words: str, crisis: bool) -> None:
    from bot.safety.normalize import normalize

    assert normalize(text) == words
    assert scan(text, lang).crisis is crisis


@pytest.mark.parametrize(
    ("text", "told_as_past"),
    [
        ("me cortaba de chica, hace 9 años que no lo hago y estoy orgullosa", True),
        ("de adolescente me hacía daño, pero eso quedó muy atrás. ahora soy yo la que acompaña a chicas", True),
        ("hace 9 años que no lo hago y estoy orgullosa, pero anoche volví a cortarme", False),
        ("ok, see you next week then", False),
    ],
)
def test_recovered_check_left_for_later_settles_as_before(text: str, told_as_past: bool) -> None:
    # floor() leaves the "recovered" check for later when nothing was found and it is the only
    # rule that could match (it can then only keep the model from being asked); settled() does it
    c = det.compiled()
    fl = det.floor(c, text)
    assert det.settled(c, fl) is told_as_past
    if fl.recovered_needed:
        assert not fl.found and not fl.silenced
