"""Write locales/<lang>/vocabulary.txt: each language's most frequent words, read as the detector reads.

    python3.11 -m venv /tmp/wf && /tmp/wf/bin/pip install wordfreq==3.1.1
    /tmp/wf/bin/python bench/build_vocabulary.py

The crisis detector forgives one typo in a concept word ("overdoes" for "overdose"), but a typo away
from a crisis word is sometimes an ordinary word: "I missed my meds" normalises to "mised", one key
from "mixed" ("mixed my meds" is an overdose). The detector drops every typo variant that is a real
word of any language it reads (bot/safety/detector.py). wordfreq is needed only to rebuild the
files, not to run Rapport.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import version
from pathlib import Path

import wordfreq  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"en": ("en", 15000), "pt_BR": ("pt", 15000), "es": ("es", 15000), "fr": ("fr", 8000), "de": ("de", 8000)}


def main() -> None:
    # normalize.py alone (standard library only): this runs where Rapport's dependencies are not installed
    spec = importlib.util.spec_from_file_location("normalize", ROOT / "bot" / "safety" / "normalize.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for lang, (code, n) in SIZES.items():
        out: list[str] = []
        for w in wordfreq.top_n_list(code, n):
            v = mod.normalize(w)
            if v and v.isalpha() and v not in out:
                out.append(v)
        head = (
            f"# The {len(out)} most frequent words of wordfreq {version('wordfreq')} top_n_list({code!r}, {n}),\n"
            "# normalised as bot/safety/normalize.py reads a text. Data (c) Robyn Speer, CC BY-SA 4.0.\n"
            "# Written by bench/build_vocabulary.py; read by bot/safety/phrases.py.\n"
        )
        (ROOT / "locales" / lang / "vocabulary.txt").write_text(head + "\n".join(out) + "\n", encoding="utf-8")
        print(lang, len(out))


if __name__ == "__main__":
    main()
