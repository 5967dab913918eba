"""A GloVe-format word-vector file for a synthetic world.

Vectors are built so that the structure a model relies on in real GloVe is present: every
word of an action or object concept is ``concept + lemma + inflection + noise`` (synonyms
share the concept part, inflections of one lemma share the lemma part and an offset common to
all words of that inflection, as GloVe's syntactic offsets), while other words are
independent. So "opens" is near "opening" and "shuts", and far from "cup".

The file also holds a few words no query uses and a multi-word token (real 840B vectors hold
some; readers split from the right), and leaves out the style's rare words so that queries
carry genuine out-of-vocabulary words.
"""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np

from momentloc.data.records import atomic_write_text
from momentloc.data.text import tokenize
from momentloc.synth.concepts import FORMS, Domain
from momentloc.synth.language import Style, template_words

# Words written to the file that no query of any preset uses.
UNUSED_WORDS = ("zebra", "violin-case", "galaxy", "umbrella", "volcano", "saxophone", "harbor",
                "glacier", "tulip", "quartz")
MULTIWORD_TOKEN = ". . ."
SCALE = 0.4  # element std of the written vectors, about that of glove.840B.300d


def lexicon(domain: Domain, style: Style) -> dict[str, list[tuple[str, str, str]]]:
    """Every token a query of this world can contain, with its ``(concept, lemma, form)``
    roles (empty for function words). Rare words are included (the writer drops them)."""
    roles: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for action in domain.actions:
        for verb in action.verbs:
            lemma = tokenize(verb[0])[0]
            for form, phrase in zip(FORMS, verb):
                words = tokenize(phrase)
                roles[words[0]].append((f"action:{action.name}", lemma, form))
                for w in words[1:]:  # particles ("up", "on") are function words
                    roles.setdefault(w, [])
    for thing in domain.objects:
        for noun in thing.nouns:
            for w in tokenize(noun):
                roles[w].append((f"object:{thing.name}", noun, "base"))
    for w in template_words(style) + list(style.rare_words):
        roles.setdefault(w, [])
    return dict(roles)


def word_vectors(domain: Domain, style: Style, dim: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """``(word, vector (dim,))`` pairs in a fixed order: concept words, then function words,
    then unused words; the style's rare words are left out."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 301]))
    roles = lexicon(domain, style)
    concepts: dict[str, np.ndarray] = {}
    lemmas: dict[str, np.ndarray] = {}
    offsets = {f: rng.standard_normal(dim) for f in FORMS}

    def draw(table: dict, key: str) -> np.ndarray:
        if key not in table:
            table[key] = rng.standard_normal(dim)
        return table[key]

    rare = set(style.rare_words)
    content = sorted(w for w, r in roles.items() if r and w not in rare)
    function = sorted(w for w, r in roles.items() if not r and w not in rare)
    out = []
    for w in content:
        parts = [0.8 * draw(concepts, c) + 0.45 * draw(lemmas, f"{c}|{lemma}") + 0.3 * offsets[form]
                 for c, lemma, form in roles[w]]
        vec = np.mean(parts, axis=0) + 0.15 * rng.standard_normal(dim)
        out.append((w, vec))
    for w in function + [x for x in UNUSED_WORDS if x not in roles] + [MULTIWORD_TOKEN]:
        out.append((w, rng.standard_normal(dim)))
    return [(w, (v / np.sqrt(np.mean(v**2)) * SCALE).astype(np.float32)) for w, v in out]


def write_glove(path: str | os.PathLike, items: list[tuple[str, np.ndarray]]) -> None:
    """Write ``word v1 ... vd`` lines (5 decimals) atomically."""
    lines = [w + " " + " ".join(f"{x:.5f}" for x in v.tolist()) + "\n" for w, v in items]
    atomic_write_text(path, "".join(lines))
